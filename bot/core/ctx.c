/* Command context: accessors, replies through the outbox, permissions,
 * scheduling, and the date helper shared by command families. */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/clock.h"
#include "tlbot/ctx.h"
#include "tlbot/log.h"
#include "tlbot/tz.h"
#include "tlbot/when.h"

void
tlbot_ctx_init(struct tlbot_ctx *ctx, const struct tlbot_config *cfg, struct tlbot_store *st,
	       const char *bot_user)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->cfg = cfg;
	ctx->st = st;
	ctx->bot_user = bot_user;
	ctx->now = tlbot_clock_now();
	ctx->event_time = ctx->now;
	ctx->prefix = cfg->prefixes.n ? cfg->prefixes.v[0] : "!";
	tlbot_buf_init(&ctx->err, 1024);
	/* people in this context's messages are named as the room knows them */
	tlbot_msg_set_namer(tlbot_ctx_namer, ctx);
}

void
tlbot_ctx_release(struct tlbot_ctx *ctx)
{
	size_t i;

	if (tlbot_msg_namer_arg() == ctx)
		tlbot_msg_set_namer(NULL, NULL);
	for (i = 0; i < ctx->nmentions; i++)
		free(ctx->mentions[i]);
	ctx->nmentions = 0;
	for (i = 0; i < ctx->nkept; i++)
		free(ctx->kept[i]);
	ctx->nkept = 0;
	for (i = 0; i < ctx->nlookups; i++)
		free(ctx->lookups[i]);
	ctx->nlookups = 0;
	tlbot_buf_release(&ctx->err);
}

void
tlbot_ctx_add_mention(struct tlbot_ctx *ctx, const char *user_id)
{
	size_t i;

	for (i = 0; i < ctx->nmentions; i++)
		if (strcmp(ctx->mentions[i], user_id) == 0)
			return;
	if (ctx->nmentions < TLBOT_CTX_MAX_MENTIONS) {
		ctx->mentions[ctx->nmentions] = strdup(user_id);
		if (ctx->mentions[ctx->nmentions])
			ctx->nmentions++;
	}
}

const char *tlbot_ctx_sender(const struct tlbot_ctx *ctx) { return ctx->sender; }
const char *tlbot_ctx_room(const struct tlbot_ctx *ctx) { return ctx->room_id; }
const char *tlbot_ctx_event_id(const struct tlbot_ctx *ctx) { return ctx->event_id; }
const char *tlbot_ctx_body(const struct tlbot_ctx *ctx) { return ctx->body ? ctx->body : ""; }
const char *tlbot_ctx_prefix(const struct tlbot_ctx *ctx) { return ctx->prefix; }
const char *tlbot_ctx_bot_user(const struct tlbot_ctx *ctx) { return ctx->bot_user; }
const char *tlbot_ctx_in_reply_to(const struct tlbot_ctx *ctx) { return ctx->in_reply_to; }
const char *tlbot_ctx_replaces(const struct tlbot_ctx *ctx) { return ctx->replaces; }
const char *tlbot_ctx_thread_root(const struct tlbot_ctx *ctx) { return ctx->thread_root; }
const char *tlbot_ctx_redacts(const struct tlbot_ctx *ctx) { return ctx->redacts; }
int tlbot_ctx_is_dm(const struct tlbot_ctx *ctx) { return ctx->is_dm; }
time_t tlbot_ctx_event_time(const struct tlbot_ctx *ctx) { return ctx->event_time; }
time_t tlbot_ctx_now(const struct tlbot_ctx *ctx) { return ctx->now; }
size_t tlbot_ctx_nmentions(const struct tlbot_ctx *ctx) { return ctx->nmentions; }
const char *tlbot_ctx_default_tz(const struct tlbot_ctx *ctx) { return ctx->cfg->timezone; }
int tlbot_ctx_grace_s(const struct tlbot_ctx *ctx) { return ctx->cfg->grace_period_s; }
const char *tlbot_ctx_digest_room(const struct tlbot_ctx *ctx) { return ctx->cfg->digest_room; }
sqlite3 *tlbot_ctx_db(struct tlbot_ctx *ctx) { return ctx->st->db; }

const char *
tlbot_ctx_mention(const struct tlbot_ctx *ctx, size_t i)
{
	return i < ctx->nmentions ? ctx->mentions[i] : NULL;
}

const char *
tlbot_ctx_bank_holidays_file(const struct tlbot_ctx *ctx)
{
	return ctx->cfg->bank_holidays_file;
}

int
tlbot_ctx_dm_default(const struct tlbot_ctx *ctx)
{
	return ctx->cfg->dm_notifications == NULL || strcmp(ctx->cfg->dm_notifications, "off") != 0;
}

int
tlbot_ctx_dm_enabled(struct tlbot_ctx *ctx, const char *user_id)
{
	return tlbot_store_dm_enabled(ctx->st, user_id, tlbot_ctx_dm_default(ctx));
}

int
tlbot_ctx_set_dm_enabled(struct tlbot_ctx *ctx, const char *user_id, int on)
{
	if (tlbot_store_set_dm_enabled(ctx->st, user_id, on) != 0) {
		ctx->db_failed = 1;
		return -1;
	}
	return 0;
}

int
tlbot_db_error(struct tlbot_ctx *ctx, const char *what)
{
	log_error("database: %s failed (room %s, event %s): %s", what,
		  ctx->room_id ? ctx->room_id : "-", ctx->event_id ? ctx->event_id : "-",
		  sqlite3_errmsg(ctx->st->db));
	ctx->db_failed = 1;
	return -1;
}

static const struct tlbot_cmd *ref_owner(const char *p, size_t n);

int
tlbot_history_add(struct tlbot_ctx *ctx, const char *kind, int64_t id, const char *action,
		  const char *field, const char *old, const char *new_)
{
	const char *who = ctx->sender ? ctx->sender : ctx->bot_user;
	const struct tlbot_cmd *c = ref_owner(kind, strlen(kind));
	char *title = NULL, *room = NULL, *event = NULL;
	int rc;

	/* the record's own room (an admin may change another room's record) */
	if (c && c->ref_lookup(ctx, id, &title, &room, &event) < 0)
		return ctx->db_failed ? -1 : tlbot_db_error(ctx, "record lookup");
	rc = tlbot_db_exec(ctx, "INSERT INTO history(kind, record_id, room_id, at, actor, action,"
			     " field, old, new) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", "titittttt", kind,
			     id, room ? room : ctx->room_id, (int64_t)tlbot_ctx_now(ctx), who, action,
			     field, old, new_);
	free(title);
	free(room);
	free(event);
	return rc;
}

int
tlbot_ctx_power_needed(const struct tlbot_ctx *ctx)
{
	return ctx->cfg->power_level;
}

char *
tlbot_ctx_room_name(struct tlbot_ctx *ctx, const char *room_id)
{
	char *content = NULL, *name = NULL;
	json_error_t jerr;
	json_t *j;

	if (room_id == NULL || tlbot_store_state_get(ctx->st, room_id, "m.room.name", "", &content) != 0)
		return NULL;
	j = json_loads(content, 0, &jerr);
	if (json_string_value(json_object_get(j, "name")) && *json_string_value(json_object_get(j, "name")))
		name = strdup(json_string_value(json_object_get(j, "name")));
	json_decref(j);
	free(content);
	return name;
}

int64_t
tlbot_ctx_next_id(struct tlbot_ctx *ctx, const char *counter)
{
	int64_t v = tlbot_store_next_id(ctx->st, counter);

	if (v < 0)
		ctx->db_failed = 1;
	return v;
}

/* ---- permissions ---- */

int
tlbot_ctx_is_admin(const struct tlbot_ctx *ctx, const char *user_id)
{
	return user_id && tlbot_config_is_admin(ctx->cfg, user_id);
}

/* Room versions whose creators outrank everyone (MSC4289, room v12). */
static int
creators_privileged(const char *room_version)
{
	if (room_version == NULL)
		return 0;
	if (strncmp(room_version, "org.matrix.hydra", 16) == 0)
		return 1;
	return isdigit((unsigned char)room_version[0]) && atoi(room_version) >= 12;
}

int64_t
tlbot_ctx_power(const struct tlbot_ctx *ctx, const char *room_id, const char *user_id)
{
	char *create = NULL, *creator = NULL, *pl = NULL;
	json_t *cj = NULL, *pj = NULL, *v;
	json_error_t jerr;
	int64_t level = 0;

	if (room_id == NULL || user_id == NULL)
		return 0;
	tlbot_store_state_get(ctx->st, room_id, "m.room.create", "", &create);
	tlbot_store_state_sender(ctx->st, room_id, "m.room.create", "", &creator);
	if (create)
		cj = json_loads(create, 0, &jerr);
	if (cj && creators_privileged(json_string_value(json_object_get(cj, "room_version")))) {
		size_t i;
		json_t *extra = json_object_get(cj, "additional_creators");

		if (creator && strcmp(creator, user_id) == 0) {
			level = INT64_MAX;
			goto out;
		}
		for (i = 0; json_is_array(extra) && i < json_array_size(extra); i++) {
			const char *u = json_string_value(json_array_get(extra, i));

			if (u && strcmp(u, user_id) == 0) {
				level = INT64_MAX;
				goto out;
			}
		}
	}
	if (tlbot_store_state_get(ctx->st, room_id, "m.room.power_levels", "", &pl) == 0)
		pj = json_loads(pl, 0, &jerr);
	if (pj == NULL) {
		/* no power levels yet: the creator has 100, everyone else 0 */
		level = creator && strcmp(creator, user_id) == 0 ? 100 : 0;
		goto out;
	}
	v = json_object_get(json_object_get(pj, "users"), user_id);
	if (!json_is_integer(v))
		v = json_object_get(pj, "users_default");
	level = json_is_integer(v) ? json_integer_value(v) : 0;
out:
	json_decref(cj);
	json_decref(pj);
	free(create);
	free(creator);
	free(pl);
	return level;
}

int
tlbot_ctx_allowed(const struct tlbot_ctx *ctx, enum tlbot_perm perm, const char *user_id)
{
	switch (perm) {
	case TLBOT_PERM_ANYONE:
		return 1;
	case TLBOT_PERM_WRITE:
		return tlbot_ctx_is_admin(ctx, user_id) ||
		       tlbot_ctx_power(ctx, ctx->room_id, user_id) >= ctx->cfg->power_level;
	case TLBOT_PERM_ADMIN:
		return tlbot_ctx_is_admin(ctx, user_id);
	}
	return 0;
}

/* ---- outbox ---- */

int
tlbot_ctx_enqueue(struct tlbot_ctx *ctx, const char *kind, const char *room_id,
		  const char *user_id, const char *content_json)
{
	char txn[512];

	snprintf(txn, sizeof(txn), "tlbot.%s.%d", ctx->txn_base ? ctx->txn_base : "x",
		 ctx->msg_index++);
	if (tlbot_store_outbox_add(ctx->st, txn, kind, room_id, user_id, "m.room.message",
				   content_json, NULL, 0) != 0) {
		ctx->db_failed = 1;
		return -1;
	}
	return 0;
}

/* Add the reply relation (and thread) of the ctx event to content. */
static int
add_relation(struct tlbot_ctx *ctx, json_t *content)
{
	json_t *rel;

	if (ctx->event_id == NULL)
		return 0;
	if (ctx->thread_root)
		rel = json_pack("{s:s, s:s, s:b, s:{s:s}}", "rel_type", "m.thread", "event_id",
				ctx->thread_root, "is_falling_back", 1, "m.in_reply_to",
				"event_id", ctx->event_id);
	else
		rel = json_pack("{s:{s:s}}", "m.in_reply_to", "event_id", ctx->event_id);
	if (rel == NULL)
		return -1;
	return json_object_set_new(content, "m.relates_to", rel);
}

static int
enqueue_msg(struct tlbot_ctx *ctx, const char *kind, const char *room_id, const char *user_id,
	    struct tlbot_msg *m, int as_reply)
{
	char *text = tlbot_msg_content_json(m, "m.notice");
	json_t *c = NULL;
	json_error_t jerr;
	int rc = -1;

	tlbot_msg_release(m);
	if (text == NULL) {
		struct tlbot_msg small;

		/* say so in the room rather than fall silent */
		log_error("room %s event %s: message over %d bytes; sent a short notice instead",
			  room_id ? room_id : "-", ctx->event_id ? ctx->event_id : "-", TLBOT_MSG_MAX);
		tlbot_msg_init(&small);
		tlbot_msg_text(&small, "that answer is too long for one message: narrow it down "
			       "(filters, --page N) and ask again");
		text = tlbot_msg_content_json(&small, "m.notice");
		tlbot_msg_release(&small);
		if (text == NULL)
			return -1;
	}
	if (as_reply) {
		c = json_loads(text, 0, &jerr);
		free(text);
		text = NULL;
		if (c == NULL || add_relation(ctx, c) != 0)
			goto out;
		text = json_dumps(c, JSON_COMPACT);
		if (text == NULL)
			goto out;
	}
	rc = tlbot_ctx_enqueue(ctx, kind, room_id, user_id, text);
out:
	json_decref(c);
	free(text);
	return rc;
}

int
tlbot_reply(struct tlbot_ctx *ctx, struct tlbot_msg *m)
{
	if (ctx->room_id == NULL) {
		tlbot_msg_release(m);
		return -1;
	}
	return enqueue_msg(ctx, "send", ctx->room_id, NULL, m, 1);
}

int
tlbot_replyf(struct tlbot_ctx *ctx, const char *fmt, ...)
{
	struct tlbot_msg m;
	struct tlbot_buf b;
	va_list ap;

	tlbot_buf_init(&b, TLBOT_MSG_MAX);
	va_start(ap, fmt);
	tlbot_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	tlbot_msg_init(&m);
	tlbot_msg_text_code(&m, tlbot_buf_str(&b)); /* `!hints` in <code> */
	tlbot_buf_release(&b);
	return tlbot_reply(ctx, &m);
}

int
tlbot_fail(struct tlbot_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	size_t i;

	tlbot_buf_reset(&ctx->err);
	va_start(ap, fmt);
	if (tlbot_buf_vprintf(&ctx->err, fmt, ap) != 0) {
		/* longer than the buffer (it quotes a huge argument): cut it
		 * at a character boundary rather than answer nothing */
		char line[512];
		size_t n;

		va_end(ap);
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line) - 4, fmt, ap);
		n = strlen(line);
		/* drop the last, perhaps incomplete, UTF-8 character */
		while (n > 0 && ((unsigned char)line[n - 1] & 0xc0) == 0x80)
			n--;
		if (n > 0 && (unsigned char)line[n - 1] >= 0xc0)
			n--;
		memcpy(line + n, "\xe2\x80\xa6", 4); /* ... */
		tlbot_buf_reset(&ctx->err);
		tlbot_buf_adds(&ctx->err, line);
	}
	va_end(ap);
	/* a refusal is one line */
	for (i = 0; i < ctx->err.len; i++)
		if (ctx->err.data[i] == '\n' || ctx->err.data[i] == '\r')
			ctx->err.data[i] = ' ';
	ctx->failed = 1;
	return -1;
}

int
tlbot_send_room(struct tlbot_ctx *ctx, const char *room_id, struct tlbot_msg *m)
{
	return enqueue_msg(ctx, "send", room_id, NULL, m, 0);
}

int
tlbot_send_dm(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_msg *m)
{
	return enqueue_msg(ctx, "dm", NULL, user_id, m, 0);
}

/* A "file" row: to room_id, or without a room to user_id's DM (the sender
 * finds or creates it). 0 or -1 (the context is marked). */
static int
enqueue_file(struct tlbot_ctx *ctx, const char *room_id, const char *user_id,
	     const char *filename, const char *mimetype, const void *data, size_t len,
	     const char *caption)
{
	json_t *meta = json_pack("{s:s, s:s, s:s}", "filename", filename, "mimetype", mimetype,
				 "caption", caption ? caption : "");
	char *text = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
	char txn[512];
	int rc = -1;

	json_decref(meta);
	if (text == NULL || len > 50u * 1024 * 1024)
		goto out;
	snprintf(txn, sizeof(txn), "tlbot.%s.%d", ctx->txn_base ? ctx->txn_base : "x",
		 ctx->msg_index++);
	rc = tlbot_store_outbox_add(ctx->st, txn, "file", room_id, user_id, "m.room.message", text,
				    data, (int)len);
	if (rc != 0)
		ctx->db_failed = 1;
out:
	free(text);
	return rc;
}

int
tlbot_send_file(struct tlbot_ctx *ctx, const char *room_id, const char *filename,
		const char *mimetype, const void *data, size_t len, const char *caption)
{
	return enqueue_file(ctx, room_id, NULL, filename, mimetype, data, len, caption);
}

int
tlbot_send_file_dm(struct tlbot_ctx *ctx, const char *user_id, const char *filename,
		   const char *mimetype, const void *data, size_t len, const char *caption)
{
	return enqueue_file(ctx, NULL, user_id, filename, mimetype, data, len, caption);
}

/* ---- scheduler ---- */

int64_t
tlbot_job_schedule(struct tlbot_ctx *ctx, const char *kind, const char *key, const char *room_id,
		   time_t due, const char *payload)
{
	int64_t id = tlbot_store_job_schedule(ctx->st, kind, key, room_id, due, payload);

	if (id < 0)
		ctx->db_failed = 1;
	return id;
}

int
tlbot_job_cancel(struct tlbot_ctx *ctx, const char *key)
{
	int n = tlbot_store_job_cancel(ctx->st, key);

	if (n < 0)
		ctx->db_failed = 1;
	return n;
}

/* ---- dates ---- */

/* One date parser for every family (bot/util/when.c). */
const char tlbot_date_forms[] =
	"accepted dates: YYYY-MM-DD (2027-01-31), 31/01/2027, 31 Jan, friday, next monday,"
	" today, tomorrow, +3d, +2w, +6m (months), 6 months";

int
tlbot_parse_date(const char *s, time_t now, const char *tz, char out[11])
{
	return tlbot_when_date(s, now, tz, out, NULL, 0);
}

/* ---- record references ---- */

/* The family owning prefix letters p[0..n), or NULL. */
static const struct tlbot_cmd *
ref_owner(const char *p, size_t n)
{
	size_t i;

	for (i = 0; tlbot_commands[i]; i++) {
		const char *rp = tlbot_commands[i]->ref_prefix;

		if (rp && strlen(rp) == n && strncmp(rp, p, n) == 0 && tlbot_commands[i]->ref_lookup)
			return tlbot_commands[i];
	}
	return NULL;
}

void
tlbot_summary_item(struct tlbot_summary *s)
{
	if (s->n++ == 0)
		tlbot_msg_html(s->m, "<ul>");
	tlbot_msg_html(s->m, "<li>");
	tlbot_msg_plain(s->m, "• ");
}

void
tlbot_summary_item_end(struct tlbot_summary *s)
{
	tlbot_msg_html(s->m, "</li>");
	tlbot_msg_plain(s->m, "\n");
}

void
tlbot_summary_end(struct tlbot_summary *s)
{
	if (s->n > 0)
		tlbot_msg_html(s->m, "</ul>");
}

int
tlbot_leads(struct tlbot_ctx *ctx, const char *prefix, const char *room_id, int64_t num,
	    void (*add)(void *arg, const char *user_id, int64_t num, const char *status), void *arg)
{
	const struct tlbot_cmd *c = ref_owner(prefix, strlen(prefix));

	if (c == NULL || c->leads == NULL)
		return 1;
	return c->leads(ctx, room_id, num, add, arg);
}

int
tlbot_room_profile(struct tlbot_ctx *ctx, const char *room_id, char **name, char **region)
{
	size_t i;

	*name = *region = NULL;
	for (i = 0; tlbot_commands[i]; i++)
		if (tlbot_commands[i]->room_profile)
			return tlbot_commands[i]->room_profile(ctx, room_id, name, region);
	return 0;
}

int
tlbot_roster(struct tlbot_ctx *ctx, const char *room_id, const char *date,
	     enum tlbot_roster_span span, void (*add)(void *arg, const char *user_id), void *arg)
{
	size_t i;

	for (i = 0; tlbot_commands[i]; i++)
		if (tlbot_commands[i]->roster)
			return tlbot_commands[i]->roster(ctx, room_id, date, span, add, arg);
	return 0;
}

int
tlbot_ref_exists(struct tlbot_ctx *ctx, const char *prefix, int64_t num)
{
	const struct tlbot_cmd *c = ref_owner(prefix, strlen(prefix));
	char *title = NULL, *room = NULL, *event = NULL;
	int rc;

	if (c == NULL)
		return 2;
	rc = c->ref_lookup(ctx, num, &title, &room, &event);
	free(title);
	free(room);
	free(event);
	if (rc < 0 && !ctx->db_failed)
		tlbot_db_error(ctx, "record lookup");
	return rc < 0 ? -1 : rc > 0 ? 1 : 0;
}

static void
append_ref(struct tlbot_msg *m, struct tlbot_ctx *ctx, const struct tlbot_cmd *c,
	   const char *ref, size_t len, int64_t num)
{
	char *title = NULL, *room = NULL, *event = NULL, label[64];

	snprintf(label, sizeof(label), "%.*s", (int)len, ref);
	if (c->ref_lookup(ctx, num, &title, &room, &event) == 0 && title) {
		if (room && event) {
			struct tlbot_buf href;

			tlbot_buf_init(&href, 2048);
			tlbot_buf_printf(&href, "https://matrix.to/#/%s/%s", room, event);
			tlbot_msg_link(m, label, tlbot_buf_str(&href), title);
			tlbot_buf_release(&href);
		} else {
			struct tlbot_buf t;

			tlbot_buf_init(&t, 4096);
			tlbot_buf_add_html(&t, title, 0);
			tlbot_msg_html(m, "<span title=\"");
			tlbot_msg_html(m, tlbot_buf_str(&t));
			tlbot_msg_html(m, "\">");
			tlbot_buf_release(&t);
			tlbot_msg_text(m, label);
			tlbot_msg_html(m, "</span>");
		}
	} else {
		tlbot_msg_text(m, label);
	}
	free(title);
	free(room);
	free(event);
}

void
tlbot_msg_refs(struct tlbot_msg *m, struct tlbot_ctx *ctx, const char *text)
{
	const char *p = text, *run = text;

	while (*p) {
		const char *q = p;
		const struct tlbot_cmd *c;

		/* a reference starts a word: uppercase letters, '-', digits */
		if ((p == text || !isalnum((unsigned char)p[-1])) && isupper((unsigned char)*p)) {
			while (isupper((unsigned char)*q))
				q++;
			if (*q == '-' && isdigit((unsigned char)q[1]) &&
			    (c = ref_owner(p, (size_t)(q - p))) != NULL) {
				const char *dstart = q + 1, *e = dstart;
				int64_t num = 0;

				while (isdigit((unsigned char)*e) && e - dstart < 15)
					num = num * 10 + (*e++ - '0');
				if (!isalnum((unsigned char)*e)) {
					struct tlbot_buf pre;

					tlbot_buf_init(&pre, TLBOT_MSG_MAX);
					tlbot_buf_add(&pre, run, (size_t)(p - run));
					tlbot_msg_text(m, tlbot_buf_str(&pre));
					tlbot_buf_release(&pre);
					append_ref(m, ctx, c, p, (size_t)(e - p), num);
					p = run = e;
					continue;
				}
			}
		}
		p++;
	}
	tlbot_msg_text(m, run);
}
