/* !challenge: the public-service challenges a team works on (C-12), who is
 * on them, when they are due, their status and outcome, and the history of
 * every change. Assignment notifies in the room and by direct message; due
 * reminders (3 days before and on the day, 09:00 local) and the weekly
 * overdue list are scheduled jobs.
 *
 * Tables (component "challenge"; other families read them):
 *   challenges, challenge_assignees (see migrations); the history is the core
 *   table behind tlbot_history_add (kind "C").
 * Jobs:
 *   challenge.due      key challenge.due.<id>.<rev>.<3d|0d>; <rev> is the id
 *                      of the history row that (re)scheduled it, so a new
 *                      due date never collides with a fired or cancelled key
 *   challenge.overdue  key challenge.overdue.<room>|<YYYY-MM-DD>, Mondays
 *                      09:00, rescheduled by itself while the room has open
 *                      challenges with a due date
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "people.h"
#include "record.h"
#include "tlbot/command.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"

#define PAGE_SIZE    10  /* challenges per page of !challenge list */
#define SHOW_HISTORY 10  /* history entries in !challenge show */
#define HISTORY_PAGE 20  /* entries per page of !challenge history */
#define TITLE_MAX    200 /* characters */
#define DESC_MAX     4000
#define FIELD_MAX    100 /* region, sponsor */
#define NOTE_MAX     1000
#define REMIND_HOUR  9  /* local time of reminders */

static const char *const migrations[] = {
        /* 1 */
        "CREATE TABLE challenges ("
        "  id INTEGER PRIMARY KEY," /* the N of C-N */
        "  room_id TEXT NOT NULL,"
        "  title TEXT NOT NULL,"
        "  description TEXT,"
        "  region TEXT,"
        "  sponsor TEXT," /* a user id or free text */
        "  lead TEXT,"    /* a user id */
        "  due TEXT,"     /* YYYY-MM-DD */
        "  status TEXT NOT NULL DEFAULT 'open'"
        "    CHECK (status IN ('open','active','paused','done','dropped')),"
        "  outcome TEXT,"
        "  created_by TEXT,"
        "  created_at INTEGER,"
        "  created_event TEXT);"
        "CREATE INDEX challenges_room ON challenges(room_id, status, due);"
        "CREATE INDEX challenges_status_due ON challenges(status, due);"
        "CREATE INDEX challenges_lead ON challenges(lead);"
        "CREATE TABLE challenge_assignees ("
        "  challenge_id INTEGER NOT NULL,"
        "  user_id TEXT NOT NULL,"
        "  assigned_by TEXT,"
        "  assigned_at INTEGER,"
        "  PRIMARY KEY (challenge_id, user_id));"
        "CREATE INDEX challenge_assignees_user ON challenge_assignees(user_id);"
        "CREATE TABLE challenge_history ("
        "  id INTEGER PRIMARY KEY,"
        "  challenge_id INTEGER NOT NULL,"
        "  room_id TEXT NOT NULL,"
        "  at INTEGER NOT NULL," /* epoch seconds */
        "  actor TEXT,"
        "  action TEXT NOT NULL," /* created assigned unassigned status edited lead */
        "  field TEXT,"
        "  old TEXT,"
        "  new TEXT);"
        "CREATE INDEX challenge_history_challenge ON challenge_history(challenge_id, id);"
        "CREATE INDEX challenge_history_room ON challenge_history(room_id, at);",
        /* 2: the history moves to the core table behind tlbot_history_add */
        "INSERT INTO history(kind, record_id, room_id, at, actor, action, field, old, new)"
        "  SELECT 'C', challenge_id, room_id, at, actor, action, field, old, new"
        "  FROM challenge_history ORDER BY id;"
        "DROP TABLE challenge_history;",
        NULL};

static const char *const statuses[] = {"open", "active", "paused", "done", "dropped", NULL};

/* ------------------------------------------------------------------ store */

/* A store error is not the user's fault: the core rolls the batch back and
 * retries it later. */
static int
db_fail(struct tlbot_ctx *ctx)
{
	return tlbot_db_error(ctx, "challenge");
}

/* A name for room: the team's name, else the room's m.room.name, else NULL.
 * New string (caller frees). */
static char *
room_label(struct tlbot_ctx *ctx, const char *room)
{
	char *name = NULL, *region = NULL;

	/* the team family's hook: this family never reads its tables */
	if (tlbot_room_profile(ctx, room, &name, &region) < 0)
		name = NULL;
	free(region);
	return name ? name : tlbot_ctx_room_name(ctx, room);
}

/* -------------------------------------------------------------- records */

/* The challenge's fields (see record.h): member, column, flag, type, max,
 * edit, flags, label. Adding a field is one row here and one migration. */
#define CH_FIELDS(X)                                                                            \
        X(id, "id", "id", R_ID, 0, RE_FIXED, REC_EXPORTED, "id")                                \
        X(room_id, "room_id", "room", R_TEXT, 0, RE_FIXED, REC_REQUIRED | REC_INTERNAL, "room")  \
        X(title, "title", "title", R_TEXT, TITLE_MAX, RE_EDIT, REC_REQUIRED, "title")           \
        X(description, "description", "desc", R_TEXT, DESC_MAX, RE_EDIT, 0, "description")     \
        X(region, "region", "region", R_TEXT, FIELD_MAX, RE_EDIT, 0, "region")                  \
        X(sponsor, "sponsor", "sponsor", R_TEXT, FIELD_MAX, RE_EDIT, 0, "sponsor")              \
        X(lead, "lead", "lead", R_USER, 0, RE_FIXED, 0, "lead")                                 \
        X(due, "due", "due", R_DATE, 0, RE_EDIT, 0, "due date")                                 \
        X(status, "status", "status", R_TEXT, 0, RE_FIXED, REC_REQUIRED, "status")              \
        X(outcome, "outcome", "outcome", R_TEXT, DESC_MAX, RE_FIXED, 0, "outcome")              \
        X(created_by, "created_by", "created-by", R_USER, 0, RE_FIXED, REC_INTERNAL, "created by") \
        X(created_at, "created_at", "created-at", R_TIME, 0, RE_FIXED, REC_INTERNAL, "created") \
        X(created_event, "created_event", "created-event", R_TEXT, 0, RE_FIXED, REC_INTERNAL,   \
          "created in event")

struct challenge {
	CH_FIELDS(REC_X_MEMBER)
};

#define CH_X_FIELD(...) REC_X_FIELD(struct challenge, __VA_ARGS__)
static const struct rec_field ch_fields[] = {CH_FIELDS(CH_X_FIELD){NULL, NULL, 0, 0, 0, NULL, 0}};
static const struct rec_desc ch_desc = {"challenges", "C", NULL, NULL, ch_fields};

static void
challenge_release(struct challenge *c)
{
	rec_release(&ch_desc, c);
	memset(c, 0, sizeof(*c));
}

/* Load challenge id: 0, 1 if there is none, -1 on error. */
static int
challenge_load(struct tlbot_ctx *ctx, int64_t id, struct challenge *c)
{
	memset(c, 0, sizeof(*c));
	return rec_load(ctx, &ch_desc, id, c);
}

static int
is_closed(const char *status)
{
	return status && (strcmp(status, "done") == 0 || strcmp(status, "dropped") == 0);
}

/* Load the challenge of the command's first argument (a C-12 that
 * dispatch checked); fails the command when there is none. Returns 0 or
 * -1. */
static int
load_arg(struct tlbot_ctx *ctx, const struct tlbot_args *args, struct challenge *c)
{
	int64_t id = tlbot_args_val(args, 0)->n;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = challenge_load(ctx, id, c);
	if (rc < 0)
		return db_fail(ctx);
	if (rc > 0)
		return tlbot_fail(ctx,
		                  "no challenge C-%lld: %schallenge list shows this room's"
		                  " challenges",
		                  (long long)id, tlbot_ctx_prefix(ctx));
	return 0;
}

/* The power levels of the challenge's own room govern changes to it: from
 * another room (or a DM with the bot) the sender needs the write power
 * there too. Returns 0, or fails the command. */
static int
require_here(struct tlbot_ctx *ctx, const struct challenge *c)
{
	const char *room = tlbot_ctx_room(ctx), *sender = tlbot_ctx_sender(ctx);

	if (room && strcmp(room, c->room_id) == 0)
		return 0;
	if (sender && (tlbot_ctx_is_admin(ctx, sender) ||
	               tlbot_ctx_power(ctx, c->room_id, sender) >= tlbot_ctx_power_needed(ctx)))
		return 0;
	return tlbot_fail(ctx,
	                  "not allowed: C-%lld belongs to another room, and changing it needs a"
	                  " power level of at least %d there (or to be a tlbot admin)",
	                  (long long)c->id, tlbot_ctx_power_needed(ctx));
}

/* Record a change. Returns the history row id, or -1. */
static int64_t
history_add(struct tlbot_ctx *ctx, const struct challenge *c, const char *action, const char *field,
            const char *old, const char *nv)
{

	if (tlbot_history_add(ctx, "C", c->id, action, field, old, nv) != 0)
		return -1;
	return tlbot_db_last_id(ctx);
}

/* ----------------------------------------------------------------- dates */

/* Days since the epoch of a YYYY-MM-DD date. Returns 0 or -1. */
static int
date_days(const char *s, int64_t *out)
{
	int i;

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return -1;
	*out = tlbot_date_days(atoi(s), atoi(s + 5), atoi(s + 8));
	return 0;
}

static void
days_date(int64_t z, char out[11])
{
	int y, m, d;

	tlbot_date_civil(z, &y, &m, &d);
	if (y < 0 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31) {
		snprintf(out, 11, "0000-00-00");
		return;
	}
	snprintf(out, 11, "%04u-%02u-%02u", (unsigned)y % 10000u, (unsigned)m % 100u,
	         (unsigned)d % 100u);
}

static int64_t
today(struct tlbot_ctx *ctx)
{
	char d[11];
	int64_t z = 0;

	if (tlbot_tz_date(tlbot_ctx_default_tz(ctx), tlbot_ctx_now(ctx), d) != 0 ||
	    date_days(d, &z) != 0)
		z = (int64_t)(tlbot_ctx_now(ctx) / 86400);
	return z;
}

/* The instant of REMIND_HOUR:00 local time on day z. Returns 0 or -1. */
static int
at_remind_hour(struct tlbot_ctx *ctx, int64_t z, time_t *out)
{
	int y, m, d;

	tlbot_date_civil(z, &y, &m, &d);
	return tlbot_tz_mktime(tlbot_ctx_default_tz(ctx), y, m, d, REMIND_HOUR, 0, out);
}

/* "2026-12-01 (in 3 days)" into out. */
static void
due_text(char *out, size_t len, const char *due, int64_t now_day, int closed)
{
	int64_t d, diff;

	if (date_days(due, &d) != 0 || closed) {
		snprintf(out, len, "%s", due);
		return;
	}
	diff = d - now_day;
	if (diff == 0)
		snprintf(out, len, "%s (today)", due);
	else if (diff == 1)
		snprintf(out, len, "%s (tomorrow)", due);
	else if (diff > 1)
		snprintf(out, len, "%s (in %lld days)", due, (long long)diff);
	else if (diff == -1)
		snprintf(out, len, "%s (1 day overdue)", due);
	else
		snprintf(out, len, "%s (%lld days overdue)", due, (long long)-diff);
}

/* A --due value as dispatch checked it (YYYY-MM-DD, or "none" where the
 * parameter allows it) into out ("" for none). Returns 0 or fails the
 * command when the date is in the past. */
static int
parse_due(struct tlbot_ctx *ctx, const char *v, char out[11])
{
	int64_t d;

	if (strcasecmp(v, "none") == 0) {
		out[0] = '\0';
		return 0;
	}
	snprintf(out, 11, "%s", v);
	if (date_days(out, &d) == 0 && d < today(ctx))
		return tlbot_fail(ctx,
		                  "the due date %s is in the past: give today or a later date"
		                  " (%s)",
		                  out, tlbot_date_forms);
	return 0;
}

/* ----------------------------------------------------------------- text */

/* Check user text for a field. Returns 0 or fails the command. */
static int
check_text(struct tlbot_ctx *ctx, const char *what, const char *s, size_t max, int one_line)
{
	const char *p;
	size_t n = tlbot_utf8_len(s);

	if (n > max)
		return tlbot_fail(ctx, "the %s is too long (%zu characters, at most %zu)", what, n,
		                  max);
	for (p = s; one_line && *p; p++)
		if (*p == '\n' || *p == '\r')
			return tlbot_fail(ctx, "the %s must be one line", what);
	return 0;
}

/* "none" and "" clear an optional field. */
static int
is_none(const char *v)
{
	return v && (*v == '\0' || strcasecmp(v, "none") == 0);
}

/* A sponsor, lead or other person: a pill when it is a user id, else text. */
static void
append_person(struct tlbot_msg *m, const char *who)
{
	if (tlbot_is_user_id(who))
		tlbot_msg_user(m, who);
	else
		tlbot_msg_text(m, who);
}

static void
append_ref(struct tlbot_msg *m, struct tlbot_ctx *ctx, int64_t id)
{
	char ref[32];

	snprintf(ref, sizeof(ref), "C-%lld", (long long)id);
	tlbot_msg_refs(m, ctx, ref);
}

/* ------------------------------------------------------------- people */

/* Resolve a person flag (--lead, --sponsor). free_text: a value that is
 * not a person is kept as text. Returns the id/text (borrowed) or NULL after
 * failing the command. */
static const char *
person_flag(struct tlbot_ctx *ctx, const char *flag, const char *v, int free_text)
{
	const char *u = tlbot_resolve_user(ctx, v);

	if (u)
		return tlbot_check_person(ctx, u) == 0 ? u : NULL;
	if (free_text && *v != '@')
		return v;
	tlbot_fail(ctx,
	           "--%s: cannot tell who '%s' is: mention them or write their full id"
	           " (@name:server)",
	           flag, v);
	return NULL;
}

/* Join users as "a, b and c": mentions notify, pills do not. */
static void
append_users(struct tlbot_msg *m, const struct tlbot_users *u, int mention)
{
	size_t i;

	for (i = 0; i < u->n; i++) {
		if (i > 0)
			tlbot_msg_text(m, i + 1 == u->n ? " and " : ", ");
		if (mention)
			tlbot_msg_mention(m, u->v[i]);
		else
			tlbot_msg_user(m, u->v[i]);
	}
}

/* --------------------------------------------------------------- jobs */

/* Schedule this week's (or next) Monday overdue listing for room. */
static int
schedule_overdue(struct tlbot_ctx *ctx, const char *room)
{
	struct tm tm;
	time_t now = tlbot_ctx_now(ctx), at = 0;
	int64_t z;
	int ahead;
	char date[11], key[600];

	if (tlbot_tz_local(tlbot_ctx_default_tz(ctx), now, &tm) != 0)
		return -1;
	z = tlbot_date_days(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	ahead = (8 - tm.tm_wday) % 7; /* days until Monday */
	for (;;) {
		if (at_remind_hour(ctx, z + ahead, &at) != 0)
			return -1;
		if (at > now)
			break;
		ahead += 7;
	}
	days_date(z + ahead, date);
	snprintf(key, sizeof(key), "challenge.overdue.%s|%s", room, date);
	return tlbot_job_schedule(ctx, "challenge.overdue", key, room, at, NULL) < 0 ? -1 : 0;
}

/* (Re)schedule the due reminders of challenge c: cancel the pending ones
 * and, unless it is closed or has no due date, schedule 09:00 three days
 * before and on the day (those still ahead). rev makes the keys new.
 * Returns 0 or -1. */
static int
schedule_due(struct tlbot_ctx *ctx, const struct challenge *c, int64_t rev)
{
	static const int offsets[] = {3, 0};
	char key[128], payload[128];
	int64_t d;
	time_t at;
	size_t k;

	snprintf(key, sizeof(key), "challenge.due.%lld.*", (long long)c->id);
	if (tlbot_job_cancel(ctx, key) < 0)
		return -1;
	if (c->due == NULL || is_closed(c->status) || date_days(c->due, &d) != 0)
		return 0;
	for (k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++) {
		if (at_remind_hour(ctx, d - offsets[k], &at) != 0)
			return -1;
		if (at <= tlbot_ctx_now(ctx))
			continue;
		snprintf(key, sizeof(key), "challenge.due.%lld.%lld.%dd", (long long)c->id,
		         (long long)rev, offsets[k]);
		snprintf(payload, sizeof(payload), "{\"id\":%lld,\"due\":\"%.10s\",\"days\":%d}",
		         (long long)c->id, c->due, offsets[k]);
		if (tlbot_job_schedule(ctx, "challenge.due", key, c->room_id, at, payload) < 0)
			return -1;
	}
	return schedule_overdue(ctx, c->room_id);
}

/* Lead and assignees of c, distinct, lead first. Strings are owned by
 * *store (free each). Returns the count, or -1. */
static int
recipients(struct tlbot_ctx *ctx, const struct challenge *c, char **out, int max)
{
	struct tlbot_db_rows q;
	int n = 0, i;

	if (c->lead && n < max)
		out[n++] = strdup(c->lead);
	tlbot_db_query(ctx, &q,
	         "SELECT user_id FROM challenge_assignees WHERE challenge_id = ?"
	         " ORDER BY assigned_at, rowid",
	         "i", c->id);
	if (q.stmt == NULL)
		return -1;
	while (tlbot_db_next(&q) > 0 && n < max) {
		const char *u = tlbot_db_col_text(&q, 0);
		int dup = 0;

		for (i = 0; i < n; i++)
			if (out[i] && strcmp(out[i], u) == 0)
				dup = 1;
		if (!dup)
			out[n++] = strdup(u);
	}
	tlbot_db_done(&q);
	for (i = 0; i < n; i++)
		if (out[i] == NULL)
			return -1;
	return n;
}

static int
due_fire_(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	struct challenge c;
	char *who[TLBOT_MAX_USERS], *due = NULL, when[64];
	int64_t id = 0, days = 0;
	int n = 0, i, rc = 0;
	struct tlbot_db_rows q;
	struct tlbot_msg m;

	tlbot_db_query(ctx, &q,
	         "SELECT json_extract(?1, '$.id'), json_extract(?1, '$.due'),"
	         " json_extract(?1, '$.days')",
	         "t", job->payload);
	if (q.stmt == NULL)
		return -1;
	if (tlbot_db_next(&q) > 0) {
		id = tlbot_db_col_int(&q, 0);
		due = tlbot_db_col_dup(&q, 1);
		days = tlbot_db_col_int(&q, 2);
	}
	tlbot_db_done(&q);
	if (job->missed || due == NULL) {
		free(due);
		return 0;
	}
	rc = challenge_load(ctx, id, &c);
	if (rc != 0 || is_closed(c.status) || c.due == NULL || strcmp(c.due, due) != 0) {
		/* gone, closed or moved since: nothing to remind */
		challenge_release(&c);
		free(due);
		return rc < 0 ? -1 : 0;
	}
	n = recipients(ctx, &c, who, TLBOT_MAX_USERS);
	if (n < 0) {
		challenge_release(&c);
		free(due);
		return -1;
	}
	if (days == 0)
		snprintf(when, sizeof(when), "is due today (%s)", due);
	else
		snprintf(when, sizeof(when), "is due in %lld days (%s)", (long long)days, due);

	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "⏰ Reminder: ");
	append_ref(&m, ctx, c.id);
	tlbot_msg_text(&m, " ");
	tlbot_msg_bold(&m, c.title);
	tlbot_msg_textf(&m, " %s, status %s.", when, c.status);
	if (n > 0) {
		tlbot_msg_text(&m, " ");
		for (i = 0; i < n; i++) {
			if (i)
				tlbot_msg_text(&m, ", ");
			tlbot_msg_mention(&m, who[i]);
		}
	} else {
		tlbot_msg_textf(&m, " Nobody is assigned: %schallenge assign C-%lld @name",
		                tlbot_ctx_prefix(ctx), (long long)c.id);
	}
	rc = tlbot_send_room(ctx, c.room_id, &m);
	for (i = 0; rc == 0 && i < n; i++) {
		if (!tlbot_ctx_dm_enabled(ctx, who[i]))
			continue;
		tlbot_msg_init(&m);
		tlbot_msg_text(&m, "⏰ ");
		append_ref(&m, ctx, c.id);
		tlbot_msg_text(&m, " ");
		tlbot_msg_bold(&m, c.title);
		tlbot_msg_textf(&m,
		                " %s. You are its %s. (Turn these messages off with"
		                " %snotify off.)",
		                when, c.lead && strcmp(c.lead, who[i]) == 0 ? "lead" : "assignee",
		                tlbot_ctx_prefix(ctx));
		rc = tlbot_send_dm(ctx, who[i], &m);
	}
	for (i = 0; i < n; i++)
		free(who[i]);
	challenge_release(&c);
	free(due);
	return rc;
}

static int
overdue_fire_(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	const char *room = job->room_id;
	int64_t now_day = today(ctx), more = 0;
	char today_s[11], dtext[64];
	struct tlbot_db_rows q;
	struct tlbot_msg m;
	int n = 0, rc = 0;

	if (room == NULL)
		return 0;
	days_date(now_day, today_s);
	if (!job->missed) {
		tlbot_db_query(ctx, &q,
		         "SELECT id, title, due, lead, status FROM challenges WHERE room_id = ?"
		         " AND status IN ('open','active','paused') AND due IS NOT NULL AND due < ?"
		         " ORDER BY due, id LIMIT 30",
		         "tt", room, today_s);
		if (q.stmt == NULL)
			return -1;
		tlbot_msg_init(&m);
		while (tlbot_db_next(&q) > 0) {
			if (n++ == 0) {
				tlbot_msg_bold(&m, "Overdue challenges");
				tlbot_msg_text(&m, " (weekly check)");
				tlbot_msg_html(&m, "<ul>");
			}
			tlbot_msg_plain(&m, "\n• ");
			tlbot_msg_html(&m, "<li>");
			append_ref(&m, ctx, tlbot_db_col_int(&q, 0));
			tlbot_msg_text(&m, " ");
			tlbot_msg_text(&m, tlbot_db_col_text(&q, 1));
			due_text(dtext, sizeof(dtext), tlbot_db_col_text(&q, 2), now_day, 0);
			tlbot_msg_textf(&m, " — %s, due %s", tlbot_db_col_text(&q, 4), dtext);
			if (tlbot_db_col_text(&q, 3)) {
				tlbot_msg_text(&m, ", lead ");
				tlbot_msg_user(&m, tlbot_db_col_text(&q, 3));
			}
			tlbot_msg_html(&m, "</li>");
		}
		tlbot_db_done(&q);
		if (n > 0) {
			tlbot_msg_html(&m, "</ul>");
			tlbot_msg_plain(&m, "\n");
			tlbot_msg_textf(&m,
			                "Move a date with %schallenge edit C-N --due DATE, or close"
			                " one with %schallenge status C-N done.",
			                tlbot_ctx_prefix(ctx), tlbot_ctx_prefix(ctx));
			rc = tlbot_send_room(ctx, room, &m);
		} else {
			tlbot_msg_release(&m);
		}
	}
	if (rc != 0)
		return -1;
	/* next week, while the room has open challenges with a due date */
	if (tlbot_db_int(ctx, &more,
	              "SELECT EXISTS (SELECT 1 FROM challenges WHERE room_id = ? AND"
	              " status IN ('open','active','paused') AND due IS NOT NULL)",
	              "t", room) < 0)
		return -1;
	return more ? schedule_overdue(ctx, room) : 0;
}

/* Job entry points: every failure inside is a store (or memory) error, so
 * the core rolls back and retries the job on a later tick. */
static int
due_fire(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	return due_fire_(ctx, job) != 0 ? tlbot_db_error(ctx, "challenge.due reminder") : 0;
}

static int
overdue_fire(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	return overdue_fire_(ctx, job) != 0 ? tlbot_db_error(ctx, "challenge.overdue listing") : 0;
}

/* ------------------------------------------------------------ handlers */

/* Notify newly assigned people by direct message (the room reply already
 * mentions them). Skips the sender and people with DMs off. */
static int
dm_assigned(struct tlbot_ctx *ctx, const struct challenge *c, const struct tlbot_users *u)
{
	const char *sender = tlbot_ctx_sender(ctx);
	char *team = NULL, dtext[64];
	struct tlbot_buf href;
	size_t i;
	int rc = 0;

	team = room_label(ctx, c->room_id);
	tlbot_buf_init(&href, 1024);
	tlbot_buf_printf(&href, "https://matrix.to/#/%s", c->room_id);
	for (i = 0; rc == 0 && i < u->n; i++) {
		struct tlbot_msg m;

		if ((sender && strcmp(sender, u->v[i]) == 0) || !tlbot_ctx_dm_enabled(ctx, u->v[i]))
			continue;
		tlbot_msg_init(&m);
		if (sender) {
			tlbot_msg_user(&m, sender);
			tlbot_msg_text(&m, " assigned you to ");
		} else {
			tlbot_msg_text(&m, "You were assigned to ");
		}
		append_ref(&m, ctx, c->id);
		tlbot_msg_text(&m, " ");
		tlbot_msg_bold(&m, c->title);
		tlbot_msg_text(&m, " in ");
		tlbot_msg_link(&m, team ? team : "your team's room", tlbot_buf_str(&href), NULL);
		if (c->lead && strcmp(c->lead, u->v[i]) == 0)
			tlbot_msg_text(&m, " as its lead");
		tlbot_msg_text(&m, ".");
		if (c->due) {
			due_text(dtext, sizeof(dtext), c->due, today(ctx), 0);
			tlbot_msg_textf(&m, " Due %s.", dtext);
		}
		tlbot_msg_textf(&m,
		                " Details: %schallenge show C-%lld. Turn these messages off with"
		                " %snotify off.",
		                tlbot_ctx_prefix(ctx), (long long)c->id, tlbot_ctx_prefix(ctx));
		rc = tlbot_send_dm(ctx, u->v[i], &m);
	}
	tlbot_buf_release(&href);
	free(team);
	return rc;
}

/* Assign the people in u (skipping those already on it) and set the lead
 * when lead is not NULL. added receives who was newly assigned. Returns 0
 * or -1 (database). */
static int
assign_users(struct tlbot_ctx *ctx, struct challenge *c, const struct tlbot_users *u, const char *lead,
             struct tlbot_users *added, struct tlbot_users *already)
{
	size_t i;

	for (i = 0; i < u->n; i++) {
		if (tlbot_db_exec(ctx,
		         "INSERT INTO challenge_assignees(challenge_id, user_id, assigned_by,"
		         " assigned_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
		         "itti", c->id, u->v[i], tlbot_ctx_sender(ctx),
		         (int64_t)tlbot_ctx_now(ctx)) != 0)
			return -1;
		if (tlbot_db_changes(ctx) == 0) {
			tlbot_users_add(already, u->v[i]);
			continue;
		}
		tlbot_users_add(added, u->v[i]);
		if (history_add(ctx, c, "assigned", "assignee", NULL, u->v[i]) < 0)
			return -1;
	}
	if (lead && (c->lead == NULL || strcmp(c->lead, lead) != 0)) {
		char *dup = strdup(lead);

		if (dup == NULL)
			return -1;
		if (tlbot_db_exec(ctx, "UPDATE challenges SET lead = ? WHERE id = ?", "ti", lead, c->id) !=
		            0 ||
		    history_add(ctx, c, "lead", "lead", c->lead, lead) < 0) {
			free(dup);
			return -1;
		}
		free(c->lead);
		c->lead = dup;
	}
	return 0;
}

/* The title of !challenge new: its words joined into title, checked.
 * 0 or -1 (failed). */
static int
new_title(struct tlbot_ctx *ctx, const struct tlbot_args *args, struct tlbot_buf *title)
{
	const char *v;
	size_t i;

	for (i = 0; i < args->argc; i++)
		if (tlbot_buf_printf(title, "%s%s", i ? " " : "", args->argv[i]) != 0)
			break;
	v = tlbot_buf_str(title);
	while (*v == ' ')
		v++;
	if (*v == '\0')
		return tlbot_fail(ctx,
		                  "missing title: usage: %schallenge new \"title\" [--region R]"
		                  " [--due DATE]",
		                  tlbot_ctx_prefix(ctx));
	if (i < args->argc)
		return tlbot_fail(ctx, "the title is too long (at most %d characters)", TITLE_MAX);
	return check_text(ctx, "title", v, TITLE_MAX, 1);
}

/* "Created C-12: title — due ..., region R. Lead: ... Sponsor: ..." */
static void
created_msg(struct tlbot_ctx *ctx, struct tlbot_msg *m, const struct challenge *c)
{
	char dtext[64];

	tlbot_msg_init(m);
	tlbot_msg_text(m, "Created ");
	append_ref(m, ctx, c->id);
	tlbot_msg_text(m, ": ");
	tlbot_msg_bold(m, c->title);
	if (c->due) {
		due_text(dtext, sizeof(dtext), c->due, today(ctx), 0);
		tlbot_msg_textf(m, " — due %s", dtext);
	}
	if (c->region) {
		tlbot_msg_text(m, c->due ? ", region " : " — region ");
		tlbot_msg_text(m, c->region);
	}
	tlbot_msg_text(m, ".");
	if (c->lead) {
		tlbot_msg_text(m, " Lead: ");
		tlbot_msg_mention(m, c->lead);
		tlbot_msg_text(m, ".");
	}
	if (c->sponsor) {
		tlbot_msg_text(m, " Sponsor: ");
		append_person(m, c->sponsor);
		tlbot_msg_text(m, ".");
	}
	if (c->lead == NULL)
		tlbot_msg_textf(m, " Assign people with %schallenge assign C-%lld @name.",
		                tlbot_ctx_prefix(ctx), (long long)c->id);
}

/* The region of the ctx room's team (a new string, or NULL). 0 or -1. */
static int
team_region_of(struct tlbot_ctx *ctx, char **region)
{
	char *team_name = NULL;

	if (tlbot_room_profile(ctx, tlbot_ctx_room(ctx), &team_name, region) < 0)
		return -1;
	free(team_name);
	return 0;
}

static int
cmd_new(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *region = tlbot_args_get(args, "region"), *desc = tlbot_args_get(args, "desc");
	const char *sponsor = NULL, *lead = NULL, *v;
	struct tlbot_buf title;
	struct challenge c;
	struct tlbot_users u = {0}, added = {0}, already = {0};
	struct tlbot_msg m;
	char due[11] = "";
	char *team_region = NULL;
	int64_t id, rev;
	int rc = -1;

	memset(&c, 0, sizeof(c));
	tlbot_buf_init(&title, 4 * TITLE_MAX + 64);
	if (new_title(ctx, args, &title) != 0)
		goto out;
	if ((v = tlbot_args_get(args, "due")) && parse_due(ctx, v, due) != 0)
		goto out;
	if (region && (check_text(ctx, "region", region, FIELD_MAX, 1) != 0))
		goto out;
	if (desc && check_text(ctx, "description", desc, DESC_MAX, 0) != 0)
		goto out;
	if ((v = tlbot_args_get(args, "sponsor")) &&
	    ((sponsor = person_flag(ctx, "sponsor", v, 1)) == NULL ||
	     check_text(ctx, "sponsor", sponsor, FIELD_MAX, 1) != 0))
		goto out;
	if ((v = tlbot_args_get(args, "lead")) && (lead = person_flag(ctx, "lead", v, 0)) == NULL)
		goto out;
	if (region == NULL || *region == '\0') {
		/* the team's region is the default */
		if (team_region_of(ctx, &team_region) != 0) {
			rc = db_fail(ctx);
			goto out;
		}
		region = team_region;
	}
	id = tlbot_ctx_next_id(ctx, "challenge");
	if (id < 0) {
		rc = db_fail(ctx);
		goto out;
	}
	if (tlbot_db_exec(ctx,
	         "INSERT INTO challenges(id, room_id, title, description, region, sponsor,"
	         " due, status, created_by, created_at, created_event)"
	         " VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?)",
	         "itttttttit", id, tlbot_ctx_room(ctx),
	         tlbot_buf_str(&title) + strspn(tlbot_buf_str(&title), " "),
	         desc && *desc ? desc : NULL, region && *region ? region : NULL, sponsor,
	         due[0] ? due : NULL, tlbot_ctx_sender(ctx), (int64_t)tlbot_ctx_now(ctx),
	         tlbot_ctx_event_id(ctx)) != 0 ||
	    challenge_load(ctx, id, &c) != 0) {
		rc = db_fail(ctx);
		goto out;
	}
	rev = history_add(ctx, &c, "created", NULL, NULL, c.title);
	if (rev < 0 || schedule_due(ctx, &c, rev) != 0) {
		rc = db_fail(ctx);
		goto out;
	}
	if (lead) {
		tlbot_users_add(&u, lead);
		if (assign_users(ctx, &c, &u, lead, &added, &already) != 0) {
			rc = db_fail(ctx);
			goto out;
		}
	}

	created_msg(ctx, &m, &c);
	if (tlbot_reply(ctx, &m) != 0 || dm_assigned(ctx, &c, &added) != 0) {
		rc = -1;
		goto out;
	}
	rc = 0;
out:
	tlbot_users_release(&u);
	tlbot_users_release(&added);
	tlbot_users_release(&already);
	tlbot_buf_release(&title);
	free(team_region);
	challenge_release(&c);
	return rc;
}

/* "open,active" or "all" -> ",open,active," in out. Returns 0 or fails. */
static int
status_filter(struct tlbot_ctx *ctx, const char *v, char *out, size_t len)
{
	char word[16];
	const char *p = v;
	size_t i, n, used;

	if (v == NULL) {
		snprintf(out, len, ",open,active,paused,");
		return 0;
	}
	if (strcasecmp(v, "all") == 0) {
		snprintf(out, len, ",open,active,paused,done,dropped,");
		return 0;
	}
	if (strcasecmp(v, "closed") == 0) {
		snprintf(out, len, ",done,dropped,");
		return 0;
	}
	snprintf(out, len, ",");
	used = 1;
	while (*p) {
		n = strcspn(p, ",");
		if (n == 0 || n >= sizeof(word))
			goto bad;
		for (i = 0; i < n; i++)
			word[i] = (char)tolower((unsigned char)p[i]);
		word[n] = '\0';
		for (i = 0; statuses[i]; i++)
			if (strcmp(statuses[i], word) == 0)
				break;
		if (statuses[i] == NULL)
			goto bad;
		if (used + n + 2 > len)
			goto bad;
		memcpy(out + used, word, n);
		used += n;
		out[used++] = ',';
		out[used] = '\0';
		p += n;
		if (*p == ',')
			p++;
	}
	if (strcmp(out, ",") == 0)
		goto bad;
	return 0;
bad:
	return tlbot_fail(ctx,
	                  "--status '%s' is not a status: use open, active, paused, done,"
	                  " dropped (several with commas), closed or all",
	                  v);
}

/* --page N (dispatch checked 1..100000), 1 when not given. */
static int64_t
page_of(const struct tlbot_args *args)
{
	const struct tlbot_value *v = tlbot_args_flag_val(args, "page");

	return v ? v->n : 1;
}

static int
page_check(struct tlbot_ctx *ctx, int64_t page, int64_t total, int64_t per)
{
	int64_t pages = (total + per - 1) / per;

	if (total > 0 && page > pages)
		return tlbot_fail(ctx, "there is no page %lld: the list has %lld page%s",
		                  (long long)page, (long long)pages, pages == 1 ? "" : "s");
	return 0;
}

/* The answer to a list with nothing in it: "create one" only when no
 * filter narrowed it (else the room may well have others). */
static int
list_empty(struct tlbot_ctx *ctx, const char *st, const char *region, int mine, int all,
           int filtered)
{
	const char *where = all ? "in any room" : "in this room";

	if (mine)
		return tlbot_replyf(ctx, "You lead or are assigned no %s challenges%s%s.", st,
		                    region ? " in region " : "", region ? region : "");
	if (filtered || region)
		return tlbot_replyf(ctx, "No %s challenges %s%s%s (%schallenge list --status all"
		                    " lists every one).", st, where, region ? " in region " : "",
		                    region ? region : "", tlbot_ctx_prefix(ctx));
	return tlbot_replyf(ctx, "No %s challenges %s%s%s. Create one with %schallenge new"
	                    " \"title\".", st, where, region ? " in region " : "",
	                    region ? region : "", tlbot_ctx_prefix(ctx));
}

/* The table cell of the people assigned (space-separated ids): their
 * names, or a dash. */
static void
people_cell(struct tlbot_msg *m, const char *ids)
{
	const char *p = ids;
	int k = 0;

	if (ids == NULL || *ids == '\0') {
		tlbot_msg_html(m, "—");
		return;
	}
	tlbot_msg_plain(m, ", assigned ");
	while (*p) {
		char id[256];
		size_t len = strcspn(p, " ");

		if (len > 0 && len < sizeof(id)) {
			memcpy(id, p, len);
			id[len] = '\0';
			tlbot_msg_text(m, k++ ? ", " : "");
			tlbot_msg_user(m, id);
		}
		p += len;
		while (*p == ' ')
			p++;
	}
}

#define LIST_WHERE                                                                                 \
	" FROM challenges c"                                                                       \
	" WHERE (?1 IS NULL OR c.room_id = ?1)"                                                    \
	" AND instr(?2, ',' || c.status || ',') > 0"                                               \
	" AND (?3 IS NULL OR lower(c.region) = lower(?3))"                                         \
	" AND (?4 IS NULL OR c.lead = ?4 OR EXISTS (SELECT 1 FROM challenge_assignees a"           \
	"  WHERE a.challenge_id = c.id AND a.user_id = ?4))"

/* One challenge of !challenge list (a row of q: id, room, title, status,
 * due, lead, -, assignees): a line, or a table row in HTML; wide adds
 * the team. */
static void
list_row(struct tlbot_ctx *ctx, struct tlbot_msg *m, const struct tlbot_db_rows *q,
         int64_t now_day, int wide)
{
	char dtext[64];
	const char *due = tlbot_db_col_text(q, 4), *lead = tlbot_db_col_text(q, 5),
	           *st = tlbot_db_col_text(q, 3), *assigned = tlbot_db_col_text(q, 7);

	tlbot_msg_plain(m, "\n• ");
	tlbot_msg_html(m, "<tr><td>");
	append_ref(m, ctx, tlbot_db_col_int(q, 0));
	tlbot_msg_plain(m, " ");
	tlbot_msg_html(m, "</td><td>");
	tlbot_msg_text(m, tlbot_db_col_text(q, 2));
	tlbot_msg_plain(m, " — ");
	tlbot_msg_html(m, "</td><td>");
	tlbot_msg_text(m, st);
	tlbot_msg_html(m, "</td><td>");
	if (due) {
		due_text(dtext, sizeof(dtext), due, now_day, is_closed(st));
		tlbot_msg_plain(m, ", due ");
		tlbot_msg_text(m, dtext);
	}
	tlbot_msg_html(m, "</td><td>");
	if (lead) {
		tlbot_msg_plain(m, ", lead ");
		tlbot_msg_user(m, lead);
	} else {
		tlbot_msg_html(m, "—"); /* no lead yet: a dash, not an empty cell */
	}
	tlbot_msg_html(m, "</td><td>");
	/* the people, not a count */
	people_cell(m, assigned);
	tlbot_msg_html(m, "</td>");
	if (wide) {
		char *name = room_label(ctx, tlbot_db_col_text(q, 1));
		const char *team = name;

		tlbot_msg_html(m, "<td>");
		tlbot_msg_plain(m, team ? " — team " : " — room ");
		tlbot_msg_text(m, team ? team : tlbot_db_col_text(q, 1));
		tlbot_msg_html(m, "</td>");
		free(name);
	}
	tlbot_msg_html(m, "</tr>");
}

/* "Next page: !challenge list ... --page N. " with the same filters. */
static void
next_page(struct tlbot_ctx *ctx, struct tlbot_msg *m, const struct tlbot_args *args, int mine,
          int all, int64_t page)
{
	const char *region = tlbot_args_get(args, "region"), *status_v = tlbot_args_get(args, "status");

	tlbot_msg_textf(m, "Next page: %schallenge list%s%s%s%s%s%s --page %lld. ",
	                tlbot_ctx_prefix(ctx), mine ? " --mine" : "", all ? " --all-rooms" : "",
	                status_v ? " --status " : "", status_v ? status_v : "",
	                region ? " --region " : "", region ? region : "", (long long)page);
}

/* The statuses of a list filter (",open,active,") as "open/active". */
static void
filter_text(const char *filter, char *out, size_t outlen)
{
	size_t k = strlen(filter);

	snprintf(out, outlen, "%.*s", (int)(k > 2 ? k - 2 : 0), filter + 1);
	for (k = 0; out[k]; k++)
		if (out[k] == ',')
			out[k] = '/';
}

static int
cmd_list(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *region = tlbot_args_get(args, "region"),
	           *status_v = tlbot_args_get(args, "status");
	int mine = tlbot_args_has(args, "mine"), all = tlbot_args_has(args, "all-rooms");
	const char *room = NULL, *who = NULL;
	char filter[96];
	int64_t page, total = 0, pages, now_day = today(ctx);
	struct tlbot_db_rows q;
	struct tlbot_msg m;
	int wide, n = 0;

	page = page_of(args);
	if (status_filter(ctx, status_v, filter, sizeof(filter)) != 0)
		return -1;
	if (region && check_text(ctx, "region", region, FIELD_MAX, 1) != 0)
		return -1;
	/* every team's challenges: in the programme room only */
	if (all && (tlbot_ctx_digest_room(ctx) == NULL ||
	            strcmp(tlbot_ctx_digest_room(ctx), tlbot_ctx_room(ctx)) != 0))
		return tlbot_fail(ctx,
		                  "--all-rooms works in the programme room only: this room sees its"
		                  " own challenges (%schallenge list)",
		                  tlbot_ctx_prefix(ctx));
	/* in a DM with the bot, "list" means your own challenges */
	if (!all && !mine && tlbot_ctx_is_dm(ctx))
		mine = 1;
	if (mine)
		who = tlbot_ctx_sender(ctx);
	if (!all && !mine)
		room = tlbot_ctx_room(ctx);
	wide = room == NULL; /* listing across rooms: show the team */
	if (tlbot_db_int(ctx, &total, "SELECT COUNT(*)" LIST_WHERE, "tttt", room, filter, region, who) <
	    0)
		return db_fail(ctx);
	if (page_check(ctx, page, total, PAGE_SIZE) != 0)
		return -1;
	pages = total ? (total + PAGE_SIZE - 1) / PAGE_SIZE : 1;

	{
		char st[96];

		filter_text(filter, st, sizeof(st));
		if (total == 0)
			return list_empty(ctx, st, region, mine, all, status_v != NULL);
		tlbot_msg_init(&m);
		tlbot_msg_bold(&m, mine ? "Your challenges" : "Challenges");
		tlbot_msg_textf(&m, " %s%s%s (%s): %lld in all, page %lld of %lld",
		                mine  ? "across rooms"
		                : all ? "in all rooms"
		                      : "in this room",
		                region ? ", region " : "", region ? region : "", st,
		                (long long)total, (long long)page, (long long)pages);
	}
	tlbot_db_query(ctx, &q,
	         "SELECT c.id, c.room_id, c.title, c.status, c.due, c.lead, NULL,"
	         " (SELECT group_concat(a.user_id, ' ') FROM (SELECT user_id FROM challenge_assignees"
	         " WHERE challenge_id = c.id ORDER BY assigned_at, user_id) a)" LIST_WHERE " ORDER BY c.due IS NULL, c.due, c.id LIMIT ?5 OFFSET ?6",
	         "ttttii", room, filter, region, who, (int64_t)PAGE_SIZE,
	         (int64_t)((page - 1) * PAGE_SIZE));
	if (q.stmt == NULL) {
		tlbot_msg_release(&m);
		return db_fail(ctx);
	}
	tlbot_msg_html(&m, "<table><thead><tr><th>ID</th><th>Title</th><th>Status</th>"
	                   "<th>Due</th><th>Lead</th><th>Assigned</th>");
	if (wide)
		tlbot_msg_html(&m, "<th>Team</th>");
	tlbot_msg_html(&m, "</tr></thead><tbody>");
	while (tlbot_db_next(&q) > 0) {
		n++;
		list_row(ctx, &m, &q, now_day, wide);
	}
	tlbot_db_done(&q);
	tlbot_msg_html(&m, "</tbody></table>");
	tlbot_msg_plain(&m, "\n");
	if (page < pages)
		next_page(ctx, &m, args, mine, all, page + 1);
	tlbot_msg_textf(&m, "Details: %schallenge show C-N.", tlbot_ctx_prefix(ctx));
	return tlbot_reply(ctx, &m);
}

/* One history entry as a sentence after the actor. */
static void
append_change(struct tlbot_msg *m, const char *action, const char *field, const char *old,
              const char *nv)
{
	if (strcmp(action, "created") == 0) {
		tlbot_msg_text(m, "created it");
	} else if (strcmp(action, "assigned") == 0 && nv) {
		tlbot_msg_text(m, "assigned ");
		tlbot_msg_user(m, nv);
	} else if (strcmp(action, "unassigned") == 0 && old) {
		tlbot_msg_text(m, "unassigned ");
		tlbot_msg_user(m, old);
	} else if (strcmp(action, "lead") == 0) {
		if (nv) {
			tlbot_msg_text(m, "made ");
			tlbot_msg_user(m, nv);
			tlbot_msg_text(m, " the lead");
		} else {
			tlbot_msg_text(m, "removed the lead");
		}
		if (old) {
			tlbot_msg_text(m, " (was ");
			tlbot_msg_user(m, old);
			tlbot_msg_text(m, ")");
		}
	} else if (field && strcmp(field, "outcome") == 0) {
		tlbot_msg_text(m, "noted the outcome: ");
		tlbot_msg_text(m, nv ? nv : "(none)");
	} else if (field && strcmp(field, "description") == 0) {
		tlbot_msg_text(m, nv ? "changed the description" : "removed the description");
	} else if (field) {
		if (old && nv) {
			tlbot_msg_textf(m, "changed %s from ", field);
			if (strcmp(field, "sponsor") == 0)
				append_person(m, old);
			else
				tlbot_msg_text(m, old);
			tlbot_msg_text(m, " to ");
		} else if (nv) {
			tlbot_msg_textf(m, "set %s to ", field);
		} else {
			tlbot_msg_textf(m, "cleared %s (was ", field);
		}
		if (nv && strcmp(field, "sponsor") == 0)
			append_person(m, nv);
		else
			tlbot_msg_text(m, nv ? nv : old ? old : "");
		if (!nv)
			tlbot_msg_text(m, ")");
	} else {
		tlbot_msg_text(m, action);
	}
}

/* Append history rows of challenge id from offset (limit rows) as a list. */
static int
append_history(struct tlbot_msg *m, struct tlbot_ctx *ctx, int64_t id, int64_t offset,
               int64_t limit)
{
	struct tlbot_db_rows q;

	tlbot_db_query(ctx, &q,
	                       "SELECT at, actor, action, field, old, new"
	                       " FROM history WHERE kind = 'C' AND record_id = ? ORDER BY id"
	                       " LIMIT ? OFFSET ?",
	                       "iii", id, limit, offset);
	const char *tz = tlbot_ctx_default_tz(ctx);

	if (q.stmt == NULL)
		return -1;
	tlbot_msg_html(m, "<ul>");
	while (tlbot_db_next(&q) > 0) {
		struct tm tm;
		char when[32] = "?";

		if (tlbot_tz_local(tz, (time_t)tlbot_db_col_int(&q, 0), &tm) == 0)
			snprintf(when, sizeof(when), "%04d-%02d-%02d %02d:%02d",
			         (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			         tm.tm_min);
		tlbot_msg_plain(m, "\n• ");
		tlbot_msg_html(m, "<li>");
		tlbot_msg_text(m, when);
		tlbot_msg_text(m, " ");
		if (tlbot_db_col_text(&q, 1))
			tlbot_msg_user(m, tlbot_db_col_text(&q, 1));
		else
			tlbot_msg_text(m, "someone");
		tlbot_msg_text(m, " ");
		append_change(m, tlbot_db_col_text(&q, 2), tlbot_db_col_text(&q, 3), tlbot_db_col_text(&q, 4), tlbot_db_col_text(&q, 5));
		tlbot_msg_html(m, "</li>");
	}
	tlbot_db_done(&q);
	tlbot_msg_html(m, "</ul>");
	return 0;
}

/* Records of other families linked to C-id (their linked hooks). */
static int
append_linked(struct tlbot_msg *m, struct tlbot_ctx *ctx, int64_t id)
{
	size_t i;

	for (i = 0; tlbot_commands[i]; i++)
		if (tlbot_commands[i]->linked &&
		    tlbot_commands[i]->linked(ctx, m, "Experiments:", "C", id) < 0)
			return -1;
	return 0;
}

static void
field_line(struct tlbot_msg *m, const char *label)
{
	tlbot_msg_br(m);
	tlbot_msg_bold(m, label);
	tlbot_msg_text(m, " ");
}

/* The head of `show`: C-12 title, status, due date, region. */
static void
show_head(struct tlbot_ctx *ctx, struct tlbot_msg *m, const struct challenge *c)
{
	char dtext[64];

	append_ref(m, ctx, c->id);
	tlbot_msg_text(m, " ");
	tlbot_msg_bold(m, c->title);
	field_line(m, "Status:");
	tlbot_msg_text(m, c->status);
	if (c->due) {
		due_text(dtext, sizeof(dtext), c->due, today(ctx), is_closed(c->status));
		tlbot_msg_text(m, " · ");
		tlbot_msg_bold(m, "Due:");
		tlbot_msg_text(m, " ");
		tlbot_msg_text(m, dtext);
	}
	if (c->region) {
		tlbot_msg_text(m, " · ");
		tlbot_msg_bold(m, "Region:");
		tlbot_msg_text(m, " ");
		tlbot_msg_text(m, c->region);
	}
}

/* The room (when shown elsewhere), lead, sponsor and the people assigned.
 * Returns the room's label to free (NULL when none was needed). */
static char *
show_people(struct tlbot_ctx *ctx, struct tlbot_msg *m, const struct challenge *c)
{
	struct tlbot_db_rows q;
	char *team = NULL;
	int n = 0;

	if (tlbot_ctx_room(ctx) == NULL || strcmp(tlbot_ctx_room(ctx), c->room_id) != 0) {
		team = room_label(ctx, c->room_id);
		field_line(m, "Room:");
		tlbot_msg_text(m, team ? team : c->room_id);
	}
	field_line(m, "Lead:");
	if (c->lead)
		tlbot_msg_user(m, c->lead);
	else
		tlbot_msg_text(m, "none");
	tlbot_msg_text(m, " · ");
	tlbot_msg_bold(m, "Sponsor:");
	tlbot_msg_text(m, " ");
	if (c->sponsor)
		append_person(m, c->sponsor);
	else
		tlbot_msg_text(m, "none");
	field_line(m, "Assigned:");
	tlbot_db_query(ctx, &q,
	         "SELECT user_id FROM challenge_assignees WHERE challenge_id = ?"
	         " ORDER BY assigned_at, rowid",
	         "i", c->id);
	while (q.stmt && tlbot_db_next(&q) > 0) {
		if (n++)
			tlbot_msg_text(m, ", ");
		tlbot_msg_user(m, tlbot_db_col_text(&q, 0));
	}
	tlbot_db_done(&q);
	if (n == 0)
		tlbot_msg_text(m, "nobody yet");
	return team;
}

static int
cmd_show(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct challenge c;
	struct tlbot_msg m;
	char created[11] = "?";
	char *team = NULL;
	int64_t nhist = 0;

	if (load_arg(ctx, args, &c) != 0)
		return -1;
	if (tlbot_db_int(ctx, &nhist, "SELECT COUNT(*) FROM history WHERE kind = 'C' AND record_id = ?",
	              "i", c.id) < 0) {
		challenge_release(&c);
		return db_fail(ctx);
	}
	tlbot_msg_init(&m);
	show_head(ctx, &m, &c);
	team = show_people(ctx, &m, &c);
	if (c.description) {
		field_line(&m, "Description:");
		tlbot_msg_refs(&m, ctx, c.description);
	}
	if (c.outcome) {
		field_line(&m, "Outcome:");
		tlbot_msg_refs(&m, ctx, c.outcome);
	}
	if (append_linked(&m, ctx, c.id) != 0) {
		tlbot_msg_release(&m);
		free(team);
		challenge_release(&c);
		return -1;
	}
	tlbot_tz_date(tlbot_ctx_default_tz(ctx), (time_t)c.created_at, created);
	field_line(&m, "Created");
	tlbot_msg_text(&m, "by ");
	if (c.created_by)
		tlbot_msg_user(&m, c.created_by);
	else
		tlbot_msg_text(&m, "someone");
	tlbot_msg_textf(&m, " on %s.", created);
	tlbot_msg_br(&m);
	tlbot_msg_bold(&m, "History:");
	if (nhist > SHOW_HISTORY)
		tlbot_msg_textf(&m, " (latest %d of %lld; %schallenge history C-%lld for all)",
		                SHOW_HISTORY, (long long)nhist, tlbot_ctx_prefix(ctx),
		                (long long)c.id);
	if (append_history(&m, ctx, c.id, nhist > SHOW_HISTORY ? nhist - SHOW_HISTORY : 0,
	                   SHOW_HISTORY) != 0) {
		tlbot_msg_release(&m);
		free(team);
		challenge_release(&c);
		return db_fail(ctx);
	}
	free(team);
	challenge_release(&c);
	return tlbot_reply(ctx, &m);
}

static int
cmd_history(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct challenge c;
	struct tlbot_msg m;
	int64_t page, total = 0, pages;

	page = page_of(args);
	if (load_arg(ctx, args, &c) != 0)
		return -1;
	if (tlbot_db_int(ctx, &total,
	              "SELECT COUNT(*) FROM history WHERE kind = 'C' AND record_id = ?",
	              "i", c.id) < 0) {
		challenge_release(&c);
		return db_fail(ctx);
	}
	if (page_check(ctx, page, total, HISTORY_PAGE) != 0) {
		challenge_release(&c);
		return -1;
	}
	pages = total ? (total + HISTORY_PAGE - 1) / HISTORY_PAGE : 1;
	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "History of ");
	append_ref(&m, ctx, c.id);
	tlbot_msg_text(&m, " ");
	tlbot_msg_bold(&m, c.title);
	tlbot_msg_textf(&m, ": %lld change%s, page %lld of %lld", (long long)total,
	                total == 1 ? "" : "s", (long long)page, (long long)pages);
	if (append_history(&m, ctx, c.id, (page - 1) * HISTORY_PAGE, HISTORY_PAGE) != 0) {
		tlbot_msg_release(&m);
		challenge_release(&c);
		return db_fail(ctx);
	}
	if (page < pages) {
		tlbot_msg_plain(&m, "\n");
		tlbot_msg_textf(&m, "Next page: %schallenge history C-%lld --page %lld",
		                tlbot_ctx_prefix(ctx), (long long)c.id, (long long)page + 1);
	}
	challenge_release(&c);
	return tlbot_reply(ctx, &m);
}

/* tlbot_roster callback: add the person to the assignees; remember when
 * there is no room left. */
struct roster_fill {
	struct tlbot_users *u;
	int full;
};

static void
roster_fill_add(void *arg, const char *user_id)
{
	struct roster_fill *f = arg;

	if (!f->full && tlbot_users_add(f->u, user_id) != 0)
		f->full = 1;
}

/* --team: everyone on the room's team whose tour has not ended (the team
 * family's roster), added to u. 0 or -1 (failed). */
static int
assign_roster(struct tlbot_ctx *ctx, const struct challenge *c, struct tlbot_users *u)
{
	char today_s[11];
	struct roster_fill f = {.u = u, .full = 0};
	int nteam;

	days_date(today(ctx), today_s);
	nteam = tlbot_roster(ctx, c->room_id, today_s, TLBOT_ROSTER_NOT_ENDED, roster_fill_add, &f);
	if (nteam < 0)
		return -1; /* ctx marked by the hook */
	if (f.full)
		return tlbot_fail(ctx,
		                  "the team has more than %d people: assign them in smaller groups",
		                  TLBOT_MAX_USERS);
	if (nteam == 0)
		return tlbot_fail(ctx,
		                  "the team roster is empty: add people with %steam add @name"
		                  " --role ROLE",
		                  tlbot_ctx_prefix(ctx));
	return 0;
}

/* "Assigned C-12 title to ... Lead: ... Already assigned: ..." */
static void
assigned_msg(struct tlbot_ctx *ctx, struct tlbot_msg *m, const struct challenge *c,
             const struct tlbot_users *added, const struct tlbot_users *already, const char *lead,
             const char *old_lead)
{
	tlbot_msg_init(m);
	if (added->n > 0) {
		tlbot_msg_text(m, "Assigned ");
		append_ref(m, ctx, c->id);
		tlbot_msg_text(m, " ");
		tlbot_msg_bold(m, c->title);
		tlbot_msg_text(m, " to ");
		append_users(m, added, 1);
		tlbot_msg_text(m, ".");
	}
	if (lead && (old_lead == NULL || strcmp(old_lead, lead) != 0)) {
		tlbot_msg_text(m, added->n ? " Lead: " : "Lead of ");
		if (!added->n) {
			append_ref(m, ctx, c->id);
			tlbot_msg_text(m, " is now ");
		}
		tlbot_msg_mention(m, lead);
		if (old_lead) {
			tlbot_msg_text(m, " (was ");
			tlbot_msg_user(m, old_lead);
			tlbot_msg_text(m, ")");
		}
		tlbot_msg_text(m, ".");
	}
	if (already->n > 0) {
		tlbot_msg_text(m, " Already assigned: ");
		append_users(m, already, 0);
		tlbot_msg_text(m, ".");
	}
}

static int
cmd_assign(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct tlbot_users u = {0}, added = {0}, already = {0};
	const char *lead = NULL, *v;
	char *old_lead = NULL;
	struct challenge c;
	struct tlbot_msg m;
	int rc = -1, team = tlbot_args_has(args, "team");

	if (load_arg(ctx, args, &c) != 0)
		return -1;
	if (require_here(ctx, &c) != 0)
		goto out;
	if (is_closed(c.status)) {
		tlbot_fail(ctx,
		           "C-%lld is %s: reopen it first with %schallenge status C-%lld active",
		           (long long)c.id, c.status, tlbot_ctx_prefix(ctx), (long long)c.id);
		goto out;
	}
	if ((v = tlbot_args_get(args, "lead")) && (lead = person_flag(ctx, "lead", v, 0)) == NULL)
		goto out;
	if (tlbot_collect_users(ctx, args, 1, &u) != 0)
		goto out;
	if (lead && tlbot_users_add(&u, lead) != 0) {
		tlbot_fail(ctx, "too many people in one command (at most %d)", TLBOT_MAX_USERS);
		goto out;
	}
	if (team && assign_roster(ctx, &c, &u) != 0)
		goto out;
	if (u.n == 0) {
		tlbot_fail(
		        ctx,
		        "missing people: usage: %schallenge assign C-%lld @name... [--lead @name]"
		        " [--team]",
		        tlbot_ctx_prefix(ctx), (long long)c.id);
		goto out;
	}
	if (c.lead && (old_lead = strdup(c.lead)) == NULL) {
		db_fail(ctx);
		goto out;
	}
	if (assign_users(ctx, &c, &u, lead, &added, &already) != 0) {
		db_fail(ctx);
		goto out;
	}
	if (added.n == 0 && (lead == NULL || (old_lead && strcmp(old_lead, lead) == 0))) {
		tlbot_fail(ctx, "nothing to change: %s%s already assigned to C-%lld",
		           already.n == 1 ? already.v[0] : "they", already.n == 1 ? " is" : " are",
		           (long long)c.id);
		goto out;
	}
	assigned_msg(ctx, &m, &c, &added, &already, lead, old_lead);
	if (tlbot_reply(ctx, &m) != 0)
		goto out;
	/* a new lead who was already assigned hears about it too */
	if (lead && (old_lead == NULL || strcmp(old_lead, lead) != 0) && !tlbot_users_has(&added, lead))
		tlbot_users_add(&added, lead);
	if (dm_assigned(ctx, &c, &added) != 0)
		goto out;
	rc = 0;
out:
	tlbot_users_release(&u);
	tlbot_users_release(&added);
	tlbot_users_release(&already);
	free(old_lead);
	challenge_release(&c);
	return rc;
}

static int
cmd_unassign(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct tlbot_users u = {0}, removed = {0}, absent = {0};
	struct challenge c;
	struct tlbot_msg m;
	int rc = -1, lead_cleared = 0;
	size_t i;

	if (load_arg(ctx, args, &c) != 0)
		return -1;
	if (require_here(ctx, &c) != 0 || tlbot_collect_users(ctx, args, 1, &u) != 0)
		goto out;
	if (u.n == 0) {
		tlbot_fail(ctx, "missing people: usage: %schallenge unassign C-%lld @name...",
		           tlbot_ctx_prefix(ctx), (long long)c.id);
		goto out;
	}
	for (i = 0; i < u.n; i++) {
		if (tlbot_db_exec(ctx,
		         "DELETE FROM challenge_assignees WHERE challenge_id = ? AND user_id = ?",
		         "it", c.id, u.v[i]) != 0) {
			db_fail(ctx);
			goto out;
		}
		if (tlbot_db_changes(ctx) == 0) {
			tlbot_users_add(&absent, u.v[i]);
			continue;
		}
		tlbot_users_add(&removed, u.v[i]);
		if (history_add(ctx, &c, "unassigned", "assignee", u.v[i], NULL) < 0) {
			db_fail(ctx);
			goto out;
		}
		if (c.lead && strcmp(c.lead, u.v[i]) == 0) {
			if (tlbot_db_exec(ctx, "UPDATE challenges SET lead = NULL WHERE id = ?", "i", c.id) !=
			            0 ||
			    history_add(ctx, &c, "lead", "lead", c.lead, NULL) < 0) {
				db_fail(ctx);
				goto out;
			}
			lead_cleared = 1;
		}
	}
	if (removed.n == 0) {
		tlbot_fail(ctx, "nothing to change: %s%s not assigned to C-%lld",
		           absent.n == 1 ? absent.v[0] : "they", absent.n == 1 ? " is" : " are",
		           (long long)c.id);
		goto out;
	}
	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "Unassigned ");
	append_users(&m, &removed, 0);
	tlbot_msg_text(&m, " from ");
	append_ref(&m, ctx, c.id);
	tlbot_msg_text(&m, ".");
	if (lead_cleared)
		tlbot_msg_textf(&m, " It has no lead now: %schallenge assign C-%lld --lead @name.",
		                tlbot_ctx_prefix(ctx), (long long)c.id);
	if (absent.n > 0) {
		tlbot_msg_text(&m, " Not assigned: ");
		append_users(&m, &absent, 0);
		tlbot_msg_text(&m, ".");
	}
	rc = tlbot_reply(ctx, &m);
out:
	tlbot_users_release(&u);
	tlbot_users_release(&removed);
	tlbot_users_release(&absent);
	challenge_release(&c);
	return rc;
}

static int
cmd_status(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *note = tlbot_args_get(args, "note"), *want = NULL;
	struct challenge c;
	struct tlbot_msg m;
	int64_t rev;
	size_t i;
	int rc = -1, was_closed;
	char *old;

	for (i = 0; statuses[i]; i++)
		if (strcasecmp(statuses[i], args->argv[1]) == 0)
			want = statuses[i];
	if (want == NULL)
		return tlbot_fail(ctx,
		                  "'%s' is not a status: use open, active, paused, done or dropped",
		                  args->argv[1]);
	if (note && check_text(ctx, "note", note, NOTE_MAX, 0) != 0)
		return -1;
	if (load_arg(ctx, args, &c) != 0)
		return -1;
	if (require_here(ctx, &c) != 0)
		goto out;
	if (strcmp(c.status, want) == 0) {
		tlbot_fail(ctx, "C-%lld is already %s%s", (long long)c.id, want,
		           note ? " (to change only the note, use --note with a different status)"
		                : "");
		goto out;
	}
	was_closed = is_closed(c.status);
	if (tlbot_db_exec(ctx, "UPDATE challenges SET status = ? WHERE id = ?", "ti", want, c.id) != 0 ||
	    (rev = history_add(ctx, &c, "status", "status", c.status, want)) < 0) {
		db_fail(ctx);
		goto out;
	}
	if (note && *note) {
		if (tlbot_db_exec(ctx, "UPDATE challenges SET outcome = ? WHERE id = ?", "ti", note, c.id) !=
		            0 ||
		    history_add(ctx, &c, "status", "outcome", c.outcome, note) < 0) {
			db_fail(ctx);
			goto out;
		}
	}
	old = c.status;
	c.status = strdup(want);
	if (c.status == NULL) {
		c.status = old;
		db_fail(ctx);
		goto out;
	}
	if ((is_closed(want) || was_closed) && schedule_due(ctx, &c, rev) != 0) {
		free(old);
		db_fail(ctx);
		goto out;
	}
	tlbot_msg_init(&m);
	append_ref(&m, ctx, c.id);
	tlbot_msg_text(&m, " ");
	tlbot_msg_bold(&m, c.title);
	tlbot_msg_textf(&m, " is now %s (was %s).", want, old);
	free(old);
	if (note && *note) {
		tlbot_msg_text(&m, " Outcome: ");
		tlbot_msg_refs(&m, ctx, note);
	}
	if (is_closed(want) && c.due)
		tlbot_msg_text(&m, " Its due-date reminders are off.");
	rc = tlbot_reply(ctx, &m);
out:
	challenge_release(&c);
	return rc;
}

/* Set one text field if it changes; records history. *changed counts.
 * Returns 0 or -1 (database). */
static int
edit_field(struct tlbot_ctx *ctx, struct challenge *c, const char *column, const char *label,
           char **cur, const char *nv, int *changed, int64_t *rev)
{
	const struct rec_field *f = rec_field_by_column(&ch_desc, column);

	(void)label;
	(void)cur;
	if ((*cur == NULL && nv == NULL) || (*cur && nv && strcmp(*cur, nv) == 0))
		return 0;
	/* the column and its history row, from the field table */
	if (f == NULL || rec_set_text(ctx, &ch_desc, c, f, nv, "edited") != 0)
		return -1;
	*rev = tlbot_db_last_id(ctx);
	(*changed)++;
	return 0;
}

/* The flags of !challenge edit checked: at least one, the due date into
 * due ("" for none), the sponsor as a person. 0 or -1 (failed). */
static int
edit_flags(struct tlbot_ctx *ctx, const struct tlbot_args *args, char due[11],
           const char **sponsor)
{
	const char *title = tlbot_args_get(args, "title"), *due_v = tlbot_args_get(args, "due");
	const char *desc = tlbot_args_get(args, "desc"), *region = tlbot_args_get(args, "region");
	const char *sponsor_v = tlbot_args_get(args, "sponsor");

	*sponsor = NULL;
	if (!title && !due_v && !desc && !region && !sponsor_v)
		return tlbot_fail(ctx, "nothing to edit: give --title, --due, --desc, --region or"
		                       " --sponsor (none clears one)");
	if (title && (*title == '\0' || check_text(ctx, "title", title, TITLE_MAX, 1) != 0))
		return *title ? -1 : tlbot_fail(ctx, "the title cannot be empty");
	if (due_v && parse_due(ctx, due_v, due) != 0)
		return -1;
	if (desc && check_text(ctx, "description", desc, DESC_MAX, 0) != 0)
		return -1;
	if (region && check_text(ctx, "region", region, FIELD_MAX, 1) != 0)
		return -1;
	if (sponsor_v && !is_none(sponsor_v) &&
	    ((*sponsor = person_flag(ctx, "sponsor", sponsor_v, 1)) == NULL ||
	     check_text(ctx, "sponsor", *sponsor, FIELD_MAX, 1) != 0))
		return -1;
	return 0;
}

static int
cmd_edit(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *title = tlbot_args_get(args, "title"), *due_v = tlbot_args_get(args, "due");
	const char *desc = tlbot_args_get(args, "desc"), *region = tlbot_args_get(args, "region");
	const char *sponsor_v = tlbot_args_get(args, "sponsor"), *sponsor = NULL;
	char due[11] = "";
	struct challenge c;
	struct tlbot_msg m;
	int changed = 0, due_changed = 0, rc = -1;
	int64_t rev = 0;
	char *old_due = NULL;

	if (edit_flags(ctx, args, due, &sponsor) != 0)
		return -1;
	if (load_arg(ctx, args, &c) != 0)
		return -1;
	/* a moderator, or the challenge's own lead (issue 13, item 16) */
	if (!tlbot_ctx_allowed(ctx, TLBOT_PERM_WRITE, tlbot_ctx_sender(ctx)) &&
	    !(c.lead && tlbot_ctx_sender(ctx) && strcmp(c.lead, tlbot_ctx_sender(ctx)) == 0)) {
		tlbot_fail(ctx, "not allowed: %schallenge edit needs a power level of at least %d"
		           " (moderator), or to be C-%lld's lead", tlbot_ctx_prefix(ctx),
		           tlbot_ctx_power_needed(ctx), (long long)c.id);
		challenge_release(&c);
		return -1;
	}
	if (require_here(ctx, &c) != 0)
		goto out;
	if (c.due && (old_due = strdup(c.due)) == NULL)
		goto dberr;
	if (title && edit_field(ctx, &c, "title", "title", &c.title, title, &changed, &rev) != 0)
		goto dberr;
	if (due_v) {
		int before = changed;

		if (edit_field(ctx, &c, "due", "due", &c.due, due[0] ? due : NULL, &changed,
		               &rev) != 0)
			goto dberr;
		due_changed = changed > before;
		if (due_changed && schedule_due(ctx, &c, rev) != 0)
			goto dberr;
	}
	if (desc && edit_field(ctx, &c, "description", "description", &c.description,
	                       is_none(desc) ? NULL : desc, &changed, &rev) != 0)
		goto dberr;
	if (region && edit_field(ctx, &c, "region", "region", &c.region,
	                         is_none(region) ? NULL : region, &changed, &rev) != 0)
		goto dberr;
	if (sponsor_v &&
	    edit_field(ctx, &c, "sponsor", "sponsor", &c.sponsor, sponsor, &changed, &rev) != 0)
		goto dberr;
	if (changed == 0) {
		tlbot_fail(ctx, "nothing changed: C-%lld already has those values",
		           (long long)c.id);
		goto out;
	}
	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "Updated ");
	append_ref(&m, ctx, c.id);
	tlbot_msg_text(&m, " ");
	tlbot_msg_bold(&m, c.title);
	tlbot_msg_textf(&m, " (%d change%s).", changed, changed == 1 ? "" : "s");
	if (due_changed) {
		if (c.due) {
			char dtext[64];

			due_text(dtext, sizeof(dtext), c.due, today(ctx), is_closed(c.status));
			tlbot_msg_textf(&m, " Due %s%s%s; reminders moved.", dtext,
			                old_due ? ", was " : "", old_due ? old_due : "");
		} else {
			tlbot_msg_text(&m, " No due date now; reminders cancelled.");
		}
	}
	rc = tlbot_reply(ctx, &m);
	goto out;
dberr:
	rc = db_fail(ctx);
out:
	free(old_due);
	challenge_release(&c);
	return rc;
}

/* struct tlbot_cmd.leads: the lead of C-num of room_id, or of each of the
 * room's challenges. */
static int
leads(struct tlbot_ctx *ctx, const char *room_id, int64_t num,
      void (*add)(void *arg, const char *user_id, int64_t num, const char *status), void *arg)
{
	struct tlbot_db_rows q;
	int rc, found = 0;

	if (num > 0)
		rc = tlbot_db_query(ctx, &q, "SELECT id, lead, status FROM challenges WHERE id = ?"
		                    " AND room_id = ?", "it", num, room_id);
	else
		rc = tlbot_db_query(ctx, &q, "SELECT id, lead, status FROM challenges WHERE room_id = ?"
		                    " AND lead IS NOT NULL AND lead <> '' ORDER BY id", "t", room_id);
	if (rc != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		const char *lead = tlbot_db_col_text(&q, 1);

		found = 1;
		if (lead && *lead)
			add(arg, lead, tlbot_db_col_int(&q, 0), tlbot_db_col_text(&q, 2));
	}
	tlbot_db_done(&q);
	if (rc < 0)
		return -1;
	return num > 0 && !found ? 1 : 0;
}

/* A challenge's changes since the last stand-up in words, after
 * "C-3 title:". */
static void
summary_change(struct tlbot_msg *m, struct tlbot_ctx *ctx, const char *action, const char *old,
               const char *nv)
{
	if (strcmp(action, "created") == 0) {
		tlbot_msg_text(m, "created");
	} else if (strcmp(action, "assigned") == 0) {
		tlbot_msg_text(m, "assigned to ");
		if (nv)
			tlbot_msg_user(m, nv);
	} else if (strcmp(action, "unassigned") == 0) {
		tlbot_msg_text(m, "unassigned ");
		if (old ? old : nv)
			tlbot_msg_user(m, old ? old : nv);
	} else if (strcmp(action, "status") == 0) {
		tlbot_msg_textf(m, "status %s → %s", old ? old : "(none)", nv ? nv : "(none)");
	} else if (nv) {
		tlbot_msg_text(m, "lead now ");
		tlbot_msg_user(m, nv);
	} else {
		tlbot_msg_text(m, "no lead now");
	}
	(void)ctx;
}

/* struct tlbot_cmd.summary_since: the room's challenges that changed in
 * (since, until], one item each with its changes in time order. */
static int
summary_since(struct tlbot_ctx *ctx, struct tlbot_summary *sm, const char *room_id,
              const char *date, time_t since, time_t until)
{
	struct tlbot_db_rows q;
	int64_t ids[100];
	int n = 0, i, rc, total = 0;

	(void)date;
	n = tlbot_db_ids(ctx, ids, 100, "SELECT record_id FROM history WHERE kind = 'C' AND"
	                 " room_id = ? AND at > ? AND at <= ? AND action IN ('created', 'assigned',"
	                 " 'unassigned', 'status', 'lead') GROUP BY record_id"
	                 " ORDER BY MIN(at), MIN(id) LIMIT 100",
	                 "tii", room_id, (int64_t)since, (int64_t)until);
	if (n < 0)
		return -1;
	for (i = 0; i < n; i++) {
		struct challenge c;
		int k = 0;

		rc = challenge_load(ctx, ids[i], &c);
		if (rc < 0)
			return -1;
		if (rc > 0)
			continue;
		if (tlbot_db_query(ctx, &q, "SELECT action, old, new FROM history WHERE kind = 'C' AND"
		                   " record_id = ? AND at > ? AND at <= ? AND action IN ('created',"
		                   " 'assigned', 'unassigned', 'status', 'lead') AND (action <> 'status'"
		                   " OR field = 'status') ORDER BY at, id",
		                   "iii", c.id, (int64_t)since, (int64_t)until) != 0) {
			challenge_release(&c);
			return -1;
		}
		tlbot_summary_item(sm);
		append_ref(sm->m, ctx, c.id);
		tlbot_msg_textf(sm->m, " %s:", c.title);
		while ((rc = tlbot_db_next(&q)) > 0) {
			if (tlbot_db_col_text(&q, 0) == NULL)
				continue;
			tlbot_msg_text(sm->m, k++ ? "; " : " ");
			summary_change(sm->m, ctx, tlbot_db_col_text(&q, 0), tlbot_db_col_text(&q, 1),
			               tlbot_db_col_text(&q, 2));
		}
		tlbot_db_done(&q);
		tlbot_summary_item_end(sm);
		challenge_release(&c);
		if (rc < 0)
			return -1;
		total++;
	}
	return total;
}

static int
ref_lookup(struct tlbot_ctx *ctx, int64_t num, char **title, char **room_id, char **event_id)
{
	struct tlbot_db_rows q;
	int rc;

	*title = *room_id = *event_id = NULL;
	if (tlbot_db_query(ctx, &q, "SELECT title, room_id, created_event FROM challenges WHERE id = ?",
	                   "i", num) != 0)
		return -1;
	rc = tlbot_db_next(&q);
	if (rc > 0) {
		*title = tlbot_db_col_dup(&q, 0);
		*room_id = tlbot_db_col_dup(&q, 1);
		*event_id = tlbot_db_col_dup(&q, 2);
	}
	tlbot_db_done(&q);
	if (rc > 0)
		return *title ? 0 : tlbot_db_error(ctx, "out of memory");
	return rc == 0 ? 1 : -1;
}

static const char *const aliases[] = {"challenges", "ch", NULL};
#define CH_REF { TLBOT_REF("id", "C"), .desc = "the challenge, C-12" }
static const struct tlbot_param new_params[] = {
        {TLBOT_TEXT("title", 0), .desc = "what the challenge is"},
        {TLBOT_TEXT("--region", 0), .label = "R", .desc = "the area it covers"},
        {TLBOT_DATE("--due"), .desc = "when it is due"},
        {TLBOT_USER("--sponsor"), .desc = "who sponsors it"},
        {TLBOT_USER("--lead"), .desc = "who leads it (also assigned)"},
        {TLBOT_TEXT("--desc", 0), .desc = "a longer description"},
        TLBOT_PARAMS_END};
static const struct tlbot_param list_params[] = {
        {TLBOT_BOOL("--mine"), .desc = "only yours, across rooms"},
        {TLBOT_TEXT("--status", 0), .label = "S", .desc = "open, active, paused, done, dropped, closed or all"},
        {TLBOT_TEXT("--region", 0), .label = "R", .desc = "only this area"},
        {TLBOT_BOOL("--all-rooms"), .desc = "every room's (the programme room only)"},
        {TLBOT_INT("--page", 1, 100000), .desc = "which page"},
        TLBOT_PARAMS_END};
static const struct tlbot_param show_params[] = {CH_REF, TLBOT_PARAMS_END};
static const struct tlbot_param history_params[] = {
        CH_REF, {TLBOT_INT("--page", 1, 100000), .desc = "which page"}, TLBOT_PARAMS_END};
static const struct tlbot_param assign_params[] = {
        CH_REF,
        {TLBOT_USER("people"), .mode = TLBOT_OPTIONAL | TLBOT_REPEAT, .desc = "who to assign"},
        {TLBOT_USER("--lead"), .desc = "who leads it"},
        {TLBOT_BOOL("--team"), .desc = "everyone on the room's !team roster"},
        TLBOT_PARAMS_END};
static const struct tlbot_param unassign_params[] = {
        CH_REF, {TLBOT_USER("people"), .mode = TLBOT_REPEAT, .desc = "who to take off"}, TLBOT_PARAMS_END};
static const struct tlbot_param status_params[] = {
        CH_REF,
        {TLBOT_ENUM("status", "open|active|paused|done|dropped"), .desc = "the new status"},
        {TLBOT_TEXT("--note", 0), .desc = "the outcome, in a sentence"},
        TLBOT_PARAMS_END};
/* every editable field of the record's table (CH_FIELDS) */
static const struct tlbot_param edit_params[] = {
        CH_REF,
        CH_FIELDS(REC_X_EDIT_PARAM)
        TLBOT_PARAMS_END};

static const struct tlbot_subcmd subcmds[] = {
        {"new", "record a new challenge for this room's team", TLBOT_PERM_WRITE, new_params, cmd_new,
         "new Cut the cost of temporary accommodation --region Sheffield --due +12w", 0},
        {"list", "list challenges (this room's open ones by default)", TLBOT_PERM_ANYONE,
         list_params, cmd_list, "list --status done", TLBOT_SUB_READS},
        {"show", "details, people, linked experiments and recent history", TLBOT_PERM_ANYONE,
         show_params, cmd_show, "show C-12", TLBOT_SUB_READS},
        {"history", "every change to a challenge: who, what, when", TLBOT_PERM_ANYONE,
         history_params, cmd_history, "history C-12 --page 2", TLBOT_SUB_READS},
        {"assign", "assign people (or the whole team roster); they are mentioned and sent a DM",
         TLBOT_PERM_WRITE, assign_params, cmd_assign,
         "assign C-12 @sam:example.org --lead @sam:example.org", 0},
        {"unassign", "take people off a challenge", TLBOT_PERM_WRITE, unassign_params,
         cmd_unassign, "unassign C-12 @ali:example.org", 0},
        {"status", "change the status, with an outcome note", TLBOT_PERM_WRITE, status_params,
         cmd_status, "status C-12 done --note \"saved 12% in the pilot\"", 0},
        {"edit", "change details (none clears a field); its lead may too", TLBOT_PERM_ANYONE, edit_params, cmd_edit,
         "edit C-12 --due 31/03/2027", 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0}};

static const struct tlbot_job_kind jobs[] = {
        {"challenge.due", due_fire}, {"challenge.overdue", overdue_fire}, {NULL, NULL}};

/* data protection: commands/challenge_privacy.c */
int challenge_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int challenge_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                          struct tlbot_dp_report *report);

const struct tlbot_cmd tlbot_cmd_challenge = {
        .name = "challenge",
        .aliases = aliases,
        .summary = "the team's challenges: create, assign, track status and history",
        .help = "Ids are written C-12 (c-12 and 12 work too); C-12 in any message links to the"
                " challenge. Dates: 2027-03-31, 31/03/2027, 31 Mar, friday, tomorrow, +3d, +2w.\n\n"
                "!challenge assign C-12 --team assigns everyone on the room's !team roster;"
                " !challenge list --mine lists yours, across rooms.\n\n"
                "The lead is also assigned. People who are assigned are mentioned in the room and "
                "sent"
                " a direct message (!notify off stops those). The lead and assignees are reminded"
                " at 09:00 three days before and on the due date; overdue challenges are listed in"
                " the room on Monday mornings. Anyone can read; changes need the room's moderator"
                " power level (or a tlbot admin).",
        .subcmds = subcmds,
        .schema = &(const struct tlbot_schema){"challenge", migrations},
        .jobs = jobs,
        .ref_prefix = "C",
        .ref_lookup = ref_lookup,
        .export_user = challenge_export_user,
        .forget_user = challenge_forget_user,
        .summary_since = summary_since,
        .leads = leads,
};
