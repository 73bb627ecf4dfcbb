/* !standup: daily stand-ups. Each room has a schedule (time, zone, days,
 * summary time, questions, mode, reminder, bank holidays); at prompt time
 * each member is asked by DM (or in the room), answers come as DM
 * replies, `!standup y: ... t: ... b: ...` or edits of either, a reminder
 * goes to those who have not answered, and the summary is posted to the
 * room. Jobs are recurring: the summary plans the next stand-up. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "standup.h"
#include "tlbot/holidays.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"

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

/* v2: the room prompts as sent (outbox txn ids), so a plain reply to one
 * in the room is an answer for its date. */
static const char *const schema_v2 =
        "CREATE TABLE standup_prompt_msgs (txn_id TEXT PRIMARY KEY, room_id TEXT NOT NULL,"
        "  date TEXT NOT NULL);";

static const char *const migrations[] = {schema_v1, schema_v2, NULL};

static const struct tlbot_schema schema = {"standup", migrations};


/* ---- helpers ---- */

/* Load the ctx room's settings or fail with how to create them. 0 or -1. */
static int
need_room(struct tlbot_ctx *ctx, struct su_room *r)
{
	int rc = su_room_load(ctx, tlbot_ctx_room(ctx), r);

	if (rc < 0)
		return -1;
	if (rc == 1)
		return tlbot_fail(ctx,
		                  "no stand-up here yet: start with `%sstandup schedule 09:30 "
		                  "Europe/London mon-fri`",
		                  tlbot_ctx_prefix(ctx));
	return 0;
}

/* Run one UPDATE of standup_rooms with one bound value (text or int). */
static int
set_field(struct tlbot_ctx *ctx, const char *sql, const char *text, int64_t num, int is_text)
{
	if (is_text)
		return tlbot_db_exec(ctx, sql, "ttit", text, tlbot_ctx_sender(ctx),
		                     (int64_t)tlbot_ctx_now(ctx), tlbot_ctx_room(ctx));
	return tlbot_db_exec(ctx, sql, "itit", num, tlbot_ctx_sender(ctx),
	                     (int64_t)tlbot_ctx_now(ctx), tlbot_ctx_room(ctx));
}

/* After a settings change: plan again and tell when the next one is. */
static int
replan_reply(struct tlbot_ctx *ctx, const char *what)
{
	struct su_room r;
	char next[64], at[6], sat[6];

	if (su_replan(ctx, tlbot_ctx_room(ctx)) != 0 || need_room(ctx, &r) != 0)
		return -1;
	su_hhmm(r.minute, at);
	su_hhmm(r.summary_minute, sat);
	if (!r.enabled)
		tlbot_replyf(ctx, "%s. Stand-ups are off here (`%sstandup on` to resume).", what,
		             tlbot_ctx_prefix(ctx));
	else if (r.next_date) {
		char today[11] = "";

		tlbot_date_long(r.next_date, next, sizeof(next));
		tlbot_tz_date(r.tz, tlbot_ctx_now(ctx), today);
		tlbot_replyf(ctx, "%s. Next stand-up: %s%s, prompts at %s, summary at %s (%s)%s.",
		             what, next, strcmp(r.next_date, today) == 0 ? " (today)" : "", at, sat,
		             r.tz,
		             strcmp(r.next_date, today) != 0 &&
		                             su_summary_posted(ctx, r.room_id, today)
		                     ? "; today's stand-up has already run, so the new time starts "
		                       "with the next one"
		                     : "");
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
	int minute = (int)tlbot_args_val(args, 0)->n, have, cleared = 0; /* TIME: checked */
	char what[512], at[6], dtext[64], tzbuf[128];
	size_t i;
	int rc;

	if (tlbot_ctx_is_dm(ctx))
		return tlbot_fail(
		        ctx, "set the stand-up up in the team's room, not in a direct message");
	for (i = 1; i < args->argc; i++) {
		const char *a = args->argv[i];
		unsigned d = tlbot_days_parse(a);

		if (d && days == 0)
			days = d;
		else if (tz == NULL && tlbot_tz_valid(a))
			tz = a;
		else if (strchr(a, '/') || strcasecmp(a, "utc") == 0)
			return tlbot_fail(ctx,
			                  "unknown time zone '%s': use an IANA name such as "
			                  "Europe/London or Europe/Paris",
			                  a);
		else
			return tlbot_fail(ctx,
			                  "'%s' is neither a time zone (Europe/London) nor days "
			                  "(mon-fri, mon,wed,fri, daily)",
			                  a);
	}
	have = su_room_load(ctx, tlbot_ctx_room(ctx), &old);
	if (have < 0)
		return -1;
	if (tz == NULL) {
		/* a copy: old is released before the reply is written */
		snprintf(tzbuf, sizeof(tzbuf), "%s", have == 0 ? old.tz : su_room_tz(ctx, NULL));
		tz = tzbuf;
	}
	if (days == 0)
		days = have == 0 ? old.days : TLBOT_DAYS_WEEKDAYS;
	if (have == 0 && old.summary_explicit && old.summary_minute <= minute)
		cleared = 1;
	rc = tlbot_db_exec(
	        ctx,
	        "INSERT INTO standup_rooms(room_id, minute, tz, days, updated_by, updated_at)"
	        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(room_id) DO UPDATE SET"
	        " minute = excluded.minute, tz = excluded.tz, days = excluded.days, enabled = 1,"
	        " summary_minute = CASE WHEN ? THEN NULL ELSE summary_minute END,"
	        " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
	        "tititii", tlbot_ctx_room(ctx), (int64_t)minute, tz, (int64_t)days,
	        tlbot_ctx_sender(ctx), (int64_t)tlbot_ctx_now(ctx), (int64_t)cleared);
	if (have == 0)
		su_room_release(&old);
	if (rc != 0)
		return -1;
	su_hhmm(minute, at);
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
	int minute = (int)tlbot_args_val(args, 0)->n, prompt; /* TIME: checked */
	char what[128], at[6];

	if (need_room(ctx, &r) != 0)
		return -1;
	prompt = r.minute;
	su_room_release(&r);
	if (minute <= prompt) {
		su_hhmm(prompt, at);
		return tlbot_fail(ctx, "the summary must come after the prompts (%s)", at);
	}
	if (set_field(ctx,
	              "UPDATE standup_rooms SET summary_minute = ?, updated_by = ?,"
	              " updated_at = ? WHERE room_id = ?",
	              NULL, minute, 0) != 0)
		return -1;
	su_hhmm(minute, at);
	snprintf(what, sizeof(what), "Summary at %s", at);
	return replan_reply(ctx, what);
}

static int
cmd_questions(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct su_room r;
	int i;

	for (i = 0; i < 3; i++)
		if (args->argv[i][0] == '\0' || strlen(args->argv[i]) > 200)
			return tlbot_fail(ctx, "question %d must be 1 to 200 characters", i + 1);
	if (need_room(ctx, &r) != 0)
		return -1;
	su_room_release(&r);
	if (tlbot_db_exec(ctx,
	                  "UPDATE standup_rooms SET q_yesterday = ?, q_today = ?, q_blockers = ?,"
	                  " updated_by = ?, updated_at = ? WHERE room_id = ?",
	                  "ttttit", args->argv[0], args->argv[1], args->argv[2],
	                  tlbot_ctx_sender(ctx), (int64_t)tlbot_ctx_now(ctx),
	                  tlbot_ctx_room(ctx)) != 0)
		return -1;
	return tlbot_replyf(ctx, "Questions set: 1. %s 2. %s 3. %s", args->argv[0], args->argv[1],
	                    args->argv[2]);
}

static int
set_enabled(struct tlbot_ctx *ctx, int on)
{
	struct su_room r;
	int was;

	if (need_room(ctx, &r) != 0)
		return -1;
	was = r.enabled;
	su_room_release(&r);
	if (set_field(ctx,
	              "UPDATE standup_rooms SET enabled = ?, updated_by = ?, updated_at = ?"
	              " WHERE room_id = ?",
	              NULL, on, 0) != 0)
		return -1;
	if (on)
		return replan_reply(ctx, was ? "Stand-ups were already on" : "Stand-ups on");
	/* off: said once, with the way back */
	if (su_replan(ctx, tlbot_ctx_room(ctx)) != 0)
		return -1;
	return tlbot_replyf(ctx, "Stand-ups %s here: no prompts or summaries until `%sstandup on`.",
	                    was ? "paused" : "were already paused", tlbot_ctx_prefix(ctx));
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
	const char *m = args->argv[0]; /* ENUM dm|room, lower-cased by dispatch */

	if (need_room(ctx, &r) != 0)
		return -1;
	su_room_release(&r);
	if (set_field(ctx,
	              "UPDATE standup_rooms SET mode = ?, updated_by = ?, updated_at = ?"
	              " WHERE room_id = ?",
	              m, 0, 1) != 0)
		return -1;
	return replan_reply(ctx, strcmp(m, "dm") == 0 ? "Prompts by direct message"
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
		return tlbot_fail(ctx,
		                  "bad lead time '%s': minutes before the summary, e.g. 15, "
		                  "15m, 1h, or off",
		                  args->argv[0]);
	if (need_room(ctx, &r) != 0)
		return -1;
	su_room_release(&r);
	if (set_field(ctx,
	              "UPDATE standup_rooms SET remind_lead = ?, updated_by = ?,"
	              " updated_at = ? WHERE room_id = ?",
	              NULL, lead, 0) != 0)
		return -1;
	if (lead)
		snprintf(what, sizeof(what),
		         "Reminder %d minutes before the summary to those who "
		         "have not answered",
		         lead);
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
		return tlbot_fail(ctx,
		                  "unknown division '%s': use england-and-wales, scotland, "
		                  "northern-ireland or none",
		                  d);
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
	if (set_field(ctx,
	              "UPDATE standup_rooms SET division = ?, updated_by = ?, updated_at = ?"
	              " WHERE room_id = ?",
	              none ? NULL : d, 0, 1) != 0)
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
			snprintf(b, sizeof(b), "%s",
			         args->argc > 1 ? args->argv[1] : args->argv[0]);
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

	if (need_room(ctx, &r) != 0)
		return -1;
	su_room_release(&r);
	if (date_range(ctx, args, from, to) != 0)
		return -1;
	memcpy(date, from, sizeof(date));
	for (;;) {
		char next[11];
		int rc;

		if (add)
			rc = tlbot_db_exec(
			        ctx,
			        "INSERT OR IGNORE INTO standup_skips(room_id, date, added_by)"
			        " VALUES (?, ?, ?)",
			        "ttt", tlbot_ctx_room(ctx), date, tlbot_ctx_sender(ctx));
		else
			rc = tlbot_db_exec(
			        ctx, "DELETE FROM standup_skips WHERE room_id = ? AND date = ?",
			        "tt", tlbot_ctx_room(ctx), date);
		if (rc != 0)
			return -1;
		n += (int)tlbot_db_changes(ctx);
		if (strcmp(date, to) == 0 || tlbot_date_add(date, 1, next) != 0)
			break;
		memcpy(date, next, sizeof(date));
	}
	if (strcmp(from, to) == 0)
		snprintf(what, sizeof(what), add ? "No stand-up on %s" : "Stand-up back on %s",
		         from);
	else
		snprintf(what, sizeof(what),
		         add ? "No stand-ups from %s to %s" : "Stand-ups back from %s to %s", from,
		         to);
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

	if (user == NULL)
		return tlbot_fail(ctx, "who is away? name them as @user:server (or me)");
	if (strcmp(user, tlbot_ctx_sender(ctx)) != 0 &&
	    !tlbot_ctx_allowed(ctx, TLBOT_PERM_WRITE, tlbot_ctx_sender(ctx)))
		return tlbot_fail(ctx,
		                  "not allowed: marking someone else away needs a moderator; "
		                  "anyone may mark themselves (`%sstandup away me --until DATE`)",
		                  tlbot_ctx_prefix(ctx));
	if (until == NULL)
		return tlbot_fail(ctx, "until when? add --until DATE (%s)", tlbot_date_forms);
	if (su_room_load(ctx, tlbot_ctx_room(ctx), &r) == 0) {
		snprintf(tz, sizeof(tz), "%s", r.tz);
		su_room_release(&r);
	} else {
		snprintf(tz, sizeof(tz), "%s", su_room_tz(ctx, NULL));
	}
	/* DATE flags: dispatch checked them and hands YYYY-MM-DD */
	snprintf(ud, sizeof(ud), "%s", until);
	if (from)
		snprintf(fd, sizeof(fd), "%s", from);
	else if (tlbot_tz_date(tz, tlbot_ctx_now(ctx), fd) != 0)
		return tlbot_fail(ctx, "stand-up: cannot compute today's date in %s", tz);
	if (strcmp(fd, ud) > 0)
		return tlbot_fail(ctx, "--until %s is before --from %s", ud, fd);
	if (tlbot_db_exec(
	            ctx,
	            "INSERT INTO standup_away(room_id, user_id, from_date, until_date, set_by)"
	            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(room_id, user_id) DO UPDATE SET"
	            " from_date = excluded.from_date, until_date = excluded.until_date,"
	            " set_by = excluded.set_by",
	            "ttttt", tlbot_ctx_room(ctx), user, fd, ud, tlbot_ctx_sender(ctx)) != 0)
		return -1;
	{
		struct tlbot_msg m;

		tlbot_msg_init(&m);
		tlbot_msg_user(&m, user);
		tlbot_msg_textf(&m,
		                " is away from %s until %s: no stand-up prompts, shown as away.",
		                fd, ud);
		return tlbot_reply(ctx, &m);
	}
}

static int
cmd_back(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *user = target_user(ctx, args->argv[0]);
	struct tlbot_msg m;

	if (user == NULL)
		return tlbot_fail(ctx, "who is back? name them as @user:server (or me)");
	if (strcmp(user, tlbot_ctx_sender(ctx)) != 0 &&
	    !tlbot_ctx_allowed(ctx, TLBOT_PERM_WRITE, tlbot_ctx_sender(ctx)))
		return tlbot_fail(ctx, "not allowed: only a moderator may mark someone else back");
	if (tlbot_db_exec(ctx, "DELETE FROM standup_away WHERE room_id = ? AND user_id = ?", "tt",
	                  tlbot_ctx_room(ctx), user) != 0)
		return -1;
	if (tlbot_db_changes(ctx) == 0)
		return tlbot_fail(ctx, "%s was not marked away here", user);
	tlbot_msg_init(&m);
	tlbot_msg_user(&m, user);
	tlbot_msg_text(&m, " is back: prompted again from the next stand-up.");
	return tlbot_reply(ctx, &m);
}

/* The room's settings, one line each: time, mode and questions, the
 * reminder, bank holidays, the next date. */
static void
show_settings(struct tlbot_ctx *ctx, struct tlbot_msg *m, const struct su_room *r)
{
	char at[6], sat[6], dtext[64], date[64];

	su_hhmm(r->minute, at);
	su_hhmm(r->summary_minute, sat);
	tlbot_days_format(r->days, dtext, sizeof(dtext));
	tlbot_msg_bold(m, "Stand-up");
	tlbot_msg_textf(m, " — %s", r->enabled ? "on" : "off");
	tlbot_msg_br(m);
	tlbot_msg_textf(m, "Prompts at %s %s, %s; summary at %s.", at, r->tz, dtext, sat);
	tlbot_msg_br(m);
	tlbot_msg_textf(m, "Asked %s. Questions: 1. %s 2. %s 3. %s",
	                strcmp(r->mode, "dm") == 0 ? "by direct message" : "in the room", r->q[0],
	                r->q[1], r->q[2]);
	tlbot_msg_br(m);
	if (r->remind_lead)
		tlbot_msg_textf(m, "Reminder %d minutes before the summary.", r->remind_lead);
	else
		tlbot_msg_text(m, "No reminder before the summary.");
	tlbot_msg_br(m);
	if (r->division)
		tlbot_msg_textf(m, "Bank holidays skipped: %s (GOV.UK).", r->division);
	else
		su_textf_code(m,
		              "Bank holidays are not skipped (`%sstandup holidays "
		              "england-and-wales|scotland|northern-ireland`).",
		              tlbot_ctx_prefix(ctx));
	tlbot_msg_br(m);
	if (r->enabled && r->next_date) {
		tlbot_date_long(r->next_date, date, sizeof(date));
		tlbot_msg_textf(m, "Next stand-up: %s.", date);
		tlbot_msg_br(m);
	}
}

/* The coming skip dates and away periods of the room (20 of each). */
static void
show_skips_and_leave(struct tlbot_ctx *ctx, struct tlbot_msg *m, const char *room_id,
                     const char *today)
{
	struct tlbot_db_rows q;
	int n = 0;

	if (tlbot_db_query(ctx, &q,
	                   "SELECT date FROM standup_skips WHERE room_id = ? AND date >= ?"
	                   " ORDER BY date LIMIT 20",
	                   "tt", room_id, today) == 0) {
		while (tlbot_db_next(&q) > 0)
			tlbot_msg_textf(m, "%s%s",
			                n++ ? ", " : "Skip dates: ", tlbot_db_col_text(&q, 0));
		tlbot_db_done(&q);
		if (n)
			tlbot_msg_br(m);
	}
	if (tlbot_db_query(ctx, &q,
	                   "SELECT user_id, from_date, until_date FROM standup_away"
	                   " WHERE room_id = ? AND until_date >= ? ORDER BY from_date, user_id"
	                   " LIMIT 20",
	                   "tt", room_id, today) == 0) {
		n = 0;
		while (tlbot_db_next(&q) > 0) {
			const char *fd = tlbot_db_col_text(&q, 1);
			const char *ud = tlbot_db_col_text(&q, 2);

			tlbot_msg_text(m, n++ ? "; " : "Leave: ");
			tlbot_msg_user(m, tlbot_db_col_text(&q, 0));
			if (fd && strcmp(fd, today) <= 0)
				tlbot_msg_textf(m, " away until %s", ud);
			else
				tlbot_msg_textf(m, " away %s to %s", fd, ud);
		}
		tlbot_db_done(&q);
		if (n)
			tlbot_msg_br(m);
	}
}

/* Who is asked: the team (or the room's members), with their own zone
 * and away period when they have one. */
static void
show_people(struct tlbot_ctx *ctx, struct tlbot_msg *m, const struct su_room *r, const char *today)
{
	struct su_list members = {0};
	char until[11];
	int roster = 0;
	size_t i;

	if (su_members(ctx, r->room_id, today, &members, &roster) == 0) {
		if (members.n) {
			tlbot_msg_text(m, roster ? "Team: " : "Prompted (the room's members): ");
			for (i = 0; i < members.n; i++) {
				char tz[64];

				if (i)
					tlbot_msg_text(m, ", ");
				tlbot_msg_user(m, members.v[i]);
				tlbot_user_tz(ctx, members.v[i], r->tz, tz, sizeof(tz));
				if (strcmp(tz, r->tz) != 0)
					tlbot_msg_textf(m, " (%s)", tz);
				if (su_is_away(ctx, r->room_id, members.v[i], today, until))
					tlbot_msg_textf(m, " (away until %s)", until);
			}
			tlbot_msg_br(m);
		}
		if (!roster)
			su_textf_code(m,
			              "No team roster here, so everyone in the room is asked; "
			              "`%steam add @user --role R` makes a roster that is asked "
			              "instead.",
			              tlbot_ctx_prefix(ctx));
	}
	su_list_release(&members);
}

static int
cmd_show(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct su_room r;
	struct tlbot_msg m;
	char today[11];

	(void)args;
	if (need_room(ctx, &r) != 0)
		return -1;
	tlbot_tz_date(r.tz, tlbot_ctx_now(ctx), today);
	if (r.enabled && (r.next_date == NULL || strcmp(r.next_date, today) < 0)) {
		/* the plan is stale (a summary job that failed does not plan the
		 * next one): plan again */
		su_room_release(&r);
		if (su_replan(ctx, tlbot_ctx_room(ctx)) != 0 || need_room(ctx, &r) != 0)
			return -1;
	}
	tlbot_msg_init(&m);
	show_settings(ctx, &m, &r);
	show_skips_and_leave(ctx, &m, r.room_id, today);
	show_people(ctx, &m, &r, today);
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
	if (tlbot_tz_date(su_room_tz(ctx, have == 0 ? &r : NULL), tlbot_ctx_now(ctx), today) != 0) {
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
	const struct tlbot_value *dv = tlbot_args_flag_val(args, "days"); /* checked: 1..366 */
	long days = dv ? (long)dv->n : 7;
	struct tlbot_msg m;
	struct tlbot_db_rows q;
	int n = 0, rc;
	if (tlbot_db_query(ctx, &q,
	                   "SELECT date, kind, text FROM standup_summaries WHERE room_id = ?"
	                   " AND at >= ? AND kind IN ('scheduled', 'missed') ORDER BY at DESC",
	                   "ti", tlbot_ctx_room(ctx),
	                   (int64_t)(tlbot_ctx_now(ctx) - days * 86400)) != 0)
		return -1;
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Stand-up history");
	tlbot_msg_textf(&m, " (last %ld day%s)", days, days == 1 ? "" : "s");
	tlbot_msg_br(&m);
	while ((rc = tlbot_db_next(&q)) > 0) {
		const char *date = tlbot_db_col_text(&q, 0);
		const char *kind = tlbot_db_col_text(&q, 1);
		const char *text = tlbot_db_col_text(&q, 2);
		char longdate[64];

		tlbot_date_long(date, longdate, sizeof(longdate));
		/* stop before the message would overflow */
		if (su_msg_too_big(&m) ||
		    m.plain.len + m.html.len + (text ? strlen(text) : 0) * 3 + 1024 >
		            TLBOT_MSG_MAX - 4096) {
			tlbot_msg_br(&m);
			tlbot_msg_textf(&m, "(older summaries left out: try a smaller --days)");
			break;
		}
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
	tlbot_db_done(&q);
	if (rc < 0) {
		tlbot_msg_release(&m);
		return -1;
	}
	if (n == 0)
		tlbot_msg_text(&m, "No stand-up summaries in that period.");
	return tlbot_reply(ctx, &m);
}

/* ---- the table entry ---- */

static const char *const aliases[] = {"su", NULL};

#define SU_ANSWER {TLBOT_TEXT("answer", 0), .mode = TLBOT_OPTIONAL, .desc = "your answer"}
static const struct tlbot_param answer_params[] = {SU_ANSWER, TLBOT_PARAMS_END};
static const struct tlbot_param schedule_params[] = {
        {TLBOT_TIME("time"), .desc = "when the prompts go out"},
        {TLBOT_TEXT("zone", 0), .mode = TLBOT_OPTIONAL | TLBOT_WORD, .label = "ZONE",
         .desc = "an IANA time zone"},
        {TLBOT_TEXT("days", 0), .mode = TLBOT_OPTIONAL | TLBOT_WORD, .label = "DAYS",
         .desc = "mon-fri, mon,wed,fri"},
        TLBOT_PARAMS_END};
static const struct tlbot_param summary_at_params[] = {
        {TLBOT_TIME("time"), .desc = "when the summary is posted"}, TLBOT_PARAMS_END};
static const struct tlbot_param questions_params[] = {
        {TLBOT_TEXT("q1", 0), .mode = TLBOT_WORD, .desc = "the first question"},
        {TLBOT_TEXT("q2", 0), .mode = TLBOT_WORD, .desc = "the second question"},
        {TLBOT_TEXT("q3", 0), .mode = TLBOT_WORD, .desc = "the third question"},
        TLBOT_PARAMS_END};
static const struct tlbot_param mode_params[] = {
        {TLBOT_ENUM("mode", "dm|room"), .desc = "ask by DM or in the room"}, TLBOT_PARAMS_END};
static const struct tlbot_param reminder_params[] = {
        {TLBOT_TEXT("minutes", 0), .mode = TLBOT_WORD, .label = "MINUTES|off",
         .desc = "minutes before the summary, or off"},
        TLBOT_PARAMS_END};
static const struct tlbot_param holidays_params[] = {
        {TLBOT_TEXT("division", 0), .mode = TLBOT_WORD,
         .label = "england-and-wales|scotland|northern-ireland|none", .desc = "whose bank holidays"},
        TLBOT_PARAMS_END};
static const struct tlbot_param skip_params[] = {
        {TLBOT_TEXT("from", 0), .mode = TLBOT_WORD, .label = "DATE", .desc = "the date (or FROM..TO)"},
        {TLBOT_TEXT("to", 0), .mode = TLBOT_OPTIONAL | TLBOT_WORD, .label = "DATE",
         .desc = "the last date of a range"},
        TLBOT_PARAMS_END};
static const struct tlbot_param away_params[] = {
        {TLBOT_USER("who"), .label = "@user|me", .desc = "who is away"},
        {TLBOT_DATE("--until"), .desc = "the last day away"},
        {TLBOT_DATE("--from"), .desc = "the first day away (default today)"},
        TLBOT_PARAMS_END};
static const struct tlbot_param back_params[] = {
        {TLBOT_USER("who"), .label = "@user|me", .desc = "who is back"}, TLBOT_PARAMS_END};
static const struct tlbot_param history_params[] = {
        {TLBOT_INT("--days", 1, 366), .desc = "how many days back"}, TLBOT_PARAMS_END};

static const struct tlbot_subcmd subcmds[] = {
        {"y:", "give your stand-up answer (yesterday, today, blockers)", TLBOT_PERM_ANYONE,
         answer_params, su_cmd_answer, "y: finished C-12 interviews t: start E-34 b: none", 0},
        {"t:", "give your stand-up answer starting with today", TLBOT_PERM_ANYONE, answer_params,
         su_cmd_answer, "t: start E-34 b: none", 0},
        {"b:", "give your stand-up blockers", TLBOT_PERM_ANYONE, answer_params, su_cmd_answer,
         "b: waiting for the data sharing agreement", 0},
        {"schedule", "set the stand-up time, zone (IANA) and days (mon-fri, mon,wed,fri)",
         TLBOT_PERM_WRITE, schedule_params, cmd_schedule, "schedule 09:30 Europe/London mon-fri",
         0},
        {"summary-at", "when the summary is posted (default 45 min after)", TLBOT_PERM_WRITE,
         summary_at_params, cmd_summary_at, "summary-at 10:15", 0},
        {"questions", "set the three questions", TLBOT_PERM_WRITE, questions_params, cmd_questions,
         "questions \"Done?\" \"Doing?\" \"Stuck?\"", 0},
        {"on", "resume stand-ups", TLBOT_PERM_WRITE, NULL, cmd_on, "on", 0},
        {"off", "pause stand-ups", TLBOT_PERM_WRITE, NULL, cmd_off, "off", 0},
        {"mode", "ask each person by DM, or once in the room", TLBOT_PERM_WRITE, mode_params,
         cmd_mode, "mode room", 0},
        {"reminder", "remind those who have not answered before the summary", TLBOT_PERM_WRITE,
         reminder_params, cmd_reminder, "reminder 15", 0},
        {"holidays", "skip that nation's bank holidays (GOV.UK)", TLBOT_PERM_WRITE, holidays_params,
         cmd_holidays, "holidays england-and-wales", 0},
        {"skip", "no stand-up on a date or a range (FROM TO, FROM..TO)", TLBOT_PERM_WRITE,
         skip_params, cmd_skip, "skip 2026-12-24..2026-12-31", 0},
        {"unskip", "undo a skip", TLBOT_PERM_WRITE, skip_params, cmd_unskip, "unskip 2026-12-24",
         0},
        {"away", "someone is on leave: not prompted, shown as away", TLBOT_PERM_ANYONE, away_params,
         cmd_away, "away me --until friday", 0},
        {"back", "end someone's away period", TLBOT_PERM_ANYONE, back_params, cmd_back, "back me", 0},
        {"show", "the stand-up settings, team and next date", TLBOT_PERM_ANYONE, NULL, cmd_show,
         "show", TLBOT_SUB_READS},
        {"summary", "post today's summary so far", TLBOT_PERM_ANYONE, NULL, cmd_summary, "summary",
         0},
        {"history", "past summaries (default 7 days)", TLBOT_PERM_ANYONE, history_params,
         cmd_history, "history --days 14", TLBOT_SUB_READS},
        {NULL, NULL, 0, NULL, NULL, NULL, 0},
};

/* data protection: commands/standup_privacy.c */
int standup_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int standup_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                        struct tlbot_dp_report *report);
int standup_retain(struct tlbot_ctx *ctx, time_t before, struct tlbot_dp_report *report);

const struct tlbot_cmd tlbot_cmd_standup = {
        .name = "standup",
        .aliases = aliases,
        .summary = "daily stand-ups: prompts, answers, reminders and a summary that knows the "
                   "team's challenges and experiments",
        .help = "Answer a DM prompt by replying to it; edit your answer to change it.",
        .subcmds = subcmds,
        .schema = &schema,
        .jobs = su_jobs,
        .on_message = su_on_message,
        .user_tz_changed = su_tz_changed,
        .about_user = su_about_user,
        .export_user = standup_export_user,
        .forget_user = standup_forget_user,
        .retain = standup_retain,
};
