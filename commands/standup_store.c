/* Stand-up: settings, roster, away, answers and planning of the jobs.
 * Private to the family (see standup.h). */
#include <ctype.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "standup.h"
#include "tlbot/holidays.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"

char *
su_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

void
su_room_link(struct tlbot_msg *m, struct tlbot_ctx *ctx, const char *room_id)
{
	char href[600], *name = tlbot_ctx_room_name(ctx, room_id);

	snprintf(href, sizeof(href), "https://matrix.to/#/%s", room_id);
	tlbot_msg_link(m, name ? name : room_id, href, name ? room_id : NULL);
	free(name);
}

void
su_textf_code(struct tlbot_msg *m, const char *fmt, ...)
{
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	tlbot_msg_text_code(m, text);
}

const char *
su_room_tz(struct tlbot_ctx *ctx, const struct su_room *r)
{
	if (r && r->tz)
		return r->tz;
	return tlbot_ctx_default_tz(ctx) ? tlbot_ctx_default_tz(ctx) : "UTC";
}

void
su_hhmm(int minute, char out[6])
{
	unsigned m = minute < 0 ? 0u : (unsigned)minute % 1440u;

	snprintf(out, 6, "%02u:%02u", m / 60u, m % 60u);
}

int
su_has_answer(struct tlbot_ctx *ctx, const char *room, const char *user, const char *date)
{
	int64_t one = 0;

	if (tlbot_db_int(ctx, &one,
	                 "SELECT 1 FROM standup_answers WHERE room_id = ? AND user_id = ? AND"
	                 " date = ? AND replaced_by IS NULL AND withdrawn = 0",
	                 "ttt", room, user, date) != 0)
		return 0;
	return one == 1;
}

int
su_summary_posted(struct tlbot_ctx *ctx, const char *room, const char *date)
{
	int64_t one = 0;

	if (tlbot_db_int(ctx, &one,
	                 "SELECT 1 FROM standup_summaries WHERE room_id = ? AND date = ? AND"
	                 " kind = 'scheduled'",
	                 "tt", room, date) != 0)
		return 0;
	return one == 1;
}

/* ---- lists ---- */

void
su_list_release(struct su_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int
su_list_has(const struct su_list *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

int
su_list_add(struct su_list *l, const char *s)
{
	if (s == NULL || su_list_has(l, s))
		return 0;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 16;
		char **nv = realloc(l->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n] = strdup(s);
	if (l->v[l->n] == NULL)
		return -1;
	l->n++;
	return 0;
}

/* ---- settings ---- */

void
su_room_release(struct su_room *r)
{
	int i;

	free(r->room_id);
	free(r->tz);
	for (i = 0; i < 3; i++)
		free(r->q[i]);
	free(r->mode);
	free(r->division);
	free(r->next_date);
	memset(r, 0, sizeof(*r));
}

int
su_room_load(struct tlbot_ctx *ctx, const char *room_id, struct su_room *r)
{
	struct tlbot_db_rows q;
	int rc;

	memset(r, 0, sizeof(*r));
	if (tlbot_db_query(ctx, &q,
	                   "SELECT minute, tz, days, summary_minute, q_yesterday,"
	                   " q_today, q_blockers, enabled, mode, remind_lead, division, gen,"
	                   " next_date FROM standup_rooms WHERE room_id = ?",
	                   "t", room_id) != 0)
		return -1;
	rc = tlbot_db_next(&q);
	if (rc <= 0) {
		tlbot_db_done(&q);
		return rc == 0 ? 1 : -1;
	}
	r->room_id = su_strdup(room_id);
	r->minute = (int)tlbot_db_col_int(&q, 0);
	r->tz = tlbot_db_col_dup(&q, 1);
	r->days = (unsigned)tlbot_db_col_int(&q, 2);
	r->summary_explicit = !tlbot_db_col_null(&q, 3);
	r->summary_minute = r->summary_explicit ? (int)tlbot_db_col_int(&q, 3)
	                                        : r->minute + SU_DEFAULT_SUMMARY_AFTER;
	if (r->summary_minute > 1439)
		r->summary_minute = 1439;
	r->q[0] = tlbot_db_col_dup(&q, 4);
	r->q[1] = tlbot_db_col_dup(&q, 5);
	r->q[2] = tlbot_db_col_dup(&q, 6);
	r->enabled = (int)tlbot_db_col_int(&q, 7);
	r->mode = tlbot_db_col_dup(&q, 8);
	r->remind_lead = (int)tlbot_db_col_int(&q, 9);
	r->division = tlbot_db_col_dup(&q, 10);
	r->gen = tlbot_db_col_int(&q, 11);
	r->next_date = tlbot_db_col_dup(&q, 12);
	tlbot_db_done(&q);
	if (r->room_id == NULL || r->tz == NULL || r->q[0] == NULL || r->q[1] == NULL ||
	    r->q[2] == NULL || r->mode == NULL) {
		su_room_release(r);
		return tlbot_fail(ctx, "stand-up: out of memory");
	}
	return 0;
}

/* ---- people ---- */

static void
roster_add(void *arg, const char *user_id)
{
	su_list_add(arg, user_id);
}

int
su_members(struct tlbot_ctx *ctx, const char *room_id, const char *date, struct su_list *out,
           int *from_roster)
{
	struct tlbot_db_rows q;
	int rc;

	*from_roster = 0;
	/* the team's roster on date, when a family keeps one */
	if (tlbot_roster(ctx, room_id, date, TLBOT_ROSTER_ON_DATE, roster_add, out) < 0)
		return -1;
	if (out->n > 0) {
		*from_roster = 1;
		return 0;
	}
	/* no roster: the people joined to the room (from /sync and the
	 * /joined_members the worker asks when the bot joins), not the bot nor
	 * other bots; then anyone who answered here before and is still in the
	 * room or its membership is unknown */
	if (tlbot_db_query(ctx, &q,
	                   "SELECT state_key FROM room_state WHERE room_id = ?"
	                   " AND type = 'm.room.member' AND state_key <> ?"
	                   " AND json_extract(content, '$.membership') = 'join' ORDER BY rowid",
	                   "tt", room_id, tlbot_ctx_bot_user(ctx)) != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		const char *u = tlbot_db_col_text(&q, 0);

		if (u && !su_is_other_bot(ctx, u) && su_list_add(out, u) != 0)
			break;
	}
	tlbot_db_done(&q);
	if (rc < 0)
		return -1;
	if (tlbot_db_query(ctx, &q,
	                   "SELECT a.user_id FROM standup_answers a WHERE a.room_id = ?"
	                   " AND NOT EXISTS (SELECT 1 FROM room_state m WHERE m.room_id = a.room_id"
	                   " AND m.type = 'm.room.member' AND m.state_key = a.user_id"
	                   " AND json_extract(m.content, '$.membership') <> 'join')"
	                   " GROUP BY a.user_id ORDER BY MIN(a.id)",
	                   "t", room_id) != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0)
		if (su_list_add(out, tlbot_db_col_text(&q, 0)) != 0)
			break;
	tlbot_db_done(&q);
	return rc < 0 ? -1 : 0;
}

int
su_is_other_bot(struct tlbot_ctx *ctx, const char *user_id)
{
	const char *p = user_id + 1, *end = strchr(user_id, ':');
	char key[300];
	int64_t one = 0;

	if (tlbot_ctx_bot_user(ctx) && strcmp(user_id, tlbot_ctx_bot_user(ctx)) == 0)
		return 1;
	/* a localpart with a segment "bot" (ci-bot, bot.github, my_bot) */
	if (end == NULL)
		end = user_id + strlen(user_id);
	while (p < end) {
		const char *q = p;

		while (q < end && isalnum((unsigned char)*q))
			q++;
		if (q - p == 3 && strncasecmp(p, "bot", 3) == 0)
			return 1;
		p = q < end ? q + 1 : q;
	}
	/* seen talking in notices, as bots do (the router notes them) */
	snprintf(key, sizeof(key), "notice_sender.%s", user_id);
	if (tlbot_db_int(ctx, &one, "SELECT 1 FROM kv WHERE key = ?", "t", key) != 0)
		return 0;
	return one == 1;
}

int
su_is_away(struct tlbot_ctx *ctx, const char *room_id, const char *user_id, const char *date,
           char *until)
{
	char *u = NULL;
	int rc = tlbot_db_text(ctx, &u,
	                       "SELECT until_date FROM standup_away WHERE room_id = ?"
	                       " AND user_id = ? AND from_date <= ? AND until_date >= ?",
	                       "tttt", room_id, user_id, date, date);

	if (rc != 0)
		return 0;
	if (until)
		snprintf(until, 11, "%s", u ? u : "(null)");
	free(u);
	return 1;
}

/* ---- hooks for other families ---- */

int
su_tz_changed(struct tlbot_ctx *ctx, const char *user_id)
{
	struct su_list rooms = {0};
	struct tlbot_db_rows q;
	size_t i;
	int rc = 0;

	(void)user_id; /* every room: the person may be on any roster */
	if (tlbot_db_query(ctx, &q, "SELECT room_id FROM standup_rooms WHERE enabled = 1", "") != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0)
		su_list_add(&rooms, tlbot_db_col_text(&q, 0));
	tlbot_db_done(&q);
	if (rc < 0) {
		su_list_release(&rooms);
		return -1;
	}
	for (i = 0; i < rooms.n && rc == 0; i++)
		rc = su_replan(ctx, rooms.v[i]);
	su_list_release(&rooms);
	return rc;
}

int
su_about_user(struct tlbot_ctx *ctx, struct tlbot_msg *m, const char *user_id, const char *today)
{
	struct tlbot_db_rows q;
	int rc, n = 0;

	if (tlbot_db_query(ctx, &q,
	                   "SELECT room_id, until_date FROM standup_away WHERE user_id = ?"
	                   " AND until_date >= ? ORDER BY until_date",
	                   "tt", user_id, today) != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		tlbot_msg_textf(m, "Away from the stand-up in %s until %s",
		                tlbot_db_col_text(&q, 0), tlbot_db_col_text(&q, 1));
		tlbot_msg_br(m);
		n++;
	}
	tlbot_db_done(&q);
	return rc < 0 ? -1 : n;
}

/* ---- answers ---- */

struct marker {
	const char *word;
	int section;
};

static const struct marker markers[] = {
        {"yesterday:", 0}, {"today:", 1}, {"blockers:", 2}, {"blocker:", 2}, {"blocked:", 2},
        {"y:", 0},         {"t:", 1},     {"b:", 2},        {NULL, 0},
};

/* The section a marker at p starts (and its length), or -1. at_line: p is
 * at the start of a line. */
static int
marker_at(const char *p, int at_line, char *const q[3], size_t *len)
{
	int i;

	for (i = 0; markers[i].word; i++) {
		size_t n = strlen(markers[i].word);

		if (strncasecmp(p, markers[i].word, n) == 0) {
			*len = n;
			return markers[i].section;
		}
	}
	if (!at_line)
		return -1;
	/* a line starting with one of the room's questions, or its keyword
	 * followed by '?' ("Yesterday?") */
	for (i = 0; i < 3; i++) {
		static const char *const kw[] = {"yesterday?", "today?", "blockers?"};
		size_t n;

		if (q && q[i] && *q[i] && strncasecmp(p, q[i], strlen(q[i])) == 0) {
			*len = strlen(q[i]);
			return i;
		}
		n = strlen(kw[i]);
		if (strncasecmp(p, kw[i], n) == 0) {
			*len = n;
			return i;
		}
	}
	return -1;
}

int
su_has_marker(const char *text, char *const q[3])
{
	const char *p;
	size_t len;

	for (p = text; *p; p++)
		if ((p == text || isspace((unsigned char)p[-1])) &&
		    marker_at(p, p == text || p[-1] == '\n', q, &len) >= 0)
			return 1;
	return 0;
}

/* Append s[0..n) trimmed to section *dst (joined by newlines). */
static int
add_section(char **dst, const char *s, size_t n)
{
	size_t have;
	char *nv;

	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0)
		return 0;
	have = *dst ? strlen(*dst) : 0;
	nv = realloc(*dst, have + n + 2);
	if (nv == NULL)
		return -1;
	if (have)
		nv[have++] = '\n';
	memcpy(nv + have, s, n);
	nv[have + n] = '\0';
	*dst = nv;
	return 0;
}

int
su_parse_answer(const char *text, char *const q[3], char **y, char **t, char **b)
{
	char *sec[3] = {NULL, NULL, NULL};
	const char *p, *start = text;
	int cur = -1, found = 0, i;
	size_t len;

	*y = *t = *b = NULL;
	if (text == NULL)
		return 0;
	if (su_has_marker(text, q)) {
		for (p = text; *p; p++) {
			int k;

			if (!(p == text || isspace((unsigned char)p[-1])))
				continue;
			k = marker_at(p, p == text || p[-1] == '\n', q, &len);
			if (k < 0)
				continue;
			/* text before the first marker counts as "today" */
			add_section(&sec[cur < 0 ? 1 : cur], start, (size_t)(p - start));
			cur = k;
			p += len - 1;
			start = p + 1;
		}
		add_section(&sec[cur < 0 ? 1 : cur], start, strlen(start));
	} else {
		/* no markers: lines in the order of the questions; one line alone
		 * is what the person does today */
		const char *lines[64];
		size_t lens[64], n = 0;

		for (p = text; *p && n < 64;) {
			const char *e = strchr(p, '\n');
			size_t l = e ? (size_t)(e - p) : strlen(p);
			size_t j = 0;

			while (j < l && isspace((unsigned char)p[j]))
				j++;
			if (j < l) {
				lines[n] = p;
				lens[n++] = l;
			}
			p += l + (e ? 1 : 0);
		}
		if (n == 1) {
			add_section(&sec[1], lines[0], lens[0]);
		} else {
			for (i = 0; (size_t)i < n; i++)
				add_section(&sec[i < 2 ? i : 2], lines[i], lens[i]);
		}
	}
	for (i = 0; i < 3; i++)
		if (sec[i])
			found++;
	*y = sec[0];
	*t = sec[1];
	*b = sec[2];
	return found;
}

/* Does text (after leading space) start with word w, followed by the end
 * or by something that is not a letter or digit? Returns the length. */
static size_t
word_at(const char *text, const char *w)
{
	size_t n = strlen(w);

	if (strncasecmp(text, w, n) != 0)
		return 0;
	if (text[n] == '\0' || !(isalnum((unsigned char)text[n]) || text[n] == '/' ||
	                         (unsigned char)text[n] >= 0x80))
		return n;
	return 0;
}

int
su_no_blocker(const char *b)
{
	/* words that mean "nothing blocks me" at the start of the answer,
	 * whatever follows ("none now - signed this morning", "n/a.", "-");
	 * "no" only alone or before punctuation, since "no access to the
	 * data" is a blocker */
	static const char *const none[] = {"none",         "nothing",     "nope",        "n/a",
	                                   "na",           "nil",         "nada",        "no blockers",
	                                   "no blocker",   "no blocks",   "not blocked", "nothing blocking",
	                                   "all good",     "all clear",   "not really",  "no issues",
	                                   "no problems",  "no worries",  "zero",        NULL};
	const unsigned char *p = (const unsigned char *)b;
	size_t i;

	if (b == NULL)
		return 1;
	while (*p && (isspace(*p) || *p == '*' || *p == '_'))
		p++;
	if (*p == '\0')
		return 1;
	/* a dash alone (-, --, en or em dash), or followed by space */
	if (*p == '-' || (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0x93 || p[2] == 0x94))) {
		const unsigned char *q = p;

		while (*q == '-' || (q[0] == 0xe2 && q[1] == 0x80 && (q[2] == 0x93 || q[2] == 0x94)))
			q += *q == '-' ? 1 : 3;
		if (*q == '\0' || isspace(*q))
			return 1;
	}
	for (i = 0; none[i]; i++)
		if (word_at((const char *)p, none[i]))
			return 1;
	if (word_at((const char *)p, "no")) {
		const unsigned char *q = p + 2;

		while (*q == ' ')
			q++;
		if (*q == '\0' || *q == '.' || *q == ',' || *q == '!' || *q == ';' || *q == '-' ||
		    *q == ':' || *q == 0xe2)
			return 1;
	}
	return 0;
}

#define SU_X_FIELD(...) REC_X_FIELD(struct su_answer, __VA_ARGS__)
static const struct rec_field answer_fields[] = {
        SU_ANSWER_FIELDS(SU_X_FIELD){NULL, NULL, 0, 0, 0, NULL, 0}};
const struct rec_desc su_answer_desc = {"standup_answers", NULL, NULL, NULL, answer_fields};

int64_t
su_answer_record(struct tlbot_ctx *ctx, struct su_answer *a)
{
	int64_t id;

	a->at = (int64_t)tlbot_ctx_now(ctx);
	if (rec_insert(ctx, &su_answer_desc, a) != 0)
		return -1;
	id = tlbot_db_last_id(ctx);
	if (tlbot_db_exec(ctx,
	                  "UPDATE standup_answers SET replaced_by = ? WHERE room_id = ?"
	                  " AND user_id = ? AND date = ? AND replaced_by IS NULL AND id <> ?",
	                  "ittti", id, a->room_id, a->user_id, a->date, id) != 0)
		return -1;
	return id;
}

int
su_answer_current(struct tlbot_ctx *ctx, const char *room_id, const char *user_id, const char *date,
                  struct su_answer *a)
{
	struct tlbot_db_rows q;
	int rc;

	memset(a, 0, sizeof(*a));
	if (rec_query(ctx, &su_answer_desc, &q,
	              "WHERE x.room_id = ? AND x.user_id = ? AND x.date = ?"
	              " AND x.replaced_by IS NULL AND x.withdrawn = 0 ORDER BY x.id DESC LIMIT 1",
	              "ttt", room_id, user_id, date) != 0)
		return -1;
	rc = tlbot_db_next(&q);
	if (rc > 0 && rec_read(&su_answer_desc, &q, a) != 0)
		rc = tlbot_db_error(ctx, "out of memory reading an answer");
	tlbot_db_done(&q);
	if (rc < 0)
		return -1;
	return rc > 0 ? 0 : 1;
}

void
su_answers_free(struct su_answer *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		rec_release(&su_answer_desc, &v[i]);
	free(v);
}

int
su_answers_of_day(struct tlbot_ctx *ctx, const char *room_id, const char *date,
                  struct su_answer **v, size_t *n)
{
	struct tlbot_db_rows q;
	size_t cap = 0;
	int rc;

	*v = NULL;
	*n = 0;
	if (rec_query(ctx, &su_answer_desc, &q,
	              "WHERE x.room_id = ? AND x.date = ? AND x.replaced_by IS NULL"
	              " AND x.withdrawn = 0 ORDER BY x.id",
	              "tt", room_id, date) != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		if (*n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct su_answer *nv = realloc(*v, ncap * sizeof(*nv));

			if (nv == NULL) {
				rc = tlbot_db_error(ctx, "out of memory reading answers");
				break;
			}
			*v = nv;
			cap = ncap;
		}
		memset(&(*v)[*n], 0, sizeof(**v));
		if (rec_read(&su_answer_desc, &q, &(*v)[*n]) != 0) {
			rc = tlbot_db_error(ctx, "out of memory reading answers");
			break;
		}
		(*n)++;
	}
	tlbot_db_done(&q);
	if (rc < 0) {
		su_answers_free(*v, *n);
		*v = NULL;
		*n = 0;
		return -1;
	}
	return 0;
}

/* ---- planning ---- */

int
su_date_skipped(struct tlbot_ctx *ctx, const struct su_room *r, const char *date, char *why,
                size_t whylen)
{
	char title[96];
	int64_t skip = 0;
	int h;

	if (tlbot_db_int(ctx, &skip, "SELECT 1 FROM standup_skips WHERE room_id = ? AND date = ?",
	                 "tt", r->room_id, date) < 0)
		return -1;
	if (skip) {
		if (why)
			snprintf(why, whylen, "skip date");
		return 1;
	}
	if (r->division == NULL)
		return 0;
	h = tlbot_holidays_check(tlbot_ctx_bank_holidays_file(ctx), r->division, date, title,
	                         sizeof(title));
	if (h == 1) {
		if (why)
			snprintf(why, whylen, "%s (bank holiday)", title);
		return 1;
	}
	return 0; /* no data for the division: hold the stand-up */
}

struct skip_arg {
	struct tlbot_ctx *ctx;
	const struct su_room *r;
};

static int
skip_cb(const char *date, void *arg)
{
	struct skip_arg *a = arg;
	int rc = su_date_skipped(a->ctx, a->r, date, NULL, 0);

	/* a day whose summary is already posted has had its stand-up: moving
	 * the time later that day plans the next day, not a second one */
	if (rc == 0 && su_summary_posted(a->ctx, a->r->room_id, date))
		return 1;
	return rc;
}

static int
schedule(struct tlbot_ctx *ctx, const struct su_room *r, const char *what, const char *kind,
         const char *date, const char *user, time_t due)
{
	char key[1024], *payload;
	json_t *p;
	int64_t id;

	snprintf(key, sizeof(key), "standup.%s.%lld.%s.%s%s%s", r->room_id, (long long)r->gen, date,
	         what, user ? "." : "", user ? user : "");
	p = json_pack("{s:I, s:s}", "gen", (json_int_t)r->gen, "date", date);
	if (p && user)
		json_object_set_new(p, "user", json_string(user));
	payload = p ? json_dumps(p, JSON_COMPACT) : NULL;
	json_decref(p);
	if (payload == NULL)
		return tlbot_fail(ctx, "stand-up: out of memory");
	id = tlbot_job_schedule(ctx, kind, key, r->room_id, due, payload);
	free(payload);
	return id < 0 ? -1 : 0;
}

int
su_plan(struct tlbot_ctx *ctx, struct su_room *r, time_t after)
{
	struct skip_arg sa = {ctx, r};
	struct su_list members = {0};
	char date[11];
	time_t summary, prompt;
	int rc, roster;
	size_t i;

	if (!r->enabled)
		return 0;
	rc = tlbot_sched_next(r->tz, r->summary_minute, r->days, after, skip_cb, &sa, &summary,
	                      date);
	if (rc < 0)
		return tlbot_fail(ctx, "stand-up: cannot compute the next stand-up in %s", r->tz);
	if (rc == 1)
		return 0; /* nothing within the horizon (every day skipped) */
	if (tlbot_sched_at(r->tz, date, r->minute, &prompt) != 0)
		return tlbot_fail(ctx, "stand-up: cannot compute the prompt time");
	if (schedule(ctx, r, "prompt", "standup.prompt", date, NULL, prompt) != 0 ||
	    schedule(ctx, r, "summary", "standup.summary", date, NULL, summary) != 0)
		return -1;
	if (r->remind_lead > 0 && summary - r->remind_lead * 60 > prompt &&
	    schedule(ctx, r, "remind", "standup.remind", date, NULL,
	             summary - r->remind_lead * 60) != 0)
		return -1;
	/* people in their own zone get their own prompt job when it comes
	 * before the room's (after it, the room's prompt job plans theirs) */
	if (strcmp(r->mode, "dm") == 0 &&
	    su_members(ctx, r->room_id, date, &members, &roster) == 0) {
		for (i = 0; i < members.n; i++) {
			char tz[128];
			time_t own;

			tlbot_user_tz(ctx, members.v[i], r->tz, tz, sizeof(tz));
			if (strcmp(tz, r->tz) == 0 ||
			    tlbot_sched_at(tz, date, r->minute, &own) != 0)
				continue;
			if (own < prompt && own > after &&
			    schedule(ctx, r, "prompt", "standup.prompt", date, members.v[i], own) !=
			            0) {
				su_list_release(&members);
				return -1;
			}
		}
	}
	su_list_release(&members);
	if (tlbot_db_exec(ctx, "UPDATE standup_rooms SET next_date = ? WHERE room_id = ?", "tt",
	                  date, r->room_id) != 0)
		return -1;
	free(r->next_date);
	r->next_date = strdup(date);
	return 0;
}

int
su_replan(struct tlbot_ctx *ctx, const char *room_id)
{
	struct su_room r;
	char key[600];
	int rc;

	snprintf(key, sizeof(key), "standup.%s.*", room_id);
	if (tlbot_job_cancel(ctx, key) < 0)
		return -1;
	if (tlbot_db_exec(ctx,
	                  "UPDATE standup_rooms SET gen = gen + 1, next_date = NULL,"
	                  " updated_at = ? WHERE room_id = ?",
	                  "it", (int64_t)tlbot_ctx_now(ctx), room_id) != 0)
		return -1;
	rc = su_room_load(ctx, room_id, &r);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	rc = su_plan(ctx, &r, tlbot_ctx_now(ctx));
	su_room_release(&r);
	return rc;
}
