/* Stand-up answers: `!standup y: ... t: ... b: ...` in the room or a DM,
 * free-text DM replies to a prompt, edits (m.replace) and redactions of an
 * answer. The latest answer of the day counts; earlier ones are kept as
 * history (replaced_by). Private to the family (see standup.h). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "standup.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"

#define OPEN_PROMPT_S (20 * 3600) /* a DM reply within this of a prompt answers it */

/* Open prompts of user (room, date), newest first; only those not yet
 * summarised when some are, else the recent ones. 0 or -1. */
static int
open_prompts(struct tlbot_ctx *ctx, const char *user, const char *only_room, struct su_list *rooms,
             struct su_list *dates, int *summarised)
{
	int pass;

	*summarised = 0;
	for (pass = 0; pass < 2 && rooms->n == 0; pass++) {
		struct tlbot_db_rows q;
		int rc;

		if (tlbot_db_query(
		            ctx, &q,
		            "SELECT p.room_id, p.date FROM standup_prompts p WHERE p.user_id = ?"
		            " AND p.at > ? AND (? IS NULL OR p.room_id = ?) AND (? OR NOT EXISTS"
		            " (SELECT 1 FROM standup_summaries s WHERE s.room_id = p.room_id"
		            " AND s.date = p.date AND s.kind = 'scheduled')) ORDER BY p.at DESC",
		            "titti", user, (int64_t)(tlbot_ctx_now(ctx) - OPEN_PROMPT_S), only_room,
		            only_room, (int64_t)pass) != 0)
			return -1;
		while ((rc = tlbot_db_next(&q)) > 0) {
			const char *room = tlbot_db_col_text(&q, 0);

			if (su_list_has(rooms, room))
				continue;
			su_list_add(rooms, room);
			su_list_add(dates, tlbot_db_col_text(&q, 1));
		}
		tlbot_db_done(&q);
		if (rc < 0)
			return -1;
		*summarised = pass == 1;
	}
	return 0;
}

/* A borrowed string where a record member (char *) is wanted: the record
 * is only read (rec_insert), never released. */
static char *
mut(const char *s)
{
	return (char *)(uintptr_t)s;
}

/* The answer as it now stands, as a short list. */
static void
answer_list(struct tlbot_msg *m, char *const sec[3])
{
	static const char *const label[] = {"Yesterday", "Today", "Blockers"};
	int i;

	tlbot_msg_html(m, "<ul>");
	for (i = 0; i < 3; i++) {
		tlbot_msg_html(m, "<li>");
		tlbot_msg_plain(m, "\n- ");
		tlbot_msg_bold(m, label[i]);
		tlbot_msg_text(m, ": ");
		if (sec[i] && *sec[i])
			tlbot_msg_text(m, sec[i]);
		else
			tlbot_msg_italic(m, "(nothing yet)");
		tlbot_msg_html(m, "</li>");
	}
	tlbot_msg_html(m, "</ul>");
}

static void
free3(char *v[3])
{
	int k;

	for (k = 0; k < 3; k++) {
		free(v[k]);
		v[k] = NULL;
	}
}

/* Record text as user's answer in room for date. A part ("b: none", or
 * one line) after an answer of the same day replaces only that part: the
 * others are kept from the current answer (the earlier rows stay as
 * history), and *merged is set. keep (or NULL) gets the sections as
 * recorded (new strings). 0 or -1. */
static int
record_one(struct tlbot_ctx *ctx, const char *room, const char *date, const char *text,
           const char *event_id, const char *source, char *keep[3], int *merged)
{
	const char *user = tlbot_ctx_sender(ctx);
	struct su_answer a, old;
	struct su_room r;
	char *sec[3];
	int have = su_room_load(ctx, room, &r), nsec, cur, k;

	if (have < 0)
		return -1;
	nsec = su_parse_answer(text, have == 0 ? r.q : NULL, &sec[0], &sec[1], &sec[2]);
	if (have == 0)
		su_room_release(&r);
	if (nsec == 0) {
		free3(sec);
		return tlbot_fail(ctx, "empty stand-up answer: give y: (yesterday) t: (today) "
		                       "b: (blockers)");
	}
	cur = nsec < 3 ? su_answer_current(ctx, room, user, date, &old) : 1;
	if (cur < 0) {
		free3(sec);
		return -1;
	}
	if (cur == 0) {
		char **was[3] = {&old.yesterday, &old.today, &old.blockers};

		for (k = 0; k < 3; k++)
			if (sec[k] == NULL) {
				sec[k] = *was[k];
				*was[k] = NULL;
			}
		rec_release(&su_answer_desc, &old);
		*merged = 1;
	}
	a = (struct su_answer){.room_id = mut(room),
	                       .user_id = mut(user),
	                       .date = mut(date),
	                       .yesterday = sec[0],
	                       .today = sec[1],
	                       .blockers = sec[2],
	                       .event_id = mut(event_id),
	                       .source = mut(source)};
	if (su_answer_record(ctx, &a) < 0) {
		free3(sec);
		return -1;
	}
	for (k = 0; k < 3 && keep; k++) {
		keep[k] = sec[k];
		sec[k] = NULL;
	}
	free3(sec);
	return 0;
}

/* The acknowledgement: what was understood (rooms and dates) and, for a
 * part, what the whole answer now is (sec). */
static int
ack_answer(struct tlbot_ctx *ctx, const struct su_list *rooms, const struct su_list *dates,
           char *const sec[3], int merged, int late)
{
	struct tlbot_msg m;
	size_t i;

	tlbot_msg_init(&m);
	tlbot_msg_text(&m, merged ? "Thanks, your stand-up answer is updated for "
	                          : "Thanks, your stand-up answer is recorded for ");
	for (i = 0; i < rooms->n; i++) {
		char longdate[64];

		tlbot_date_long(dates->v[i], longdate, sizeof(longdate));
		if (i)
			tlbot_msg_text(&m, " and ");
		if (tlbot_ctx_is_dm(ctx) || strcmp(rooms->v[i], tlbot_ctx_room(ctx)) != 0) {
			su_room_link(&m, ctx, rooms->v[i]);
			tlbot_msg_text(&m, ", ");
		}
		tlbot_msg_text(&m, longdate);
		if (su_summary_posted(ctx, rooms->v[i], dates->v[i]))
			late = 1;
	}
	if (merged) {
		tlbot_msg_text(&m, ". Your answer now:");
		answer_list(&m, sec);
		tlbot_msg_plain(&m, "\n");
		su_textf_code(&m, "Give another part (`%sstandup b: ...`, or `t:` or `y:`) to change just"
		                  " that part.",
		              tlbot_ctx_prefix(ctx));
	} else {
		tlbot_msg_text(&m, ". Edit your message to change it; your latest answer counts.");
	}
	if (late)
		tlbot_msg_textf(&m,
		                " The summary was already posted: `%sstandup summary` shows it "
		                "with your answer.",
		                tlbot_ctx_prefix(ctx));
	return tlbot_reply(ctx, &m);
}

/* Record text as user's answer in each (room, date) (record_one) and,
 * when ack, acknowledge it (with the first room's answer). 0 or -1. */
static int
record_and_ack(struct tlbot_ctx *ctx, const struct su_list *rooms, const struct su_list *dates,
               const char *text, const char *event_id, const char *source, int ack, int late)
{
	char *now_sec[3] = {NULL, NULL, NULL};
	int merged = 0, rc = 0;
	size_t i;

	for (i = 0; i < rooms->n && rc == 0; i++)
		rc = record_one(ctx, rooms->v[i], dates->v[i], text, event_id, source,
		                i == 0 ? now_sec : NULL, &merged);
	if (rc == 0 && ack)
		rc = ack_answer(ctx, rooms, dates, now_sec, merged, late);
	free3(now_sec);
	return rc;
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

int
su_cmd_answer(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	struct su_list rooms = {0}, dates = {0};
	const char *text = answer_text(ctx, tlbot_ctx_body(ctx));
	int summarised = 0, rc;

	if (tlbot_ctx_is_dm(ctx)) {
		if (open_prompts(ctx, tlbot_ctx_sender(ctx), NULL, &rooms, &dates, &summarised) !=
		    0)
			return -1;
		if (rooms.n == 0) {
			su_list_release(&rooms);
			su_list_release(&dates);
			return tlbot_fail(ctx,
			                  "I have not asked you for a stand-up lately: answer in "
			                  "your team's room with `%sstandup y: ... t: ... b: ...`",
			                  tlbot_ctx_prefix(ctx));
		}
	} else {
		struct su_room r;
		char today[11];
		int have = su_room_load(ctx, tlbot_ctx_room(ctx), &r);

		if (have < 0)
			return -1;
		if (tlbot_tz_date(su_room_tz(ctx, have == 0 ? &r : NULL), tlbot_ctx_now(ctx),
		                  today) != 0) {
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
	if ((*p == '!' || *p == '/') &&
	    (strncasecmp(p + 1, "standup", 7) == 0 || strncasecmp(p + 1, "su ", 3) == 0))
		return answer_text(ctx, p);
	return p;
}

static int
on_edit(struct tlbot_ctx *ctx)
{
	const char *orig = tlbot_ctx_replaces(ctx);
	struct su_list rooms = {0}, dates = {0};
	struct tlbot_db_rows q;
	int rc;

	if (tlbot_db_query(ctx, &q,
	                   "SELECT room_id, date FROM standup_answers WHERE event_id = ? AND"
	                   " user_id = ? AND replaced_by IS NULL AND withdrawn = 0",
	                   "tt", orig, tlbot_ctx_sender(ctx)) != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		su_list_add(&rooms, tlbot_db_col_text(&q, 0));
		su_list_add(&dates, tlbot_db_col_text(&q, 1));
	}
	tlbot_db_done(&q);
	if (rc < 0) {
		su_list_release(&rooms);
		su_list_release(&dates);
		return -1;
	}
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
	if (tlbot_db_exec(ctx,
	                  "UPDATE standup_answers SET withdrawn = 1 WHERE event_id = ? AND"
	                  " user_id = ? AND replaced_by IS NULL",
	                  "tt", tlbot_ctx_redacts(ctx), tlbot_ctx_sender(ctx)) != 0)
		return -1;
	return tlbot_db_changes(ctx) > 0 ? 1 : 0;
}

/* The date of the stand-up prompt posted in room as event_id: 1 (date
 * filled), 0 when event_id is not one, -1 on error. */
static int
prompt_date(struct tlbot_ctx *ctx, const char *room, const char *event_id, char date[11])
{
	char *d = NULL;
	int rc;

	if (event_id == NULL)
		return 0;
	rc = tlbot_db_text(ctx, &d,
	                   "SELECT p.date FROM standup_prompt_msgs p JOIN outbox o"
	                   " ON o.txn_id = p.txn_id WHERE o.event_id = ? AND p.room_id = ?",
	                   "tt", event_id, room);
	if (rc < 0)
		return -1;
	if (rc == 0)
		snprintf(date, 11, "%s", d ? d : "(null)");
	free(d);
	return rc == 0;
}

int
su_on_message(struct tlbot_ctx *ctx)
{
	struct su_list rooms = {0}, dates = {0};
	const char *body = tlbot_ctx_body(ctx);
	int summarised = 0, rc = 0;
	size_t i;

	if (tlbot_ctx_redacts(ctx))
		return on_redaction(ctx);
	if (tlbot_ctx_replaces(ctx))
		return on_edit(ctx);
	if (tlbot_ctx_is_dm(ctx)) {
		int answered = 1;

		if (open_prompts(ctx, tlbot_ctx_sender(ctx), NULL, &rooms, &dates, &summarised) !=
		    0)
			return -1;
		if (rooms.n == 0)
			goto out;
		for (i = 0; i < rooms.n; i++)
			if (!su_has_answer(ctx, rooms.v[i], tlbot_ctx_sender(ctx), dates.v[i]))
				answered = 0;
		/* a chatty "thanks" after answering does not replace the answer */
		if (answered && tlbot_ctx_in_reply_to(ctx) == NULL && !su_has_marker(body, NULL)) {
			rc = tlbot_replyf(ctx,
			                  "I already have your stand-up answer. To replace it, "
			                  "reply to my question or start lines with y: t: b:; "
			                  "or edit your answer.") < 0
			             ? -1
			             : 1;
			goto out;
		}
		rc = record_and_ack(ctx, &rooms, &dates, body, tlbot_ctx_event_id(ctx), "dm", 1,
		                    summarised) < 0
		             ? -1
		             : 1;
		goto out;
	}
	/* in the room: a reply to the prompt posted here (people with direct
	 * messages off, rooms in mode room) is an answer for its date, exactly
	 * as a reply to a DM prompt; plain lines or y: t: b: */
	if (tlbot_ctx_in_reply_to(ctx) || tlbot_ctx_thread_root(ctx)) {
		char date[11];
		int found = prompt_date(ctx, tlbot_ctx_room(ctx), tlbot_ctx_in_reply_to(ctx), date);

		if (found == 0)
			found = prompt_date(ctx, tlbot_ctx_room(ctx), tlbot_ctx_thread_root(ctx),
			                    date);
		if (found < 0)
			return -1;
		if (found == 1) {
			su_list_add(&rooms, tlbot_ctx_room(ctx));
			su_list_add(&dates, date);
			rc = record_and_ack(ctx, &rooms, &dates, body, tlbot_ctx_event_id(ctx),
			                    "reply", 1, 0) < 0
			             ? -1
			             : 1;
			goto out;
		}
	}
	/* a reply with y:/t:/b: from someone asked in the room */
	if (tlbot_ctx_in_reply_to(ctx) && su_has_marker(body, NULL)) {
		if (open_prompts(ctx, tlbot_ctx_sender(ctx), tlbot_ctx_room(ctx), &rooms, &dates,
		                 &summarised) != 0)
			return -1;
		if (rooms.n == 0 || summarised)
			goto out;
		rc = record_and_ack(ctx, &rooms, &dates, body, tlbot_ctx_event_id(ctx), "reply", 1,
		                    0) < 0
		             ? -1
		             : 1;
	}
out:
	su_list_release(&rooms);
	su_list_release(&dates);
	return rc;
}
