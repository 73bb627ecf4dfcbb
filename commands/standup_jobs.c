/* Stand-up jobs: the prompt (per room, and per person in their own zone),
 * the reminder before the summary, and the summary, which plans the next
 * stand-up whether it fired or was missed. Keys carry the room, the
 * settings generation and the date, so a replay never doubles; the tables
 * of prompts and summaries make a re-planned day ask nobody twice.
 * Private to the family (see standup.h). */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "standup.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"

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
job_room(struct tlbot_ctx *ctx, const struct tlbot_job *job, struct payload *p, struct su_room *r)
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
	return tlbot_db_exec(ctx,
	                     "INSERT OR IGNORE INTO standup_prompts(room_id, user_id, date, at)"
	                     " VALUES (?, ?, ?, ?)",
	                     "ttti", room, user, date, (int64_t)tlbot_ctx_now(ctx));
}

static int
was_prompted(struct tlbot_ctx *ctx, const char *room, const char *user, const char *date)
{
	int64_t one = 0;

	if (tlbot_db_int(ctx, &one,
	                 "SELECT 1 FROM standup_prompts WHERE room_id = ? AND user_id = ? AND"
	                 " date = ?",
	                 "ttt", room, user, date) != 0)
		return 0;
	return one == 1;
}

static int
was_reminded(struct tlbot_ctx *ctx, const char *room, const char *user, const char *date)
{
	int64_t r = 0;

	if (tlbot_db_int(ctx, &r,
	                 "SELECT reminded FROM standup_prompts WHERE room_id = ? AND user_id = ?"
	                 " AND date = ?",
	                 "ttt", room, user, date) != 0)
		return 0;
	return (int)r;
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
	    su_is_away(ctx, r->room_id, user, date, NULL) ||
	    su_has_answer(ctx, r->room_id, user, date))
		return 0; /* answered early: nothing to ask */
	tlbot_date_long(date, longdate, sizeof(longdate));
	su_hhmm(r->summary_minute, sat);
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Stand-up");
	tlbot_msg_text(&m, " for ");
	su_room_link(&m, ctx, r->room_id);
	tlbot_msg_textf(&m, " — %s", longdate);
	tlbot_msg_br(&m);
	questions(&m, r);
	tlbot_msg_textf(&m,
	                "Reply to this message: one line per question, or lines starting "
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

	tlbot_date_long(date, longdate, sizeof(longdate));
	su_hhmm(r->summary_minute, sat);
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Stand-up");
	tlbot_msg_textf(&m, " — %s", longdate);
	for (i = 0; i < who->n; i++) {
		tlbot_msg_text(&m, i ? " " : ": ");
		tlbot_msg_mention(&m, who->v[i]);
	}
	tlbot_msg_br(&m);
	questions(&m, r);
	su_textf_code(&m,
	                "Answer with `%sstandup y: ... t: ... b: ...`, or reply to this message "
	                "(one line per question, or lines starting y: t: b:). Summary at %s.",
	                tlbot_ctx_prefix(ctx), sat);
	if (nobody_by_dm) {
		tlbot_msg_br(&m);
		su_textf_code(&m,
		                "Nobody to ask by direct message yet: add the team with "
		                "`%steam add @user --role R`.",
		                tlbot_ctx_prefix(ctx));
	}
	if (tlbot_send_room(ctx, r->room_id, &m) != 0)
		return -1;
	/* remember the prompt just enqueued: the worker records its event id
	 * in the outbox once sent, and a reply to it is an answer */
	if (tlbot_db_exec(ctx,
	                  "INSERT OR IGNORE INTO standup_prompt_msgs(txn_id, room_id, date)"
	                  " SELECT txn_id, room_id, ? FROM outbox WHERE room_id = ?"
	                  " AND kind = 'send' ORDER BY id DESC LIMIT 1",
	                  "tt", date, r->room_id) != 0)
		return -1;
	for (i = 0; i < who->n; i++)
		if (mark_prompted(ctx, r->room_id, who->v[i], date) != 0)
			return -1;
	return 0;
}

/* A person's own prompt at their local time (in the room when they turned
 * direct messages off since it was planned). 0 or -1. */
static int
prompt_own(struct tlbot_ctx *ctx, const struct su_room *r, const struct su_list *members,
           const char *user, const char *date)
{
	struct su_list here = {0};
	int rc;

	if (!su_list_has(members, user))
		return 0;
	if (tlbot_ctx_dm_enabled(ctx, user))
		return prompt_dm(ctx, r, user, date);
	if (su_is_away(ctx, r->room_id, user, date, NULL) ||
	    was_prompted(ctx, r->room_id, user, date))
		return 0;
	su_list_add(&here, user);
	rc = prompt_room(ctx, r, &here, date, 0);
	su_list_release(&here);
	return rc;
}

/* Ask member u of r for date: by DM, or added to here (asked in the
 * room), or a job of their own when their zone's prompt time is still to
 * come before the summary; nothing when away, asked or answered. 0 or -1. */
static int
prompt_member(struct tlbot_ctx *ctx, const struct su_room *r, const char *u, const char *date,
              time_t summary, struct su_list *here)
{
	char tz[128], key[1024], payload[600];
	time_t own;

	if (su_is_away(ctx, r->room_id, u, date, NULL) || was_prompted(ctx, r->room_id, u, date) ||
	    su_has_answer(ctx, r->room_id, u, date))
		return 0;
	if (strcmp(r->mode, "room") == 0 || !tlbot_ctx_dm_enabled(ctx, u)) {
		su_list_add(here, u); /* room mode, or direct messages off: asked in the room */
		return 0;
	}
	tlbot_user_tz(ctx, u, r->tz, tz, sizeof(tz));
	if (strcmp(tz, r->tz) == 0 || tlbot_sched_at(tz, date, r->minute, &own) != 0 ||
	    own <= tlbot_ctx_now(ctx) || own >= summary)
		return prompt_dm(ctx, r, u, date);
	/* later in their own zone: their own job */
	snprintf(key, sizeof(key), "standup.%s.%lld.%s.prompt.%s", r->room_id, (long long)r->gen,
	         date, u);
	snprintf(payload, sizeof(payload), "{\"gen\":%lld,\"date\":\"%s\",\"user\":\"%s\"}",
	         (long long)r->gen, date, u);
	if (strchr(u, '"') || strchr(u, '\\'))
		return 0;
	return tlbot_job_schedule(ctx, "standup.prompt", key, r->room_id, own, payload) < 0 ? -1
	                                                                                    : 0;
}

static int
fire_prompt(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	struct su_list members = {0}, here = {0};
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
		rc = prompt_own(ctx, &r, &members, p.user, p.date);
		goto out;
	}
	if (tlbot_sched_at(r.tz, p.date, r.summary_minute, &summary) != 0)
		summary = tlbot_ctx_now(ctx) + 3600;
	for (i = 0; i < members.n && rc == 0; i++)
		rc = prompt_member(ctx, &r, members.v[i], p.date, summary, &here);
	/* one room message: for those asked in the room, or (once a day) to
	 * say nobody can be asked yet; a re-planned prompt job finds everyone
	 * already asked and posts nothing */
	if (rc == 0 &&
	    (here.n > 0 || (members.n == 0 && !was_prompted(ctx, r.room_id, "*", p.date)))) {
		rc = prompt_room(ctx, &r, &here, p.date,
		                 strcmp(r.mode, "dm") == 0 && members.n == 0);
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
	struct su_list members = {0}, late = {0};
	struct payload p;
	struct su_room r;
	char sat[6];
	int rc, roster;
	size_t i;

	rc = job_room(ctx, job, &p, &r);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (job->missed || su_summary_posted(ctx, r.room_id, p.date)) {
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
		    !su_has_answer(ctx, r.room_id, members.v[i], p.date) &&
		    was_prompted(ctx, r.room_id, members.v[i], p.date) == 1 &&
		    !was_reminded(ctx, r.room_id, members.v[i], p.date))
			su_list_add(&late, members.v[i]);
	su_hhmm(r.summary_minute, sat);
	rc = 0;
	if (strcmp(r.mode, "dm") == 0) {
		for (i = 0; i < late.n && rc == 0; i++) {
			struct tlbot_msg m;

			tlbot_msg_init(&m);
			tlbot_msg_textf(&m, "Reminder: the stand-up summary for ");
			su_room_link(&m, ctx, r.room_id);
			tlbot_msg_textf(&m,
			                " is posted at %s and I have no answer from you yet. "
			                "Reply to my question with y: t: b: lines.",
			                sat);
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
		su_textf_code(&m, ": `%sstandup y: ... t: ... b: ...`", tlbot_ctx_prefix(ctx));
		rc = tlbot_send_room(ctx, r.room_id, &m);
	}
	for (i = 0; i < late.n && rc == 0; i++)
		rc = tlbot_db_exec(ctx,
		                   "UPDATE standup_prompts SET reminded = 1 WHERE room_id = ? AND"
		                   " user_id = ? AND date = ?",
		                   "ttt", r.room_id, late.v[i], p.date);
	su_list_release(&members);
	su_list_release(&late);
	su_room_release(&r);
	return rc;
}

static int
record_summary(struct tlbot_ctx *ctx, const char *room, const char *date, const char *kind,
               const char *text)
{
	return tlbot_db_exec(ctx,
	                     "INSERT INTO standup_summaries(room_id, date, at, kind, text)"
	                     " VALUES (?, ?, ?, ?, ?)",
	                     "ttitt", room, date, (int64_t)tlbot_ctx_now(ctx), kind, text);
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
	} else if (!su_summary_posted(ctx, r.room_id, p.date)) {
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

const struct tlbot_job_kind su_jobs[] = {
        {"standup.prompt", fire_prompt},
        {"standup.remind", fire_remind},
        {"standup.summary", fire_summary},
        {NULL, NULL},
};
