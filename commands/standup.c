/* !standup: daily stand-ups. Each room has a schedule (time, zone, days,
 * summary time, questions, mode, reminder, bank holidays); at prompt time
 * each member is asked by DM (or in the room), answers come as DM
 * replies, `!standup y: ... t: ... b: ...` or edits of either, a reminder
 * goes to those who have not answered, and the summary is posted to the
 * room. Jobs are recurring: the summary plans the next stand-up. */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "standup.h"
#include "tlbot/holidays.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"

#define OPEN_PROMPT_S (20 * 3600) /* a DM reply within this of a prompt answers it */

static const char *const schema_v1 =
	"CREATE TABLE standup_rooms (room_id TEXT PRIMARY KEY, minute INTEGER NOT NULL,"
	"  tz TEXT NOT NULL, days INTEGER NOT NULL, summary_minute INTEGER,"
	"  q_yesterday TEXT NOT NULL DEFAULT 'Yesterday?',"
	"  q_today TEXT NOT NULL DEFAULT 'Today?',"
	"  q_blockers TEXT NOT NULL DEFAULT 'Blockers?',"
	"  enabled INTEGER NOT NULL DEFAULT 1, mode TEXT NOT NULL DEFAULT 'dm',"
	"  remind_lead INTEGER NOT NULL DEFAULT 15, division TEXT,"
	"  gen INTEGER NOT NULL DEFAULT 0, next_date TEXT, updated_by TEXT,"
	"  updated_at INTEGER);"
	"CREATE TABLE standup_skips (room_id TEXT NOT NULL, date TEXT NOT NULL, added_by TEXT,"
	"  PRIMARY KEY (room_id, date));"
	"CREATE TABLE standup_away (room_id TEXT NOT NULL, user_id TEXT NOT NULL,"
	"  from_date TEXT NOT NULL, until_date TEXT NOT NULL, set_by TEXT,"
	"  PRIMARY KEY (room_id, user_id));"
	"CREATE TABLE standup_answers (id INTEGER PRIMARY KEY, room_id TEXT NOT NULL,"
	"  user_id TEXT NOT NULL, date TEXT NOT NULL, yesterday TEXT, today TEXT,"
	"  blockers TEXT, event_id TEXT, source TEXT NOT NULL, at INTEGER NOT NULL,"
	"  replaced_by INTEGER, withdrawn INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX standup_answers_day ON standup_answers(room_id, date, user_id);"
	"CREATE INDEX standup_answers_event ON standup_answers(event_id);"
	"CREATE TABLE standup_prompts (room_id TEXT NOT NULL, user_id TEXT NOT NULL,"
	"  date TEXT NOT NULL, at INTEGER NOT NULL, reminded INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (room_id, user_id, date));"
	"CREATE INDEX standup_prompts_user ON standup_prompts(user_id, at);"
	"CREATE TABLE standup_summaries (id INTEGER PRIMARY KEY, room_id TEXT NOT NULL,"
	"  date TEXT NOT NULL, at INTEGER NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL);"
	"CREATE INDEX standup_summaries_room ON standup_summaries(room_id, at);";

static const char *const migrations[] = { schema_v1, NULL };

static const struct tlbot_schema schema = { "standup", migrations };

static const char *const away_flags[] = { "until=", "from=", NULL };
static const char *const history_flags[] = { "days=", NULL };

/* ---- helpers ---- */

static const char *
room_tz(struct tlbot_ctx *ctx, const struct su_room *r)
{
	if (r && r->tz)
		return r->tz;
	return tlbot_ctx_default_tz(ctx) ? tlbot_ctx_default_tz(ctx) : "UTC";
}

static void
hhmm(int minute, char out[6])
{
	unsigned m = minute < 0 ? 0u : (unsigned)minute % 1440u;

	snprintf(out, 6, "%02u:%02u", m / 60u, m % 60u);
}

/* Load the ctx room's settings or fail with how to create them. 0 or -1. */
static int
need_room(struct tlbot_ctx *ctx, struct su_room *r)
{
	int rc = su_room_load(ctx, tlbot_ctx_room(ctx), r);

	if (rc < 0)
		return -1;
	if (rc == 1)
		return tlbot_fail(ctx, "no stand-up here yet: start with %sstandup schedule 09:30 "
				  "Europe/London mon-fri", tlbot_ctx_prefix(ctx));
	return 0;
}

/* Run one UPDATE of standup_rooms with one bound value (text or int). */
static int
set_field(struct tlbot_ctx *ctx, const char *sql, const char *text, int64_t num, int is_text)
{
	sqlite3_stmt *s = su_prep(ctx, sql);

	if (s == NULL)
		return -1;
	if (is_text)
		su_bind_text(s, 1, text);
	else
		sqlite3_bind_int64(s, 1, num);
	su_bind_text(s, 2, tlbot_ctx_sender(ctx));
	sqlite3_bind_int64(s, 3, (sqlite3_int64)tlbot_ctx_now(ctx));
	su_bind_text(s, 4, tlbot_ctx_room(ctx));
	return su_exec(ctx, s);
}

/* After a settings change: plan again and tell when the next one is. */
static int
replan_reply(struct tlbot_ctx *ctx, const char *what)
{
	struct su_room r;
	char next[64], at[6], sat[6];

	if (su_replan(ctx, tlbot_ctx_room(ctx)) != 0 || need_room(ctx, &r) != 0)
		return -1;
	hhmm(r.minute, at);
	hhmm(r.summary_minute, sat);
	if (!r.enabled)
		tlbot_replyf(ctx, "%s. Stand-ups are off here (%sstandup on to resume).", what,
			     tlbot_ctx_prefix(ctx));
	else if (r.next_date) {
		su_date_long(r.next_date, next, sizeof(next));
		tlbot_replyf(ctx, "%s. Next stand-up: %s, prompts at %s, summary at %s (%s).", what,
			     next, at, sat, r.tz);
	} else
		tlbot_replyf(ctx, "%s. No stand-up day ahead: every day is skipped.", what);
	su_room_release(&r);
	return 0;
}

/* The user a command names: a user id, "me", or the one pill mentioned. */
static const char *
target_user(struct tlbot_ctx *ctx, const char *arg)
{
	if (strcasecmp(arg, "me") == 0)
		return tlbot_ctx_sender(ctx);
	if (tlbot_is_user_id(arg))
		return arg;
	if (tlbot_ctx_nmentions(ctx) == 1)
		return tlbot_ctx_mention(ctx, 0);
	return NULL;
}

/* ---- settings commands ---- */

static int
cmd_schedule(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct su_room old;
	const char *tz = NULL;
	unsigned days = 0;
	int minute = tlbot_hhmm_parse(args->argv[0]), have, cleared = 0;
	char what[256], at[6], dtext[64];
	sqlite3_stmt *s;
	size_t i;

	if (tlbot_ctx_is_dm(ctx))
		return tlbot_fail(ctx, "set the stand-up up in the team's room, not in a direct message");
	if (minute < 0)
		return tlbot_fail(ctx, "bad time '%s': use HH:MM on a 24-hour clock, e.g. 09:30",
				  args->argv[0]);
	for (i = 1; i < args->argc; i++) {
		const char *a = args->argv[i];
		unsigned d = tlbot_days_parse(a);

		if (d && days == 0)
			days = d;
		else if (tz == NULL && tlbot_tz_valid(a))
			tz = a;
		else if (strchr(a, '/') || strcasecmp(a, "utc") == 0)
			return tlbot_fail(ctx, "unknown time zone '%s': use an IANA name such as "
					  "Europe/London or Europe/Paris", a);
		else
			return tlbot_fail(ctx, "'%s' is neither a time zone (Europe/London) nor days "
					  "(mon-fri, mon,wed,fri, daily)", a);
	}
	have = su_room_load(ctx, tlbot_ctx_room(ctx), &old);
	if (have < 0)
		return -1;
	if (tz == NULL)
		tz = have == 0 ? old.tz : room_tz(ctx, NULL);
	if (days == 0)
		days = have == 0 ? old.days : TLBOT_DAYS_WEEKDAYS;
	if (have == 0 && old.summary_explicit && old.summary_minute <= minute)
		cleared = 1;
	s = su_prep(ctx, "INSERT INTO standup_rooms(room_id, minute, tz, days, updated_by, updated_at)"
		    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(room_id) DO UPDATE SET"
		    " minute = excluded.minute, tz = excluded.tz, days = excluded.days, enabled = 1,"
		    " summary_minute = CASE WHEN ? THEN NULL ELSE summary_minute END,"
		    " updated_by = excluded.updated_by, updated_at = excluded.updated_at");
	if (s == NULL) {
		if (have == 0)
			su_room_release(&old);
		return -1;
	}
	su_bind_text(s, 1, tlbot_ctx_room(ctx));
	sqlite3_bind_int(s, 2, minute);
	su_bind_text(s, 3, tz);
	sqlite3_bind_int(s, 4, (int)days);
	su_bind_text(s, 5, tlbot_ctx_sender(ctx));
	sqlite3_bind_int64(s, 6, (sqlite3_int64)tlbot_ctx_now(ctx));
	sqlite3_bind_int(s, 7, cleared);
	if (have == 0)
		su_room_release(&old);
	if (su_exec(ctx, s) != 0)
		return -1;
	hhmm(minute, at);
	tlbot_days_format(days, dtext, sizeof(dtext));
	snprintf(what, sizeof(what), "Stand-up set for %s %s, %s%s", at, tz, dtext,
		 cleared ? " (the summary time was not after it, so it is back to 45 minutes later)"
			 : "");
	return replan_reply(ctx, what);
}

static int
cmd_summary_at(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct su_room r;
	int minute = tlbot_hhmm_parse(args->argv[0]), prompt;
	char what[128], at[6];

	if (minute < 0)
		return tlbot_fail(ctx, "bad time '%s': use HH:MM on a 24-hour clock, e.g. 10:15",
				  args->argv[0]);
	if (need_room(ctx, &r) != 0)
		return -1;
	prompt = r.minute;
	su_room_release(&r);
	if (minute <= prompt) {
		hhmm(prompt, at);
		return tlbot_fail(ctx, "the summary must come after the prompts (%s)", at);
	}
	if (set_field(ctx, "UPDATE standup_rooms SET summary_minute = ?, updated_by = ?,"
		      " updated_at = ? WHERE room_id = ?", NULL, minute, 0) != 0)
		return -1;
	hhmm(minute, at);
	snprintf(what, sizeof(what), "Summary at %s", at);
	return replan_reply(ctx, what);
}

static int
cmd_questions(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct su_room r;
	sqlite3_stmt *s;
	int i;

	for (i = 0; i < 3; i++)
		if (args->argv[i][0] == '\0' || strlen(args->argv[i]) > 200)
			return tlbot_fail(ctx, "question %d must be 1 to 200 characters", i + 1);
	if (need_room(ctx, &r) != 0)
		return -1;
	su_room_release(&r);
	s = su_prep(ctx, "UPDATE standup_rooms SET q_yesterday = ?, q_today = ?, q_blockers = ?,"
		    " updated_by = ?, updated_at = ? WHERE room_id = ?");
	if (s == NULL)
		return -1;
	for (i = 0; i < 3; i++)
		su_bind_text(s, i + 1, args->argv[i]);
	su_bind_text(s, 4, tlbot_ctx_sender(ctx));
	sqlite3_bind_int64(s, 5, (sqlite3_int64)tlbot_ctx_now(ctx));
	su_bind_text(s, 6, tlbot_ctx_room(ctx));
	if (su_exec(ctx, s) != 0)
		return -1;
	return tlbot_replyf(ctx, "Questions set: 1. %s 2. %s 3. %s", args->argv[0], args->argv[1],
			    args->argv[2]);
}

static int
set_enabled(struct tlbot_ctx *ctx, int on)
{
	struct su_room r;

	if (need_room(ctx, &r) != 0)
		return -1;
	su_room_release(&r);
	if (set_field(ctx, "UPDATE standup_rooms SET enabled = ?, updated_by = ?, updated_at = ?"
		      " WHERE room_id = ?", NULL, on, 0) != 0)
		return -1;
	return replan_reply(ctx, on ? "Stand-ups on" : "Stand-ups off");
}

static int
cmd_on(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	return set_enabled(ctx, 1);
}

static int
cmd_off(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	return set_enabled(ctx, 0);
}

static int
cmd_mode(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct su_room r;
	const char *m = args->argv[0];

	if (strcasecmp(m, "dm") != 0 && strcasecmp(m, "room") != 0)
		return tlbot_fail(ctx, "mode is dm (each person asked by direct message) or room "
				  "(one message in the room), not '%s'", m);
	if (need_room(ctx, &r) != 0)
		return -1;
	su_room_release(&r);
	if (set_field(ctx, "UPDATE standup_rooms SET mode = ?, updated_by = ?, updated_at = ?"
		      " WHERE room_id = ?", strcasecmp(m, "dm") == 0 ? "dm" : "room", 0, 1) != 0)
		return -1;
	return replan_reply(ctx, strcasecmp(m, "dm") == 0 ? "Prompts by direct message"
							 : "Prompts in the room");
}

/* "15", "15m", "1h", "1h30m" -> minutes, or -1. */
static int
parse_minutes(const char *s)
{
	long total = 0, n;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	while (*s) {
		if (!isdigit((unsigned char)*s))
			return -1;
		n = strtol(s, &end, 10);
		if (n > 1440)
			return -1;
		if (*end == 'h')
			n *= 60, end++;
		else if (*end == 'm')
			end++;
		else if (*end != '\0')
			return -1;
		total += n;
		s = end;
	}
	return total <= 1440 ? (int)total : -1;
}

static int
cmd_reminder(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct su_room r;
	int lead;
	char what[128];

	if (strcasecmp(args->argv[0], "off") == 0)
		lead = 0;
	else if ((lead = parse_minutes(args->argv[0])) < 0)
		return tlbot_fail(ctx, "bad lead time '%s': minutes before the summary, e.g. 15, "
				  "15m, 1h, or off", args->argv[0]);
	if (need_room(ctx, &r) != 0)
		return -1;
	su_room_release(&r);
	if (set_field(ctx, "UPDATE standup_rooms SET remind_lead = ?, updated_by = ?,"
		      " updated_at = ? WHERE room_id = ?", NULL, lead, 0) != 0)
		return -1;
	if (lead)
		snprintf(what, sizeof(what), "Reminder %d minutes before the summary to those who "
			 "have not answered", lead);
	else
		snprintf(what, sizeof(what), "No reminder before the summary");
	return replan_reply(ctx, what);
}

static int
cmd_holidays(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct su_room r;
	const char *d = args->argv[0];
	char what[256], next[11], title[96];
	int none = strcasecmp(d, "none") == 0 || strcasecmp(d, "off") == 0;

	if (!none && !tlbot_holidays_division_valid(d))
		return tlbot_fail(ctx, "unknown division '%s': use england-and-wales, scotland, "
				  "northern-ireland or none", d);
	if (need_room(ctx, &r) != 0)
		return -1;
	if (!none && tlbot_holidays_next(tlbot_ctx_bank_holidays_file(ctx), d,
					 r.next_date ? r.next_date : "2000-01-01", next, title,
					 sizeof(title)) < 0) {
		su_room_release(&r);
		return tlbot_fail(ctx, "no bank holidays data available (the shipped "
				  "bank-holidays.json is missing)");
	}
	su_room_release(&r);
	if (set_field(ctx, "UPDATE standup_rooms SET division = ?, updated_by = ?, updated_at = ?"
		      " WHERE room_id = ?", none ? NULL : d, 0, 1) != 0)
		return -1;
	if (none)
		snprintf(what, sizeof(what), "Bank holidays are no longer skipped");
	else
		snprintf(what, sizeof(what), "Skipping %s bank holidays (GOV.UK)", d);
	return replan_reply(ctx, what);
}

/* Dates from "A", "A B", "A..B" into from/to. 0 or -1 (failed). */
static int
date_range(struct tlbot_ctx *ctx, const struct tlbot_args *args, char from[11], char to[11])
{
	const char *tz = tlbot_ctx_default_tz(ctx);
	char a[64], b[64];
	const char *dots;
	struct su_room r;
	int y, m, d;

	if (su_room_load(ctx, tlbot_ctx_room(ctx), &r) == 0) {
		snprintf(a, sizeof(a), "%s", r.tz); /* reuse a as the zone buffer */
		su_room_release(&r);
		tz = a;
	}
	{
		char zone[64];

		snprintf(zone, sizeof(zone), "%s", tz ? tz : "UTC");
		dots = strstr(args->argv[0], "..");
		if (dots && args->argc == 1) {
			snprintf(a, sizeof(a), "%.*s", (int)(dots - args->argv[0]), args->argv[0]);
			snprintf(b, sizeof(b), "%s", dots + 2);
		} else {
			snprintf(a, sizeof(a), "%s", args->argv[0]);
			snprintf(b, sizeof(b), "%s", args->argc > 1 ? args->argv[1] : args->argv[0]);
		}
		if (tlbot_parse_date(a, tlbot_ctx_now(ctx), zone, from) != 0)
			return tlbot_fail(ctx, "bad date '%s': %s", a, tlbot_date_forms);
		if (tlbot_parse_date(b, tlbot_ctx_now(ctx), zone, to) != 0)
			return tlbot_fail(ctx, "bad date '%s': %s", b, tlbot_date_forms);
	}
	if (strcmp(from, to) > 0)
		return tlbot_fail(ctx, "the range ends (%s) before it starts (%s)", to, from);
	if (tlbot_date_split(from, &y, &m, &d) != 0)
		return -1;
	{
		long fd = tlbot_date_days(y, m, d);

		if (tlbot_date_split(to, &y, &m, &d) != 0)
			return -1;
		if (tlbot_date_days(y, m, d) - fd > 366)
			return tlbot_fail(ctx, "a range is at most a year long");
	}
	return 0;
}

static int
skip_or_unskip(struct tlbot_ctx *ctx, const struct tlbot_args *args, int add)
{
	struct su_room r;
	char from[11], to[11], date[11], what[128];
	int n = 0;

	if (args->argc > 2)
		return tlbot_fail(ctx, "give one date, two dates (a range) or FROM..TO");
	if (need_room(ctx, &r) != 0)
		return -1;
	su_room_release(&r);
	if (date_range(ctx, args, from, to) != 0)
		return -1;
	memcpy(date, from, sizeof(date));
	for (;;) {
		sqlite3_stmt *s = su_prep(ctx, add ? "INSERT OR IGNORE INTO standup_skips(room_id, date,"
					  " added_by) VALUES (?, ?, ?)"
					  : "DELETE FROM standup_skips WHERE room_id = ? AND date = ?"
					  " AND ? IS NOT NULL");
		char next[11];

		if (s == NULL)
			return -1;
		su_bind_text(s, 1, tlbot_ctx_room(ctx));
		su_bind_text(s, 2, date);
		su_bind_text(s, 3, tlbot_ctx_sender(ctx));
		if (su_exec(ctx, s) != 0)
			return -1;
		n += sqlite3_changes(tlbot_ctx_db(ctx));
		if (strcmp(date, to) == 0 || tlbot_date_add(date, 1, next) != 0)
			break;
		memcpy(date, next, sizeof(date));
	}
	if (strcmp(from, to) == 0)
		snprintf(what, sizeof(what), add ? "No stand-up on %s" : "Stand-up back on %s", from);
	else
		snprintf(what, sizeof(what), add ? "No stand-ups from %s to %s"
						 : "Stand-ups back from %s to %s", from, to);
	if (!add && n == 0)
		return tlbot_fail(ctx, "%s was not a skip date", from);
	return replan_reply(ctx, what);
}

static int
cmd_skip(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	return skip_or_unskip(ctx, args, 1);
}

static int
cmd_unskip(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	return skip_or_unskip(ctx, args, 0);
}

static int
cmd_away(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *user = target_user(ctx, args->argv[0]);
	const char *until = tlbot_args_get(args, "until"), *from = tlbot_args_get(args, "from");
	char tz[64], ud[11], fd[11];
	struct su_room r;
	sqlite3_stmt *s;

	if (user == NULL)
		return tlbot_fail(ctx, "who is away? name them as @user:server (or me)");
	if (strcmp(user, tlbot_ctx_sender(ctx)) != 0 &&
	    !tlbot_ctx_allowed(ctx, TLBOT_PERM_WRITE, tlbot_ctx_sender(ctx)))
		return tlbot_fail(ctx, "not allowed: marking someone else away needs a moderator; "
				  "anyone may mark themselves (%sstandup away me --until DATE)",
				  tlbot_ctx_prefix(ctx));
	if (until == NULL)
		return tlbot_fail(ctx, "until when? add --until DATE (%s)", tlbot_date_forms);
	if (su_room_load(ctx, tlbot_ctx_room(ctx), &r) == 0) {
		snprintf(tz, sizeof(tz), "%s", r.tz);
		su_room_release(&r);
	} else {
		snprintf(tz, sizeof(tz), "%s", room_tz(ctx, NULL));
	}
	if (tlbot_parse_date(until, tlbot_ctx_now(ctx), tz, ud) != 0)
		return tlbot_fail(ctx, "bad --until date '%s': %s", until, tlbot_date_forms);
	if (tlbot_parse_date(from ? from : "today", tlbot_ctx_now(ctx), tz, fd) != 0)
		return tlbot_fail(ctx, "bad --from date '%s': %s", from, tlbot_date_forms);
	if (strcmp(fd, ud) > 0)
		return tlbot_fail(ctx, "--until %s is before --from %s", ud, fd);
	s = su_prep(ctx, "INSERT INTO standup_away(room_id, user_id, from_date, until_date, set_by)"
		    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(room_id, user_id) DO UPDATE SET"
		    " from_date = excluded.from_date, until_date = excluded.until_date,"
		    " set_by = excluded.set_by");
	if (s == NULL)
		return -1;
	su_bind_text(s, 1, tlbot_ctx_room(ctx));
	su_bind_text(s, 2, user);
	su_bind_text(s, 3, fd);
	su_bind_text(s, 4, ud);
	su_bind_text(s, 5, tlbot_ctx_sender(ctx));
	if (su_exec(ctx, s) != 0)
		return -1;
	{
		struct tlbot_msg m;

		tlbot_msg_init(&m);
		tlbot_msg_user(&m, user);
		tlbot_msg_textf(&m, " is away from %s until %s: no stand-up prompts, shown as away.",
				fd, ud);
		return tlbot_reply(ctx, &m);
	}
}

static int
cmd_back(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *user = target_user(ctx, args->argv[0]);
	sqlite3_stmt *s;
	struct tlbot_msg m;

	if (user == NULL)
		return tlbot_fail(ctx, "who is back? name them as @user:server (or me)");
	if (strcmp(user, tlbot_ctx_sender(ctx)) != 0 &&
	    !tlbot_ctx_allowed(ctx, TLBOT_PERM_WRITE, tlbot_ctx_sender(ctx)))
		return tlbot_fail(ctx, "not allowed: only a moderator may mark someone else back");
	s = su_prep(ctx, "DELETE FROM standup_away WHERE room_id = ? AND user_id = ?");
	if (s == NULL)
		return -1;
	su_bind_text(s, 1, tlbot_ctx_room(ctx));
	su_bind_text(s, 2, user);
	if (su_exec(ctx, s) != 0)
		return -1;
	if (sqlite3_changes(tlbot_ctx_db(ctx)) == 0)
		return tlbot_fail(ctx, "%s was not marked away here", user);
	tlbot_msg_init(&m);
	tlbot_msg_user(&m, user);
	tlbot_msg_text(&m, " is back: prompted again from the next stand-up.");
	return tlbot_reply(ctx, &m);
}

static int
cmd_show(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct su_list members = { 0 };
	struct su_room r;
	struct tlbot_msg m;
	char at[6], sat[6], dtext[64], today[11], date[64], until[11];
	int roster = 0, n = 0;
	sqlite3_stmt *s;
	size_t i;

	if (need_room(ctx, &r) != 0)
		return -1;
	tlbot_tz_date(r.tz, tlbot_ctx_now(ctx), today);
	hhmm(r.minute, at);
	hhmm(r.summary_minute, sat);
	tlbot_days_format(r.days, dtext, sizeof(dtext));
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Stand-up");
	tlbot_msg_textf(&m, " — %s", r.enabled ? "on" : "off");
	tlbot_msg_br(&m);
	tlbot_msg_textf(&m, "Prompts at %s %s, %s; summary at %s.", at, r.tz, dtext, sat);
	tlbot_msg_br(&m);
	tlbot_msg_textf(&m, "Asked %s. Questions: 1. %s 2. %s 3. %s",
			strcmp(r.mode, "dm") == 0 ? "by direct message" : "in the room", r.q[0],
			r.q[1], r.q[2]);
	tlbot_msg_br(&m);
	if (r.remind_lead)
		tlbot_msg_textf(&m, "Reminder %d minutes before the summary.", r.remind_lead);
	else
		tlbot_msg_text(&m, "No reminder before the summary.");
	tlbot_msg_br(&m);
	if (r.division)
		tlbot_msg_textf(&m, "Bank holidays skipped: %s (GOV.UK).", r.division);
	else
		tlbot_msg_textf(&m, "Bank holidays are not skipped (%sstandup holidays "
				"england-and-wales|scotland|northern-ireland).", tlbot_ctx_prefix(ctx));
	tlbot_msg_br(&m);
	if (r.enabled && r.next_date) {
		su_date_long(r.next_date, date, sizeof(date));
		tlbot_msg_textf(&m, "Next stand-up: %s.", date);
		tlbot_msg_br(&m);
	}
	s = su_prep(ctx, "SELECT date FROM standup_skips WHERE room_id = ? AND date >= ?"
		    " ORDER BY date LIMIT 20");
	if (s) {
		su_bind_text(s, 1, r.room_id);
		su_bind_text(s, 2, today);
		while (sqlite3_step(s) == SQLITE_ROW)
			tlbot_msg_textf(&m, "%s%s", n++ ? ", " : "Skip dates: ",
					(const char *)sqlite3_column_text(s, 0));
		sqlite3_finalize(s);
		if (n)
			tlbot_msg_br(&m);
	}
	if (su_members(ctx, r.room_id, today, &members, &roster) == 0) {
		if (members.n) {
			tlbot_msg_text(&m, roster ? "Team: " : "Prompted (people who answered before): ");
			for (i = 0; i < members.n; i++) {
				char tz[64];

				if (i)
					tlbot_msg_text(&m, ", ");
				tlbot_msg_user(&m, members.v[i]);
				su_user_tz(ctx, members.v[i], r.tz, tz, sizeof(tz));
				if (strcmp(tz, r.tz) != 0)
					tlbot_msg_textf(&m, " (%s)", tz);
				if (su_is_away(ctx, r.room_id, members.v[i], today, until))
					tlbot_msg_textf(&m, " (away until %s)", until);
			}
			tlbot_msg_br(&m);
		}
		if (!roster)
			tlbot_msg_textf(&m, "No team roster here: add people with %steam add @user "
					"--role R so they are prompted.", tlbot_ctx_prefix(ctx));
	}
	su_list_release(&members);
	su_room_release(&r);
	return tlbot_reply(ctx, &m);
}

static int
cmd_summary(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct su_room r;
	struct tlbot_msg m;
	char today[11];
	int have = su_room_load(ctx, tlbot_ctx_room(ctx), &r);

	if (have < 0)
		return -1;
	if (tlbot_tz_date(room_tz(ctx, have == 0 ? &r : NULL), tlbot_ctx_now(ctx), today) != 0) {
		if (have == 0)
			su_room_release(&r);
		return tlbot_fail(ctx, "cannot tell today's date");
	}
	tlbot_msg_init(&m);
	if (su_summary_build(ctx, have == 0 ? &r : NULL, tlbot_ctx_room(ctx), today,
			     su_last_summary_at(ctx, tlbot_ctx_room(ctx), tlbot_ctx_now(ctx)),
			     &m) != 0) {
		tlbot_msg_release(&m);
		if (have == 0)
			su_room_release(&r);
		return -1;
	}
	if (have == 0)
		su_room_release(&r);
	return tlbot_reply(ctx, &m);
}

static int
cmd_history(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *ds = tlbot_args_get(args, "days");
	long days = 7;
	struct tlbot_msg m;
	sqlite3_stmt *s;
	int n = 0;

	if (ds) {
		char *end;

		days = strtol(ds, &end, 10);
		if (*ds == '\0' || *end != '\0' || days < 1 || days > 366)
			return tlbot_fail(ctx, "--days takes a number of days from 1 to 366");
	}
	s = su_prep(ctx, "SELECT date, kind, text FROM standup_summaries WHERE room_id = ?"
		    " AND at >= ? AND kind IN ('scheduled', 'missed') ORDER BY at DESC");
	if (s == NULL)
		return -1;
	su_bind_text(s, 1, tlbot_ctx_room(ctx));
	sqlite3_bind_int64(s, 2, (sqlite3_int64)(tlbot_ctx_now(ctx) - days * 86400));
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Stand-up history");
	tlbot_msg_textf(&m, " (last %ld day%s)", days, days == 1 ? "" : "s");
	tlbot_msg_br(&m);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *date = (const char *)sqlite3_column_text(s, 0);
		const char *kind = (const char *)sqlite3_column_text(s, 1);
		const char *text = (const char *)sqlite3_column_text(s, 2);
		char longdate[64];
		struct tlbot_msg probe;

		su_date_long(date, longdate, sizeof(longdate));
		/* stop before the message would overflow */
		if (m.plain.len + (text ? strlen(text) : 0) * 3 + 512 > TLBOT_MSG_MAX) {
			tlbot_msg_br(&m);
			tlbot_msg_textf(&m, "(older summaries left out: try a smaller --days)");
			break;
		}
		tlbot_msg_init(&probe);
		tlbot_msg_release(&probe);
		tlbot_msg_br(&m);
		tlbot_msg_bold(&m, longdate);
		tlbot_msg_br(&m);
		if (strcmp(kind, "missed") == 0)
			tlbot_msg_text(&m, "Not posted: the bot was down past the grace period.");
		else
			tlbot_msg_refs(&m, ctx, text ? text : "");
		tlbot_msg_br(&m);
		n++;
	}
	sqlite3_finalize(s);
	if (n == 0)
		tlbot_msg_text(&m, "No stand-up summaries in that period.");
	return tlbot_reply(ctx, &m);
}

/* ---- answers ---- */

/* Open prompts of user (room, date), newest first; only those not yet
 * summarised when some are, else the recent ones. 0 or -1. */
static int
open_prompts(struct tlbot_ctx *ctx, const char *user, const char *only_room,
	     struct su_list *rooms, struct su_list *dates, int *summarised)
{
	int pass;

	*summarised = 0;
	for (pass = 0; pass < 2 && rooms->n == 0; pass++) {
		sqlite3_stmt *s = su_prep(ctx,
			"SELECT p.room_id, p.date FROM standup_prompts p WHERE p.user_id = ?"
			" AND p.at > ? AND (? IS NULL OR p.room_id = ?) AND (? OR NOT EXISTS"
			" (SELECT 1 FROM standup_summaries s WHERE s.room_id = p.room_id"
			" AND s.date = p.date AND s.kind = 'scheduled')) ORDER BY p.at DESC");

		if (s == NULL)
			return -1;
		su_bind_text(s, 1, user);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)(tlbot_ctx_now(ctx) - OPEN_PROMPT_S));
		su_bind_text(s, 3, only_room);
		su_bind_text(s, 4, only_room);
		sqlite3_bind_int(s, 5, pass);
		while (sqlite3_step(s) == SQLITE_ROW) {
			const char *room = (const char *)sqlite3_column_text(s, 0);

			if (su_list_has(rooms, room))
				continue;
			su_list_add(rooms, room);
			su_list_add(dates, (const char *)sqlite3_column_text(s, 1));
		}
		sqlite3_finalize(s);
		*summarised = pass == 1;
	}
	return 0;
}

static int
has_answer(struct tlbot_ctx *ctx, const char *room, const char *user, const char *date)
{
	sqlite3_stmt *s = su_prep(ctx, "SELECT 1 FROM standup_answers WHERE room_id = ? AND"
				  " user_id = ? AND date = ? AND replaced_by IS NULL AND withdrawn = 0");
	int r;

	if (s == NULL)
		return 0;
	su_bind_text(s, 1, room);
	su_bind_text(s, 2, user);
	su_bind_text(s, 3, date);
	r = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return r;
}

static int
summary_posted(struct tlbot_ctx *ctx, const char *room, const char *date)
{
	sqlite3_stmt *s = su_prep(ctx, "SELECT 1 FROM standup_summaries WHERE room_id = ?"
				  " AND date = ? AND kind = 'scheduled'");
	int r;

	if (s == NULL)
		return 0;
	su_bind_text(s, 1, room);
	su_bind_text(s, 2, date);
	r = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return r;
}

/* Record text as user's answer in each (room, date). The acknowledgement
 * names what was understood. 0 or -1. */
static int
record_and_ack(struct tlbot_ctx *ctx, const struct su_list *rooms, const struct su_list *dates,
	       const char *text, const char *event_id, const char *source, int ack, int late)
{
	const char *user = tlbot_ctx_sender(ctx);
	struct tlbot_msg m;
	size_t i;
	int nsec = 0;

	for (i = 0; i < rooms->n; i++) {
		struct su_room r;
		char *y, *t, *b;
		int have = su_room_load(ctx, rooms->v[i], &r);

		if (have < 0)
			return -1;
		nsec = su_parse_answer(text, have == 0 ? r.q : NULL, &y, &t, &b);
		if (have == 0)
			su_room_release(&r);
		if (nsec == 0) {
			free(y);
			free(t);
			free(b);
			return tlbot_fail(ctx, "empty stand-up answer: give y: (yesterday) t: (today) "
					  "b: (blockers)");
		}
		if (su_answer_record(ctx, rooms->v[i], user, dates->v[i], y, t, b, event_id,
				     source) < 0) {
			free(y);
			free(t);
			free(b);
			return -1;
		}
		free(y);
		free(t);
		free(b);
	}
	if (!ack)
		return 0;
	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "Thanks, your stand-up answer is recorded for ");
	for (i = 0; i < rooms->n; i++) {
		char longdate[64], href[600];

		su_date_long(dates->v[i], longdate, sizeof(longdate));
		if (i)
			tlbot_msg_text(&m, " and ");
		if (tlbot_ctx_is_dm(ctx) || strcmp(rooms->v[i], tlbot_ctx_room(ctx)) != 0) {
			snprintf(href, sizeof(href), "https://matrix.to/#/%s", rooms->v[i]);
			tlbot_msg_link(&m, rooms->v[i], href, NULL);
			tlbot_msg_text(&m, ", ");
		}
		tlbot_msg_text(&m, longdate);
		if (summary_posted(ctx, rooms->v[i], dates->v[i]))
			late = 1;
	}
	tlbot_msg_text(&m, ". Edit your message to change it; your latest answer counts.");
	if (late)
		tlbot_msg_textf(&m, " The summary was already posted: %sstandup summary shows it "
				"with your answer.", tlbot_ctx_prefix(ctx));
	return tlbot_reply(ctx, &m);
}

/* The answer text of a "!standup y: ..." body: what follows the family
 * word. */
static const char *
answer_text(struct tlbot_ctx *ctx, const char *body)
{
	const char *p = body, *pref = tlbot_ctx_prefix(ctx);

	while (isspace((unsigned char)*p))
		p++;
	if (pref && strncmp(p, pref, strlen(pref)) == 0)
		p += strlen(pref);
	else if (*p == '!' || *p == '/')
		p++;
	if (strncasecmp(p, "standup", 7) == 0 || strncasecmp(p, "su", 2) == 0) {
		while (*p && !isspace((unsigned char)*p))
			p++;
	}
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

static int
cmd_answer(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct su_list rooms = { 0 }, dates = { 0 };
	const char *text = answer_text(ctx, tlbot_ctx_body(ctx));
	int summarised = 0, rc;

	if (tlbot_ctx_is_dm(ctx)) {
		if (open_prompts(ctx, tlbot_ctx_sender(ctx), NULL, &rooms, &dates, &summarised) != 0)
			return -1;
		if (rooms.n == 0) {
			su_list_release(&rooms);
			su_list_release(&dates);
			return tlbot_fail(ctx, "I have not asked you for a stand-up lately: answer in "
					  "your team's room with %sstandup y: ... t: ... b: ...",
					  tlbot_ctx_prefix(ctx));
		}
	} else {
		struct su_room r;
		char today[11];
		int have = su_room_load(ctx, tlbot_ctx_room(ctx), &r);

		if (have < 0)
			return -1;
		if (tlbot_tz_date(room_tz(ctx, have == 0 ? &r : NULL), tlbot_ctx_now(ctx), today) != 0) {
			if (have == 0)
				su_room_release(&r);
			return tlbot_fail(ctx, "cannot tell today's date");
		}
		if (have == 0)
			su_room_release(&r);
		su_list_add(&rooms, tlbot_ctx_room(ctx));
		su_list_add(&dates, today);
	}
	rc = record_and_ack(ctx, &rooms, &dates, text, tlbot_ctx_event_id(ctx), "command", 1,
			    summarised);
	su_list_release(&rooms);
	su_list_release(&dates);
	return rc;
}

/* Strip a "!standup" (or alias) command prefix from an edited body. */
static const char *
edit_text(struct tlbot_ctx *ctx, const char *body)
{
	const char *p = body;

	while (isspace((unsigned char)*p))
		p++;
	if ((*p == '!' || *p == '/') && (strncasecmp(p + 1, "standup", 7) == 0 ||
					  strncasecmp(p + 1, "su ", 3) == 0))
		return answer_text(ctx, p);
	return p;
}

static int
on_edit(struct tlbot_ctx *ctx)
{
	const char *orig = tlbot_ctx_replaces(ctx);
	struct su_list rooms = { 0 }, dates = { 0 };
	sqlite3_stmt *s = su_prep(ctx, "SELECT room_id, date FROM standup_answers WHERE"
				  " event_id = ? AND user_id = ? AND replaced_by IS NULL"
				  " AND withdrawn = 0");
	int rc;

	if (s == NULL)
		return -1;
	su_bind_text(s, 1, orig);
	su_bind_text(s, 2, tlbot_ctx_sender(ctx));
	while (sqlite3_step(s) == SQLITE_ROW) {
		su_list_add(&rooms, (const char *)sqlite3_column_text(s, 0));
		su_list_add(&dates, (const char *)sqlite3_column_text(s, 1));
	}
	sqlite3_finalize(s);
	if (rooms.n == 0) {
		su_list_release(&rooms);
		su_list_release(&dates);
		return 0; /* not an answer (or not the current one): not ours */
	}
	rc = record_and_ack(ctx, &rooms, &dates, edit_text(ctx, tlbot_ctx_body(ctx)), orig, "edit",
			    tlbot_ctx_is_dm(ctx), 0);
	su_list_release(&rooms);
	su_list_release(&dates);
	return rc < 0 ? -1 : 1;
}

static int
on_redaction(struct tlbot_ctx *ctx)
{
	sqlite3_stmt *s = su_prep(ctx, "UPDATE standup_answers SET withdrawn = 1 WHERE"
				  " event_id = ? AND user_id = ? AND replaced_by IS NULL");

	if (s == NULL)
		return -1;
	su_bind_text(s, 1, tlbot_ctx_redacts(ctx));
	su_bind_text(s, 2, tlbot_ctx_sender(ctx));
	if (su_exec(ctx, s) != 0)
		return -1;
	return sqlite3_changes(tlbot_ctx_db(ctx)) > 0 ? 1 : 0;
}

static int
on_message(struct tlbot_ctx *ctx)
{
	struct su_list rooms = { 0 }, dates = { 0 };
	const char *body = tlbot_ctx_body(ctx);
	int summarised = 0, rc = 0;
	size_t i;

	if (tlbot_ctx_redacts(ctx))
		return on_redaction(ctx);
	if (tlbot_ctx_replaces(ctx))
		return on_edit(ctx);
	if (tlbot_ctx_is_dm(ctx)) {
		int answered = 1;

		if (open_prompts(ctx, tlbot_ctx_sender(ctx), NULL, &rooms, &dates, &summarised) != 0)
			return -1;
		if (rooms.n == 0)
			goto out;
		for (i = 0; i < rooms.n; i++)
			if (!has_answer(ctx, rooms.v[i], tlbot_ctx_sender(ctx), dates.v[i]))
				answered = 0;
		/* a chatty "thanks" after answering does not replace the answer */
		if (answered && tlbot_ctx_in_reply_to(ctx) == NULL && !su_has_marker(body, NULL)) {
			rc = tlbot_replyf(ctx, "I already have your stand-up answer. To replace it, "
					  "reply to my question or start lines with y: t: b:; "
					  "or edit your answer.") < 0 ? -1 : 1;
			goto out;
		}
		rc = record_and_ack(ctx, &rooms, &dates, body, tlbot_ctx_event_id(ctx), "dm", 1,
				    summarised) < 0 ? -1 : 1;
		goto out;
	}
	/* in a room asked "in the room": a reply with y:/t:/b: from someone asked */
	if (tlbot_ctx_in_reply_to(ctx) && su_has_marker(body, NULL)) {
		if (open_prompts(ctx, tlbot_ctx_sender(ctx), tlbot_ctx_room(ctx), &rooms, &dates,
				 &summarised) != 0)
			return -1;
		if (rooms.n == 0 || summarised)
			goto out;
		rc = record_and_ack(ctx, &rooms, &dates, body, tlbot_ctx_event_id(ctx), "reply", 1,
				    0) < 0 ? -1 : 1;
	}
out:
	su_list_release(&rooms);
	su_list_release(&dates);
	return rc;
}

/* ---- jobs ---- */

struct payload {
	int64_t gen;
	char date[11];
	char user[256];
};

static int
payload_parse(const char *text, struct payload *p)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	const char *d, *u;

	memset(p, 0, sizeof(*p));
	if (j == NULL)
		return -1;
	p->gen = json_integer_value(json_object_get(j, "gen"));
	d = json_string_value(json_object_get(j, "date"));
	u = json_string_value(json_object_get(j, "user"));
	if (d)
		snprintf(p->date, sizeof(p->date), "%s", d);
	if (u)
		snprintf(p->user, sizeof(p->user), "%s", u);
	json_decref(j);
	return d ? 0 : -1;
}

/* Load the job's room when the job is still current. 0 (r filled), 1 stale
 * or gone, -1 error. */
static int
job_room(struct tlbot_ctx *ctx, const struct tlbot_job *job, struct payload *p,
	 struct su_room *r)
{
	int rc;

	if (job->room_id == NULL || payload_parse(job->payload, p) != 0)
		return 1;
	rc = su_room_load(ctx, job->room_id, r);
	if (rc != 0)
		return rc;
	if (r->gen != p->gen || !r->enabled) {
		su_room_release(r);
		return 1;
	}
	return 0;
}

static int
mark_prompted(struct tlbot_ctx *ctx, const char *room, const char *user, const char *date)
{
	sqlite3_stmt *s = su_prep(ctx, "INSERT OR IGNORE INTO standup_prompts(room_id, user_id,"
				  " date, at) VALUES (?, ?, ?, ?)");

	if (s == NULL)
		return -1;
	su_bind_text(s, 1, room);
	su_bind_text(s, 2, user);
	su_bind_text(s, 3, date);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)tlbot_ctx_now(ctx));
	return su_exec(ctx, s);
}

static int
was_prompted(struct tlbot_ctx *ctx, const char *room, const char *user, const char *date)
{
	sqlite3_stmt *s = su_prep(ctx, "SELECT 1 FROM standup_prompts WHERE room_id = ?"
				  " AND user_id = ? AND date = ?");
	int r;

	if (s == NULL)
		return 0;
	su_bind_text(s, 1, room);
	su_bind_text(s, 2, user);
	su_bind_text(s, 3, date);
	r = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return r;
}

static int
was_reminded(struct tlbot_ctx *ctx, const char *room, const char *user, const char *date)
{
	sqlite3_stmt *s = su_prep(ctx, "SELECT reminded FROM standup_prompts WHERE room_id = ?"
				  " AND user_id = ? AND date = ?");
	int r = 0;

	if (s == NULL)
		return 0;
	su_bind_text(s, 1, room);
	su_bind_text(s, 2, user);
	su_bind_text(s, 3, date);
	if (sqlite3_step(s) == SQLITE_ROW)
		r = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return r;
}

static void
room_link(struct tlbot_msg *m, const char *room)
{
	char href[600];

	snprintf(href, sizeof(href), "https://matrix.to/#/%s", room);
	tlbot_msg_link(m, room, href, NULL);
}

static void
questions(struct tlbot_msg *m, const struct su_room *r)
{
	int i;

	tlbot_msg_html(m, "<ol>");
	for (i = 0; i < 3; i++) {
		tlbot_msg_html(m, "<li>");
		tlbot_msg_plain(m, i == 0 ? "1. " : i == 1 ? "2. " : "3. ");
		tlbot_msg_text(m, r->q[i]);
		tlbot_msg_html(m, "</li>");
		tlbot_msg_plain(m, "\n");
	}
	tlbot_msg_html(m, "</ol>");
}

/* DM the questions to user. 0 or -1. */
static int
prompt_dm(struct tlbot_ctx *ctx, const struct su_room *r, const char *user, const char *date)
{
	struct tlbot_msg m;
	char longdate[64], sat[6];

	if (was_prompted(ctx, r->room_id, user, date) ||
	    su_is_away(ctx, r->room_id, user, date, NULL))
		return 0;
	su_date_long(date, longdate, sizeof(longdate));
	hhmm(r->summary_minute, sat);
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Stand-up");
	tlbot_msg_text(&m, " for ");
	room_link(&m, r->room_id);
	tlbot_msg_textf(&m, " — %s", longdate);
	tlbot_msg_br(&m);
	questions(&m, r);
	tlbot_msg_textf(&m, "Reply to this message: one line per question, or lines starting "
			"y: t: b:. Edit your reply to change it. The summary is posted at %s (%s).",
			sat, r->tz);
	if (tlbot_send_dm(ctx, user, &m) != 0)
		return -1;
	return mark_prompted(ctx, r->room_id, user, date);
}

static int
prompt_room(struct tlbot_ctx *ctx, const struct su_room *r, const struct su_list *who,
	    const char *date, int nobody_by_dm)
{
	struct tlbot_msg m;
	char longdate[64], sat[6];
	size_t i;

	su_date_long(date, longdate, sizeof(longdate));
	hhmm(r->summary_minute, sat);
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Stand-up");
	tlbot_msg_textf(&m, " — %s", longdate);
	for (i = 0; i < who->n; i++) {
		tlbot_msg_text(&m, i ? " " : ": ");
		tlbot_msg_mention(&m, who->v[i]);
	}
	tlbot_msg_br(&m);
	questions(&m, r);
	tlbot_msg_textf(&m, "Answer with %sstandup y: ... t: ... b: ... (or reply to this message "
			"with lines starting y: t: b:). Summary at %s.", tlbot_ctx_prefix(ctx), sat);
	if (nobody_by_dm) {
		tlbot_msg_br(&m);
		tlbot_msg_textf(&m, "Nobody to ask by direct message yet: add the team with "
				"%steam add @user --role R.", tlbot_ctx_prefix(ctx));
	}
	if (tlbot_send_room(ctx, r->room_id, &m) != 0)
		return -1;
	for (i = 0; i < who->n; i++)
		if (mark_prompted(ctx, r->room_id, who->v[i], date) != 0)
			return -1;
	return 0;
}

static int
fire_prompt(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	struct su_list members = { 0 }, here = { 0 };
	struct payload p;
	struct su_room r;
	int rc, roster;
	time_t summary;
	size_t i;

	rc = job_room(ctx, job, &p, &r);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (job->missed) {
		su_room_release(&r);
		return 0; /* recorded as missed by the scheduler; the summary plans the next */
	}
	if (su_members(ctx, r.room_id, p.date, &members, &roster) != 0) {
		su_room_release(&r);
		return -1;
	}
	rc = 0;
	if (p.user[0]) {
		/* a person's own prompt at their local time */
		if (su_list_has(&members, p.user))
			rc = prompt_dm(ctx, &r, p.user, p.date);
		goto out;
	}
	if (tlbot_sched_at(r.tz, p.date, r.summary_minute, &summary) != 0)
		summary = tlbot_ctx_now(ctx) + 3600;
	for (i = 0; i < members.n && rc == 0; i++) {
		const char *u = members.v[i];
		char tz[128];
		time_t own;

		if (su_is_away(ctx, r.room_id, u, p.date, NULL) || was_prompted(ctx, r.room_id, u, p.date))
			continue;
		if (strcmp(r.mode, "room") == 0) {
			su_list_add(&here, u);
			continue;
		}
		if (!tlbot_ctx_dm_enabled(ctx, u)) {
			su_list_add(&here, u); /* direct messages off: asked in the room */
			continue;
		}
		su_user_tz(ctx, u, r.tz, tz, sizeof(tz));
		if (strcmp(tz, r.tz) != 0 && tlbot_sched_at(tz, p.date, r.minute, &own) == 0 &&
		    own > tlbot_ctx_now(ctx) && own < summary) {
			char key[1024], payload[600];

			/* later in their own zone: their own job */
			snprintf(key, sizeof(key), "standup.%s.%lld.%s.prompt.%s", r.room_id,
				 (long long)r.gen, p.date, u);
			snprintf(payload, sizeof(payload), "{\"gen\":%lld,\"date\":\"%s\",\"user\":\"%s\"}",
				 (long long)r.gen, p.date, u);
			if (strchr(u, '"') || strchr(u, '\\'))
				continue;
			if (tlbot_job_schedule(ctx, "standup.prompt", key, r.room_id, own, payload) < 0)
				rc = -1;
			continue;
		}
		rc = prompt_dm(ctx, &r, u, p.date);
	}
	/* one room message: for those asked in the room, or (once a day) to
	 * say nobody can be asked yet; a re-planned prompt job finds everyone
	 * already asked and posts nothing */
	if (rc == 0 && (here.n > 0 || (members.n == 0 && !was_prompted(ctx, r.room_id, "*", p.date)))) {
		rc = prompt_room(ctx, &r, &here, p.date, strcmp(r.mode, "dm") == 0 && members.n == 0);
		if (rc == 0 && members.n == 0)
			rc = mark_prompted(ctx, r.room_id, "*", p.date);
	}
out:
	su_list_release(&members);
	su_list_release(&here);
	su_room_release(&r);
	return rc;
}

static int
fire_remind(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	struct su_list members = { 0 }, late = { 0 };
	struct payload p;
	struct su_room r;
	char sat[6];
	int rc, roster;
	size_t i;

	rc = job_room(ctx, job, &p, &r);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (job->missed || summary_posted(ctx, r.room_id, p.date)) {
		su_room_release(&r);
		return 0;
	}
	if (su_members(ctx, r.room_id, p.date, &members, &roster) != 0) {
		su_room_release(&r);
		return -1;
	}
	/* those asked, not yet reminded (a re-planned reminder job reminds
	 * nobody twice), not away, without an answer */
	for (i = 0; i < members.n; i++)
		if (!su_is_away(ctx, r.room_id, members.v[i], p.date, NULL) &&
		    !has_answer(ctx, r.room_id, members.v[i], p.date) &&
		    was_prompted(ctx, r.room_id, members.v[i], p.date) == 1 &&
		    !was_reminded(ctx, r.room_id, members.v[i], p.date))
			su_list_add(&late, members.v[i]);
	hhmm(r.summary_minute, sat);
	rc = 0;
	if (strcmp(r.mode, "dm") == 0) {
		for (i = 0; i < late.n && rc == 0; i++) {
			struct tlbot_msg m;

			tlbot_msg_init(&m);
			tlbot_msg_textf(&m, "Reminder: the stand-up summary for ");
			room_link(&m, r.room_id);
			tlbot_msg_textf(&m, " is posted at %s and I have no answer from you yet. "
					"Reply to my question with y: t: b: lines.", sat);
			rc = tlbot_send_dm(ctx, late.v[i], &m);
		}
	} else if (late.n) {
		struct tlbot_msg m;

		tlbot_msg_init(&m);
		tlbot_msg_textf(&m, "Stand-up summary at %s; still waiting for", sat);
		for (i = 0; i < late.n; i++) {
			tlbot_msg_text(&m, i ? ", " : " ");
			tlbot_msg_mention(&m, late.v[i]);
		}
		tlbot_msg_textf(&m, ": %sstandup y: ... t: ... b: ...", tlbot_ctx_prefix(ctx));
		rc = tlbot_send_room(ctx, r.room_id, &m);
	}
	for (i = 0; i < late.n && rc == 0; i++) {
		sqlite3_stmt *s = su_prep(ctx, "UPDATE standup_prompts SET reminded = 1 WHERE"
					  " room_id = ? AND user_id = ? AND date = ?");

		if (s == NULL)
			rc = -1;
		else {
			su_bind_text(s, 1, r.room_id);
			su_bind_text(s, 2, late.v[i]);
			su_bind_text(s, 3, p.date);
			rc = su_exec(ctx, s);
		}
	}
	su_list_release(&members);
	su_list_release(&late);
	su_room_release(&r);
	return rc;
}

static int
record_summary(struct tlbot_ctx *ctx, const char *room, const char *date, const char *kind,
	       const char *text)
{
	sqlite3_stmt *s = su_prep(ctx, "INSERT INTO standup_summaries(room_id, date, at, kind, text)"
				  " VALUES (?, ?, ?, ?, ?)");

	if (s == NULL)
		return -1;
	su_bind_text(s, 1, room);
	su_bind_text(s, 2, date);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)tlbot_ctx_now(ctx));
	su_bind_text(s, 4, kind);
	su_bind_text(s, 5, text);
	return su_exec(ctx, s);
}

static int
fire_summary(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	struct payload p;
	struct su_room r;
	time_t after;
	int rc;

	rc = job_room(ctx, job, &p, &r);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (job->missed) {
		rc = record_summary(ctx, r.room_id, p.date, "missed", "");
	} else if (!summary_posted(ctx, r.room_id, p.date)) {
		struct tlbot_msg m;
		char *text;

		tlbot_msg_init(&m);
		rc = su_summary_build(ctx, &r, r.room_id, p.date,
				      su_last_summary_at(ctx, r.room_id, tlbot_ctx_now(ctx)), &m);
		text = rc == 0 ? strdup(tlbot_buf_str(&m.plain)) : NULL;
		if (rc == 0 && text == NULL)
			rc = tlbot_fail(ctx, "stand-up: out of memory");
		if (rc == 0)
			rc = tlbot_send_room(ctx, r.room_id, &m);
		else
			tlbot_msg_release(&m);
		if (rc == 0)
			rc = record_summary(ctx, r.room_id, p.date, "scheduled", text);
		free(text);
	}
	/* the next occurrence, whatever happened to this one */
	after = job->due > tlbot_ctx_now(ctx) ? job->due : tlbot_ctx_now(ctx);
	if (rc == 0)
		rc = su_plan(ctx, &r, after);
	su_room_release(&r);
	return rc;
}

static const struct tlbot_job_kind jobs[] = {
	{ "standup.prompt", fire_prompt },
	{ "standup.remind", fire_remind },
	{ "standup.summary", fire_summary },
	{ NULL, NULL },
};

/* ---- the table entry ---- */

static const char *const aliases[] = { "su", NULL };

static const struct tlbot_subcmd subcmds[] = {
	{ "y:", "y: TEXT t: TEXT b: TEXT", "give your stand-up answer (yesterday, today, blockers)",
	  TLBOT_PERM_ANYONE, NULL, 0, -1, cmd_answer },
	{ "t:", "t: TEXT [b: TEXT]", "give your stand-up answer starting with today",
	  TLBOT_PERM_ANYONE, NULL, 0, -1, cmd_answer },
	{ "b:", "b: TEXT", "give your stand-up blockers", TLBOT_PERM_ANYONE, NULL, 0, -1,
	  cmd_answer },
	{ "schedule", "schedule HH:MM [ZONE] [DAYS]",
	  "set the stand-up time, zone (IANA) and days (mon-fri, mon,wed,fri)", TLBOT_PERM_WRITE,
	  NULL, 1, 3, cmd_schedule },
	{ "summary-at", "summary-at HH:MM", "when the summary is posted (default 45 min after)",
	  TLBOT_PERM_WRITE, NULL, 1, 1, cmd_summary_at },
	{ "questions", "questions \"Q1\" \"Q2\" \"Q3\"", "set the three questions",
	  TLBOT_PERM_WRITE, NULL, 3, 3, cmd_questions },
	{ "on", "on", "resume stand-ups", TLBOT_PERM_WRITE, NULL, 0, 0, cmd_on },
	{ "off", "off", "pause stand-ups", TLBOT_PERM_WRITE, NULL, 0, 0, cmd_off },
	{ "mode", "mode dm|room", "ask each person by DM, or once in the room", TLBOT_PERM_WRITE,
	  NULL, 1, 1, cmd_mode },
	{ "reminder", "reminder MINUTES|off", "remind those who have not answered before the summary",
	  TLBOT_PERM_WRITE, NULL, 1, 1, cmd_reminder },
	{ "holidays", "holidays england-and-wales|scotland|northern-ireland|none",
	  "skip that nation's bank holidays (GOV.UK)", TLBOT_PERM_WRITE, NULL, 1, 1, cmd_holidays },
	{ "skip", "skip DATE [DATE]", "no stand-up on a date or a range (FROM TO, FROM..TO)",
	  TLBOT_PERM_WRITE, NULL, 1, 2, cmd_skip },
	{ "unskip", "unskip DATE [DATE]", "undo a skip", TLBOT_PERM_WRITE, NULL, 1, 2, cmd_unskip },
	{ "away", "away @user|me --until DATE [--from DATE]",
	  "someone is on leave: not prompted, shown as away", TLBOT_PERM_ANYONE, away_flags, 1, 1,
	  cmd_away },
	{ "back", "back @user|me", "end someone's away period", TLBOT_PERM_ANYONE, NULL, 1, 1,
	  cmd_back },
	{ "show", "show", "the stand-up settings, team and next date", TLBOT_PERM_ANYONE, NULL, 0, 0,
	  cmd_show },
	{ "summary", "summary", "post today's summary so far", TLBOT_PERM_ANYONE, NULL, 0, 0,
	  cmd_summary },
	{ "history", "history [--days N]", "past summaries (default 7 days)", TLBOT_PERM_ANYONE,
	  history_flags, 0, 0, cmd_history },
	{ NULL, NULL, NULL, 0, NULL, 0, 0, NULL },
};

const struct tlbot_cmd tlbot_cmd_standup = {
	.name = "standup",
	.aliases = aliases,
	.summary = "daily stand-ups: prompts, answers, reminders and a summary that knows the "
		   "team's challenges and experiments",
	.help = "Examples: !standup schedule 09:30 Europe/London mon-fri, !standup summary-at 10:15, "
		"!standup holidays england-and-wales, !standup skip 2026-12-24..2026-12-31, "
		"!standup away @sam:example.org --until 2026-12-04, "
		"!standup y: finished C-12 interviews t: start E-34 b: none. "
		"Answer a DM prompt by replying to it; edit your answer to change it.",
	.subcmds = subcmds,
	.schema = &schema,
	.jobs = jobs,
	.on_message = on_message,
};
