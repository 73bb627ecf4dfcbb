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
#include "tlbot/command.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"

#define PAGE_SIZE      20
#define ROLE_MAX       40
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

/* ------------------------------------------------------------------ store */

/* A store error is not the user's fault: the core rolls the batch back and
 * retries it later. */
static int
db_fail(struct tlbot_ctx *ctx)
{
	return tlbot_db_error(ctx, "team");
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
/* struct tlbot_cmd.roster: who is on the team on date. */
static int
roster(struct tlbot_ctx *ctx, const char *room_id, const char *date,
       void (*add)(void *arg, const char *user_id), void *arg)
{
	struct tlbot_db_rows q;
	int rc, n = 0;

	if (tlbot_db_query(ctx, &q,
	                   "SELECT user_id FROM team_members WHERE room_id = ?"
	                   " AND (from_date IS NULL OR from_date = '' OR from_date <= ?)"
	                   " AND (until_date IS NULL OR until_date = '' OR until_date >= ?)"
	                   " ORDER BY rowid",
	                   "ttt", room_id, date, date) != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		add(arg, tlbot_db_col_text(&q, 0));
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

static int
tour_fire_(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	char *user = NULL, *until = NULL, *lead = NULL, *role = NULL, *team = NULL;
	struct tlbot_msg m;
	struct tlbot_db_rows q;
	int64_t end = 0, left;
	int rc = -1, current = 0;

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
		rc = 0;
		goto out;
	}
	/* still on the team with the same end date? */
	tlbot_db_query(ctx, &q,
	         "SELECT role FROM team_members WHERE room_id = ? AND user_id = ? AND"
	         " until_date = ?",
	         "ttt", job->room_id, user, until);
	if (q.stmt == NULL)
		goto out;
	if (tlbot_db_next(&q) > 0) {
		current = 1;
		role = tlbot_db_col_text(&q, 0) ? strdup(tlbot_db_col_text(&q, 0)) : NULL;
	}
	tlbot_db_done(&q);
	if (!current) {
		rc = 0;
		goto out;
	}
	if (team_lead(ctx, job->room_id, &lead) != 0 ||
	    tlbot_db_text(ctx, &team, "SELECT name FROM teams WHERE room_id = ?", "t", job->room_id) <
	            0)
		goto out;
	if (team == NULL)
		team = tlbot_ctx_room_name(ctx, job->room_id);
	date_days(until, &end);
	left = end - today(ctx);

	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "Heads-up: the tour of duty of ");
	tlbot_msg_user(&m, user);
	if (role)
		tlbot_msg_textf(&m, " (%s)", role);
	tlbot_msg_text(&m, " with ");
	tlbot_msg_text(&m, team ? team : "this team");
	tlbot_msg_textf(&m, " ends on %s", until);
	if (left > 1)
		tlbot_msg_textf(&m, ", in %lld days", (long long)left);
	else if (left == 1)
		tlbot_msg_text(&m, ", tomorrow");
	else
		tlbot_msg_text(&m, ", today");
	tlbot_msg_textf(&m,
	                ". Plan the hand-over, or extend it with %steam add %s --role %s"
	                " --until DATE.",
	                tlbot_ctx_prefix(ctx), user, role ? role : "ROLE");
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
		rc = tlbot_send_room(ctx, job->room_id, &m);
	}
out:
	free(user);
	free(until);
	free(lead);
	free(role);
	free(team);
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

/* Parse an optional date flag; "none" clears when allow_none. out[0] is
 * '\0' when cleared. Returns 0 or fails the command. */
static int
date_flag(struct tlbot_ctx *ctx, const char *flag, const char *v, char out[11])
{
	if (is_none(v)) {
		out[0] = '\0';
		return 0;
	}
	if (tlbot_parse_date(v, tlbot_ctx_now(ctx), tlbot_ctx_default_tz(ctx), out) != 0)
		return tlbot_fail(ctx, "--%s '%s' is not a date: %s, or none", flag, v,
		                  tlbot_date_forms);
	return 0;
}

static int
cmd_add(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *role_v = tlbot_args_get(args, "role"), *from_v = tlbot_args_get(args, "from");
	const char *until_v = tlbot_args_get(args, "until"), *room = tlbot_ctx_room(ctx);
	char role[4 * ROLE_MAX + 1], from[11] = "", until[11] = "";
	struct tlbot_users u = {0}, added = {0}, updated = {0};
	struct tlbot_msg m;
	int64_t d_from, d_until;
	size_t i;
	int rc = -1;

	if (role_v == NULL || *role_v == '\0')
		return tlbot_fail(ctx,
		                  "missing --role: give data, digital, policy, frontline or any"
		                  " short text: usage: %steam add @user --role ROLE [--from DATE]"
		                  " [--until DATE]",
		                  tlbot_ctx_prefix(ctx));
	if (check_text(ctx, "role", role_v, ROLE_MAX) != 0)
		return -1;
	snprintf(role, sizeof(role), "%s", role_v);
	for (i = 0; known_roles[i]; i++)
		if (strcasecmp(known_roles[i], role) == 0)
			snprintf(role, sizeof(role), "%s", known_roles[i]);
	if ((from_v && date_flag(ctx, "from", from_v, from) != 0) ||
	    (until_v && date_flag(ctx, "until", until_v, until) != 0))
		return -1;
	if (until[0] && date_days(until, &d_until) == 0 && d_until < today(ctx))
		return tlbot_fail(ctx,
		                  "--until %s is in the past: a tour of duty ends today or later"
		                  " (%s)",
		                  until, tlbot_date_forms);
	if (from[0] && until[0] && date_days(from, &d_from) == 0 &&
	    date_days(until, &d_until) == 0 && d_until < d_from)
		return tlbot_fail(ctx, "--until %s is before --from %s", until, from);
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
		char *cur_until = NULL, *cur_from = NULL;
		const char *nf, *nu;
		int64_t have = 0;
		struct tlbot_db_rows q;

		tlbot_db_query(ctx, &q,
		         "SELECT from_date, until_date FROM team_members WHERE room_id = ? AND"
		         " user_id = ?",
		         "tt", room, u.v[i]);
		if (q.stmt == NULL)
			goto dberr;
		if (tlbot_db_next(&q) > 0) {
			have = 1;
			cur_from = tlbot_db_col_text(&q, 0) ? strdup(tlbot_db_col_text(&q, 0)) : NULL;
			cur_until = tlbot_db_col_text(&q, 1) ? strdup(tlbot_db_col_text(&q, 1)) : NULL;
		}
		tlbot_db_done(&q);
		/* a flag not given keeps the current value; "none" clears it */
		nf = from_v ? (from[0] ? from : NULL) : cur_from;
		nu = until_v ? (until[0] ? until : NULL) : cur_until;
		if (nf && nu && date_days(nf, &d_from) == 0 && date_days(nu, &d_until) == 0 &&
		    d_until < d_from) {
			tlbot_fail(ctx, "the tour of %s would end (%s) before it starts (%s)",
			           u.v[i], nu, nf);
			free(cur_from);
			free(cur_until);
			goto out;
		}
		if (tlbot_db_exec(ctx,
		         "INSERT INTO team_members(room_id, user_id, role, from_date, until_date,"
		         " added_by, added_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(room_id, "
		         "user_id)"
		         " DO UPDATE SET role = excluded.role, from_date = excluded.from_date,"
		         " until_date = excluded.until_date",
		         "tttttti", room, u.v[i], role, nf, nu, tlbot_ctx_sender(ctx),
		         (int64_t)tlbot_ctx_now(ctx)) != 0 ||
		    schedule_tour(ctx, room, u.v[i], nu) != 0) {
			free(cur_from);
			free(cur_until);
			goto dberr;
		}
		free(cur_from);
		free(cur_until);
		if (tlbot_users_add(have ? &updated : &added, u.v[i]) != 0)
			goto dberr;
	}
	tlbot_msg_init(&m);
	for (i = 0; i < u.n; i++) {
		int is_new = 0;
		size_t k;

		for (k = 0; k < added.n; k++)
			if (strcmp(added.v[k], u.v[i]) == 0)
				is_new = 1;
		if (i)
			tlbot_msg_text(&m, " ");
		tlbot_msg_text(&m, is_new ? "Added " : "Updated ");
		tlbot_msg_user(&m, u.v[i]);
		tlbot_msg_textf(&m, is_new ? " to the team as %s" : ": %s", role);
		if (from_v && from[0])
			tlbot_msg_textf(&m, ", from %s", from);
		if (until_v && until[0])
			tlbot_msg_textf(&m, ", until %s", until);
		tlbot_msg_text(&m, ".");
	}
	rc = tlbot_reply(ctx, &m);
	goto out;
dberr:
	rc = db_fail(ctx);
out:
	tlbot_users_release(&u);
	tlbot_users_release(&added);
	tlbot_users_release(&updated);
	return rc;
}

static int
cmd_remove(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *room = tlbot_ctx_room(ctx);
	struct tlbot_users u = {0}, removed = {0}, absent = {0};
	struct tlbot_msg m;
	size_t i;
	int rc = -1;

	if (tlbot_collect_users(ctx, args, 0, &u) != 0)
		goto out;
	for (i = 0; i < u.n; i++) {
		if (tlbot_db_exec(ctx, "DELETE FROM team_members WHERE room_id = ? AND user_id = ?", "tt",
		         room, u.v[i]) != 0)
			goto dberr;
		if (tlbot_db_changes(ctx) == 0) {
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

static int
cmd_list(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *room = tlbot_ctx_room(ctx), *pv = tlbot_args_get(args, "page");
	char *name = NULL, *region = NULL, *lead = NULL, *set_lead = NULL;
	int64_t total = 0, page = 1, pages, now_day = today(ctx);
	struct tlbot_msg m;
	struct tlbot_db_rows q;

	if (pv) {
		char *end;
		long n = strtol(pv, &end, 10);

		if (end == pv || *end != '\0' || n < 1 || n > 100000)
			return tlbot_fail(ctx, "--page takes a page number like 2, not '%s'", pv);
		page = n;
	}
	tlbot_db_query(ctx, &q, "SELECT name, region, lead FROM teams WHERE room_id = ?", "t", room);
	if (q.stmt == NULL)
		return db_fail(ctx);
	if (tlbot_db_next(&q) > 0) {
		name = tlbot_db_col_text(&q, 0) ? strdup(tlbot_db_col_text(&q, 0)) : NULL;
		region = tlbot_db_col_text(&q, 1) ? strdup(tlbot_db_col_text(&q, 1)) : NULL;
		set_lead = tlbot_db_col_text(&q, 2) ? strdup(tlbot_db_col_text(&q, 2)) : NULL;
	}
	tlbot_db_done(&q);
	tlbot_db_query(ctx, &q, "SELECT COUNT(*) FROM team_members WHERE room_id = ?", "t", room);
	if (q.stmt && tlbot_db_next(&q) > 0)
		total = tlbot_db_col_int(&q, 0);
	tlbot_db_done(&q);
	if (team_lead(ctx, room, &lead) != 0)
		goto dberr;
	pages = total ? (total + PAGE_SIZE - 1) / PAGE_SIZE : 1;
	if (total > 0 && page > pages) {
		tlbot_fail(ctx, "there is no page %lld: the list has %lld page%s", (long long)page,
		           (long long)pages, pages == 1 ? "" : "s");
		goto fail;
	}
	tlbot_msg_init(&m);
	if (name == NULL)
		name = tlbot_ctx_room_name(ctx, room);
	tlbot_msg_bold(&m, name ? name : "This room's team");
	if (region) {
		tlbot_msg_text(&m, " · region ");
		tlbot_msg_text(&m, region);
	}
	tlbot_msg_text(&m, " · lead ");
	if (lead) {
		tlbot_msg_user(&m, lead);
		if (set_lead == NULL)
			tlbot_msg_text(&m, " (lead of the active challenge)");
	} else {
		tlbot_msg_text(&m, "not set");
	}
	if (total == 0) {
		tlbot_msg_br(&m);
		tlbot_msg_textf(&m,
		                "Nobody is on the team yet: %steam add @name --role data"
		                " --until 2027-03-31 (%shelp team shows how)",
		                tlbot_ctx_prefix(ctx), tlbot_ctx_prefix(ctx));
		goto send;
	}
	tlbot_msg_textf(&m, " · %lld member%s", (long long)total, total == 1 ? "" : "s");
	if (pages > 1)
		tlbot_msg_textf(&m, ", page %lld of %lld", (long long)page, (long long)pages);
	tlbot_db_query(ctx, &q,
	         "SELECT user_id, role, from_date, until_date FROM team_members WHERE room_id = ?"
	         " ORDER BY role, user_id LIMIT ? OFFSET ?",
	         "tii", room, (int64_t)PAGE_SIZE, (int64_t)((page - 1) * PAGE_SIZE));
	if (q.stmt == NULL) {
		tlbot_msg_release(&m);
		goto dberr;
	}
	tlbot_msg_html(&m, "<table><thead><tr><th>Member</th><th>Role</th><th>From</th>"
	                   "<th>Until</th></tr></thead><tbody>");
	while (tlbot_db_next(&q) > 0) {
		const char *role = tlbot_db_col_text(&q, 1), *from = tlbot_db_col_text(&q, 2), *until = tlbot_db_col_text(&q, 3);
		int64_t end;

		tlbot_msg_plain(&m, "\n• ");
		tlbot_msg_html(&m, "<tr><td>");
		tlbot_msg_user(&m, tlbot_db_col_text(&q, 0));
		tlbot_msg_plain(&m, " — ");
		tlbot_msg_html(&m, "</td><td>");
		tlbot_msg_text(&m, role ? role : "-");
		tlbot_msg_html(&m, "</td><td>");
		if (from) {
			tlbot_msg_plain(&m, ", from ");
			tlbot_msg_text(&m, from);
		}
		tlbot_msg_html(&m, "</td><td>");
		if (until) {
			tlbot_msg_plain(&m, ", until ");
			tlbot_msg_text(&m, until);
			if (date_days(until, &end) == 0) {
				if (end < now_day)
					tlbot_msg_text(&m, " (ended)");
				else if (end - now_day <= TOUR_WARN_DAYS)
					tlbot_msg_textf(&m, " (⚠ ends in %lld day%s)",
					                (long long)(end - now_day),
					                end - now_day == 1 ? "" : "s");
			}
		}
		tlbot_msg_html(&m, "</td></tr>");
	}
	tlbot_db_done(&q);
	tlbot_msg_html(&m, "</tbody></table>");
	if (page < pages) {
		tlbot_msg_plain(&m, "\n");
		tlbot_msg_textf(&m, "Next page: %steam list --page %lld", tlbot_ctx_prefix(ctx),
		                (long long)page + 1);
	}
send:
	free(name);
	free(region);
	free(lead);
	free(set_lead);
	return tlbot_reply(ctx, &m);
dberr:
	db_fail(ctx);
fail:
	free(name);
	free(region);
	free(lead);
	free(set_lead);
	return -1;
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
