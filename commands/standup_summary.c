/* Stand-up: the summary posted to the room. Blockers first (with the
 * challenge lead mentioned), then each person's answers, who was away,
 * who did not answer, and what moved in the room's challenges and
 * experiments since the last stand-up. Private to the family. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "standup.h"
#include "tlbot/sched_time.h"

/* The current answers of a day (su_answers_of_day). */
struct answers {
	size_t n;
	struct su_answer *v;
};

static void
answers_release(struct answers *a)
{
	su_answers_free(a->v, a->n);
	memset(a, 0, sizeof(*a));
}

static int
answers_load(struct tlbot_ctx *ctx, const char *room_id, const char *date, struct answers *a)
{
	return su_answers_of_day(ctx, room_id, date, &a->v, &a->n);
}

static const struct su_answer *
answer_of(const struct answers *a, const char *user)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i].user_id, user) == 0)
			return &a->v[i];
	return NULL;
}

/* Label of question i: the room's question without its trailing '?'/':'. */
static void
label(const struct su_room *r, int i, char *out, size_t outlen)
{
	static const char *const dflt[] = {"Yesterday", "Today", "Blockers"};
	const char *q = r && r->q[i] ? r->q[i] : dflt[i];
	size_t n = strlen(q);

	while (n && (q[n - 1] == '?' || q[n - 1] == ':' || isspace((unsigned char)q[n - 1])))
		n--;
	snprintf(out, outlen, "%.*s", (int)(n ? n : strlen(dflt[i])), n ? q : dflt[i]);
}

static void
heading(struct tlbot_msg *m, const char *text)
{
	tlbot_msg_nl(m);
	tlbot_msg_plain(m, "\n");
	tlbot_msg_bold(m, text);
	tlbot_msg_br(m);
}

static void
item_open(struct tlbot_msg *m)
{
	tlbot_msg_plain(m, "• ");
}

static void
item_close(struct tlbot_msg *m)
{
	tlbot_msg_plain(m, "\n"); /* the </li> ends the line in HTML */
}

/* The leads to mention for a blocker: the leads of the challenges the
 * blocker names (C-n) in this room, else of the room's active challenges.
 * Fills leads (user ids) and refs ("C-3") in parallel. */
struct lead_acc {
	struct su_list *leads, *refs;
	const char *prefix;
	int open_only; /* the room's records: only open or active ones */
};

/* tlbot_leads callback: add a lead (once) with the record it leads. */
static void
add_lead(void *arg, const char *user_id, int64_t num, const char *status)
{
	struct lead_acc *a = arg;
	char ref[32];

	if (a->open_only && (status == NULL || (strcmp(status, "open") != 0 &&
	                                        strcmp(status, "active") != 0)))
		return;
	if (su_list_has(a->leads, user_id))
		return;
	snprintf(ref, sizeof(ref), "%s-%lld", a->prefix, (long long)num);
	su_list_add(a->leads, user_id);
	su_list_add(a->refs, ref);
}

static void
blocker_leads(struct tlbot_ctx *ctx, const char *room_id, const char *text, struct su_list *leads,
              struct su_list *refs)
{
	struct lead_acc acc = {leads, refs, "C", 0};
	const char *p;
	int named = 0;

	/* through the challenge family's leads hook, never its tables */
	for (p = text; p && *p; p++) {
		long long n;

		if (!((*p == 'C' || *p == 'c') && p[1] == '-' && isdigit((unsigned char)p[2])) ||
		    (p > text && isalnum((unsigned char)p[-1])))
			continue;
		n = strtoll(p + 2, NULL, 10);
		/* a challenge named here: its current lead only (none when the
		 * lead was unassigned), never the leads of the others */
		if (tlbot_leads(ctx, "C", room_id, n, add_lead, &acc) == 0)
			named = 1;
	}
	if (named)
		return;
	acc.open_only = 1;
	tlbot_leads(ctx, "C", room_id, 0, add_lead, &acc);
}

/* "Since the last stand-up": every family's summary_since hook, in the
 * order of the command table (as !help walks it), into one list. */
static int
since_families(struct tlbot_ctx *ctx, struct tlbot_msg *m, const char *room_id, const char *date,
               time_t since, time_t until)
{
	struct tlbot_summary sm = {m, 0};
	size_t i;

	for (i = 0; tlbot_commands[i]; i++)
		if (tlbot_commands[i]->summary_since &&
		    tlbot_commands[i]->summary_since(ctx, &sm, room_id, date, since, until) < 0)
			return -1;
	tlbot_summary_end(&sm);
	return sm.n;
}

time_t
su_last_summary_at(struct tlbot_ctx *ctx, const char *room_id, time_t before)
{
	int64_t t = 0;

	/* MAX() of no rows is NULL, read as 0: no earlier stand-up */
	if (tlbot_db_int(ctx, &t, "SELECT IFNULL(MAX(at), 0) FROM standup_summaries WHERE"
	                 " room_id = ? AND kind = 'scheduled' AND at < ?", "ti", room_id,
	                 (int64_t)before) != 0)
		return 0;
	return (time_t)t;
}

#define CLIP 500 /* bytes of one answer section in the summary */

/* User text with references linked, cut at CLIP bytes (on a character
 * boundary) so one long answer cannot push the summary past the size of
 * a Matrix event. */
static void
clipped(struct tlbot_msg *m, struct tlbot_ctx *ctx, const char *text)
{
	char buf[CLIP + 8];
	size_t n = strlen(text);

	if (n <= CLIP) {
		tlbot_msg_refs(m, ctx, text);
		return;
	}
	n = CLIP;
	while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
		n--;
	memcpy(buf, text, n);
	memcpy(buf + n, "…", sizeof("…"));
	tlbot_msg_refs(m, ctx, buf);
}

static void
section(struct tlbot_msg *m, struct tlbot_ctx *ctx, const char *lab, const char *text)
{
	if (text == NULL || *text == '\0')
		return;
	tlbot_msg_br(m);
	tlbot_msg_textf(m, "    %s: ", lab);
	clipped(m, ctx, text);
}

/* The blockers, first, each with the lead of the challenge concerned. */
static void
blockers_part(struct tlbot_ctx *ctx, struct tlbot_msg *m, const char *room_id,
              const struct answers *ans)
{
	int nblock = 0;
	size_t k, j;

	for (k = 0; k < ans->n; k++) {
		struct su_list leads = {0}, refs = {0};

		if (su_no_blocker(ans->v[k].blockers))
			continue;
		if (nblock++ == 0) {
			heading(m, "Blockers");
			tlbot_msg_html(m, "<ul>");
		}
		tlbot_msg_html(m, "<li>");
		item_open(m);
		tlbot_msg_user(m, ans->v[k].user_id);
		tlbot_msg_text(m, ": ");
		clipped(m, ctx, ans->v[k].blockers);
		blocker_leads(ctx, room_id, ans->v[k].blockers, &leads, &refs);
		for (j = 0; j < leads.n; j++) {
			if (strcmp(leads.v[j], ans->v[k].user_id) == 0)
				continue;
			tlbot_msg_text(m, j ? ", " : " — ");
			tlbot_msg_mention(m, leads.v[j]);
			tlbot_msg_text(m, " (lead of ");
			tlbot_msg_refs(m, ctx, refs.v[j]);
			tlbot_msg_text(m, ")");
		}
		su_list_release(&leads);
		su_list_release(&refs);
		tlbot_msg_html(m, "</li>");
		item_close(m);
	}
	if (nblock)
		tlbot_msg_html(m, "</ul>");
}

/* The answers, roster order first; those without one go to away or
 * missing. compact: who answered, without the answers. */
static void
answers_part(struct tlbot_ctx *ctx, struct tlbot_msg *m, const struct su_room *r,
             const char *room_id, const char *date, const struct su_list *members,
             const struct answers *ans, int compact, struct su_list *away, struct su_list *missing)
{
	char lab[3][128], until[11];
	int n = 0, i;
	size_t k;

	for (i = 0; i < 3; i++)
		label(r, i, lab[i], sizeof(lab[i]));
	heading(m, "Answers");
	for (k = 0; k < members->n + ans->n; k++) {
		const char *user = k < members->n ? members->v[k] : ans->v[k - members->n].user_id;
		const struct su_answer *a = answer_of(ans, user);

		if (k >= members->n && su_list_has(members, user))
			continue;
		if (a == NULL) {
			if (su_is_away(ctx, room_id, user, date, until))
				su_list_add(away, user);
			else
				su_list_add(missing, user);
			continue;
		}
		if (compact) {
			tlbot_msg_text(m, n++ ? ", " : "Answered: ");
			tlbot_msg_user(m, user);
			continue;
		}
		if (n++ == 0)
			tlbot_msg_html(m, "<ul>");
		tlbot_msg_html(m, "<li>");
		item_open(m);
		tlbot_msg_user(m, user);
		section(m, ctx, lab[0], a->yesterday);
		section(m, ctx, lab[1], a->today);
		section(m, ctx, lab[2], a->blockers);
		tlbot_msg_html(m, "</li>");
		item_close(m);
	}
	if (n && compact) {
		tlbot_msg_text(m, " (too many long answers for one message: each person's "
		                  "answers are left out)");
		tlbot_msg_br(m);
	} else if (n) {
		tlbot_msg_html(m, "</ul>");
	} else {
		tlbot_msg_text(m, "No answers yet.");
		tlbot_msg_br(m);
	}
}

/* "Away: @a (until D), @b" (with_until) or "Not answered: @c, @d", on a
 * line of its own; nothing for an empty list. */
static void
people_line(struct tlbot_ctx *ctx, struct tlbot_msg *m, const char *title,
            const struct su_list *people, const char *room_id, const char *date, int with_until)
{
	char until[11];
	size_t k;

	if (people->n == 0)
		return;
	tlbot_msg_nl(m);
	tlbot_msg_plain(m, "\n");
	tlbot_msg_bold(m, title);
	for (k = 0; k < people->n; k++) {
		tlbot_msg_text(m, k ? ", " : " ");
		tlbot_msg_user(m, people->v[k]);
		if (with_until && su_is_away(ctx, room_id, people->v[k], date, until))
			tlbot_msg_textf(m, " (until %s)", until);
	}
	tlbot_msg_br(m);
}

/* A room without a team roster: how to add people. */
static void
roster_hint(struct tlbot_ctx *ctx, struct tlbot_msg *m)
{
	char hint[64];

	tlbot_msg_nl(m);
	tlbot_msg_plain(m, "\n");
	tlbot_msg_italic(m, "No team roster for this room: add people with ");
	snprintf(hint, sizeof(hint), "%steam add @user --role R", tlbot_ctx_prefix(ctx));
	tlbot_msg_code(m, hint);
	tlbot_msg_italic(m, " so they are prompted.");
	tlbot_msg_br(m);
}

/* compact: the answers section lists who answered without the answers
 * (used when the full summary is too large for one message). */
static int
build(struct tlbot_ctx *ctx, const struct su_room *r, const char *room_id, const char *date,
      time_t since, struct tlbot_msg *m, int compact)
{
	struct su_list members = {0}, away = {0}, missing = {0};
	struct answers ans = {0};
	char longdate[64];
	int roster = 0, n = 0;
	time_t now = tlbot_ctx_now(ctx);

	if (su_members(ctx, room_id, date, &members, &roster) != 0 ||
	    answers_load(ctx, room_id, date, &ans) != 0) {
		su_list_release(&members);
		answers_release(&ans);
		return -1;
	}
	tlbot_date_long(date, longdate, sizeof(longdate));
	tlbot_msg_bold(m, "Stand-up summary");
	tlbot_msg_textf(m, " — %s", longdate);
	tlbot_msg_br(m);
	blockers_part(ctx, m, room_id, &ans);
	answers_part(ctx, m, r, room_id, date, &members, &ans, compact, &away, &missing);
	people_line(ctx, m, "Away:", &away, room_id, date, 1);
	people_line(ctx, m, "Not answered:", &missing, room_id, date, 0);
	if (!roster)
		roster_hint(ctx, m);

	/* what moved since the last stand-up */
	heading(m, "Since the last stand-up");
	if (since <= 0)
		since = now - 86400;
	n = since_families(ctx, m, room_id, date, since, now);
	if (n == 0)
		tlbot_msg_text(m, "No challenge or experiment activity.");
	su_list_release(&members);
	su_list_release(&away);
	su_list_release(&missing);
	answers_release(&ans);
	return n < 0 ? -1 : 0;
}

int
su_summary_build(struct tlbot_ctx *ctx, const struct su_room *r, const char *room_id,
                 const char *date, time_t since, struct tlbot_msg *m)
{
	if (build(ctx, r, room_id, date, since, m, 0) != 0)
		return -1;
	if (!su_msg_too_big(m))
		return 0;
	tlbot_msg_release(m);
	tlbot_msg_init(m);
	if (build(ctx, r, room_id, date, since, m, 1) != 0)
		return -1;
	return su_msg_too_big(m) ? tlbot_fail(ctx, "stand-up: the summary is too long to post") : 0;
}

int
su_msg_too_big(const struct tlbot_msg *m)
{
	/* body and formatted_body travel in one event (64 KiB in all), while
	 * the builder caps each part on its own: keep both together well
	 * inside, leaving room for JSON escaping */
	return m->failed || m->plain.len + m->html.len + m->html.len / 8 > TLBOT_MSG_MAX - 4096;
}
