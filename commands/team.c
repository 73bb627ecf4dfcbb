/* !team: who is on this room's team, in which role, for which tour of duty.
 * One room is one team; it has a name, an optional region and a lead. A
 * tour of duty ending within 14 days is flagged to the team's lead.
 *
 * Tables (component "team"; other families read them):
 *   teams(room_id, name, region, updated_at, lead)
 *   team_members(room_id, user_id, role, from_date, until_date, added_by, added_at)
 * Job:
 *   team.tour  key team.tour.<room>|<user>|<n>, 09:00 local 14 days before
 *              a member's until date (n from the "team.tour" counter, so a
 *              re-added member never collides with a fired/cancelled key)
 *
 * The team's lead is the one set with `!team set --lead`; when none is set,
 * the lead of the room's most recent active challenge.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "people.h"
#include "team.h"
#include "tlbot/command.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"

#define PAGE_SIZE      20
#define NAME_MAX_CHARS 100
#define TOUR_WARN_DAYS 14
#define REMIND_HOUR    9

static const char *const migrations[] = {
        /* 1 */
        "CREATE TABLE teams ("
        "  room_id TEXT PRIMARY KEY,"
        "  name TEXT,"
        "  region TEXT,"
        "  updated_at INTEGER,"
        "  lead TEXT);"
        "CREATE TABLE team_members ("
        "  room_id TEXT NOT NULL,"
        "  user_id TEXT NOT NULL,"
        "  role TEXT,"
        "  from_date TEXT,"  /* YYYY-MM-DD */
        "  until_date TEXT," /* YYYY-MM-DD */
        "  added_by TEXT,"
        "  added_at INTEGER,"
        "  PRIMARY KEY (room_id, user_id));"
        "CREATE INDEX team_members_user ON team_members(user_id);",
        NULL};

static const char *const known_roles[] = {"data", "digital", "policy", "frontline", NULL};

#define TEAM_X_FIELD(...) REC_X_FIELD(struct team_member, __VA_ARGS__)
static const struct rec_field member_fields[] = {
        TEAM_MEMBER_FIELDS(TEAM_X_FIELD){NULL, NULL, 0, 0, 0, NULL, 0}};
const struct rec_desc tlbot_team_member_desc = {"team_members", NULL, NULL, NULL, member_fields};
#define MEMBERS    (&tlbot_team_member_desc)
#define FIELD(col) rec_field_by_column(MEMBERS, col)

/* ------------------------------------------------------------------ store */

/* A store error is not the user's fault: the core rolls the batch back and
 * retries it later. */
static int
db_fail(struct tlbot_ctx *ctx)
{
	return tlbot_db_error(ctx, "team");
}

/* A borrowed string as the member of a key or of a record to insert
 * (record.c only reads those). */
static char *
mut(const char *s)
{
	return (char *)(uintptr_t)s;
}

/* Load user's membership of room into m (all NULL when there is none).
 * 0, 1 none, -1 (ctx marked); rec_release(MEMBERS, m) in every case. */
static int
member_load(struct tlbot_ctx *ctx, const char *room, const char *user, struct team_member *m)
{
	struct team_member key = {.room_id = mut(room), .user_id = mut(user)};

	memset(m, 0, sizeof(*m));
	return rec_load_key(ctx, MEMBERS, &key, m);
}

/* ----------------------------------------------------------------- dates */

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

static int
at_remind_hour(struct tlbot_ctx *ctx, int64_t z, time_t *out)
{
	int y, m, d;

	tlbot_date_civil(z, &y, &m, &d);
	return tlbot_tz_mktime(tlbot_ctx_default_tz(ctx), y, m, d, REMIND_HOUR, 0, out);
}

/* ------------------------------------------------------------- people */

static int
check_text(struct tlbot_ctx *ctx, const char *what, const char *s, size_t max)
{
	size_t n = tlbot_utf8_len(s);

	if (n > max)
		return tlbot_fail(ctx, "the %s is too long (%zu characters, at most %zu)", what, n,
		                  max);
	if (strpbrk(s, "\r\n"))
		return tlbot_fail(ctx, "the %s must be one line", what);
	return 0;
}

static int
is_none(const char *v)
{
	return v && (*v == '\0' || strcasecmp(v, "none") == 0);
}

/* -------------------------------------------------------------- tours */

/* The team's lead: the one set with !team set --lead, else the lead of the
 * room's most recent active challenge. 0 and a new string (or NULL when
 * there is none), -1 on error. */
/* tlbot_leads callback: keep the lead of the last active record. */
static void
last_active_lead(void *arg, const char *user_id, int64_t num, const char *status)
{
	char **out = arg, *copy;

	(void)num;
	if (status == NULL || strcmp(status, "active") != 0 || (copy = strdup(user_id)) == NULL)
		return;
	free(*out);
	*out = copy;
}

/* struct tlbot_cmd.room_profile: the team's name and region. */
/* struct tlbot_cmd.roster: who is on the team on date (see enum
 * tlbot_roster_span). */
static int
roster(struct tlbot_ctx *ctx, const char *room_id, const char *date,
       enum tlbot_roster_span span, void (*add)(void *arg, const char *user_id), void *arg)
{
	struct tlbot_db_rows q;
	struct team_member m;
	int rc, n = 0;

	if (span == TLBOT_ROSTER_NOT_ENDED)
		rc = rec_query(ctx, MEMBERS, &q,
		               "WHERE x.room_id = ? AND (x.until_date IS NULL OR x.until_date >= ?)"
		               " ORDER BY x.added_at, x.user_id",
		               "tt", room_id, date);
	else
		rc = rec_query(ctx, MEMBERS, &q,
		               "WHERE x.room_id = ?"
		               " AND (x.from_date IS NULL OR x.from_date = '' OR x.from_date <= ?)"
		               " AND (x.until_date IS NULL OR x.until_date = '' OR x.until_date >= ?)"
		               " ORDER BY x.rowid",
		               "ttt", room_id, date, date);
	if (rc != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		if (rec_read(MEMBERS, &q, &m) != 0) {
			rc = -1;
			break;
		}
		add(arg, m.user_id);
		rec_release(MEMBERS, &m);
		n++;
	}
	tlbot_db_done(&q);
	return rc < 0 ? -1 : n;
}

static int
room_profile(struct tlbot_ctx *ctx, const char *room_id, char **name, char **region)
{
	struct tlbot_db_rows q;
	int rc;

	*name = *region = NULL;
	if (tlbot_db_query(ctx, &q, "SELECT name, region FROM teams WHERE room_id = ?", "t",
	                   room_id) != 0)
		return -1;
	rc = tlbot_db_next(&q);
	if (rc > 0) {
		*name = tlbot_db_col_dup(&q, 0);
		*region = tlbot_db_col_dup(&q, 1);
	}
	tlbot_db_done(&q);
	return rc < 0 ? -1 : 0;
}

static int
team_lead(struct tlbot_ctx *ctx, const char *room, char **out)
{
	int rc = tlbot_db_text(ctx, out, "SELECT lead FROM teams WHERE room_id = ?", "t", room);

	if (rc < 0)
		return -1;
	if (*out)
		return 0;
	/* no team lead: the lead of the room's newest active challenge, asked
	 * of the challenge family (never its tables) */
	rc = tlbot_leads(ctx, "C", room, 0, last_active_lead, out);
	return rc < 0 ? -1 : 0;
}

/* (Re)schedule the end-of-tour flag for user in the ctx room: cancel the
 * pending one and, when until is set and still ahead, flag it at 09:00
 * TOUR_WARN_DAYS before (or the next 09:00 when that has passed). */
static int
schedule_tour(struct tlbot_ctx *ctx, const char *room, const char *user, const char *until)
{
	char key[700], *payload = NULL;
	int64_t end, day, n;
	time_t at;
	int rc;

	snprintf(key, sizeof(key), "team.tour.%s|%s|*", room, user);
	if (tlbot_job_cancel(ctx, key) < 0)
		return -1;
	if (until == NULL || date_days(until, &end) != 0)
		return 0;
	day = end - TOUR_WARN_DAYS;
	if (day < today(ctx))
		day = today(ctx);
	if (at_remind_hour(ctx, day, &at) != 0)
		return -1;
	if (at <= tlbot_ctx_now(ctx)) {
		day++;
		if (at_remind_hour(ctx, day, &at) != 0)
			return -1;
	}
	if (day > end)
		return 0; /* ends today: too late to flag */
	n = tlbot_ctx_next_id(ctx, "team.tour");
	if (n < 0)
		return -1;
	snprintf(key, sizeof(key), "team.tour.%s|%s|%lld", room, user, (long long)n);
	if (tlbot_db_text(ctx, &payload, "SELECT json_object('user', ?, 'until', ?)",
	               "tt", user, until) != 0 ||
	    payload == NULL) {
		free(payload);
		return -1;
	}
	rc = tlbot_job_schedule(ctx, "team.tour", key, room, at, payload) < 0 ? -1 : 0;
	free(payload);
	return rc;
}

/* The heads-up about user's tour ending on until (left days from today). */
static void
tour_msg(struct tlbot_ctx *ctx, struct tlbot_msg *m, const struct team_member *tm,
         const char *team, int64_t left)
{
	tlbot_msg_init(m);
	tlbot_msg_text(m, "Heads-up: the tour of duty of ");
	tlbot_msg_user(m, tm->user_id);
	if (tm->role)
		tlbot_msg_textf(m, " (%s)", tm->role);
	tlbot_msg_text(m, " with ");
	tlbot_msg_text(m, team ? team : "this team");
	tlbot_msg_textf(m, " ends on %s", tm->until_date);
	if (left > 1)
		tlbot_msg_textf(m, ", in %lld days", (long long)left);
	else if (left == 1)
		tlbot_msg_text(m, ", tomorrow");
	else
		tlbot_msg_text(m, ", today");
	tlbot_msg_textf(m,
	                ". Plan the hand-over, or extend it with %steam add %s --role %s"
	                " --until DATE.",
	                tlbot_ctx_prefix(ctx), tm->user_id, tm->role ? tm->role : "ROLE");
}

/* Tell the team's lead about the member's tour ending: by DM, else in the
 * room with a mention (or how to set a lead when there is none). */
static int
tour_tell(struct tlbot_ctx *ctx, const char *room, const struct team_member *tm)
{
	char *lead = NULL, *team = NULL;
	struct tlbot_msg m;
	int64_t end = 0;
	int rc = -1;

	if (team_lead(ctx, room, &lead) != 0 ||
	    tlbot_db_text(ctx, &team, "SELECT name FROM teams WHERE room_id = ?", "t", room) < 0)
		goto out;
	if (team == NULL)
		team = tlbot_ctx_room_name(ctx, room);
	date_days(tm->until_date, &end);
	tour_msg(ctx, &m, tm, team, end - today(ctx));
	if (lead && tlbot_ctx_dm_enabled(ctx, lead)) {
		rc = tlbot_send_dm(ctx, lead, &m);
	} else {
		if (lead) {
			tlbot_msg_text(&m, " ");
			tlbot_msg_mention(&m, lead);
		} else {
			tlbot_msg_textf(&m,
			                " (This team has no lead to tell: set one with %steam set"
			                " --lead @name.)",
			                tlbot_ctx_prefix(ctx));
		}
		rc = tlbot_send_room(ctx, room, &m);
	}
out:
	free(lead);
	free(team);
	return rc;
}

static int
tour_fire_(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	char *user = NULL, *until = NULL;
	struct team_member tm;
	struct tlbot_db_rows q;
	int rc = -1, have;

	if (job->missed || job->room_id == NULL)
		return 0;
	tlbot_db_query(ctx, &q, "SELECT json_extract(?1, '$.user'), json_extract(?1, '$.until')", "t",
	         job->payload);
	if (q.stmt == NULL)
		return -1;
	if (tlbot_db_next(&q) > 0 && tlbot_db_col_text(&q, 0) && tlbot_db_col_text(&q, 1)) {
		user = strdup(tlbot_db_col_text(&q, 0));
		until = strdup(tlbot_db_col_text(&q, 1));
	}
	tlbot_db_done(&q);
	if (user == NULL || until == NULL) {
		free(user);
		free(until);
		return 0;
	}
	/* still on the team with the same end date? */
	have = member_load(ctx, job->room_id, user, &tm);
	if (have == 0 && tm.until_date && strcmp(tm.until_date, until) == 0)
		rc = tour_tell(ctx, job->room_id, &tm);
	else if (have >= 0)
		rc = 0;
	rec_release(MEMBERS, &tm);
	free(user);
	free(until);
	return rc;
}

/* Job entry point: failures inside are store (or memory) errors, so the
 * core rolls back and retries on a later tick. */
static int
tour_fire(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	return tour_fire_(ctx, job) != 0 ? tlbot_db_error(ctx, "team.tour flag") : 0;
}

/* ------------------------------------------------------------ handlers */

/* An optional date flag as dispatch checked it (YYYY-MM-DD, or "none"):
 * out[0] is '\0' when "none" clears it. */
static void
date_flag(const char *v, char out[11])
{
	snprintf(out, 11, "%s", is_none(v) ? "" : v);
}

/* The flags of !team add: the role (checked, a known one in its own
 * spelling) and the dates, in order. 0 or -1 (failed). */
static int
add_flags(struct tlbot_ctx *ctx, const struct tlbot_args *args, char *role, size_t rolelen,
          char from[11], char until[11])
{
	const char *role_v = tlbot_args_get(args, "role"), *from_v = tlbot_args_get(args, "from");
	const char *until_v = tlbot_args_get(args, "until");
	int64_t d_from, d_until;
	size_t i;

	if (role_v == NULL || *role_v == '\0')
		return tlbot_fail(ctx,
		                  "missing --role: give data, digital, policy, frontline or any"
		                  " short text: usage: %steam add @user --role ROLE [--from DATE]"
		                  " [--until DATE]",
		                  tlbot_ctx_prefix(ctx));
	if (check_text(ctx, "role", role_v, TEAM_ROLE_MAX) != 0)
		return -1;
	snprintf(role, rolelen, "%s", role_v);
	for (i = 0; known_roles[i]; i++)
		if (strcasecmp(known_roles[i], role) == 0)
			snprintf(role, rolelen, "%s", known_roles[i]);
	if (from_v)
		date_flag(from_v, from);
	if (until_v)
		date_flag(until_v, until);
	if (until[0] && date_days(until, &d_until) == 0 && d_until < today(ctx))
		return tlbot_fail(ctx,
		                  "--until %s is in the past: a tour of duty ends today or later"
		                  " (%s)",
		                  until, tlbot_date_forms);
	if (from[0] && until[0] && date_days(from, &d_from) == 0 &&
	    date_days(until, &d_until) == 0 && d_until < d_from)
		return tlbot_fail(ctx, "--until %s is before --from %s", until, from);
	return 0;
}

/* Change member m's role and tour (nf, nu: dates or NULL; they may be
 * m's own) and reschedule its flag. 0 or -1 (ctx marked). */
static int
set_member(struct tlbot_ctx *ctx, struct team_member *m, const char *role, const char *nf,
           const char *nu)
{
	if (rec_set_text(ctx, MEMBERS, m, FIELD("role"), role, "edited") != 0 ||
	    rec_set_text(ctx, MEMBERS, m, FIELD("from_date"), nf, "edited") != 0 ||
	    rec_set_text(ctx, MEMBERS, m, FIELD("until_date"), nu, "edited") != 0 ||
	    schedule_tour(ctx, m->room_id, m->user_id, m->until_date) != 0)
		return db_fail(ctx);
	return 0;
}

/* Put user on the ctx room's team as role, or change their role and the
 * dates given (from_v / until_v: the flag was given; from / until its
 * date, "" for none). *is_new tells which. 0 or -1 (failed or ctx marked). */
static int
add_member(struct tlbot_ctx *ctx, const char *user, const char *role, int from_v,
           const char *from, int until_v, const char *until, int *is_new)
{
	const char *room = tlbot_ctx_room(ctx), *nf, *nu;
	struct team_member m;
	int64_t d_from, d_until;
	int have, rc;

	have = member_load(ctx, room, user, &m);
	if (have < 0)
		return db_fail(ctx);
	*is_new = have == 1;
	/* a flag not given keeps the current value; "none" clears it */
	nf = from_v ? (from[0] ? from : NULL) : m.from_date;
	nu = until_v ? (until[0] ? until : NULL) : m.until_date;
	if (nf && nu && date_days(nf, &d_from) == 0 && date_days(nu, &d_until) == 0 &&
	    d_until < d_from) {
		rc = tlbot_fail(ctx, "the tour of %s would end (%s) before it starts (%s)", user, nu,
		                nf);
	} else if (have == 1) {
		struct team_member n = {.room_id = mut(room),
		                        .user_id = mut(user),
		                        .role = mut(role),
		                        .from_date = mut(nf),
		                        .until_date = mut(nu),
		                        .added_by = mut(tlbot_ctx_sender(ctx)),
		                        .added_at = (int64_t)tlbot_ctx_now(ctx)};

		rc = rec_insert(ctx, MEMBERS, &n);
		if (rc == 0)
			rc = schedule_tour(ctx, room, user, nu);
		if (rc != 0)
			rc = db_fail(ctx);
	} else {
		rc = set_member(ctx, &m, role, nf, nu);
	}
	rec_release(MEMBERS, &m);
	return rc;
}

static int
cmd_add(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	int from_v = tlbot_args_get(args, "from") != NULL;
	int until_v = tlbot_args_get(args, "until") != NULL;
	char role[4 * TEAM_ROLE_MAX + 1], from[11] = "", until[11] = "";
	struct tlbot_users u = {0}, added = {0};
	struct tlbot_msg m;
	size_t i;
	int rc = -1, is_new = 0;

	if (add_flags(ctx, args, role, sizeof(role), from, until) != 0)
		return -1;
	if (tlbot_collect_users(ctx, args, 0, &u) != 0)
		goto out;
	if (u.n == 0) {
		tlbot_fail(ctx,
		           "missing user: usage: %steam add @user --role ROLE [--from DATE]"
		           " [--until DATE]",
		           tlbot_ctx_prefix(ctx));
		goto out;
	}
	for (i = 0; i < u.n; i++) {
		if (add_member(ctx, u.v[i], role, from_v, from, until_v, until, &is_new) != 0)
			goto out;
		if (is_new && tlbot_users_add(&added, u.v[i]) != 0) {
			db_fail(ctx);
			goto out;
		}
	}
	tlbot_msg_init(&m);
	for (i = 0; i < u.n; i++) {
		is_new = tlbot_users_has(&added, u.v[i]);
		if (i)
			tlbot_msg_text(&m, " ");
		tlbot_msg_text(&m, is_new ? "Added " : "Updated ");
		tlbot_msg_user(&m, u.v[i]);
		tlbot_msg_textf(&m, is_new ? " to the team as %s" : ": %s", role);
		if (from[0])
			tlbot_msg_textf(&m, ", from %s", from);
		if (until[0])
			tlbot_msg_textf(&m, ", until %s", until);
		tlbot_msg_text(&m, ".");
	}
	rc = tlbot_reply(ctx, &m);
out:
	tlbot_users_release(&u);
	tlbot_users_release(&added);
	return rc;
}

static int
cmd_remove(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *room = tlbot_ctx_room(ctx);
	struct tlbot_users u = {0}, removed = {0}, absent = {0};
	struct tlbot_msg m;
	size_t i;
	int rc = -1, n;

	if (tlbot_collect_users(ctx, args, 0, &u) != 0)
		goto out;
	for (i = 0; i < u.n; i++) {
		struct team_member key = {.room_id = mut(room), .user_id = u.v[i]};

		n = rec_delete(ctx, MEMBERS, &key);
		if (n < 0)
			goto dberr;
		if (n == 0) {
			if (tlbot_users_add(&absent, u.v[i]) != 0)
				goto dberr;
			continue;
		}
		if (tlbot_users_add(&removed, u.v[i]) != 0 || schedule_tour(ctx, room, u.v[i], NULL) != 0)
			goto dberr;
	}
	if (removed.n == 0) {
		tlbot_fail(ctx, "%s %s not on this team: %steam list shows who is",
		           u.n == 1 ? u.v[0] : "they", u.n == 1 ? "is" : "are",
		           tlbot_ctx_prefix(ctx));
		goto out;
	}
	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "Removed ");
	for (i = 0; i < removed.n; i++) {
		if (i)
			tlbot_msg_text(&m, i + 1 == removed.n ? " and " : ", ");
		tlbot_msg_user(&m, removed.v[i]);
	}
	tlbot_msg_text(&m, " from the team.");
	if (absent.n) {
		tlbot_msg_text(&m, " Not on the team: ");
		for (i = 0; i < absent.n; i++) {
			if (i)
				tlbot_msg_text(&m, ", ");
			tlbot_msg_user(&m, absent.v[i]);
		}
		tlbot_msg_text(&m, ".");
	}
	rc = tlbot_reply(ctx, &m);
	goto out;
dberr:
	rc = db_fail(ctx);
out:
	tlbot_users_release(&u);
	tlbot_users_release(&removed);
	tlbot_users_release(&absent);
	return rc;
}

/* One member's line (a table row in HTML): who, role, from, until, and a
 * warning when the tour has ended or ends within TOUR_WARN_DAYS. */
static void
member_row(struct tlbot_msg *m, const struct team_member *tm, int64_t now_day)
{
	int64_t end;

	tlbot_msg_plain(m, "\n• ");
	tlbot_msg_html(m, "<tr><td>");
	tlbot_msg_user(m, tm->user_id);
	tlbot_msg_plain(m, " — ");
	tlbot_msg_html(m, "</td><td>");
	tlbot_msg_text(m, tm->role ? tm->role : "-");
	tlbot_msg_html(m, "</td><td>");
	if (tm->from_date) {
		tlbot_msg_plain(m, ", from ");
		tlbot_msg_text(m, tm->from_date);
	}
	tlbot_msg_html(m, "</td><td>");
	if (tm->until_date) {
		tlbot_msg_plain(m, ", until ");
		tlbot_msg_text(m, tm->until_date);
		if (date_days(tm->until_date, &end) == 0) {
			if (end < now_day)
				tlbot_msg_text(m, " (ended)");
			else if (end - now_day <= TOUR_WARN_DAYS)
				tlbot_msg_textf(m, " (⚠ ends in %lld day%s)", (long long)(end - now_day),
				                end - now_day == 1 ? "" : "s");
		}
	}
	tlbot_msg_html(m, "</td></tr>");
}

/* The members of page (from 1) of room, as a table, into m. 0 or -1. */
static int
member_rows(struct tlbot_ctx *ctx, struct tlbot_msg *m, const char *room, int64_t page)
{
	struct tlbot_db_rows q;
	struct team_member tm;
	int64_t now_day = today(ctx);
	int rc;

	if (rec_query(ctx, MEMBERS, &q,
	              "WHERE x.room_id = ? ORDER BY x.role, x.user_id LIMIT ? OFFSET ?", "tii", room,
	              (int64_t)PAGE_SIZE, (int64_t)((page - 1) * PAGE_SIZE)) != 0)
		return -1;
	tlbot_msg_html(m, "<table><thead><tr><th>Member</th><th>Role</th><th>From</th>"
	                  "<th>Until</th></tr></thead><tbody>");
	while ((rc = tlbot_db_next(&q)) > 0) {
		if (rec_read(MEMBERS, &q, &tm) != 0) {
			rc = -1;
			break;
		}
		member_row(m, &tm, now_day);
		rec_release(MEMBERS, &tm);
	}
	tlbot_db_done(&q);
	tlbot_msg_html(m, "</tbody></table>");
	return rc < 0 ? -1 : 0;
}

/* The team as !team list heads it: name, region and lead. */
struct team_head {
	char *name, *region, *lead, *set_lead;
	int64_t total;
};

static void
team_head_release(struct team_head *h)
{
	free(h->name);
	free(h->region);
	free(h->lead);
	free(h->set_lead);
}

/* Read the head of room's team (and how many members it has). 0 or -1. */
static int
team_head_load(struct tlbot_ctx *ctx, const char *room, struct team_head *h)
{
	struct tlbot_db_rows q;

	memset(h, 0, sizeof(*h));
	tlbot_db_query(ctx, &q, "SELECT name, region, lead FROM teams WHERE room_id = ?", "t", room);
	if (q.stmt == NULL)
		return -1;
	if (tlbot_db_next(&q) > 0) {
		h->name = tlbot_db_col_text(&q, 0) ? strdup(tlbot_db_col_text(&q, 0)) : NULL;
		h->region = tlbot_db_col_text(&q, 1) ? strdup(tlbot_db_col_text(&q, 1)) : NULL;
		h->set_lead = tlbot_db_col_text(&q, 2) ? strdup(tlbot_db_col_text(&q, 2)) : NULL;
	}
	tlbot_db_done(&q);
	tlbot_db_query(ctx, &q, "SELECT COUNT(*) FROM team_members WHERE room_id = ?", "t", room);
	if (q.stmt && tlbot_db_next(&q) > 0)
		h->total = tlbot_db_col_int(&q, 0);
	tlbot_db_done(&q);
	if (team_lead(ctx, room, &h->lead) != 0)
		return -1;
	if (h->name == NULL)
		h->name = tlbot_ctx_room_name(ctx, room);
	return 0;
}

static void
team_head_msg(struct tlbot_msg *m, const struct team_head *h)
{
	tlbot_msg_bold(m, h->name ? h->name : "This room's team");
	if (h->region) {
		tlbot_msg_text(m, " · region ");
		tlbot_msg_text(m, h->region);
	}
	tlbot_msg_text(m, " · lead ");
	if (h->lead) {
		tlbot_msg_user(m, h->lead);
		if (h->set_lead == NULL)
			tlbot_msg_text(m, " (lead of the active challenge)");
	} else {
		tlbot_msg_text(m, "not set");
	}
}

static int
cmd_list(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const struct tlbot_value *pv = tlbot_args_flag_val(args, "page");
	const char *room = tlbot_ctx_room(ctx);
	int64_t page = pv ? pv->n : 1, pages;
	struct team_head h;
	struct tlbot_msg m;
	int rc = -1;

	if (team_head_load(ctx, room, &h) != 0)
		goto dberr;
	pages = h.total ? (h.total + PAGE_SIZE - 1) / PAGE_SIZE : 1;
	if (h.total > 0 && page > pages) {
		tlbot_fail(ctx, "there is no page %lld: the list has %lld page%s", (long long)page,
		           (long long)pages, pages == 1 ? "" : "s");
		goto out;
	}
	tlbot_msg_init(&m);
	team_head_msg(&m, &h);
	if (h.total == 0) {
		tlbot_msg_br(&m);
		tlbot_msg_textf(&m,
		                "Nobody is on the team yet: %steam add @name --role data"
		                " --until 2027-03-31 (%shelp team shows how)",
		                tlbot_ctx_prefix(ctx), tlbot_ctx_prefix(ctx));
		rc = tlbot_reply(ctx, &m);
		goto out;
	}
	tlbot_msg_textf(&m, " · %lld member%s", (long long)h.total, h.total == 1 ? "" : "s");
	if (pages > 1)
		tlbot_msg_textf(&m, ", page %lld of %lld", (long long)page, (long long)pages);
	if (member_rows(ctx, &m, room, page) != 0) {
		tlbot_msg_release(&m);
		goto dberr;
	}
	if (page < pages) {
		tlbot_msg_plain(&m, "\n");
		tlbot_msg_textf(&m, "Next page: %steam list --page %lld", tlbot_ctx_prefix(ctx),
		                (long long)page + 1);
	}
	rc = tlbot_reply(ctx, &m);
	goto out;
dberr:
	db_fail(ctx);
out:
	team_head_release(&h);
	return rc;
}

static int
cmd_set(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *name = tlbot_args_get(args, "name"), *region = tlbot_args_get(args, "region");
	const char *lead_v = tlbot_args_get(args, "lead"), *lead = NULL;
	struct tlbot_msg m;

	if (!name && !region && !lead_v)
		return tlbot_fail(
		        ctx,
		        "nothing to set: give --name, --region or --lead (none clears"
		        " one): usage: %steam set [--name \"...\"] [--region R] [--lead @user]",
		        tlbot_ctx_prefix(ctx));
	if (name && check_text(ctx, "name", name, NAME_MAX_CHARS) != 0)
		return -1;
	if (region && check_text(ctx, "region", region, NAME_MAX_CHARS) != 0)
		return -1;
	if (lead_v && !is_none(lead_v) && (lead = tlbot_resolve_user(ctx, lead_v)) == NULL)
		return tlbot_fail(ctx,
		                  "--lead: cannot tell who '%s' is: mention them or write their"
		                  " full id (@name:server)",
		                  lead_v);
	if (lead && tlbot_check_person(ctx, lead) != 0)
		return -1;
	if (tlbot_db_exec(ctx, "INSERT INTO teams(room_id, updated_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
	         "ti", tlbot_ctx_room(ctx), (int64_t)tlbot_ctx_now(ctx)) != 0 ||
	    (name && tlbot_db_exec(ctx, "UPDATE teams SET name = ? WHERE room_id = ?", "tt",
	                  is_none(name) ? NULL : name, tlbot_ctx_room(ctx)) != 0) ||
	    (region && tlbot_db_exec(ctx, "UPDATE teams SET region = ? WHERE room_id = ?", "tt",
	                    is_none(region) ? NULL : region, tlbot_ctx_room(ctx)) != 0) ||
	    (lead_v && tlbot_db_exec(ctx, "UPDATE teams SET lead = ? WHERE room_id = ?", "tt", lead,
	                    tlbot_ctx_room(ctx)) != 0) ||
	    tlbot_db_exec(ctx, "UPDATE teams SET updated_at = ? WHERE room_id = ?", "it",
	         (int64_t)tlbot_ctx_now(ctx), tlbot_ctx_room(ctx)) != 0)
		return db_fail(ctx);
	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "Team updated:");
	if (name) {
		tlbot_msg_text(&m, " name ");
		tlbot_msg_text(&m, is_none(name) ? "cleared" : name);
		tlbot_msg_text(&m, ";");
	}
	if (region) {
		tlbot_msg_text(&m, " region ");
		tlbot_msg_text(&m, is_none(region) ? "cleared" : region);
		tlbot_msg_text(&m, ";");
	}
	if (lead_v) {
		tlbot_msg_text(&m, " lead ");
		if (lead)
			tlbot_msg_mention(&m, lead);
		else
			tlbot_msg_text(&m, "cleared");
		tlbot_msg_text(&m, ";");
	}
	tlbot_msg_textf(&m, " see %steam list.", tlbot_ctx_prefix(ctx));
	return tlbot_reply(ctx, &m);
}

static const char *const aliases[] = {"teams", NULL};

static const struct tlbot_param add_params[] = {
        {TLBOT_USER("people"), .mode = TLBOT_OPTIONAL | TLBOT_REPEAT, .desc = "who joins the team"},
        {TLBOT_TEXT("--role", 0), .label = "ROLE", .desc = "data, digital, policy, frontline or any short text"},
        {TLBOT_DATE("--from"), .mode = TLBOT_NONE_OK, .desc = "the first day of the tour of duty"},
        {TLBOT_DATE("--until"), .mode = TLBOT_NONE_OK, .desc = "the last day of the tour of duty"},
        TLBOT_PARAMS_END};
static const struct tlbot_param remove_params[] = {
        {TLBOT_USER("people"), .mode = TLBOT_REPEAT, .desc = "who leaves the team"}, TLBOT_PARAMS_END};
static const struct tlbot_param list_params[] = {
        {TLBOT_INT("--page", 1, 100000), .desc = "which page"}, TLBOT_PARAMS_END};
static const struct tlbot_param set_params[] = {
        {TLBOT_TEXT("--name", 0), .desc = "the team's name"},
        {TLBOT_TEXT("--region", 0), .label = "R", .desc = "the area it covers"},
        {TLBOT_USER("--lead"), .mode = TLBOT_NONE_OK, .desc = "who leads it (none clears)"},
        TLBOT_PARAMS_END};

static const struct tlbot_subcmd subcmds[] = {
        {"add", "put people on the team (or change their role or tour of duty)", TLBOT_PERM_WRITE,
         add_params, cmd_add, "add @ali:example.org --role data --from 1/9/2026 --until +6m", 0},
        {"remove", "take people off the team", TLBOT_PERM_WRITE, remove_params, cmd_remove,
         "remove @ali:example.org", 0},
        {"list", "the team: name, region, lead, members and their tours", TLBOT_PERM_ANYONE,
         list_params, cmd_list, "list", TLBOT_SUB_READS},
        {"set", "name the team, give its region and lead (none clears one)", TLBOT_PERM_WRITE,
         set_params, cmd_set, "set --name \"Sheffield TA\" --region Sheffield --lead @sam:example.org",
         0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0}};

static const struct tlbot_job_kind jobs[] = {{"team.tour", tour_fire}, {NULL, NULL}};

/* data protection: commands/team_privacy.c */
int team_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int team_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                     struct tlbot_dp_report *report);

const struct tlbot_cmd tlbot_cmd_team = {
        .name = "team",
        .aliases = aliases,
        .summary = "who is on this room's team, their roles and tours of duty",
        .help = "Roles: data, digital, policy, frontline or any short text. Dates: 2027-02-28,"
                " 28/02/2027, 28 Feb, friday, tomorrow, +3d, +2w, +6m (none clears one).\n\n"
                "The team's lead is the one set with !team set --lead; when none is set, the lead "
                "of"
                " the room's most recent active challenge.\n\nThe lead gets a direct message (or a"
                " mention here when their DMs are off) 14 days before someone's tour of duty ends."
                " !challenge assign C-12 --team assigns everyone on the roster.",
        .subcmds = subcmds,
        .schema = &(const struct tlbot_schema){"team", migrations},
        .jobs = jobs,
        .export_user = team_export_user,
        .forget_user = team_forget_user,
        .room_profile = room_profile,
        .roster = roster,
};
