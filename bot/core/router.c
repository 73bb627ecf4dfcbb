/* The batch path: membership, state, commands and jobs, each batch in one
 * transaction together with its next_batch token. */
#include <stdlib.h>
#include <string.h>

#include "tlbot/clock.h"
#include "tlbot/crypto.h"
#include "tlbot/ctx.h"
#include "tlbot/describe.h"
#include "tlbot/log.h"
#include "tlbot/metrics.h"
#include "tlbot/router.h"

void
tlbot_router_init(struct tlbot_router *rt, const struct tlbot_config *cfg, const char *bot_user,
		  struct tlbot_store *st)
{
	memset(rt, 0, sizeof(*rt));
	rt->cfg = cfg;
	rt->bot_user = bot_user;
	rt->st = st;
}

static const char *
jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Per-user token bucket. Returns 1 to run the command, 0 to drop it
 * silently, 2 to drop it with the one polite warning. */
static int
rate_check(struct tlbot_router *rt, const char *user)
{
	struct tlbot_rate *slot = NULL, *oldest = &rt->rate[0];
	double cap = rt->cfg->rate_limit_per_min > 0 ? rt->cfg->rate_limit_per_min : 20;
	int64_t now = tlbot_clock_mono_ms();
	size_t i;

	if (rt->cfg->rate_limit_per_min <= 0)
		return 1;
	for (i = 0; i < TLBOT_RATE_SLOTS; i++) {
		if (strcmp(rt->rate[i].user, user) == 0) {
			slot = &rt->rate[i];
			break;
		}
		if (rt->rate[i].last_ms < oldest->last_ms)
			oldest = &rt->rate[i];
	}
	if (slot == NULL) {
		slot = oldest;
		snprintf(slot->user, sizeof(slot->user), "%s", user);
		slot->tokens = cap;
		slot->warned = 0;
		slot->last_ms = now;
	}
	slot->tokens += (double)(now - slot->last_ms) * cap / 60000.0;
	if (slot->tokens >= cap) {
		/* quiet long enough to fill the bucket: the next flood is warned
		 * about again; during one flood, one warning only */
		slot->tokens = cap;
		slot->warned = 0;
	}
	slot->last_ms = now;
	if (slot->tokens >= 1.0) {
		slot->tokens -= 1.0;
		return 1;
	}
	if (slot->warned)
		return 0;
	slot->warned = 1;
	return 2;
}

static void
collect_mention(const char *user_id, void *arg)
{
	tlbot_ctx_add_mention(arg, user_id);
}

/* Store a state event of room. Returns 0 or -1. */
static int
store_state(struct tlbot_router *rt, const char *room_id, const json_t *ev)
{
	const char *type = jstr(ev, "type"), *skey = jstr(ev, "state_key");
	const json_t *content = json_object_get(ev, "content");
	char *text;
	int rc;

	if (type == NULL || skey == NULL || !json_is_object(content))
		return 0;
	/* only the state the bot reads: power, creation, membership of the bot
	 * and of DM partners, the room name; encryption and history visibility
	 * (who gets the room keys) */
	if (strcmp(type, "m.room.power_levels") != 0 && strcmp(type, "m.room.create") != 0 &&
	    strcmp(type, "m.room.name") != 0 && strcmp(type, "m.room.member") != 0 &&
	    strcmp(type, TLBOT_MSC4391_TYPE) != 0 && strcmp(type, TLBOT_MSC4391_STABLE_TYPE) != 0 &&
	    strcmp(type, "m.room.encryption") != 0 && strcmp(type, "m.room.history_visibility") != 0)
		return 0;
	text = json_dumps(content, JSON_COMPACT);
	if (text == NULL)
		return -1;
	rc = tlbot_store_state_put(rt->st, room_id, type, skey, jstr(ev, "sender"), text);
	free(text);
	return rc;
}

/* The profile lookups a command asked for (tlbot_ctx_lookup_user), each an
 * outbox row carrying the command, so the worker can run it again when the
 * answers are in. 0 or -1. */
static int
enqueue_lookups(struct tlbot_router *rt, struct tlbot_ctx *ctx)
{
	json_t *ev;
	char *text, txn[900];
	size_t i;
	int rc = 0;

	if (ctx->nlookups == 0 || ctx->rerun)
		return 0;
	ev = json_pack("{s:s, s:s, s:s, s:s, s:I, s:{s:s, s:s}}", "event_id", ctx->event_id,
		       "room_id", ctx->room_id, "sender", ctx->sender, "type", "m.room.message",
		       "origin_server_ts", (json_int_t)ctx->event_time * 1000, "content", "msgtype",
		       "m.text", "body", ctx->body);
	text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	json_decref(ev);
	if (text == NULL)
		return -1;
	for (i = 0; i < ctx->nlookups && rc == 0; i++) {
		snprintf(txn, sizeof(txn), "tlbot.profile.%s.%s", ctx->event_id, ctx->lookups[i]);
		log_info("room %s event %s: asking the homeserver whether %s exists", ctx->room_id,
			 ctx->event_id, ctx->lookups[i]);
		rc = tlbot_store_outbox_add(rt->st, txn, "profile", ctx->room_id, ctx->lookups[i],
					    NULL, text, NULL, 0);
	}
	free(text);
	return rc;
}

/* An edit (m.replace) of a command that no family took as its own (a
 * stand-up answer is): when the original was refused or unknown, the edited
 * command runs and is answered, as a reply to the message people see; when
 * the original already ran, one note says edits are not re-run and how to
 * change the record. 0 or -1 (database). */
static int
edit_of_command(struct tlbot_router *rt, struct tlbot_ctx *ctx)
{
	struct tlbot_cmdline cl;
	const char *orig = ctx->replaces;
	char err[512];
	int isc, ok = 0, noted = 0, known, rc = 0;

	isc = tlbot_cmdline_parse(ctx->body, (const char *const *)rt->cfg->prefixes.v, &cl, err,
				  sizeof(err));
	if (isc == 0)
		return 0; /* edited into plain text: nothing to do */
	/* only the sender's own commands (clients ignore others' edits); an
	 * edit of a plain message or of an event never seen is left alone */
	known = tlbot_store_outcome_get(rt->st, orig, ctx->sender, &ok, &noted);
	if (known != 0)
		goto out;
	/* replies and records refer to the message as people see it; the
	 * edit's own id stays in txn_base, so each edit answers once */
	ctx->event_id = orig;
	ctx->replaces = NULL;
	if (ok) {
		const struct tlbot_cmd *c = isc > 0 ? tlbot_command_find(cl.name) : NULL;
		const struct tlbot_subcmd *sc;
		int has_edit = 0;

		if (noted)
			goto out;
		for (sc = c ? c->subcmds : NULL; sc && sc->name; sc++)
			if (strcmp(sc->name, "edit") == 0)
				has_edit = 1;
		log_info("room %s event %s: edit of a command that already ran: not re-run",
			 ctx->room_id, orig);
		if (has_edit)
			rc = tlbot_replyf(ctx, "I already ran this command, so I do not run edits of it. "
					  "To change the record, send a new command: `%s%s edit` "
					  "(`%shelp %s` shows how).", tlbot_ctx_prefix(ctx), c->name,
					  tlbot_ctx_prefix(ctx), c->name);
		else
			rc = tlbot_replyf(ctx, "I already ran this command, so I do not run edits of it. "
					  "Send the command again as a new message to run it.");
		if (rc == 0)
			rc = tlbot_store_outcome_noted(rt->st, orig);
		goto out;
	}
	if (rate_check(rt, ctx->sender) != 1) {
		log_debug("room %s event %s: rate limited %s (edit)", ctx->room_id, orig, ctx->sender);
		goto out;
	}
	rt->commands++;
	log_debug("room %s event %s: edited command from %s (the original was refused)",
		  ctx->room_id, orig, ctx->sender);
	if (tlbot_dispatch(ctx, isc > 0 ? &cl : NULL, err) < 0)
		rc = -1;
	else
		rc = tlbot_store_outcome_set(rt->st, orig, ctx->room_id, ctx->sender, !ctx->failed) != 0 ||
		     enqueue_lookups(rt, ctx) != 0 ? -1 : 0;
	rt->replies += (uint64_t)ctx->msg_index;
out:
	if (isc > 0)
		tlbot_cmdline_release(&cl);
	return known < 0 ? -1 : rc;
}

#define TLBOT_ROUTER_MAX_LINES 10 /* commands run from one message */

/* Parse and run one command in text (ctx set up). 1 when text was a
 * command (handled or refused; the rate limit applies unless rated), 0
 * when it is not a command, -1 on a database failure. *ok (may be NULL)
 * is cleared when the command was refused. */
static int
run_command(struct tlbot_router *rt, struct tlbot_ctx *ctx, const char *text, int rated, int *ok)
{
	struct tlbot_cmdline cl;
	char err[512];
	int isc = tlbot_cmdline_parse(text, (const char *const *)rt->cfg->prefixes.v, &cl, err,
				      sizeof(err));
	int r, rc = 1;

	if (isc == 0)
		return 0;
	r = rated ? 1 : rate_check(rt, ctx->sender);
	if (r == 0) {
		log_info("room %s event %s: rate limited %s: command dropped", ctx->room_id,
			 ctx->event_id, ctx->sender);
	} else if (r == 2) {
		log_warnx("room %s: %s is over the command rate limit (%d per minute)", ctx->room_id,
			  ctx->sender, rt->cfg->rate_limit_per_min);
		if (tlbot_replyf(ctx, "you are sending commands faster than I take them (%d a minute); "
				 "I will ignore your commands for a moment",
				 rt->cfg->rate_limit_per_min) != 0)
			rc = -1;
	} else {
		int before = ctx->msg_index;

		rt->commands++;
		log_debug("room %s event %s: command from %s", ctx->room_id, ctx->event_id, ctx->sender);
		if (tlbot_dispatch(ctx, isc > 0 ? &cl : NULL, err) < 0 || enqueue_lookups(rt, ctx) != 0)
			rc = -1;
		else if (ok && ctx->failed)
			*ok = 0;
		rt->replies += (uint64_t)(ctx->msg_index - before);
	}
	if (isc > 0)
		tlbot_cmdline_release(&cl);
	return rc;
}

/* Several commands, one per line (issue 13 item 6): each line that starts
 * with the prefix runs as its own command, in order; their replies' txnIds
 * are the event id and a running index, so a retried batch sends each reply
 * once and in order. The text of a command runs to the next command line. 0 or
 * -1 (database). */
static int
run_lines(struct tlbot_router *rt, struct tlbot_ctx *ctx, const char *body, const size_t *starts,
	  size_t n, int *ok)
{
	size_t k, len = strlen(body);
	int r;

	log_info("room %s event %s: %zu commands in one message: running each", ctx->room_id,
		 ctx->event_id, n);
	r = rate_check(rt, ctx->sender);
	if (r != 1) {
		log_info("room %s event %s: rate limited %s: commands dropped", ctx->room_id,
			 ctx->event_id, ctx->sender);
		if (r == 2 && tlbot_replyf(ctx, "you are sending commands faster than I take them (%d a minute); "
					   "I will ignore your commands for a moment",
					   rt->cfg->rate_limit_per_min) != 0)
			return -1;
		return 0;
	}
	for (k = 0; k < n; k++) {
		size_t end = k + 1 < n ? starts[k + 1] : len;
		char *line;

		while (end > starts[k] && (body[end - 1] == '\n' || body[end - 1] == ' ' ||
					   body[end - 1] == '\r' || body[end - 1] == '\t'))
			end--;
		line = strndup(body + starts[k], end - starts[k]);
		if (line == NULL)
			return -1;
		/* the reply index runs on across the lines: each message's
		 * txnId is the event id and its index, as for one command, so
		 * the worker keeps them in order (one cause) */
		ctx->body = line;
		r = run_command(rt, ctx, line, 1, ok);
		ctx->body = body;
		free(line);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* The text of a message as the router reads it, and what it frees. */
struct msg_text {
	const char *body, *html;
	char *pilled, *html_owned, *structured;
};

/* Fill ctx from the event: room, sender, ids, time, txnId base (in
 * txn_base), reply and thread relations. */
static void
ctx_from_event(struct tlbot_router *rt, struct tlbot_ctx *ctx, const char *room_id,
	       const json_t *ev, int is_dm, char *txn_base, size_t txn_len)
{
	const json_t *rel = json_object_get(json_object_get(ev, "content"), "m.relates_to");
	const char *rel_type = jstr(rel, "rel_type");
	json_int_t ts = json_integer_value(json_object_get(ev, "origin_server_ts"));

	ctx->room_id = room_id;
	ctx->sender = jstr(ev, "sender");
	ctx->event_id = jstr(ev, "event_id");
	ctx->is_dm = is_dm;
	ctx->encrypted = rt->decrypted;
	if (ts > 0)
		ctx->event_time = (time_t)(ts / 1000);
	snprintf(txn_base, txn_len, "%s.%s", rt->rerun ? "p" : "e", ctx->event_id);
	ctx->txn_base = txn_base;
	ctx->rerun = rt->rerun;
	ctx->in_reply_to = jstr(json_object_get(rel, "m.in_reply_to"), "event_id");
	if (rel_type && strcmp(rel_type, "m.thread") == 0)
		ctx->thread_root = jstr(rel, "event_id");
}

/* The body and formatted body of a message, an edit (its m.new_content;
 * ctx->replaces set) or a redaction (ctx->redacts set, body ""). Returns 0,
 * or -1 when the event has none (logged: it is ignored). */
static int
message_body(struct tlbot_ctx *ctx, const json_t *ev, struct msg_text *t)
{
	const json_t *content = json_object_get(ev, "content");
	const json_t *rel = json_object_get(content, "m.relates_to");
	const char *rel_type = jstr(rel, "rel_type");

	t->body = jstr(content, "body");
	if (strcmp(jstr(ev, "type"), "m.room.redaction") == 0) {
		ctx->redacts = jstr(ev, "redacts");
		if (ctx->redacts == NULL)
			ctx->redacts = jstr(content, "redacts");
		if (ctx->redacts == NULL) {
			log_info("room %s event %s: a redaction without redacts: ignored",
				 ctx->room_id, ctx->event_id);
			return -1;
		}
		t->body = "";
	} else if (rel_type && strcmp(rel_type, "m.replace") == 0) {
		ctx->replaces = jstr(rel, "event_id");
		t->body = jstr(json_object_get(content, "m.new_content"), "body");
		if (ctx->replaces == NULL || t->body == NULL) {
			log_info("room %s event %s: an edit without m.new_content.body: ignored",
				 ctx->room_id, ctx->event_id);
			return -1;
		}
	} else if (t->body == NULL) {
		log_info("room %s event %s: a message without a body: ignored", ctx->room_id,
			 ctx->event_id);
		return -1;
	}
	t->html = ctx->replaces ? jstr(json_object_get(content, "m.new_content"), "formatted_body")
				: jstr(content, "formatted_body");
	return 0;
}

/* MSC4391: a structured invocation runs as the command line it stands
 * for, through the same parser, checks and handlers (t->body becomes that
 * line). Returns 0 to go on, 1 when a malformed one was answered, or -1
 * (database). */
static int
structured_invocation(struct tlbot_router *rt, struct tlbot_ctx *ctx, const json_t *content,
		      struct msg_text *t)
{
	const char *prefix = rt->cfg->prefixes.n ? rt->cfg->prefixes.v[0] : "!";
	char serr[400];
	int sc = tlbot_structured_command(content, rt->bot_user, prefix, &t->structured, serr,
					  sizeof(serr));

	if (sc < 0) {
		log_info("room %s event %s: a malformed structured command: %s", ctx->room_id,
			 ctx->event_id, serr);
		ctx->body = t->body;
		if (tlbot_dispatch(ctx, NULL, serr) < 0 ||
		    tlbot_store_outcome_set(rt->st, ctx->event_id, ctx->room_id, ctx->sender, 0) != 0)
			return -1;
		return 1;
	}
	if (sc > 0) {
		log_debug("room %s event %s: structured command: %s", ctx->room_id, ctx->event_id,
			  t->structured);
		t->body = t->structured;
		t->html = NULL;
	}
	return 0;
}

/* The text commands read: a reply's fallback stripped (spec: "Fallbacks
 * for rich replies"), so "!ping" sent as a reply is "!ping"; display-name
 * pills as user ids, so "assign C-1 Kim Lee" reads as the id Element
 * linked; the mentions collected into ctx. */
static void
command_text(struct tlbot_ctx *ctx, struct msg_text *t)
{
	if (ctx->redacts == NULL && ctx->in_reply_to && t->structured == NULL) {
		const char *stripped = tlbot_reply_strip_body(t->body);

		if (stripped != t->body)
			log_debug("room %s event %s: stripped a reply fallback", ctx->room_id,
				  ctx->event_id);
		t->body = stripped;
		t->html_owned = tlbot_reply_strip_html(t->html);
		if (t->html_owned != NULL)
			t->html = t->html_owned;
	}
	if (ctx->redacts == NULL) {
		t->pilled = tlbot_pills_to_ids(t->body, t->html);
		if (t->pilled)
			t->body = t->pilled;
	}
	ctx->body = t->body;
	/* Mentions come from the text itself (pills and plain ids). m.mentions
	 * alone is not trusted: clients add the sender of the message replied
	 * to, who must not be assigned by accident. */
	tlbot_mentions_collect(t->body, t->html, NULL, collect_mention, ctx);
}

/* Run body when it is one command or several (one per line) and record
 * the outcome. Returns 0 when it is no command, 1 when it ran, or -1
 * (database). */
static int
run_if_command(struct tlbot_router *rt, struct tlbot_ctx *ctx, const char *body)
{
	const char *const *prefixes = (const char *const *)rt->cfg->prefixes.v;
	size_t starts[TLBOT_ROUTER_MAX_LINES], nlines;
	int ok = 1, r;

	nlines = tlbot_command_lines(body, prefixes, starts, TLBOT_ROUTER_MAX_LINES);
	if (nlines > 1)
		r = run_lines(rt, ctx, body, starts, nlines, &ok) < 0 ? -1 : 1;
	else
		r = run_command(rt, ctx, body, 0, &ok);
	if (r == 0)
		return 0;
	if (r < 0 || tlbot_store_outcome_set(rt->st, ctx->event_id, ctx->room_id, ctx->sender, ok) != 0)
		return -1;
	return 1;
}

/* Not a command: offer it to the families that listen, each in a
 * savepoint; *consumed is set when one took it. 0 or -1 (database). */
static int
offer_to_families(struct tlbot_router *rt, struct tlbot_ctx *ctx, int *consumed)
{
	size_t i;
	int r;

	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_cmd *c = tlbot_commands[i];

		if (c->on_message == NULL)
			continue;
		if (tlbot_store_savepoint(rt->st) != 0)
			return -1;
		ctx->failed = 0;
		r = c->on_message(ctx);
		if (ctx->db_failed) {
			tlbot_store_rollback_to(rt->st);
			return -1;
		}
		if (r < 0 || ctx->failed) {
			tlbot_store_rollback_to(rt->st);
			if (ctx->encrypted)
				log_debug("room %s event %s: %s ignored the message: %s", ctx->room_id,
					  ctx->event_id, c->name, tlbot_buf_str(&ctx->err));
			else
				log_info("room %s event %s: %s ignored the message: %s", ctx->room_id,
					 ctx->event_id, c->name, tlbot_buf_str(&ctx->err));
			continue;
		}
		if (tlbot_store_release(rt->st) != 0)
			return -1;
		if (r > 0) {
			*consumed = 1;
			return 0;
		}
	}
	return 0;
}

/* Handle a message (command or not) from an allowed user. 0 or -1 (db). */
static int
handle_message(struct tlbot_router *rt, const char *room_id, const json_t *ev, int is_dm)
{
	const json_t *content = json_object_get(ev, "content");
	struct msg_text t = { NULL, NULL, NULL, NULL, NULL };
	struct tlbot_ctx ctx;
	char txn_base[300];
	const char *bundled;
	int rc = 0, r, consumed = 0;

	/* A server before MSC3925 (spec <= v1.6) serves an edited event (in a
	 * gap fill) with its latest edit's content and the edit bundled in
	 * unsigned.m.relations: the text that runs now is the edited one, so
	 * that edit is applied; marked handled, it is not answered again as
	 * an edit of a command that already ran. */
	bundled = jstr(json_object_get(json_object_get(json_object_get(ev, "unsigned"), "m.relations"),
				       "m.replace"), "event_id");
	if (bundled && tlbot_store_event_mark(rt->st, bundled, room_id) != 0)
		return -1;
	tlbot_ctx_init(&ctx, rt->cfg, rt->st, rt->bot_user);
	ctx_from_event(rt, &ctx, room_id, ev, is_dm, txn_base, sizeof(txn_base));
	if (message_body(&ctx, ev, &t) != 0)
		goto out;
	if (ctx.redacts == NULL && ctx.replaces == NULL) {
		r = structured_invocation(rt, &ctx, content, &t);
		if (r != 0) {
			rc = r < 0 ? -1 : 0;
			goto out;
		}
	}
	command_text(&ctx, &t);
	if (ctx.replaces == NULL && ctx.redacts == NULL) {
		r = run_if_command(rt, &ctx, t.body);
		if (r != 0) {
			rc = r < 0 ? -1 : 0;
			goto out;
		}
	}
	rc = offer_to_families(rt, &ctx, &consumed);
	if (rc == 0 && !consumed && ctx.replaces && edit_of_command(rt, &ctx) != 0)
		rc = -1;
	else if (rc == 0 && !consumed && !ctx.replaces)
		log_debug("room %s event %s: not a command, and no family took it: ignored", room_id,
			  ctx.event_id);
out:
	free(t.pilled);
	free(t.html_owned);
	free(t.structured);
	tlbot_ctx_release(&ctx);
	return rc;
}

/* Someone else sends notices: a bot, not asked to stand-ups. 0 or -1. */
static int
note_notice_sender(struct tlbot_router *rt, const char *sender)
{
	char key[300], *v = NULL;
	int r;

	snprintf(key, sizeof(key), "notice_sender.%s", sender);
	r = tlbot_store_kv_get(rt->st, key, &v);
	free(v);
	if (r < 0)
		return -1;
	return r == 1 ? tlbot_store_kv_set(rt->st, key, "1") : 0;
}

/* Command descriptions for every joined room but DM rooms. 0 or -1. */
static int
describe_rooms(struct tlbot_router *rt)
{
	struct tlbot_ctx ctx;
	struct tlbot_db_rows q;
	int rc = 0, step = 0;

	tlbot_ctx_init(&ctx, rt->cfg, rt->st, rt->bot_user);
	if (tlbot_db_query(&ctx, &q, "SELECT room_id FROM rooms WHERE membership = 'join'", "") != 0) {
		tlbot_ctx_release(&ctx);
		return -1;
	}
	while (rc == 0 && (step = tlbot_db_next(&q)) > 0) {
		const char *room = tlbot_db_col_text(&q, 0);

		char *dm_user = NULL, *creator = NULL;
		int dm, own;

		if (room == NULL || !tlbot_config_room_allowed(rt->cfg, room))
			continue;
		/* not in direct-message rooms: the bot made them (so it may send
		 * state) and one person there needs no autocomplete for the team.
		 * The rooms the bot creates are its DM rooms, known as such
		 * before the worker has recorded the DM. */
		dm = tlbot_store_dm_user(rt->st, room, &dm_user);
		own = tlbot_store_state_sender(rt->st, room, "m.room.create", "", &creator);
		if (own >= 0)
			own = own == 0 && creator && strcmp(creator, rt->bot_user) == 0;
		free(dm_user);
		free(creator);
		if (dm < 0 || own < 0)
			rc = -1;
		else if (dm == 1 && !own)
			rc = tlbot_describe_room(rt->cfg, rt->st, rt->bot_user, room);
	}
	tlbot_db_done(&q);
	tlbot_ctx_release(&ctx);
	return rc == 0 && step >= 0 ? 0 : -1;
}

static int route_event(struct tlbot_router *rt, const char *room_id, const json_t *ev, int is_dm);

/* Process one timeline event. answer: 0 while replaying history that must
 * only be marked handled. Returns 0 or -1 (database). */
static int
handle_event(struct tlbot_router *rt, const char *room_id, const json_t *ev, int answer,
	     int is_dm)
{
	const char *event_id = jstr(ev, "event_id"), *type = jstr(ev, "type");
	const char *sender = jstr(ev, "sender");
	const json_t *content = json_object_get(ev, "content");
	int seen;

	if (!json_is_object(ev) || event_id == NULL || type == NULL || sender == NULL ||
	    !json_is_object(content)) {
		log_debug("room %s: skipped a malformed event", room_id);
		return 0;
	}
	rt->events++;
	seen = tlbot_store_event_seen(rt->st, event_id);
	if (seen < 0)
		return -1;
	if (seen)
		return 0;
	if (tlbot_store_event_mark(rt->st, event_id, room_id) != 0)
		return -1;
	if (json_is_string(json_object_get(ev, "state_key")) && store_state(rt, room_id, ev) != 0)
		return -1;
	if (!answer || strcmp(sender, rt->bot_user) == 0)
		return 0;
	if (strcmp(type, "m.room.encrypted") == 0 && rt->crypto) {
		json_t *plain = NULL;
		int r;

		if (!tlbot_config_user_allowed(rt->cfg, sender))
			return 0;
		r = tlbot_crypto_decrypt(rt->crypto, rt->st, room_id, ev, &plain);
		if (r < 0)
			return -1;
		if (r > 0)
			return 0; /* kept until its key arrives, or refused (logged) */
		rt->decrypted = 1;
		r = route_event(rt, room_id, plain, is_dm);
		rt->decrypted = 0;
		json_decref(plain);
		return r;
	}
	return route_event(rt, room_id, ev, is_dm);
}

/* Route a (decrypted) message event already marked handled. 0 or -1. */
static int
route_event(struct tlbot_router *rt, const char *room_id, const json_t *ev, int is_dm)
{
	const char *event_id = jstr(ev, "event_id"), *type = jstr(ev, "type");
	const char *sender = jstr(ev, "sender");
	const json_t *content = json_object_get(ev, "content");
	const char *msgtype;

	if (event_id == NULL || type == NULL || sender == NULL || !json_is_object(content))
		return 0;
	if (strcmp(type, "m.room.message") != 0 && strcmp(type, "m.room.redaction") != 0)
		return 0;
	msgtype = jstr(content, "msgtype");
	if (msgtype && strcmp(msgtype, "m.notice") == 0)
		return note_notice_sender(rt, sender); /* bots talk in notices: never answer one */
	if (strcmp(type, "m.room.message") == 0 && msgtype == NULL) {
		log_info("room %s event %s: ignored a message from %s without a msgtype", room_id,
			 event_id, sender);
		return 0;
	}
	if (!tlbot_config_user_allowed(rt->cfg, sender)) {
		log_debug("room %s event %s: ignored %s (not in the allow-list)", room_id, event_id,
			  sender);
		return 0;
	}
	if (!rt->isolate)
		return handle_message(rt, room_id, ev, is_dm);
	if (tlbot_store_exec(rt->st, "SAVEPOINT ev") != 0)
		return -1;
	if (handle_message(rt, room_id, ev, is_dm) != 0) {
		log_error("room %s event %s from %s: handling failed again; skipped so the "
			  "other events go on (the event stays marked handled)", room_id, event_id, sender);
		if (tlbot_store_exec(rt->st, "ROLLBACK TO ev") != 0)
			return -1;
	}
	return tlbot_store_exec(rt->st, "RELEASE ev");
}

/* An invite: join when the inviter and the room are allowed, else decline. */
static int
handle_invite(struct tlbot_router *rt, const char *room_id, const json_t *room, const char *next)
{
	const json_t *events = json_object_get(json_object_get(room, "invite_state"), "events");
	const char *inviter = NULL;
	int is_direct = 0, allowed;
	char txn[600], *membership = NULL;
	size_t i;

	for (i = 0; i < json_array_size(events); i++) {
		const json_t *ev = json_array_get(events, i);
		const char *skey = jstr(ev, "state_key"), *type = jstr(ev, "type");

		if (type && skey && strcmp(type, "m.room.member") == 0 &&
		    strcmp(skey, rt->bot_user) == 0) {
			const json_t *c = json_object_get(ev, "content");
			const char *ms = jstr(c, "membership");

			if (ms && strcmp(ms, "invite") == 0) {
				inviter = jstr(ev, "sender");
				is_direct = json_is_true(json_object_get(c, "is_direct"));
			}
		}
	}
	if (tlbot_store_room_membership(rt->st, room_id, &membership) < 0)
		return -1;
	if (membership && (strcmp(membership, "join") == 0 || strcmp(membership, "invite") == 0)) {
		free(membership);
		return 0; /* already handled this invite */
	}
	free(membership);
	allowed = inviter && tlbot_config_user_allowed(rt->cfg, inviter) &&
		  tlbot_config_room_allowed(rt->cfg, room_id);
	log_info("room %s: invited by %s: %s", room_id, inviter ? inviter : "(unknown)",
		 allowed ? "joining" : "declining (not allowed)");
	snprintf(txn, sizeof(txn), "tlbot.%s.%s.%s", allowed ? "join" : "decline", room_id, next);
	if (tlbot_store_room_set(rt->st, room_id, allowed ? "invite" : "leave", inviter) != 0)
		return -1;
	if (allowed && is_direct && inviter) {
		char *existing = NULL;

		if (tlbot_store_dm_get(rt->st, inviter, &existing) == 1 &&
		    tlbot_store_dm_set(rt->st, inviter, room_id) != 0)
			return -1;
		free(existing);
	}
	return tlbot_store_outbox_add(rt->st, txn, allowed ? "join" : "leave", room_id, NULL, NULL,
				      NULL, NULL, 0);
}

/* m.direct account data: remember the DM rooms the bot already has. */
static int
handle_account_data(struct tlbot_router *rt, const json_t *batch)
{
	const json_t *events = json_object_get(json_object_get(batch, "account_data"), "events");
	size_t i;

	for (i = 0; i < json_array_size(events); i++) {
		const json_t *ev = json_array_get(events, i);
		const json_t *c = json_object_get(ev, "content");
		const char *type = jstr(ev, "type"), *user;
		json_t *rooms;

		if (type == NULL || strcmp(type, "m.direct") != 0 || !json_is_object(c))
			continue;
		json_object_foreach((json_t *)c, user, rooms) {
			const char *room = json_string_value(json_array_get(rooms, json_array_size(rooms) - 1));
			char *have = NULL;
			int r;

			if (room == NULL)
				continue;
			r = tlbot_store_dm_get(rt->st, user, &have);
			free(have);
			if (r < 0 || (r == 1 && tlbot_store_dm_set(rt->st, user, room) != 0))
				return -1;
		}
	}
	return 0;
}

/* Is ev the bot's own join to the room? */
static int
is_own_join(struct tlbot_router *rt, const json_t *ev)
{
	const char *type = jstr(ev, "type"), *skey = jstr(ev, "state_key");
	const char *ms = jstr(json_object_get(ev, "content"), "membership");

	return type && skey && ms && strcmp(type, "m.room.member") == 0 &&
	       strcmp(skey, rt->bot_user) == 0 && strcmp(ms, "join") == 0;
}

/* Does a gap page reach what we already know? (a handled event, or the
 * bot's own join, before which nothing is answered). */
static int
gap_boundary(struct tlbot_router *rt, const json_t *ev)
{
	const char *id = jstr(ev, "event_id");

	if (id && tlbot_store_event_seen(rt->st, id) == 1)
		return 1;
	return is_own_join(rt, ev);
}

/* The one welcome in a team room: the three first commands, in order. */
static int
post_welcome(struct tlbot_ctx *ctx, const char *room_id)
{
	static const char *const steps[][2] = {
		{"team add @name --role ROLE", "who is on the team"},
		{"challenge new \"title\" --lead @name", "what the team works on"},
		{"standup schedule 09:30 Europe/London mon-fri", "a daily stand-up"},
	};
	const char *prefix = tlbot_ctx_prefix(ctx);
	struct tlbot_msg m;
	char line[256];
	size_t i;

	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "Hello! I keep this team's challenges, experiments and stand-ups. "
			   "Start with:");
	tlbot_msg_html(&m, "<ol>");
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		tlbot_msg_html(&m, "<li>");
		snprintf(line, sizeof(line), "\n%zu. ", i + 1);
		tlbot_msg_plain(&m, line);
		snprintf(line, sizeof(line), "%s%s", prefix, steps[i][0]);
		tlbot_msg_code(&m, line);
		tlbot_msg_textf(&m, " — %s", steps[i][1]);
		tlbot_msg_html(&m, "</li>");
	}
	tlbot_msg_html(&m, "</ol>");
	tlbot_msg_plain(&m, "\n");
	snprintf(line, sizeof(line), "%shelp", prefix);
	tlbot_msg_code(&m, line);
	tlbot_msg_text(&m, " lists everything.");
	return tlbot_send_room(ctx, room_id, &m);
}

/* A room the bot is newly in: ask the homeserver for its members (a
 * lazy-loading /sync lists only those who spoke), and in a team room it
 * was invited to, say hello once with the first three commands. */
static int
joined_room_news(struct tlbot_router *rt, const char *room_id, int welcome, const char *next)
{
	char txn[600];

	snprintf(txn, sizeof(txn), "tlbot.members.%s.%s", room_id, next);
	if (tlbot_store_outbox_add(rt->st, txn, "members", room_id, NULL, NULL, NULL, NULL, 0) != 0)
		return -1;
	if (welcome) {
		struct tlbot_ctx ctx;
		char base[400];
		int rc;

		tlbot_ctx_init(&ctx, rt->cfg, rt->st, rt->bot_user);
		snprintf(base, sizeof(base), "welcome.%s", room_id);
		ctx.txn_base = base;
		rc = post_welcome(&ctx, room_id);
		tlbot_ctx_release(&ctx);
		if (rc != 0)
			return -1;
	}
	return 0;
}

static int
handle_joined_room(struct tlbot_router *rt, const char *room_id, const json_t *room,
		   int first_sync, const char *next)
{
	const json_t *timeline = json_object_get(room, "timeline");
	const json_t *events = json_object_get(timeline, "events");
	const json_t *state = json_object_get(json_object_get(room, "state"), "events");
	json_t *gap = NULL;
	char *membership = NULL, *dm_user = NULL;
	int was_joined, had_row, invited, answer, is_dm, own_join_here, rc = -1;
	size_t i;

	if (tlbot_store_room_membership(rt->st, room_id, &membership) < 0)
		return -1;
	was_joined = membership && strcmp(membership, "join") == 0;
	had_row = membership != NULL;
	invited = membership && strcmp(membership, "invite") == 0;
	free(membership);
	if (!tlbot_config_room_allowed(rt->cfg, room_id)) {
		char txn[600];

		if (had_row && !was_joined)
			return 0; /* leaving already */
		log_info("room %s: not in allowed_rooms: leaving", room_id);
		snprintf(txn, sizeof(txn), "tlbot.leave.%s.%s", room_id, next);
		if (tlbot_store_room_set(rt->st, room_id, "leave", NULL) != 0)
			return -1;
		return tlbot_store_outbox_add(rt->st, txn, "leave", room_id, NULL, NULL, NULL, NULL, 0);
	}
	if (!was_joined && tlbot_store_room_set(rt->st, room_id, "join", NULL) != 0)
		return -1;
	for (i = 0; i < json_array_size(state); i++)
		if (store_state(rt, room_id, json_array_get(state, i)) != 0)
			return -1;
	is_dm = tlbot_store_dm_user(rt->st, room_id, &dm_user) == 0;
	free(dm_user);
	if (!was_joined && joined_room_news(rt, room_id, invited && !is_dm, next) != 0)
		return -1;
	if (!was_joined)
		rt->joined_new = 1;

	/* Where do answers start? After the bot's own join when it is in this
	 * timeline; else everything is new (the join came in an earlier batch,
	 * or lies in the gap before a limited timeline, where the gap filler
	 * stops at it). */
	own_join_here = 0;
	for (i = 0; i < json_array_size(events); i++)
		if (is_own_join(rt, json_array_get(events, i)))
			own_join_here = 1;
	if (!first_sync && !own_join_here && json_is_true(json_object_get(timeline, "limited")) &&
	    rt->fill_gap && jstr(timeline, "prev_batch")) {
		gap = rt->fill_gap(rt->fill_arg, room_id, jstr(timeline, "prev_batch"));
		if (gap == NULL) {
			log_warnx("room %s: cannot fetch the events skipped by a limited timeline yet; "
				  "retrying the batch", room_id);
			return -1;
		}
		/* the page may reach back past what we know: start after it */
		for (i = json_array_size(gap); i > 0; i--)
			if (gap_boundary(rt, json_array_get(gap, i - 1)))
				break;
		if (json_array_size(gap) > 0)
			log_info("room %s: limited timeline: filled a gap of %zu events", room_id,
				 json_array_size(gap) - i);
		for (; i < json_array_size(gap); i++)
			if (handle_event(rt, room_id, json_array_get(gap, i), 1, is_dm) != 0)
				goto out;
	}
	/* On a first sync, and in a room joined in this batch until the bot's
	 * own join, events are history: marked handled, never answered. */
	answer = !first_sync && (was_joined || !own_join_here);
	for (i = 0; i < json_array_size(events); i++) {
		const json_t *ev = json_array_get(events, i);

		if (handle_event(rt, room_id, ev, answer, is_dm) != 0)
			goto out;
		if (!answer && !first_sync && is_own_join(rt, ev))
			answer = 1;
	}
	rc = 0;
out:
	json_decref(gap);
	return rc;
}

/* Encrypted events kept until their key arrived, now decrypted: route them
 * as if they had just come (they are already marked handled). 0 or -1. */
static int
handle_ready(struct tlbot_router *rt)
{
	json_t *ready = tlbot_crypto_take_ready(rt->crypto, rt->st);
	size_t i;
	int rc = 0;

	if (ready == NULL)
		return -1;
	for (i = 0; rc == 0 && i < json_array_size(ready); i++) {
		const json_t *it = json_array_get(ready, i);
		const char *room_id = jstr(it, "room_id");
		char *dm_user = NULL;
		int is_dm = tlbot_store_dm_user(rt->st, room_id, &dm_user) == 0;

		free(dm_user);
		rt->decrypted = 1;
		rc = route_event(rt, room_id, json_object_get(it, "event"), is_dm);
		rt->decrypted = 0;
	}
	json_decref(ready);
	return rc;
}

int
tlbot_router_apply(struct tlbot_router *rt, const json_t *batch, const char *since)
{
	const json_t *rooms = json_object_get(batch, "rooms");
	const char *next = jstr(batch, "next_batch"), *room_id;
	json_t *room;
	int first_sync = since == NULL;
	uint64_t events_before = rt->events;

	if (next == NULL) {
		log_warnx("sync batch without next_batch: ignored");
		return -1;
	}
	if (tlbot_store_begin(rt->st) != 0)
		return -1;
	if (handle_account_data(rt, batch) != 0)
		goto fail;
	/* keys first: a room key and the message it opens often come together */
	if (rt->crypto && tlbot_crypto_apply_batch(rt->crypto, rt->st, rt->http, batch) != 0)
		goto fail;
	json_object_foreach((json_t *)json_object_get(rooms, "invite"), room_id, room)
		if (handle_invite(rt, room_id, room, next) != 0)
			goto fail;
	json_object_foreach((json_t *)json_object_get(rooms, "join"), room_id, room)
		if (handle_joined_room(rt, room_id, room, first_sync, next) != 0)
			goto fail;
	json_object_foreach((json_t *)json_object_get(rooms, "leave"), room_id, room)
		if (tlbot_store_room_set(rt->st, room_id, "leave", NULL) != 0)
			goto fail;
	/* MSC4391: on every start, and when the bot joins a room, bring the
	 * rooms' command descriptions in step with the command table */
	if (rt->describe == 1 || (rt->describe && rt->joined_new)) {
		if (describe_rooms(rt) != 0)
			goto fail;
		rt->describe = 2;
	}
	rt->joined_new = 0;

	if (rt->crypto && handle_ready(rt) != 0)
		goto fail;
	if (tlbot_store_events_trim(rt->st, rt->cfg->handled_events_max) != 0 ||
	    tlbot_store_kv_set(rt->st, "next_batch", next) != 0)
		goto fail;
	if (tlbot_store_commit(rt->st) != 0)
		return -1;
	rt->batches++;
	tlbot_metrics_batch(rt->events - events_before);
	return 0;
fail:
	tlbot_store_rollback(rt->st);
	return -1;
}

#define JOB_DB_RETRIES 5 /* store failures a job is retried after */

int
tlbot_router_rerun(struct tlbot_router *rt, const char *event_json)
{
	json_error_t jerr;
	json_t *ev = json_loads(event_json, 0, &jerr);
	const char *room = jstr(ev, "room_id"), *id = jstr(ev, "event_id");
	char key[400], *dm_user = NULL;
	int rc = 0, seen, is_dm;

	if (room == NULL || id == NULL) {
		json_decref(ev);
		return 0;
	}
	snprintf(key, sizeof(key), "p.%s", id);
	seen = tlbot_store_event_seen(rt->st, key);
	if (seen != 0) {
		json_decref(ev);
		return seen < 0 ? -1 : 0;
	}
	if (tlbot_store_event_mark(rt->st, key, room) != 0) {
		json_decref(ev);
		return -1;
	}
	is_dm = tlbot_store_dm_user(rt->st, room, &dm_user) == 0;
	free(dm_user);
	log_info("room %s event %s: running the command again now the homeserver has answered",
		 room, id);
	rt->rerun = 1;
	rc = handle_message(rt, room, ev, is_dm);
	rt->rerun = 0;
	json_decref(ev);
	return rc;
}

/* The job kind some family declared under name, or NULL. */
static const struct tlbot_job_kind *
find_job_kind(const char *name)
{
	size_t i, j;

	for (i = 0; tlbot_commands[i]; i++)
		for (j = 0; tlbot_commands[i]->jobs && tlbot_commands[i]->jobs[j].kind; j++)
			if (strcmp(tlbot_commands[i]->jobs[j].kind, name) == 0)
				return &tlbot_commands[i]->jobs[j];
	return NULL;
}

/* Job id hit a store failure (its batch rolled back): the store is in
 * trouble, so it is retried on a later tick, at most JOB_DB_RETRIES
 * times, then recorded as failed. Returns 0 when it was recorded as
 * failed (the next job may run), -1 when it waits for a later tick. */
static int
job_db_retry(struct tlbot_router *rt, int64_t id, time_t now)
{
	int64_t tries = -1;

	if (tlbot_store_begin(rt->st) == 0) {
		tries = tlbot_store_job_attempt(rt->st, id);
		if (tries >= JOB_DB_RETRIES && tlbot_store_job_finish(rt->st, id, "failed", now) != 0)
			tries = -1;
		if (tries < 0 || tlbot_store_commit(rt->st) != 0) {
			tlbot_store_rollback(rt->st);
			tries = -1;
		}
	}
	if (tries >= JOB_DB_RETRIES) {
		log_error("job %lld: database error %lld times: recorded as failed", (long long)id,
			  (long long)tries);
		return 0;
	}
	log_error("job %lld: database error (attempt %lld of %d); retrying later", (long long)id,
		  (long long)tries, JOB_DB_RETRIES);
	return -1;
}

/* Record job id as failed in a transaction of its own. 0 or -1. */
static int
job_record_failed(struct tlbot_router *rt, int64_t id, time_t now)
{
	if (tlbot_store_begin(rt->st) != 0)
		return -1;
	if (tlbot_store_job_finish(rt->st, id, "failed", now) != 0 ||
	    tlbot_store_commit(rt->st) != 0) {
		tlbot_store_rollback(rt->st);
		return -1;
	}
	return 0;
}

int
tlbot_router_run_jobs(struct tlbot_router *rt, time_t now)
{
	struct tlbot_job_row row;
	int fired = 0, rc;

	for (;;) {
		const struct tlbot_job_kind *kind;
		struct tlbot_job job;
		struct tlbot_ctx ctx;
		char txn_base[64];
		const char *state;

		if (tlbot_store_begin(rt->st) != 0)
			return -1;
		rc = tlbot_store_job_next_due(rt->st, now, &row);
		if (rc != 0) {
			tlbot_store_rollback(rt->st);
			return rc < 0 ? -1 : fired;
		}
		kind = find_job_kind(row.kind);
		job.id = row.id;
		job.kind = row.kind;
		job.room_id = row.room_id;
		job.key = row.key;
		job.payload = row.payload ? row.payload : "{}";
		job.due = row.due;
		job.missed = now - row.due > rt->cfg->grace_period_s;
		tlbot_ctx_init(&ctx, rt->cfg, rt->st, rt->bot_user);
		ctx.now = now;
		ctx.room_id = row.room_id;
		snprintf(txn_base, sizeof(txn_base), "j.%lld", (long long)row.id);
		ctx.txn_base = txn_base;
		state = job.missed ? "missed" : "done";
		if (kind == NULL) {
			log_warnx("job %lld: unknown kind '%s': dropped", (long long)row.id, row.kind);
			state = "failed";
		} else if (kind->fire(&ctx, &job) != 0 || ctx.db_failed || ctx.failed) {
			int64_t id = row.id;
			int db_failed = ctx.db_failed;

			tlbot_store_rollback(rt->st);
			if (!db_failed) {
				/* the job itself cannot run: record it, do not block the others */
				log_error("job %lld (%s, room %s): failed: %s", (long long)row.id,
					  row.kind, row.room_id ? row.room_id : "-",
					  ctx.failed ? tlbot_buf_str(&ctx.err) : "handler error");
				tlbot_metrics_job(row.kind, "failed", (long)(now - row.due));
			}
			tlbot_ctx_release(&ctx);
			tlbot_store_job_row_release(&row);
			if ((db_failed ? job_db_retry(rt, id, now) : job_record_failed(rt, id, now)) != 0)
				return -1;
			continue;
		}
		if (job.missed)
			log_warnx("job %lld (%s, room %s): missed: due %llds ago, past the grace period",
				  (long long)row.id, row.kind, row.room_id ? row.room_id : "-",
				  (long long)(now - row.due));
		else
			log_info("job %lld (%s, room %s) fired", (long long)row.id, row.kind,
				 row.room_id ? row.room_id : "-");
		rc = tlbot_store_job_finish(rt->st, row.id, state, now);
		tlbot_metrics_job(row.kind, state, (long)(now - row.due));
		tlbot_ctx_release(&ctx);
		tlbot_store_job_row_release(&row);
		if (rc != 0 || tlbot_store_commit(rt->st) != 0) {
			tlbot_store_rollback(rt->st);
			return -1;
		}
		fired++;
	}
}
