/* !remind: one-off reminders delivered by DM (to a person) or in the room.
 *	!remind @user|me|room in 2h|at 16:00|tomorrow 09:00|on 2026-12-01 [at HH:MM] "text"
 *	!remind list
 *	!remind cancel R-7
 * Times are read in the requester's zone (!me tz), else the default. */
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlbot/command.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"
#include "tlbot/when.h"

#define DEFAULT_MINUTE (9 * 60) /* "tomorrow" / "on DATE" without a time */
#define TEXT_MAX       1000

static const char *const schema_v1 =
        "CREATE TABLE reminders (id INTEGER PRIMARY KEY, owner TEXT NOT NULL,"
        "  target_user TEXT, target_room TEXT, room_id TEXT, due INTEGER NOT NULL,"
        "  tz TEXT NOT NULL, text TEXT NOT NULL, event_id TEXT, created_at INTEGER NOT NULL,"
        "  delivered INTEGER NOT NULL DEFAULT 0, delivered_at INTEGER,"
        "  missed INTEGER NOT NULL DEFAULT 0, cancelled INTEGER NOT NULL DEFAULT 0,"
        "  cancelled_by TEXT);"
        "CREATE INDEX reminders_owner ON reminders(owner, delivered, cancelled);"
        "CREATE INDEX reminders_target ON reminders(target_user, delivered, cancelled);";
static const char *const migrations[] = {schema_v1, NULL};
static const struct tlbot_schema schema = {"remind", migrations};

static const char *
user_zone(struct tlbot_ctx *ctx, char *buf, size_t len)
{
	tlbot_user_tz(ctx, tlbot_ctx_sender(ctx),
	              tlbot_ctx_default_tz(ctx) ? tlbot_ctx_default_tz(ctx) : "UTC", buf, len);
	return buf;
}

/* Join argv[i .. i+k) with spaces into out. 0, or -1 when past the end. */
static int
join(const struct tlbot_args *a, size_t i, size_t k, char *out, size_t outlen)
{
	size_t j, n = 0;

	if (i + k > a->argc)
		return -1;
	out[0] = '\0';
	for (j = 0; j < k; j++) {
		int w = snprintf(out + n, outlen - n, "%s%s", j ? " " : "", a->argv[i + j]);

		if (w < 0 || (size_t)w >= outlen - n)
			return -1;
		n += (size_t)w;
	}
	return 0;
}

/* The longest run of words from argv[i] (at most TLBOT_WHEN_MAX_WORDS) that
 * kind parses ('d' duration, 't' time of day, 'D' date): its length, or 0
 * with the reason for the one word in err. */
static size_t
longest(const struct tlbot_args *a, size_t i, char kind, time_t now, const char *tz, long *secs,
        int *minute, char date[11], char *err, size_t errlen)
{
	size_t k;
	char words[256];

	for (k = TLBOT_WHEN_MAX_WORDS; k >= 1; k--) {
		int rc;

		if (join(a, i, k, words, sizeof(words)) != 0)
			continue;
		if (kind == 'd')
			rc = tlbot_when_duration(words, secs, k == 1 ? err : NULL, errlen);
		else if (kind == 't')
			rc = tlbot_when_time(words, minute, k == 1 ? err : NULL, errlen);
		else
			rc = tlbot_when_date(words, now, tz, date, k == 1 ? err : NULL, errlen);
		if (rc == 0)
			return k;
	}
	return 0;
}

/* Parse the time words at argv[*i...] with the one parser (when.h): "in 2
 * hours", "at 5pm", "tomorrow 09:00", "friday at 10:00", "on 31 Jan at
 * 10:00". On success *due is set and *i points after them. 0, or -1 after
 * tlbot_fail. */
static int
parse_when(struct tlbot_ctx *ctx, const struct tlbot_args *a, size_t *i, const char *tz,
           time_t *due)
{
	time_t now = tlbot_ctx_now(ctx);
	const char *w = *i < a->argc ? a->argv[*i] : NULL;
	char date[11], err[400] = "";
	int minute = -1;
	long secs = -1;
	size_t k;

	if (w == NULL)
		return tlbot_fail(ctx, "when? in 2 hours | at 5pm | tomorrow 09:00 | on 31 Jan at 10:00");
	if (strcasecmp(w, "in") == 0) {
		k = longest(a, *i + 1, 'd', now, tz, &secs, &minute, date, err, sizeof(err));
		if (k == 0)
			return tlbot_fail(ctx, "bad duration after 'in': %s",
			                  err[0] ? err : tlbot_when_duration_hint);
		*i += 1 + k;
		*due = now + secs;
		return 0;
	}
	if (strcasecmp(w, "at") == 0) {
		k = longest(a, *i + 1, 't', now, tz, &secs, &minute, date, err, sizeof(err));
		if (k == 0)
			return tlbot_fail(ctx, "bad time after 'at': %s", err[0] ? err : tlbot_when_time_hint);
		*i += 1 + k;
		if (tlbot_tz_date(tz, now, date) != 0 || tlbot_sched_at(tz, date, minute, due) != 0)
			return tlbot_fail(ctx, "cannot compute the time in %s", tz);
		if (*due <= now) { /* already past today: tomorrow */
			char next[11];

			if (tlbot_date_add(date, 1, next) != 0 ||
			    tlbot_sched_at(tz, next, minute, due) != 0)
				return tlbot_fail(ctx, "cannot compute the time in %s", tz);
		}
		return 0;
	}
	if (strcasecmp(w, "on") == 0) {
		if (*i + 1 >= a->argc)
			return tlbot_fail(ctx, "on which date? %s", tlbot_date_forms);
		(*i)++;
	}
	k = longest(a, *i, 'D', now, tz, &secs, &minute, date, err, sizeof(err));
	if (k == 0) {
		if (strcasecmp(w, "on") == 0)
			return tlbot_fail(ctx, "bad date '%s': %s", a->argv[*i],
			                  err[0] ? err : tlbot_date_forms);
		return tlbot_fail(ctx,
		                  "when? '%s' is not one of: in 2 hours | at 5pm | tomorrow 09:00 | "
		                  "on 31 Jan [at 10:00]",
		                  w);
	}
	*i += k;
	minute = DEFAULT_MINUTE;
	if (*i < a->argc && strcasecmp(a->argv[*i], "at") == 0) {
		k = longest(a, *i + 1, 't', now, tz, &secs, &minute, date, err, sizeof(err));
		if (k == 0)
			return tlbot_fail(ctx, "bad time after 'at': %s", err[0] ? err : tlbot_when_time_hint);
		*i += 1 + k;
	} else if (*i < a->argc && (k = longest(a, *i, 't', now, tz, &secs, &minute, date, NULL, 0)) > 0) {
		*i += k;
	} else {
		minute = DEFAULT_MINUTE;
	}
	if (tlbot_sched_at(tz, date, minute, due) != 0)
		return tlbot_fail(ctx, "cannot compute the time in %s", tz);
	if (*due <= now)
		return tlbot_fail(ctx, "%s %02d:%02d (%s) is in the past", date, minute / 60, minute % 60,
		                  tz);
	return 0;
}

static void
when_text(time_t t, const char *tz, char *out, size_t len)
{
	struct tm tm;
	char date[11], longdate[64];

	if (tlbot_tz_local(tz, t, &tm) != 0 || tlbot_tz_date(tz, t, date) != 0) {
		snprintf(out, len, "%lld", (long long)t);
		return;
	}
	tlbot_date_long(date, longdate, sizeof(longdate));
	snprintf(out, len, "%s at %02d:%02d %s", longdate, tm.tm_hour, tm.tm_min, tz);
}

static int
create(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	const char *who = a->argv[0], *target_user = NULL, *target_room = NULL;
	char tz[128], key[64], payload[64], when[160];
	struct tlbot_buf text;
	struct tlbot_msg m;
	size_t i = 1;
	int64_t id;
	int rc;
	time_t due;

	if (strcasecmp(who, "me") == 0)
		target_user = tlbot_ctx_sender(ctx);
	else if (strcasecmp(who, "room") == 0 || strcasecmp(who, "here") == 0)
		target_room = tlbot_ctx_room(ctx);
	else if (tlbot_is_user_id(who))
		target_user = who;
	else if (tlbot_ctx_nmentions(ctx) == 1)
		target_user = tlbot_ctx_mention(ctx, 0);
	else
		return tlbot_fail(ctx,
		                  "remind whom? @user:server, me or room (usage: %sremind "
		                  "@user|me|room in 2h \"text\")",
		                  tlbot_ctx_prefix(ctx));
	if (target_room && tlbot_ctx_is_dm(ctx))
		target_user = tlbot_ctx_sender(ctx), target_room = NULL;
	user_zone(ctx, tz, sizeof(tz));
	if (parse_when(ctx, a, &i, tz, &due) != 0)
		return -1;
	if (i >= a->argc)
		return tlbot_fail(ctx, "what should I say? add the text in quotes");
	tlbot_buf_init(&text, TEXT_MAX);
	for (; i < a->argc; i++)
		if (tlbot_buf_printf(&text, "%s%s", text.len ? " " : "", a->argv[i]) != 0) {
			tlbot_buf_release(&text);
			return tlbot_fail(ctx, "the text is too long (at most %d bytes)", TEXT_MAX);
		}
	id = tlbot_ctx_next_id(ctx, "reminder");
	if (id < 0) {
		tlbot_buf_release(&text);
		return -1;
	}
	rc = tlbot_db_exec(
	        ctx,
	        "INSERT INTO reminders(id, owner, target_user, target_room, room_id, due,"
	        " tz, text, event_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	        "ittttittti", id, tlbot_ctx_sender(ctx), target_user, target_room,
	        tlbot_ctx_room(ctx), (int64_t)due, tz, tlbot_buf_str(&text),
	        tlbot_ctx_event_id(ctx), (int64_t)tlbot_ctx_now(ctx));
	tlbot_buf_release(&text);
	if (rc != 0)
		return -1;
	snprintf(key, sizeof(key), "remind.R-%lld", (long long)id);
	snprintf(payload, sizeof(payload), "{\"id\":%lld}", (long long)id);
	if (tlbot_job_schedule(ctx, "remind.deliver", key, tlbot_ctx_room(ctx), due, payload) < 0)
		return -1;
	when_text(due, tz, when, sizeof(when));
	tlbot_msg_init(&m);
	tlbot_msg_textf(&m, "R-%lld: I will remind ", (long long)id);
	if (target_room)
		tlbot_msg_text(&m, "this room");
	else if (strcmp(target_user, tlbot_ctx_sender(ctx)) == 0)
		tlbot_msg_text(&m, "you");
	else
		tlbot_msg_user(&m, target_user);
	tlbot_msg_textf(&m, " on %s%s. Cancel with %sremind cancel R-%lld.", when,
	                target_room ? "" : " by direct message", tlbot_ctx_prefix(ctx),
	                (long long)id);
	return tlbot_reply(ctx, &m);
}

/* At most 200 bytes of text (cut on a character boundary), so fifty
 * reminders always fit in one message. */
static void
short_text(struct tlbot_msg *m, const char *text)
{
	char buf[208];
	size_t n = text ? strlen(text) : 0;

	if (n <= 200) {
		tlbot_msg_text(m, text ? text : "");
		return;
	}
	n = 200;
	while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
		n--;
	memcpy(buf, text, n);
	memcpy(buf + n, "…", sizeof("…"));
	tlbot_msg_text(m, buf);
}

static int
list(struct tlbot_ctx *ctx)
{
	struct tlbot_db_rows q;
	char tz[128];
	struct tlbot_msg m;
	int n = 0, rc;

	if (tlbot_db_query(ctx, &q,
	                   "SELECT id, owner, target_user, target_room, due, text"
	                   " FROM reminders WHERE delivered = 0 AND cancelled = 0 AND missed = 0"
	                   " AND (owner = ?1 OR target_user = ?1 OR target_room = ?2)"
	                   " ORDER BY due, id LIMIT 50",
	                   "tt", tlbot_ctx_sender(ctx), tlbot_ctx_room(ctx)) != 0)
		return -1;
	user_zone(ctx, tz, sizeof(tz));
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Pending reminders");
	tlbot_msg_br(&m);
	tlbot_msg_html(&m, "<ul>");
	while ((rc = tlbot_db_next(&q)) > 0) {
		const char *owner = tlbot_db_col_text(&q, 1);
		const char *tu = tlbot_db_col_text(&q, 2);
		char when[160];

		when_text((time_t)tlbot_db_col_int(&q, 4), tz, when, sizeof(when));
		tlbot_msg_html(&m, "<li>");
		tlbot_msg_plain(&m, "• ");
		tlbot_msg_textf(&m, "R-%lld — %s — ", (long long)tlbot_db_col_int(&q, 0), when);
		if (tu == NULL)
			tlbot_msg_text(&m, "in the room");
		else if (strcmp(tu, tlbot_ctx_sender(ctx)) == 0)
			tlbot_msg_text(&m, "to you");
		else {
			tlbot_msg_text(&m, "to ");
			tlbot_msg_user(&m, tu);
		}
		if (owner && strcmp(owner, tlbot_ctx_sender(ctx)) != 0) {
			tlbot_msg_text(&m, ", from ");
			tlbot_msg_user(&m, owner);
		}
		tlbot_msg_text(&m, ": ");
		short_text(&m, tlbot_db_col_text(&q, 5));
		tlbot_msg_html(&m, "</li>");
		tlbot_msg_plain(&m, "\n");
		n++;
	}
	tlbot_db_done(&q);
	if (rc < 0) {
		tlbot_msg_release(&m);
		return -1;
	}
	tlbot_msg_html(&m, "</ul>");
	if (n == 0) {
		tlbot_msg_release(&m);
		return tlbot_replyf(ctx, "No pending reminders for you or this room.");
	}
	return tlbot_reply(ctx, &m);
}

static int
cancel(struct tlbot_ctx *ctx, const char *ref)
{
	const char *p = ref;
	char *end, key[64];
	long long id;
	struct tlbot_db_rows q;
	int found, allowed;

	if ((*p == 'R' || *p == 'r') && p[1] == '-')
		p += 2;
	else if (*p == 'R' || *p == 'r')
		p++;
	id = strtoll(p, &end, 10);
	if (*p == '\0' || *end != '\0' || id <= 0)
		return tlbot_fail(ctx, "which reminder? give its number, e.g. R-7 (`%sremind list`)",
		                  tlbot_ctx_prefix(ctx));
	if (tlbot_db_query(ctx, &q,
	                   "SELECT owner = ?2 OR target_user = ?2, room_id FROM reminders WHERE"
	                   " id = ?1 AND delivered = 0 AND cancelled = 0 AND missed = 0",
	                   "it", (int64_t)id, tlbot_ctx_sender(ctx)) != 0)
		return -1;
	found = tlbot_db_next(&q);
	allowed = found > 0 && (tlbot_db_col_int(&q, 0) ||
	                        (tlbot_db_col_text(&q, 1) && tlbot_ctx_room(ctx) &&
	                         strcmp(tlbot_db_col_text(&q, 1), tlbot_ctx_room(ctx)) == 0 &&
	                         tlbot_ctx_allowed(ctx, TLBOT_PERM_WRITE, tlbot_ctx_sender(ctx))));
	tlbot_db_done(&q);
	if (found < 0)
		return -1;
	if (!found)
		return tlbot_fail(ctx, "no pending reminder R-%lld", id);
	if (!allowed)
		return tlbot_fail(ctx, "not allowed: R-%lld is someone else's reminder", id);
	if (tlbot_db_exec(ctx, "UPDATE reminders SET cancelled = 1, cancelled_by = ? WHERE id = ?",
	                  "ti", tlbot_ctx_sender(ctx), (int64_t)id) != 0)
		return -1;
	snprintf(key, sizeof(key), "remind.R-%lld", id);
	if (tlbot_job_cancel(ctx, key) < 0)
		return -1;
	return tlbot_replyf(ctx, "Cancelled R-%lld.", id);
}

static int
remind(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	if (strcasecmp(args->argv[0], "list") == 0) {
		if (args->argc > 1)
			return tlbot_fail(ctx, "%sremind list takes no arguments",
			                  tlbot_ctx_prefix(ctx));
		return list(ctx);
	}
	if (strcasecmp(args->argv[0], "cancel") == 0) {
		if (args->argc != 2)
			return tlbot_fail(ctx, "usage: `%sremind cancel R-N`", tlbot_ctx_prefix(ctx));
		return cancel(ctx, args->argv[1]);
	}
	return create(ctx, args);
}

static int
fire(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	struct tlbot_db_rows q;
	char *owner = NULL, *tu = NULL, *tr = NULL, *text = NULL, *room = NULL;
	json_error_t jerr;
	json_t *p = json_loads(job->payload, 0, &jerr);
	int64_t id = json_integer_value(json_object_get(p, "id"));
	struct tlbot_msg m;
	int rc = 0;

	json_decref(p);
	if (tlbot_db_query(ctx, &q,
	                   "SELECT owner, target_user, target_room, text, room_id"
	                   " FROM reminders WHERE id = ? AND delivered = 0 AND cancelled = 0"
	                   " AND missed = 0",
	                   "i", id) != 0)
		return -1;
	rc = tlbot_db_next(&q);
	if (rc > 0) {
		owner = tlbot_db_col_dup(&q, 0);
		tu = tlbot_db_col_dup(&q, 1);
		tr = tlbot_db_col_dup(&q, 2);
		text = tlbot_db_col_dup(&q, 3);
		room = tlbot_db_col_dup(&q, 4);
	}
	tlbot_db_done(&q);
	if (rc <= 0)
		return rc; /* 0: cancelled or gone */
	rc = 0;
	if (job->missed) {
		rc = tlbot_db_exec(ctx, "UPDATE reminders SET missed = 1 WHERE id = ?", "i", id);
		goto out;
	}
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Reminder");
	if (owner && tu && strcmp(owner, tu) == 0) {
		tlbot_msg_text(&m, ": ");
	} else {
		tlbot_msg_text(&m, " from ");
		tlbot_msg_user(&m, owner);
		tlbot_msg_text(&m, ": ");
	}
	tlbot_msg_refs(&m, ctx, text ? text : "");
	tlbot_msg_textf(&m, " (R-%lld)", (long long)id);
	if (tr)
		rc = tlbot_send_room(ctx, tr, &m);
	else if (tu && (tlbot_ctx_dm_enabled(ctx, tu) || room == NULL))
		rc = tlbot_send_dm(ctx, tu, &m);
	else if (tu) {
		/* DMs off: in the room it was set in, mentioning them */
		tlbot_msg_text(&m, " ");
		tlbot_msg_mention(&m, tu);
		rc = tlbot_send_room(ctx, room, &m);
	} else
		tlbot_msg_release(&m);
	if (rc != 0)
		goto out;
	rc = tlbot_db_exec(ctx, "UPDATE reminders SET delivered = 1, delivered_at = ? WHERE id = ?",
	                   "ii", (int64_t)tlbot_ctx_now(ctx), id);
out:
	free(owner);
	free(tu);
	free(tr);
	free(text);
	free(room);
	return rc;
}

static const struct tlbot_job_kind jobs[] = {
        {"remind.deliver", fire},
        {NULL, NULL},
};

/* data protection: commands/remind_privacy.c */
int remind_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int remind_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                       struct tlbot_dp_report *report);
int remind_retain(struct tlbot_ctx *ctx, time_t before, struct tlbot_dp_report *report);

static const struct tlbot_param remind_params[] = {
        {TLBOT_TEXT("who", 0), .mode = TLBOT_WORD, .label = "@user|me|room|list|cancel",
         .desc = "who to remind (or list, cancel R-N)"},
        {TLBOT_TEXT("when", 0), .mode = TLBOT_OPTIONAL | TLBOT_REPEAT, .label = "WHEN TEXT",
         .desc = "when, then the text: in 2 hours call the council"},
        TLBOT_PARAMS_END};

/* about_user: the count of pending reminders the person set, for !me. */
static int
about_user(struct tlbot_ctx *ctx, struct tlbot_msg *m, const char *user_id, const char *today)
{
	int64_t n = 0;

	(void)today;
	if (tlbot_db_int(ctx, &n,
	                 "SELECT COUNT(*) FROM reminders WHERE owner = ? AND delivered = 0"
	                 " AND cancelled = 0",
	                 "t", user_id) < 0)
		return -1;
	tlbot_msg_textf(m, "Pending reminders you set: %d (%sremind list)", (int)n,
	                tlbot_ctx_prefix(ctx));
	tlbot_msg_br(m);
	return 1;
}

const struct tlbot_cmd tlbot_cmd_remind = {
        .name = "remind",
        .aliases = NULL,
        .summary = "a one-off reminder by direct message or in the room",
        .help = "When: in 2 hours, in 90 minutes, at 5pm, at 16:00, tomorrow 09:00, friday at 10:00,"
                " on 31 Jan at 10:00. The text needs no quotes.\n\n"
                "Examples: !remind room at 16:00 retro, !remind @sam:example.org tomorrow 09:00"
                " send the survey, !remind list, !remind cancel R-7. Times are in your zone"
                " (!me tz).",
        .example = "me in 2 hours call the council",
        .perm = TLBOT_PERM_ANYONE,
        .params = remind_params,
        .handler = remind,
        .schema = &schema,
        .jobs = jobs,
        .export_user = remind_export_user,
        .forget_user = remind_forget_user,
        .retain = remind_retain,
        .about_user = about_user,
};
