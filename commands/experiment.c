/* !experiment (!exp): the team's test-and-learn record, from hypothesis to
 * decision. Every experiment belongs to a challenge (C-12), is E-<n>, goes
 * proposed -> running -> concluded (or abandoned from any state), and
 * every change is kept in the core history (tlbot_history_add: who, what, when, old -> new).
 *
 * Reminders: when an experiment's end date passes without a result, its
 * owner is reminded the next morning (09:00 local, DM and a room mention),
 * then weekly until it is concluded or abandoned (job "exp.remind").
 * Digests: each room with experiments gets a weekly learning digest, by
 * default on Fridays at 16:00 in the configured time zone ("!exp digest"
 * changes or stops it); when digest_room is configured, a cross-team digest
 * of every room's learnings is posted there weekly as well ("exp.digest").
 * The export lives in experiment_export.c. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlbot/command.h"
#include "tlbot/export.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"

#include "experiment.h"

#define MAX_TITLE EXP_MAX_TITLE
#define MAX_TEXT EXP_MAX_TEXT
#define PAGE_SIZE 20
#define REMIND_MINUTE (9 * 60)
#define DIGEST_DEFAULT_WDAY 4  /* Friday (0 = Monday) */
#define DIGEST_DEFAULT_MINUTE (16 * 60)
#define DIGEST_MAX_ITEMS 20
#define CROSS_ROOM "*"         /* experiment_digests row of the cross-team digest */

static const char *const statuses[] = { "proposed", "running", "concluded", "abandoned", NULL };
static const char *const decisions[] = { "persevere", "pivot", "stop", "scale", NULL };
static const char *const day_names[] = { "Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
					 "Saturday", "Sunday" };

/* ------------------------------------------------------------------------ */
/* Schema                                                                    */
/* ------------------------------------------------------------------------ */

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE experiments (id INTEGER PRIMARY KEY, challenge_id INTEGER NOT NULL,"
	"  room_id TEXT NOT NULL, title TEXT NOT NULL, owner TEXT NOT NULL, believe TEXT,"
	"  result_in TEXT, know_when TEXT, method TEXT, metric TEXT, baseline REAL,"
	"  target REAL, unit TEXT, start_date TEXT, end_date TEXT, status TEXT NOT NULL,"
	"  result_value REAL, finding TEXT, decision TEXT, decision_reason TEXT,"
	"  abandon_reason TEXT, created_by TEXT, created_at INTEGER, created_event TEXT,"
	"  updated_at INTEGER);"
	"CREATE INDEX experiments_room_status ON experiments(room_id, status, id);"
	"CREATE INDEX experiments_room ON experiments(room_id, id);"
	"CREATE INDEX experiments_challenge ON experiments(challenge_id, id);"
	"CREATE INDEX experiments_owner ON experiments(owner, id);"
	"CREATE TABLE experiment_learnings (id INTEGER PRIMARY KEY, experiment_id INTEGER NOT NULL,"
	"  text TEXT NOT NULL, by TEXT, at INTEGER);"
	"CREATE INDEX experiment_learnings_exp ON experiment_learnings(experiment_id, id);"
	"CREATE INDEX experiment_learnings_at ON experiment_learnings(at);"
	"CREATE TABLE experiment_notes (id INTEGER PRIMARY KEY, experiment_id INTEGER NOT NULL,"
	"  text TEXT NOT NULL, by TEXT, at INTEGER);"
	"CREATE INDEX experiment_notes_exp ON experiment_notes(experiment_id, id);"
	/* one row per changed field; an action that changes several fields
	 * (a result sets status, value and finding) writes several rows with
	 * the same actor, action and time */
	"CREATE TABLE experiment_history (id INTEGER PRIMARY KEY, experiment_id INTEGER,"
	"  room_id TEXT, at INTEGER, actor TEXT, action TEXT, field TEXT, old TEXT, new TEXT);"
	"CREATE INDEX experiment_history_room_at ON experiment_history(room_id, at);"
	"CREATE INDEX experiment_history_exp ON experiment_history(experiment_id, id);"
	"CREATE INDEX experiment_history_action_at ON experiment_history(action, at);"
	/* weekly digests: one row per room, and CROSS_ROOM for the cross-team one */
	"CREATE TABLE experiment_digests (room_id TEXT PRIMARY KEY, enabled INTEGER NOT NULL,"
	"  wday INTEGER NOT NULL, minute INTEGER NOT NULL, tz TEXT NOT NULL, last_at INTEGER,"
	"  job_key TEXT);",
	/* 2: the stand-up's overdue check and `!exp list --mine` scanned a
	 * room's rows (bench/run: 29 ms and 54 ms at 100,000 experiments) */
	"CREATE INDEX experiments_room_status_end ON experiments(room_id, status, end_date);"
	"CREATE INDEX experiments_room_owner ON experiments(room_id, owner, id);",
	/* 3: the history moves to the core table behind tlbot_history_add */
	"INSERT INTO history(kind, record_id, room_id, at, actor, action, field, old, new)"
	"  SELECT 'E', experiment_id, room_id, IFNULL(at, 0), actor, IFNULL(action, '?'), field, old, new"
	"  FROM experiment_history ORDER BY id;"
	"DROP TABLE experiment_history;",
	NULL
};

static const struct tlbot_schema schema = { "experiment", migrations };

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static size_t utf8_cut(const char *s, size_t max);

int
tlbot_exp_fail(struct tlbot_ctx *ctx, const char *fmt, ...)
{
	struct tlbot_buf b;
	va_list ap;
	size_t i, n;
	int rc;

	tlbot_buf_init(&b, 4096);
	va_start(ap, fmt);
	if (tlbot_buf_vprintf(&b, fmt, ap) != 0)
		tlbot_buf_adds(&b, "the command was refused (its reason is too long to show)");
	va_end(ap);
	/* one line: user text echoed in the reason may hold line breaks */
	for (i = 0; i < b.len; i++)
		if (b.data[i] == '\n' || b.data[i] == '\r' || b.data[i] == '\t')
			b.data[i] = ' ';
	n = utf8_cut(tlbot_buf_str(&b), 700);
	if (n < b.len) {
		b.data[n] = '\0';
		b.len = n;
		tlbot_buf_adds(&b, "…");
	}
	rc = tlbot_fail(ctx, "%s", tlbot_buf_str(&b));
	tlbot_buf_release(&b);
	return rc;
}

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
in_list(const char *const *list, const char *s)
{
	size_t i;

	for (i = 0; list[i]; i++)
		if (strcasecmp(list[i], s) == 0)
			return (int)i;
	return -1;
}

/* ------------------------------------------------------------------------ */
/* The record                                                                */
/* ------------------------------------------------------------------------ */

#define EXP_X_FIELD(...) REC_X_FIELD(struct exp_rec, __VA_ARGS__)
static const struct rec_field exp_fields[] = { EXP_FIELDS(EXP_X_FIELD){ NULL, NULL, 0, 0, 0, NULL, 0 } };
const struct rec_desc tlbot_exp_desc = { "experiments", "E", "C", "updated_at", exp_fields };
#define DESC (&tlbot_exp_desc)

/* The field of column col (a constant of this file). */
static const struct rec_field *
field_of(const char *col)
{
	return rec_field_by_column(DESC, col);
}

/* Load experiment id. Returns 0 (r filled), 1 when there is none, -1 on a
 * database error (the context is marked). */
static int
load(struct tlbot_ctx *ctx, int64_t id, struct exp_rec *r)
{
	memset(r, 0, sizeof(*r));
	return rec_load(ctx, DESC, id, r);
}

static void
release(struct exp_rec *r)
{
	rec_release(DESC, r);
}

int
tlbot_exp_parse_ref(const char *s, char letter, int64_t *out)
{
	const char *p = s;
	int64_t v = 0;

	if (s == NULL)
		return -1;
	if (*p == '#')
		p++;
	else if (toupper((unsigned char)*p) == letter) {
		p++;
		if (*p == '-')
			p++;
	}
	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > 100000000000000LL)
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (*p != '\0' || v <= 0)
		return -1;
	*out = v;
	return 0;
}

/* Byte length of at most max bytes of s, cut at a UTF-8 character start. */
static size_t
utf8_cut(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* Count characters (code points) of UTF-8 text. */
static size_t
utf8_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

/* User text with references linked, cut to max bytes with an ellipsis. */
static void
text_clip(struct tlbot_msg *m, struct tlbot_ctx *ctx, const char *s, size_t max)
{
	struct tlbot_buf b;
	size_t n;

	if (s == NULL)
		return;
	n = utf8_cut(s, max);
	if (n == strlen(s)) {
		tlbot_msg_refs(m, ctx, s);
		return;
	}
	tlbot_buf_init(&b, max + 8);
	tlbot_buf_add(&b, s, n);
	tlbot_buf_adds(&b, "…");
	tlbot_msg_refs(m, ctx, tlbot_buf_str(&b));
	tlbot_buf_release(&b);
}

static void
fmt_num(double v, char *out, size_t outlen)
{
	if (tlbot_fmt_double(v, out, outlen) != 0)
		snprintf(out, outlen, "?");
}

/* "E-34" as a link to the message that created it, title on hover. */
static void
exp_link(struct tlbot_msg *m, const struct exp_rec *r)
{
	char label[32];

	snprintf(label, sizeof(label), "E-%lld", (long long)r->id);
	if (r->created_event && r->room_id) {
		struct tlbot_buf href;

		tlbot_buf_init(&href, 2048);
		tlbot_buf_printf(&href, "https://matrix.to/#/%s/%s", r->room_id, r->created_event);
		tlbot_msg_link(m, label, tlbot_buf_str(&href), r->title);
		tlbot_buf_release(&href);
	} else {
		tlbot_msg_text(m, label);
	}
}

static void
challenge_ref(struct tlbot_msg *m, struct tlbot_ctx *ctx, int64_t cid)
{
	char ref[32];

	snprintf(ref, sizeof(ref), "C-%lld", (long long)cid);
	tlbot_msg_refs(m, ctx, ref);
}

static const char *
actor(struct tlbot_ctx *ctx)
{
	const char *s = tlbot_ctx_sender(ctx);

	return s ? s : tlbot_ctx_bot_user(ctx);
}

static const char *
tz_default(struct tlbot_ctx *ctx)
{
	const char *tz = tlbot_ctx_default_tz(ctx);

	return tz && tlbot_tz_valid(tz) ? tz : "UTC";
}

static void
today(struct tlbot_ctx *ctx, char out[11])
{
	if (tlbot_tz_date(tz_default(ctx), tlbot_ctx_now(ctx), out) != 0)
		snprintf(out, 11, "1970-01-01");
}

/* Local "YYYY-MM-DD HH:MM" of t in the default zone. */
static void
local_time(struct tlbot_ctx *ctx, time_t t, char *out, size_t outlen)
{
	struct tm tm;

	if (tlbot_tz_local(tz_default(ctx), t, &tm) != 0) {
		snprintf(out, outlen, "?");
		return;
	}
	snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min);
}

/* Append one history row. Returns 0 or -1 (ctx marked). */
static int
hist(struct tlbot_ctx *ctx, const struct exp_rec *r, const char *action, const char *field,
     const char *old, const char *new_)
{
	return tlbot_history_add(ctx, "E", r->id, action, field, old, new_);
}

/* Set text column col to v, with a history row. 0 (also when unchanged)
 * or -1 (ctx marked). */
static int
set_text(struct tlbot_ctx *ctx, struct exp_rec *r, const char *col, const char *v,
	 const char *action)
{
	return rec_set_text(ctx, DESC, r, field_of(col), v, action);
}

/* ------------------------------------------------------------------------ */
/* Input checks                                                              */
/* ------------------------------------------------------------------------ */

/* A plain decimal number: sign, digits, fraction, exponent; finite, in
 * range, nothing after it. 0 or -1. */
static int
parse_number(const char *s, double *out)
{
	const char *p = s;
	char *end;
	double v;

	if (*p == '+' || *p == '-')
		p++;
	if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1])))
		return -1;
	if (strpbrk(s, "xXpP") != NULL)
		return -1; /* no hexadecimal floats */
	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

static int
fail_number(struct tlbot_ctx *ctx, const char *flag, const char *v)
{
	return tlbot_exp_fail(ctx, "bad number '%s' for --%s: write a plain number such as 12, 0.75,"
			  " -3.5 or 1e6 (no units, commas or %%; put the unit in --unit)", v, flag);
}

/* Check free text: max bytes, and (when required) not blank. 0 or -1. */
static int
check_text(struct tlbot_ctx *ctx, const char *what, const char *v, size_t max, int required)
{
	const char *p;

	if (v == NULL)
		return required ? tlbot_exp_fail(ctx, "missing %s", what) : 0;
	for (p = v; *p && isspace((unsigned char)*p); p++)
		;
	if (required && *p == '\0')
		return tlbot_exp_fail(ctx, "empty %s: it needs some text", what);
	if (utf8_len(v) > max)
		return tlbot_exp_fail(ctx, "%s is too long (%zu characters; at most %zu): shorten it"
				  " or put the detail in a note", what, utf8_len(v), max);
	return 0;
}

/* A date of `edit --flag`: dispatch wrote it YYYY-MM-DD, or passed
 * "none", which is not a date here. 0 or -1 (failed). */
static int
parse_date_arg(struct tlbot_ctx *ctx, const char *flag, const char *v, char out[11])
{
	if (tlbot_parse_date(v, tlbot_ctx_now(ctx), tz_default(ctx), out) != 0)
		return tlbot_exp_fail(ctx, "bad date '%s' for --%s: %s", v, flag, tlbot_date_forms);
	return 0;
}

/* Owner from --owner: a user id, or the one person mentioned. */
static int
parse_owner(struct tlbot_ctx *ctx, const char *v, char **out)
{
	const char *id = NULL;

	if (tlbot_is_user_id(v))
		id = v;
	else if (tlbot_ctx_nmentions(ctx) == 1)
		id = tlbot_ctx_mention(ctx, 0);
	if (id == NULL)
		return tlbot_exp_fail(ctx, "bad owner '%s': give a Matrix user id such as"
				  " @alice:example.org, or mention the person", v);
	*out = strdup(id);
	return *out ? 0 : tlbot_exp_fail(ctx, "out of memory");
}

/* Case-insensitive (ASCII) search for phrase as whole words in hay. */
static const char *
find_phrase(const char *hay, const char *phrase)
{
	size_t n = strlen(phrase);
	const char *p;

	for (p = hay; *p; p++) {
		if (strncasecmp(p, phrase, n) != 0)
			continue;
		if (p != hay && !isspace((unsigned char)p[-1]) && !ispunct((unsigned char)p[-1]))
			continue;
		if (p[n] != '\0' && !isspace((unsigned char)p[n]) && !ispunct((unsigned char)p[n]))
			continue;
		return p;
	}
	return NULL;
}

/* A copy of [a, b) without surrounding space and trailing . , ; */
static char *
trimmed(const char *a, const char *b)
{
	char *out;

	while (a < b && isspace((unsigned char)*a))
		a++;
	while (b > a && (isspace((unsigned char)b[-1]) || strchr(".,;", b[-1])))
		b--;
	if (b == a)
		return NULL;
	out = malloc((size_t)(b - a) + 1);
	if (out) {
		memcpy(out, a, (size_t)(b - a));
		out[b - a] = '\0';
	}
	return out;
}

/* "We believe X will result in Y. We will know when Z." (case-insensitive)
 * into three new strings. Returns 0 or -1. */
static int
parse_hypothesis(const char *s, char **x, char **y, char **z)
{
	const char *p = s, *will, *know;

	*x = *y = *z = NULL;
	while (isspace((unsigned char)*p))
		p++;
	if (find_phrase(p, "we believe") != p)
		return -1;
	p += strlen("we believe");
	will = find_phrase(p, "will result in");
	if (will == NULL)
		return -1;
	know = find_phrase(will, "we will know when");
	if (know == NULL)
		return -1;
	*x = trimmed(p, will);
	*y = trimmed(will + strlen("will result in"), know);
	*z = trimmed(know + strlen("we will know when"), know + strlen(know));
	if (*x && *y && *z)
		return 0;
	free(*x);
	free(*y);
	free(*z);
	*x = *y = *z = NULL;
	return -1;
}

static const char hypothesis_forms[] =
	"write one sentence \"We believe <change> will result in <outcome>. We will know when"
	" <measure>.\" or give --believe, --result-in and --know-when";

/* The hypothesis from a sentence (may be NULL) and/or the three flags, into
 * new strings. required: all three must be there. Returns 0 or -1 (failed). */
static int
get_hypothesis(struct tlbot_ctx *ctx, const struct tlbot_args *a, const char *sentence,
	       int required, char **x, char **y, char **z)
{
	const char *fb = tlbot_args_get(a, "believe"), *fr = tlbot_args_get(a, "result-in"),
		   *fk = tlbot_args_get(a, "know-when");

	*x = *y = *z = NULL;
	if (sentence && (fb || fr || fk))
		return tlbot_exp_fail(ctx, "the hypothesis is given twice: %s, not both", hypothesis_forms);
	if (sentence) {
		if (parse_hypothesis(sentence, x, y, z) != 0)
			return tlbot_exp_fail(ctx, "hypothesis not in the standard form: %s", hypothesis_forms);
	} else if (fb || fr || fk) {
		if (required && !fb)
			return tlbot_exp_fail(ctx, "missing --believe (the change you make): %s", hypothesis_forms);
		if (required && !fr)
			return tlbot_exp_fail(ctx, "missing --result-in (the outcome you expect): %s", hypothesis_forms);
		if (required && !fk)
			return tlbot_exp_fail(ctx, "missing --know-when (how you will measure it): %s", hypothesis_forms);
		if ((fb && (*x = strdup(fb)) == NULL) || (fr && (*y = strdup(fr)) == NULL) ||
		    (fk && (*z = strdup(fk)) == NULL))
			goto oom;
	} else if (required) {
		return tlbot_exp_fail(ctx, "missing hypothesis: %s", hypothesis_forms);
	}
	if (check_text(ctx, "--believe", *x, MAX_TEXT, fb != NULL || sentence) != 0 ||
	    check_text(ctx, "--result-in", *y, MAX_TEXT, fr != NULL || sentence) != 0 ||
	    check_text(ctx, "--know-when", *z, MAX_TEXT, fk != NULL || sentence) != 0)
		goto fail;
	return 0;
oom:
	tlbot_exp_fail(ctx, "out of memory");
fail:
	free(*x);
	free(*y);
	free(*z);
	*x = *y = *z = NULL;
	return -1;
}

/* Check that challenge arg exists, through the challenge family's
 * reference hook. 0 (*cid set) or -1 (failed). */
static int
check_challenge(struct tlbot_ctx *ctx, const char *arg, int64_t *cid)
{
	int rc;

	if (tlbot_exp_parse_ref(arg, 'C', cid) != 0)
		return tlbot_exp_fail(ctx, "bad challenge '%s': give its id such as C-12 (%schallenge list"
				  " shows them)", arg, tlbot_ctx_prefix(ctx));
	rc = tlbot_ref_exists(ctx, "C", *cid);
	if (rc < 0)
		return -1;
	if (rc == 2)
		return tlbot_exp_fail(ctx, "cannot check challenge C-%lld: challenges are not set up"
				  " in this tlbot (the challenge command is missing)", (long long)*cid);
	if (rc == 1)
		return tlbot_exp_fail(ctx, "unknown challenge C-%lld: %schallenge list shows the challenges",
				  (long long)*cid, tlbot_ctx_prefix(ctx));
	return 0;
}

enum access { ACCESS_READ, ACCESS_ROOM, ACCESS_OWNER };

/* Load the experiment of the command's first argument. ACCESS_READ: from any room;
 * ACCESS_ROOM: it must be this room's; ACCESS_OWNER: also the sender must
 * be its owner, its creator or have write permission. 0 or -1 (failed). */
static int
load_arg(struct tlbot_ctx *ctx, const struct tlbot_args *a, struct exp_rec *r, enum access how)
{
	const char *sender = tlbot_ctx_sender(ctx);
	int64_t id = tlbot_args_val(a, 0)->n; /* E-34, checked by dispatch */
	int rc;

	rc = load(ctx, id, r);
	if (rc < 0)
		return -1;
	if (rc > 0)
		return tlbot_exp_fail(ctx, "unknown experiment E-%lld: %sexp list shows this room's experiments",
				  (long long)id, tlbot_ctx_prefix(ctx));
	if (how != ACCESS_READ && !str_eq(r->room_id, tlbot_ctx_room(ctx))) {
		release(r);
		return tlbot_exp_fail(ctx, "E-%lld belongs to another room: change it there",
				  (long long)id);
	}
	if (how == ACCESS_OWNER && !str_eq(sender, r->owner) && !str_eq(sender, r->created_by) &&
	    !tlbot_ctx_allowed(ctx, TLBOT_PERM_WRITE, sender)) {
		tlbot_exp_fail(ctx, "not allowed: only E-%lld's owner (%s), its creator or a room"
			   " moderator may change it", (long long)id, r->owner);
		release(r);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Reminders                                                                 */
/* ------------------------------------------------------------------------ */

/* Cancel E-id's pending reminders and, when it is still open and has an
 * end date, schedule the next one. 0 or -1 (database). */
static int
schedule_reminder(struct tlbot_ctx *ctx, const struct exp_rec *r)
{
	const char *tz = tz_default(ctx);
	char key[96], payload[64], date[11];
	time_t due, now = tlbot_ctx_now(ctx);
	int64_t seq;

	snprintf(key, sizeof(key), "exp.remind.%lld.*", (long long)r->id);
	if (tlbot_job_cancel(ctx, key) < 0)
		return -1;
	if (r->end_date == NULL || strcmp(r->status, "concluded") == 0 ||
	    strcmp(r->status, "abandoned") == 0)
		return 0;
	/* the morning after the end date */
	if (tlbot_date_add(r->end_date, 1, date) != 0 ||
	    tlbot_sched_at(tz, date, REMIND_MINUTE, &due) != 0)
		return 0;
	if (due <= now && tlbot_sched_next(tz, REMIND_MINUTE, TLBOT_DAYS_ALL, now, NULL, NULL,
					   &due, NULL) != 0)
		return 0;
	seq = tlbot_ctx_next_id(ctx, "experiment.job");
	if (seq < 0)
		return -1;
	snprintf(key, sizeof(key), "exp.remind.%lld.%lld", (long long)r->id, (long long)seq);
	snprintf(payload, sizeof(payload), "{\"id\":%lld}", (long long)r->id);
	return tlbot_job_schedule(ctx, "exp.remind", key, r->room_id, due, payload) < 0 ? -1 : 0;
}

static int
fire_reminder(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	const char *tz = tz_default(ctx), *p = tlbot_ctx_prefix(ctx);
	json_error_t jerr;
	json_t *pl = json_loads(job->payload, 0, &jerr);
	int64_t id = json_integer_value(json_object_get(pl, "id"));
	struct exp_rec r;
	char date[11], key[96], payload[64], cmd[160];
	time_t next, now = tlbot_ctx_now(ctx);
	int64_t seq;
	int rc;

	json_decref(pl);
	rc = load(ctx, id, &r);
	if (rc != 0)
		return rc > 0 ? 0 : -1;
	if (strcmp(r.status, "concluded") == 0 || strcmp(r.status, "abandoned") == 0 ||
	    r.end_date == NULL) {
		release(&r);
		return 0;
	}
	if (!job->missed) {
		struct tlbot_msg m;
		int i;

		for (i = 0; i < 2; i++) {
			int dm = i == 1;

			if (dm && !tlbot_ctx_dm_enabled(ctx, r.owner))
				continue;
			tlbot_msg_init(&m);
			tlbot_msg_text(&m, "⏰ ");
			if (!dm) {
				tlbot_msg_mention(&m, r.owner);
				tlbot_msg_text(&m, ": ");
			}
			exp_link(&m, &r);
			tlbot_msg_text(&m, " “");
			tlbot_msg_text(&m, r.title);
			if (strcmp(r.status, "proposed") == 0)
				tlbot_msg_textf(&m, "” was due to end on %s but was never started, and"
						" has no result.", r.end_date);
			else
				tlbot_msg_textf(&m, "” ended on %s and has no result yet.", r.end_date);
			tlbot_msg_br(&m);
			tlbot_msg_text(&m, "Record it with ");
			snprintf(cmd, sizeof(cmd), "%sexp result E-%lld --value N \"finding\"", p,
				 (long long)r.id);
			tlbot_msg_code(&m, cmd);
			tlbot_msg_text(&m, ", extend it with ");
			snprintf(cmd, sizeof(cmd), "%sexp edit E-%lld --until DATE", p, (long long)r.id);
			tlbot_msg_code(&m, cmd);
			tlbot_msg_text(&m, " or stop it with ");
			snprintf(cmd, sizeof(cmd), "%sexp abandon E-%lld \"reason\"", p, (long long)r.id);
			tlbot_msg_code(&m, cmd);
			tlbot_msg_text(&m, ". I will remind you weekly until then.");
			if ((dm ? tlbot_send_dm(ctx, r.owner, &m) : tlbot_send_room(ctx, r.room_id, &m)) != 0) {
				release(&r);
				return -1;
			}
		}
	}
	/* weekly, at the same local time, from the due date (or from now when
	 * the bot was down for longer than the grace period) */
	next = 0;
	if (tlbot_tz_date(tz, job->due, date) == 0 && tlbot_date_add(date, 7, date) == 0)
		tlbot_sched_at(tz, date, REMIND_MINUTE, &next);
	while (next != 0 && next <= now) {
		if (tlbot_date_add(date, 7, date) != 0 || tlbot_sched_at(tz, date, REMIND_MINUTE, &next) != 0)
			next = 0;
	}
	rc = 0;
	if (next != 0) {
		seq = tlbot_ctx_next_id(ctx, "experiment.job");
		snprintf(key, sizeof(key), "exp.remind.%lld.%lld", (long long)r.id, (long long)seq);
		snprintf(payload, sizeof(payload), "{\"id\":%lld}", (long long)r.id);
		if (seq < 0 || tlbot_job_schedule(ctx, "exp.remind", key, r.room_id, next, payload) < 0)
			rc = -1;
	}
	release(&r);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Digests                                                                   */
/* ------------------------------------------------------------------------ */

struct digest_cfg {
	int exists, enabled, wday, minute;
	char tz[128];
	int64_t last_at;
	char key[160];
};

/* 0 (cfg filled; exists tells whether a row was there) or -1. */
static int
digest_get(struct tlbot_ctx *ctx, const char *room, struct digest_cfg *c)
{
	struct tlbot_db_rows q;
	int rc;

	memset(c, 0, sizeof(*c));
	c->enabled = 1;
	c->wday = DIGEST_DEFAULT_WDAY;
	c->minute = DIGEST_DEFAULT_MINUTE;
	snprintf(c->tz, sizeof(c->tz), "%s", tz_default(ctx));
	if (tlbot_db_query(ctx, &q, "SELECT enabled, wday, minute, tz, last_at, job_key"
			   " FROM experiment_digests WHERE room_id = ?", "t", room) != 0)
		return -1;
	rc = tlbot_db_next(&q);
	if (rc > 0) {
		const char *tz = tlbot_db_col_text(&q, 3), *key = tlbot_db_col_text(&q, 5);

		c->exists = 1;
		c->enabled = (int)tlbot_db_col_int(&q, 0);
		c->wday = (int)tlbot_db_col_int(&q, 1);
		c->minute = (int)tlbot_db_col_int(&q, 2);
		if (tz)
			snprintf(c->tz, sizeof(c->tz), "%s", tz);
		c->last_at = tlbot_db_col_int(&q, 4);
		if (key)
			snprintf(c->key, sizeof(c->key), "%s", key);
	}
	tlbot_db_done(&q);
	return rc < 0 ? -1 : 0;
}

/* Cancel the room's pending digest job and, when enabled, schedule the
 * next one after `after`; store the settings. 0 or -1. */
static int
digest_put(struct tlbot_ctx *ctx, const char *room, struct digest_cfg *c, time_t after,
	   time_t *next_out)
{
	time_t next = 0;

	if (next_out)
		*next_out = 0;
	if (c->key[0] && tlbot_job_cancel(ctx, c->key) < 0)
		return -1;
	c->key[0] = '\0';
	if (c->enabled &&
	    tlbot_sched_next(c->tz, c->minute, 1u << c->wday, after, NULL, NULL, &next, NULL) == 0) {
		int64_t seq = tlbot_ctx_next_id(ctx, "experiment.job");
		json_t *pl = json_pack("{s:s}", "room", room);
		char *text = pl ? json_dumps(pl, JSON_COMPACT) : NULL;
		int64_t jid;

		json_decref(pl);
		if (seq < 0 || text == NULL) {
			free(text);
			return -1;
		}
		snprintf(c->key, sizeof(c->key), "exp.digest.%lld", (long long)seq);
		jid = tlbot_job_schedule(ctx, "exp.digest", c->key,
					 strcmp(room, CROSS_ROOM) == 0 ? tlbot_ctx_digest_room(ctx) : room,
					 next, text);
		free(text);
		if (jid < 0)
			return -1;
	}
	if (next_out)
		*next_out = next;
	return tlbot_db_exec(ctx, "INSERT INTO experiment_digests(room_id, enabled, wday, minute, tz,"
			     " last_at, job_key) VALUES (?, ?, ?, ?, ?, NULLIF(?, 0), ?) ON CONFLICT(room_id)"
			     " DO UPDATE SET enabled = excluded.enabled, wday = excluded.wday,"
			     " minute = excluded.minute, tz = excluded.tz, last_at = excluded.last_at,"
			     " job_key = excluded.job_key", "tiiitit", room, (int64_t)c->enabled,
			     (int64_t)c->wday, (int64_t)c->minute, c->tz, c->last_at,
			     c->key[0] ? c->key : NULL);
}

/* Make sure this room's digest and (when configured) the cross-team digest
 * exist, with their defaults. 0 or -1. */
static int
ensure_digests(struct tlbot_ctx *ctx, const char *room)
{
	struct digest_cfg c;

	if (digest_get(ctx, room, &c) != 0)
		return -1;
	if (!c.exists && digest_put(ctx, room, &c, tlbot_ctx_now(ctx), NULL) != 0)
		return -1;
	if (tlbot_ctx_digest_room(ctx) == NULL)
		return 0;
	if (digest_get(ctx, CROSS_ROOM, &c) != 0)
		return -1;
	if (!c.exists || (c.enabled && c.key[0] == '\0'))
		return digest_put(ctx, CROSS_ROOM, &c, tlbot_ctx_now(ctx), NULL);
	return 0;
}

/* One digest line: "E-3 “title” (C-12) — @owner" */
static void
digest_item(struct tlbot_msg *m, struct tlbot_ctx *ctx, const struct exp_rec *r, int with_room)
{
	tlbot_msg_html(m, "<li>");
	tlbot_msg_plain(m, "• ");
	exp_link(m, r);
	tlbot_msg_text(m, " “");
	text_clip(m, ctx, r->title, 4 * MAX_TITLE);
	tlbot_msg_text(m, "” (");
	challenge_ref(m, ctx, r->challenge_id);
	tlbot_msg_text(m, ")");
	(void)with_room;
}

static void
digest_end_item(struct tlbot_msg *m)
{
	tlbot_msg_html(m, "</li>");
	tlbot_msg_plain(m, "\n");
}

/* Append the learnings of E-id recorded in [since, until) (all of them when
 * since is 0) as " — learned: a; b". Returns the count, -1 on error. */
static int
digest_learnings(struct tlbot_msg *m, struct tlbot_ctx *ctx, int64_t id, time_t since, time_t until)
{
	struct tlbot_db_rows q;
	int n = 0, rc;

	if (tlbot_db_query(ctx, &q, "SELECT text FROM experiment_learnings WHERE experiment_id = ?"
			   " AND at >= ? AND at < ? ORDER BY id LIMIT 10", "iii", id, (int64_t)since,
			   (int64_t)until) != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		tlbot_msg_text(m, n++ ? "; " : " — learned: ");
		text_clip(m, ctx, tlbot_db_col_text(&q, 0), 400);
	}
	tlbot_db_done(&q);
	return rc < 0 ? -1 : n;
}

/* A section: experiments selected by sql (binding room, since, until as 1-3)
 * with what to say about each. Returns the number listed, -1 on error. */
enum section { SEC_STARTED, SEC_CONCLUDED, SEC_LEARNED, SEC_OVERDUE, SEC_CROSS };

/* What a digest item of section kind says after its title. 0 or -1. */
static int
digest_detail(struct tlbot_msg *m, struct tlbot_ctx *ctx, const struct exp_rec *r,
	      enum section kind, time_t since, time_t until)
{
	char num[40];

	switch (kind) {
	case SEC_STARTED:
		tlbot_msg_text(m, " — ");
		tlbot_msg_user(m, r->owner);
		if (r->end_date)
			tlbot_msg_textf(m, ", until %s", r->end_date);
		/* what became of it since (abandoned, concluded) */
		if (strcmp(r->status, "running") != 0)
			tlbot_msg_textf(m, " — now %s", r->status);
		break;
	case SEC_CONCLUDED:
	case SEC_CROSS:
		if (r->result_value.has) {
			fmt_num(r->result_value.v, num, sizeof(num));
			tlbot_msg_textf(m, " — result %s%s%s", num, r->unit ? " " : "",
					r->unit ? r->unit : "");
		}
		if (r->decision) {
			tlbot_msg_text(m, " — decision: ");
			tlbot_msg_bold(m, r->decision);
			if (r->decision_reason) {
				tlbot_msg_text(m, " (");
				text_clip(m, ctx, r->decision_reason, 300);
				tlbot_msg_text(m, ")");
			}
		} else if (strcmp(r->status, "concluded") == 0) {
			tlbot_msg_text(m, " — no decision yet");
		}
		if (digest_learnings(m, ctx, r->id, kind == SEC_CROSS ? since : 0, until) < 0)
			return -1;
		break;
	case SEC_LEARNED:
		if (digest_learnings(m, ctx, r->id, since, until) < 0)
			return -1;
		break;
	case SEC_OVERDUE:
		tlbot_msg_textf(m, " — %s, ended %s, ", r->status, r->end_date);
		tlbot_msg_user(m, r->owner);
		break;
	}
	return 0;
}

static int
digest_section(struct tlbot_msg *m, struct tlbot_ctx *ctx, const char *title, const char *sql,
	       const char *room, time_t since, time_t until, const char *date, enum section kind)
{
	struct tlbot_db_rows q;
	struct tlbot_buf b;
	int n = 0, rc;

	tlbot_buf_init(&b, 4096);
	if (rec_select(DESC, "e", &b) != 0 || tlbot_buf_adds(&b, sql) != 0) {
		tlbot_buf_release(&b);
		return tlbot_db_error(ctx, "digest query too long");
	}
	rc = tlbot_db_query(ctx, &q, tlbot_buf_str(&b), "tiit", room, (int64_t)since, (int64_t)until,
			    date);
	tlbot_buf_release(&b);
	if (rc != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		struct exp_rec r;

		if (n == 0) {
			tlbot_msg_br(m);
			tlbot_msg_bold(m, title);
			tlbot_msg_plain(m, "\n");
			tlbot_msg_html(m, "<ul>");
		}
		if (++n > DIGEST_MAX_ITEMS)
			continue; /* counted, not listed */
		if (rec_read(DESC, &q, &r) != 0) {
			rc = -1;
			break;
		}
		digest_item(m, ctx, &r, kind == SEC_CROSS);
		if (digest_detail(m, ctx, &r, kind, since, until) != 0)
			rc = -1;
		digest_end_item(m);
		release(&r);
		if (rc < 0)
			break;
	}
	tlbot_db_done(&q);
	if (rc < 0)
		return -1;
	if (n > 0) {
		if (n > DIGEST_MAX_ITEMS) {
			tlbot_msg_html(m, "<li>");
			tlbot_msg_textf(m, "… and %d more", n - DIGEST_MAX_ITEMS);
			tlbot_msg_html(m, "</li>");
			tlbot_msg_plain(m, "\n");
		}
		tlbot_msg_html(m, "</ul>");
	}
	return n;
}

/* The WHERE of each section (after the SELECT of the record's fields);
 * ?1 room, ?2 since, ?3 until, ?4 today. */
#define HIST_E "SELECT record_id FROM history WHERE kind = 'E' AND "
static const char sql_started[] =
	"WHERE e.id IN (" HIST_E "room_id = ?1 AND at >= ?2 AND at < ?3 AND action = 'started'"
	" AND field = 'status') AND ?4 IS NOT NULL ORDER BY e.id";
static const char sql_concluded[] =
	"WHERE e.id IN (" HIST_E "room_id = ?1 AND at >= ?2 AND at < ?3 AND ((action = 'result'"
	" AND field = 'status') OR action = 'decided')) AND e.status = 'concluded' AND ?4 IS NOT NULL"
	" ORDER BY e.id";
static const char sql_learned[] =
	"WHERE e.id IN (" HIST_E "room_id = ?1 AND at >= ?2 AND at < ?3 AND action = 'learned')"
	" AND e.id NOT IN (" HIST_E "room_id = ?1 AND at >= ?2 AND at < ?3 AND"
	" ((action = 'result' AND field = 'status') OR action = 'decided')) AND ?4 IS NOT NULL"
	" ORDER BY e.id";
static const char sql_overdue[] =
	"WHERE e.room_id = ?1 AND e.status IN ('proposed', 'running') AND e.end_date < ?4"
	" AND ?2 IS NOT NULL AND ?3 IS NOT NULL ORDER BY e.end_date, e.id";
static const char sql_cross[] =
	"WHERE e.id IN (SELECT experiment_id FROM experiment_learnings WHERE at >= ?2"
	" AND at < ?3 UNION " HIST_E "action = 'decided' AND at >= ?2 AND at < ?3)"
	" AND (?1 IS NULL OR ?1 IS NOT NULL) AND ?4 IS NOT NULL"
	" ORDER BY e.challenge_id, e.room_id, e.id";

/* The sections of a digest into m: the cross-team one, or a room's four.
 * How many items they list, or -1. */
static int
digest_sections(struct tlbot_msg *m, struct tlbot_ctx *ctx, const char *room, time_t since,
		time_t until, const char *date, int cross)
{
	int n = 0, k;

	if (cross) {
		k = digest_section(m, ctx, "Learnings and decisions from every team", sql_cross,
				   room, since, until, date, SEC_CROSS);
		n = k;
	} else {
		k = digest_section(m, ctx, "Started", sql_started, room, since, until, date,
				   SEC_STARTED);
		n += k;
		if (k >= 0) {
			k = digest_section(m, ctx, "Concluded", sql_concluded, room, since,
					   until, date, SEC_CONCLUDED);
			n += k;
		}
		if (k >= 0) {
			k = digest_section(m, ctx, "New learnings", sql_learned, room, since,
					   until, date, SEC_LEARNED);
			n += k;
		}
		if (k >= 0) {
			k = digest_section(m, ctx, "Overdue (ended without a result)",
					   sql_overdue, room, since, until, date, SEC_OVERDUE);
			n += k;
		}
	}
	return k < 0 ? -1 : n;
}

static int
fire_digest(struct tlbot_ctx *ctx, const struct tlbot_job *job)
{
	json_error_t jerr;
	json_t *pl = json_loads(job->payload, 0, &jerr);
	const char *room = json_string_value(json_object_get(pl, "room"));
	char roomcopy[512], date[11], from[11], to[11];
	struct digest_cfg c;
	time_t since, until = job->due;
	int cross, rc = -1;

	if (room == NULL || strlen(room) >= sizeof(roomcopy)) {
		json_decref(pl);
		return 0;
	}
	snprintf(roomcopy, sizeof(roomcopy), "%s", room);
	json_decref(pl);
	room = roomcopy;
	cross = strcmp(room, CROSS_ROOM) == 0;
	if (digest_get(ctx, room, &c) != 0)
		return -1;
	/* a stale job (settings changed since it was scheduled) does nothing */
	if (!c.exists || !c.enabled || strcmp(c.key, job->key) != 0)
		return 0;
	if (cross && tlbot_ctx_digest_room(ctx) == NULL) {
		/* no longer configured: stop until it is configured again */
		c.enabled = 0;
		c.key[0] = '\0';
		return digest_put(ctx, room, &c, until, NULL);
	}
	since = c.last_at > 0 && c.last_at < until ? (time_t)c.last_at : until - 7 * 86400;
	if (!job->missed) {
		struct tlbot_msg m;
		int n;

		if (tlbot_tz_date(c.tz, until, date) != 0 || tlbot_tz_date(c.tz, since, from) != 0 ||
		    tlbot_tz_date(c.tz, until - 1, to) != 0)
			return -1;
		tlbot_msg_init(&m);
		tlbot_msg_bold(&m, cross ? "Cross-team learning digest" : "Weekly learning digest");
		tlbot_msg_textf(&m, " — %s to %s", from, to);
		tlbot_msg_br(&m);
		n = digest_sections(&m, ctx, room, since, until, date, cross);
		if (n < 0) {
			tlbot_msg_release(&m);
			return -1;
		}
		if (n > 0) {
			tlbot_msg_br(&m);
			tlbot_msg_textf(&m, "%sexp show E-n has the full record; %sexp digest changes"
					" the day and time.", tlbot_ctx_prefix(ctx), tlbot_ctx_prefix(ctx));
			rc = tlbot_send_room(ctx, cross ? tlbot_ctx_digest_room(ctx) : room, &m);
			if (rc != 0)
				return -1;
		} else {
			tlbot_msg_release(&m); /* a quiet week: say nothing */
		}
		c.last_at = until;
	}
	rc = digest_put(ctx, room, &c, until > tlbot_ctx_now(ctx) ? until : tlbot_ctx_now(ctx), NULL);
	return rc;
}

static const struct tlbot_job_kind jobs[] = {
	{ "exp.remind", fire_reminder },
	{ "exp.digest", fire_digest },
	{ NULL, NULL },
};

/* ------------------------------------------------------------------------ */
/* Commands                                                                  */
/* ------------------------------------------------------------------------ */

/* Tell r's owner by DM that they own it now, when someone else made them
 * its owner (and they take DMs). 0 or -1. */
static int
tell_owner(struct tlbot_ctx *ctx, const struct exp_rec *r)
{
	const char *by = tlbot_ctx_sender(ctx), *p = tlbot_ctx_prefix(ctx);
	struct tlbot_msg m;
	char cmd[96];

	if (by == NULL || r->owner == NULL || strcmp(by, r->owner) == 0 ||
	    !tlbot_ctx_dm_enabled(ctx, r->owner))
		return 0;
	tlbot_msg_init(&m);
	tlbot_msg_user(&m, by);
	tlbot_msg_text(&m, " made you the owner of ");
	exp_link(&m, r);
	tlbot_msg_text(&m, " “");
	text_clip(&m, ctx, r->title, 4 * MAX_TITLE);
	tlbot_msg_text(&m, "” (");
	challenge_ref(&m, ctx, r->challenge_id);
	tlbot_msg_textf(&m, ", %s). ", r->status);
	snprintf(cmd, sizeof(cmd), "%sexp show E-%lld", p, (long long)r->id);
	tlbot_msg_code(&m, cmd);
	tlbot_msg_text(&m, " shows it; I will remind you when its end date passes without a result.");
	return tlbot_send_dm(ctx, r->owner, &m);
}

/* A title typed without quotes runs up to the sentence: "!exp new C-1
 * Text reminders We believe ..." moves "reminders" from the sentence to
 * the title (kept by ctx). 0 or -1 (failed). */
static int
title_run_up(struct tlbot_ctx *ctx, const char **title, const char **sentence)
{
	const char *p;
	struct tlbot_buf t;

	if (strncasecmp(*sentence, "we believe ", 11) == 0)
		return 0;
	for (p = *sentence; *p; p++)
		if (*p == ' ' && strncasecmp(p + 1, "we believe ", 11) == 0)
			break;
	if (*p == '\0')
		return 0;
	tlbot_buf_init(&t, 8 * MAX_TITLE);
	tlbot_buf_printf(&t, "%s %.*s", *title, (int)(p - *sentence), *sentence);
	*title = tlbot_ctx_keep(ctx, tlbot_buf_str(&t));
	tlbot_buf_release(&t);
	if (*title == NULL)
		return tlbot_exp_fail(ctx, "out of memory");
	*sentence = p + 1;
	return 0;
}

/* The metric of !exp new: --method, --metric and --unit checked, the
 * --baseline and --target numbers, which need a metric. 0 or -1. */
static int
new_metric(struct tlbot_ctx *ctx, const struct tlbot_args *a, struct rec_num *baseline,
	   struct rec_num *target)
{
	const char *method = tlbot_args_get(a, "method"), *metric = tlbot_args_get(a, "metric");
	const char *unit = tlbot_args_get(a, "unit"), *v;

	if (check_text(ctx, "--method", method, field_of("method")->max, 0) != 0 ||
	    check_text(ctx, "--metric", metric, field_of("metric")->max, 0) != 0 ||
	    check_text(ctx, "--unit", unit, field_of("unit")->max, 0) != 0)
		return -1;
	if ((v = tlbot_args_get(a, "baseline")) != NULL) {
		if (parse_number(v, &baseline->v) != 0)
			return fail_number(ctx, "baseline", v);
		baseline->has = 1;
	}
	if ((v = tlbot_args_get(a, "target")) != NULL) {
		if (parse_number(v, &target->v) != 0)
			return fail_number(ctx, "target", v);
		target->has = 1;
	}
	if ((baseline->has || target->has || unit) && (metric == NULL || *metric == '\0'))
		return tlbot_exp_fail(ctx, "missing --metric: --baseline, --target and --unit describe a"
				      " metric; name it with --metric \"...\"");
	return 0;
}

/* "Recorded E-34 “title” for C-12 (proposed), owner ..." and the hypothesis. */
static void
recorded_msg(struct tlbot_ctx *ctx, struct tlbot_msg *m, const struct exp_rec *r)
{
	tlbot_msg_init(m);
	tlbot_msg_text(m, "Recorded ");
	exp_link(m, r);
	tlbot_msg_text(m, " “");
	tlbot_msg_text(m, r->title);
	tlbot_msg_text(m, "” for ");
	challenge_ref(m, ctx, r->challenge_id);
	tlbot_msg_text(m, " (proposed), owner ");
	tlbot_msg_user(m, r->owner);
	if (r->end_date)
		tlbot_msg_textf(m, ", until %s", r->end_date);
	tlbot_msg_text(m, ".");
	tlbot_msg_br(m);
	tlbot_msg_italic(m, "We believe ");
	tlbot_msg_text(m, r->believe);
	tlbot_msg_italic(m, " will result in ");
	tlbot_msg_text(m, r->result_in);
	tlbot_msg_italic(m, ". We will know when ");
	tlbot_msg_text(m, r->know_when);
	tlbot_msg_text(m, ".");
	tlbot_msg_br(m);
	tlbot_msg_textf(m, "Start it with %sexp start E-%lld.", tlbot_ctx_prefix(ctx),
			(long long)r->id);
}

static int
cmd_new(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	const char *title = a->argv[1], *sentence = a->argc > 2 ? a->argv[2] : tlbot_args_get(a, "hypothesis");
	const char *method = tlbot_args_get(a, "method"), *metric = tlbot_args_get(a, "metric");
	const char *unit = tlbot_args_get(a, "unit"), *v;
	char *x = NULL, *y = NULL, *z = NULL, *owner = NULL, start[11] = "", until[11] = "";
	struct rec_num baseline = { 0, 0 }, target = { 0, 0 };
	int rc = -1;
	int64_t cid, id, now = (int64_t)tlbot_ctx_now(ctx);
	struct exp_rec r, n;
	struct tlbot_msg m;

	if (a->argc > 2 && tlbot_args_has(a, "hypothesis"))
		return tlbot_exp_fail(ctx, "the hypothesis is given twice: %s, not both", hypothesis_forms);
	if (a->argc > 2 && title_run_up(ctx, &title, &sentence) != 0)
		return -1;
	if (check_text(ctx, "title", title, MAX_TITLE, 1) != 0 ||
	    check_challenge(ctx, a->argv[0], &cid) != 0 ||
	    get_hypothesis(ctx, a, sentence, 1, &x, &y, &z) != 0)
		return -1;
	if (new_metric(ctx, a, &baseline, &target) != 0)
		goto out;
	/* dates as dispatch wrote them (YYYY-MM-DD) */
	if ((v = tlbot_args_get(a, "start")) != NULL)
		snprintf(start, sizeof(start), "%s", v);
	if ((v = tlbot_args_get(a, "until")) != NULL)
		snprintf(until, sizeof(until), "%s", v);
	if (start[0] && until[0] && strcmp(until, start) < 0) {
		tlbot_exp_fail(ctx, "the end date %s is before the start date %s", until, start);
		goto out;
	}
	if ((v = tlbot_args_get(a, "owner")) != NULL) {
		if (parse_owner(ctx, v, &owner) != 0)
			goto out;
	} else if ((owner = strdup(tlbot_ctx_sender(ctx))) == NULL) {
		tlbot_exp_fail(ctx, "out of memory");
		goto out;
	}
	id = tlbot_ctx_next_id(ctx, "experiment");
	if (id < 0)
		goto out;
	/* the new record: what was given, the rest from its state */
	memset(&n, 0, sizeof(n));
	n.id = id;
	n.challenge_id = cid;
	n.room_id = (char *)tlbot_ctx_room(ctx);
	n.title = (char *)title;
	n.owner = owner;
	n.believe = x;
	n.result_in = y;
	n.know_when = z;
	n.method = method && *method ? (char *)method : NULL;
	n.metric = metric && *metric ? (char *)metric : NULL;
	n.baseline = baseline;
	n.target = target;
	n.unit = unit && *unit ? (char *)unit : NULL;
	n.start_date = start[0] ? start : NULL;
	n.end_date = until[0] ? until : NULL;
	n.status = (char *)"proposed";
	n.created_by = (char *)tlbot_ctx_sender(ctx);
	n.created_at = now;
	n.created_event = (char *)tlbot_ctx_event_id(ctx);
	n.updated_at = now;
	if (rec_insert(ctx, DESC, &n) != 0 || load(ctx, id, &r) != 0)
		goto out;
	if (hist(ctx, &r, "created", NULL, NULL, r.title) != 0 || schedule_reminder(ctx, &r) != 0 ||
	    ensure_digests(ctx, r.room_id) != 0) {
		release(&r);
		goto out;
	}
	recorded_msg(ctx, &m, &r);
	rc = tlbot_reply(ctx, &m);
	if (rc == 0)
		rc = tell_owner(ctx, &r);
	release(&r);
out:
	free(x);
	free(y);
	free(z);
	free(owner);
	return rc;
}

static int
cmd_start(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	const char *v = tlbot_args_get(a, "until");
	char until[11] = "", day[11];
	struct exp_rec r;
	struct tlbot_msg m;
	int rc;

	if (v)
		snprintf(until, sizeof(until), "%s", v); /* YYYY-MM-DD from dispatch */
	if (load_arg(ctx, a, &r, ACCESS_OWNER) != 0)
		return -1;
	if (strcmp(r.status, "proposed") != 0) {
		if (strcmp(r.status, "running") == 0)
			tlbot_exp_fail(ctx, "E-%lld is already running (since %s)", (long long)r.id,
				   r.start_date ? r.start_date : "?");
		else
			tlbot_exp_fail(ctx, "E-%lld is %s: only a proposed experiment can be started"
				   " (to try again, record a new one with %sexp new)", (long long)r.id,
				   r.status, tlbot_ctx_prefix(ctx));
		release(&r);
		return -1;
	}
	today(ctx, day);
	if (until[0] && strcmp(until, r.start_date && strcmp(r.start_date, day) < 0 ? r.start_date : day) < 0) {
		tlbot_exp_fail(ctx, "the end date %s is before the start date", until);
		release(&r);
		return -1;
	}
	if (set_text(ctx, &r, "status", "running", "started") != 0 ||
	    ((r.start_date == NULL || strcmp(r.start_date, day) > 0) &&
	     set_text(ctx, &r, "start_date", day, "started") != 0) ||
	    (until[0] && set_text(ctx, &r, "end_date", until, "started") != 0) ||
	    schedule_reminder(ctx, &r) != 0) {
		release(&r);
		return -1;
	}
	tlbot_msg_init(&m);
	exp_link(&m, &r);
	tlbot_msg_text(&m, " “");
	tlbot_msg_text(&m, r.title);
	tlbot_msg_textf(&m, "” is running since %s", r.start_date);
	if (r.end_date)
		tlbot_msg_textf(&m, " until %s", r.end_date);
	tlbot_msg_textf(&m, ". Record the outcome with %sexp result E-%lld --value N \"finding\".",
			tlbot_ctx_prefix(ctx), (long long)r.id);
	release(&r);
	rc = tlbot_reply(ctx, &m);
	return rc;
}

/* Add a note (learning = 0) or a learning (1) to E-id. 0 or -1. */
static int
add_text_row(struct tlbot_ctx *ctx, int learning, int64_t id, const char *text)
{
	int64_t now = (int64_t)tlbot_ctx_now(ctx);

	if (learning)
		return tlbot_db_exec(ctx, "INSERT INTO experiment_learnings(experiment_id, text, by, at)"
				     " VALUES (?, ?, ?, ?)", "itti", id, text, actor(ctx), now);
	return tlbot_db_exec(ctx, "INSERT INTO experiment_notes(experiment_id, text, by, at)"
			     " VALUES (?, ?, ?, ?)", "itti", id, text, actor(ctx), now);
}

static int
touch(struct tlbot_ctx *ctx, int64_t id)
{
	return tlbot_db_exec(ctx, "UPDATE experiments SET updated_at = ? WHERE id = ?", "ii",
			     (int64_t)tlbot_ctx_now(ctx), id);
}

static int
cmd_note(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	struct exp_rec r;

	if (check_text(ctx, "note", a->argv[1], MAX_TEXT, 1) != 0 ||
	    load_arg(ctx, a, &r, ACCESS_ROOM) != 0)
		return -1;
	if (add_text_row(ctx, 0, r.id, a->argv[1]) != 0 || touch(ctx, r.id) != 0 ||
	    hist(ctx, &r, "noted", "note", NULL, a->argv[1]) != 0) {
		release(&r);
		return -1;
	}
	tlbot_replyf(ctx, "Noted on E-%lld.", (long long)r.id);
	release(&r);
	return 0;
}

static int
cmd_learn(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	struct exp_rec r;
	struct tlbot_msg m;

	if (check_text(ctx, "learning", a->argv[1], MAX_TEXT, 1) != 0 ||
	    load_arg(ctx, a, &r, ACCESS_ROOM) != 0)
		return -1;
	if (add_text_row(ctx, 1, r.id, a->argv[1]) != 0 ||
	    touch(ctx, r.id) != 0 || hist(ctx, &r, "learned", "learning", NULL, a->argv[1]) != 0 ||
	    ensure_digests(ctx, r.room_id) != 0) {
		release(&r);
		return -1;
	}
	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "Learning recorded on ");
	exp_link(&m, &r);
	tlbot_msg_text(&m, ": ");
	text_clip(&m, ctx, a->argv[1], 300);
	release(&r);
	return tlbot_reply(ctx, &m);
}

/* Whether r's result meets its target: at or past the target in the
 * direction from the baseline (at or above the target when there is no
 * baseline, or the target is above it). */
static int
target_met(const struct exp_rec *r)
{
	if (r->baseline.has && r->target.v < r->baseline.v)
		return r->result_value.v <= r->target.v;
	return r->result_value.v >= r->target.v;
}

static int
cmd_result(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	const char *v = tlbot_args_get(a, "value");
	const char *p = tlbot_ctx_prefix(ctx);
	double value = 0;
	struct exp_rec r;
	struct tlbot_msg m;
	char num[40];

	if (v && parse_number(v, &value) != 0)
		return fail_number(ctx, "value", v);
	if (check_text(ctx, "finding", a->argv[1], MAX_TEXT, 1) != 0 ||
	    load_arg(ctx, a, &r, ACCESS_OWNER) != 0)
		return -1;
	if (strcmp(r.status, "proposed") == 0) {
		tlbot_exp_fail(ctx, "E-%lld is proposed, not running: start it first with %sexp start"
			   " E-%lld (a result comes from a running experiment)", (long long)r.id, p,
			   (long long)r.id);
		goto fail;
	}
	if (strcmp(r.status, "abandoned") == 0) {
		tlbot_exp_fail(ctx, "E-%lld was abandoned: it takes no result", (long long)r.id);
		goto fail;
	}
	if (v == NULL && r.metric) {
		tlbot_exp_fail(ctx, "missing --value: E-%lld measures %s; write %sexp result E-%lld"
			   " --value N \"finding\"", (long long)r.id, r.metric, p, (long long)r.id);
		goto fail;
	}
	if (set_text(ctx, &r, "status", "concluded", "result") != 0 ||
	    rec_set_num(ctx, DESC, &r, field_of("result_value"), (struct rec_num){ v != NULL, value },
			"result") != 0 ||
	    set_text(ctx, &r, "finding", a->argv[1], "result") != 0 ||
	    schedule_reminder(ctx, &r) != 0) {
		release(&r);
		return -1;
	}
	tlbot_msg_init(&m);
	exp_link(&m, &r);
	tlbot_msg_text(&m, " concluded");
	if (r.result_value.has) {
		fmt_num(r.result_value.v, num, sizeof(num));
		tlbot_msg_textf(&m, ": %s%s%s", num, r.unit ? " " : "", r.unit ? r.unit : "");
		if (r.baseline.has || r.target.has) {
			tlbot_msg_text(&m, " (");
			if (r.baseline.has) {
				fmt_num(r.baseline.v, num, sizeof(num));
				tlbot_msg_textf(&m, "baseline %s", num);
			}
			if (r.target.has) {
				fmt_num(r.target.v, num, sizeof(num));
				tlbot_msg_textf(&m, "%starget %s", r.baseline.has ? ", " : "", num);
			}
			tlbot_msg_text(&m, ")");
			if (r.target.has)
				tlbot_msg_textf(&m, ": target %s", target_met(&r) ? "met" : "missed");
		}
	}
	tlbot_msg_text(&m, ". Finding: ");
	text_clip(&m, ctx, r.finding, 300);
	tlbot_msg_br(&m);
	tlbot_msg_textf(&m, "Now decide: %sexp decide E-%lld persevere|pivot|stop|scale \"reason\"",
			p, (long long)r.id);
	release(&r);
	return tlbot_reply(ctx, &m);
fail:
	release(&r);
	return -1;
}

static int
cmd_decide(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	const char *p = tlbot_ctx_prefix(ctx);
	struct exp_rec r;
	char word[16];
	int d = in_list(decisions, a->argv[1]);

	if (d < 0)
		return tlbot_exp_fail(ctx, "unknown decision '%s': decide persevere, pivot, stop or scale",
				  a->argv[1]);
	snprintf(word, sizeof(word), "%s", decisions[d]);
	if (check_text(ctx, "reason", a->argv[2], MAX_TEXT, 1) != 0 ||
	    load_arg(ctx, a, &r, ACCESS_OWNER) != 0)
		return -1;
	if (strcmp(r.status, "concluded") != 0) {
		if (strcmp(r.status, "abandoned") == 0)
			tlbot_exp_fail(ctx, "E-%lld was abandoned: there is nothing to decide", (long long)r.id);
		else
			tlbot_exp_fail(ctx, "E-%lld has no result yet: record it first with %sexp result"
				   " E-%lld --value N \"finding\" (decide comes after result)",
				   (long long)r.id, p, (long long)r.id);
		release(&r);
		return -1;
	}
	if (set_text(ctx, &r, "decision", word, "decided") != 0 ||
	    set_text(ctx, &r, "decision_reason", a->argv[2], "decided") != 0 ||
	    ensure_digests(ctx, r.room_id) != 0) {
		release(&r);
		return -1;
	}
	tlbot_replyf(ctx, "E-%lld decision: %s. Add what the team learned with %sexp learn E-%lld"
		     " \"learning\".", (long long)r.id, word, p, (long long)r.id);
	release(&r);
	return 0;
}

static int
cmd_abandon(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	struct exp_rec r;

	if (check_text(ctx, "reason", a->argv[1], MAX_TEXT, 1) != 0 ||
	    load_arg(ctx, a, &r, ACCESS_OWNER) != 0)
		return -1;
	if (strcmp(r.status, "abandoned") == 0) {
		tlbot_exp_fail(ctx, "E-%lld is already abandoned", (long long)r.id);
		release(&r);
		return -1;
	}
	if (set_text(ctx, &r, "status", "abandoned", "abandoned") != 0 ||
	    set_text(ctx, &r, "abandon_reason", a->argv[1], "abandoned") != 0 ||
	    schedule_reminder(ctx, &r) != 0) {
		release(&r);
		return -1;
	}
	tlbot_replyf(ctx, "E-%lld abandoned. Its record and history stay in the log.", (long long)r.id);
	release(&r);
	return 0;
}

/* The hypothesis parts: edited through --hypothesis or their own flags. */
static int
is_hypothesis(const struct rec_field *f)
{
	return strcmp(f->column, "believe") == 0 || strcmp(f->column, "result_in") == 0 ||
	       strcmp(f->column, "know_when") == 0;
}

/* Apply --<flag> v of the editable field f to r. 0 or -1 (failed). */
static int
edit_one(struct tlbot_ctx *ctx, struct exp_rec *r, const struct rec_field *f, const char *v)
{
	char date[11], flag[48];
	struct rec_num num = { 0, 0 };
	int64_t cid;

	snprintf(flag, sizeof(flag), "--%s", f->flag);
	switch (f->type) {
	case R_TEXT:
		if (check_text(ctx, (f->flags & REC_REQUIRED) ? flag : f->flag, v, f->max,
			       (f->flags & REC_REQUIRED) != 0) != 0)
			return -1;
		return set_text(ctx, r, f->column, *v ? v : NULL, "edited");
	case R_REAL:
		if (*v && parse_number(v, &num.v) != 0)
			return fail_number(ctx, f->flag, v);
		num.has = *v != '\0';
		return rec_set_num(ctx, DESC, r, f, num, "edited");
	case R_DATE:
		if (*v && parse_date_arg(ctx, f->flag, v, date) != 0)
			return -1;
		return set_text(ctx, r, f->column, *v ? date : NULL, "edited");
	case R_USER: {
		char *owner = NULL;
		int rc;

		if (parse_owner(ctx, v, &owner) != 0)
			return -1;
		rc = set_text(ctx, r, f->column, owner, "edited");
		free(owner);
		return rc;
	}
	case R_REF:
		if (check_challenge(ctx, v, &cid) != 0)
			return -1;
		return rec_set_int(ctx, DESC, r, f, cid, "edited");
	default:
		return tlbot_exp_fail(ctx, "--%s cannot be edited", f->flag);
	}
}

/* Refuse an edit that gives none of the table's editable fields, naming
 * them: -1 (failed), or 0 when one is given. */
static int
nothing_to_edit(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	const struct rec_field *f;
	struct tlbot_buf names;

	for (f = exp_fields; f->column; f++)
		if ((f->flags & REC_EDITABLE) && tlbot_args_has(a, f->flag))
			return 0;
	tlbot_buf_init(&names, 1024);
	for (f = exp_fields; f->column; f++)
		if (f->flags & REC_EDITABLE)
			tlbot_buf_printf(&names, "%s--%s", names.len ? ", " : "", f->flag);
	tlbot_exp_fail(ctx, "nothing to change: give one or more of %s, --hypothesis \"We believe"
		   " ...\" (an empty \"\" clears an optional field)", tlbot_buf_str(&names));
	tlbot_buf_release(&names);
	return -1;
}

static int
cmd_edit(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	const char *hyp = tlbot_args_get(a, "hypothesis");
	char *x = NULL, *y = NULL, *z = NULL, *old_end = NULL, *old_owner = NULL;
	struct exp_rec r;
	const struct rec_field *f;
	int64_t changed_before, changed;
	int rc = -1;
	struct tlbot_msg m;

	memset(&r, 0, sizeof(r));
	if (!hyp && nothing_to_edit(ctx, a) != 0)
		return -1;
	if (get_hypothesis(ctx, a, hyp, 0, &x, &y, &z) != 0)
		return -1;
	if (load_arg(ctx, a, &r, ACCESS_OWNER) != 0)
		goto out;
	old_end = r.end_date ? strdup(r.end_date) : NULL;
	old_owner = strdup(r.owner);
	if (tlbot_db_int(ctx, &changed_before, "SELECT count(*) FROM history WHERE kind = 'E' AND"
			 " record_id = ?", "i", r.id) != 0)
		goto out;
	/* the hypothesis parts first (from the sentence or the flags) */
	if ((x && set_text(ctx, &r, "believe", x, "edited") != 0) ||
	    (y && set_text(ctx, &r, "result_in", y, "edited") != 0) ||
	    (z && set_text(ctx, &r, "know_when", z, "edited") != 0))
		goto out;
	for (f = exp_fields; f->column; f++) {
		const char *v = tlbot_args_get(a, f->flag);

		if (!(f->flags & REC_EDITABLE) || v == NULL || is_hypothesis(f))
			continue;
		if (edit_one(ctx, &r, f, v) != 0)
			goto out;
	}
	/* the record as a whole must still make sense */
	if (r.start_date && r.end_date && strcmp(r.end_date, r.start_date) < 0) {
		tlbot_exp_fail(ctx, "the end date %s would be before the start date %s", r.end_date,
			   r.start_date);
		goto out;
	}
	if ((r.baseline.has || r.target.has || r.unit) && r.metric == NULL) {
		tlbot_exp_fail(ctx, "missing --metric: a baseline, target or unit needs the metric's name");
		goto out;
	}
	if (!str_eq(old_end, r.end_date) && schedule_reminder(ctx, &r) != 0)
		goto out;
	if (tlbot_db_int(ctx, &changed, "SELECT count(*) FROM history WHERE kind = 'E' AND"
			 " record_id = ?", "i", r.id) != 0)
		goto out;
	if (changed == changed_before) {
		tlbot_replyf(ctx, "E-%lld unchanged: it already had those values.", (long long)r.id);
		rc = 0;
		goto out;
	}
	tlbot_msg_init(&m);
	exp_link(&m, &r);
	tlbot_msg_textf(&m, " updated (%lld change%s). ", (long long)(changed - changed_before),
			changed - changed_before == 1 ? "" : "s");
	tlbot_msg_textf(&m, "%sexp show E-%lld shows the record and its history.",
			tlbot_ctx_prefix(ctx), (long long)r.id);
	rc = tlbot_reply(ctx, &m);
	if (rc == 0 && !str_eq(old_owner, r.owner))
		rc = tell_owner(ctx, &r);
out:
	release(&r);
	free(x);
	free(y);
	free(z);
	free(old_end);
	free(old_owner);
	return rc;
}

/* One history row as read back. */
struct hrow {
	int64_t at;
	char *who, *action, *field, *old, *new_;
};

static void
hrows_release(struct hrow *h, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		free(h[i].who);
		free(h[i].action);
		free(h[i].field);
		free(h[i].old);
		free(h[i].new_);
	}
}

/* A value of field col as people read it: dates as "1 Dec", nothing as
 * "(none)", text cut to clip. */
static void
hvalue(struct tlbot_msg *m, struct tlbot_ctx *ctx, const char *col, const char *v, size_t clip)
{
	const struct rec_field *f = col ? field_of(col) : NULL;
	char day[11], out[32];

	if (v == NULL) {
		tlbot_msg_text(m, "(none)");
	} else if (f && f->type == R_DATE) {
		today(ctx, day);
		rec_day(v, day, out, sizeof(out));
		tlbot_msg_text(m, out);
	} else if (f && f->type == R_USER) {
		tlbot_msg_user(m, v);
	} else {
		text_clip(m, ctx, v, clip);
	}
}

/* The row of group g..e (same time, actor and action) changing col, or NULL. */
static const struct hrow *
hfind(const struct hrow *g, const struct hrow *e, const char *col)
{
	for (; g < e; g++)
		if (g->field && strcmp(g->field, col) == 0)
			return g;
	return NULL;
}

/* What the rows [g, e) of one action say, in words: "started on 1 Dec",
 * "result: 28 (target 30: met) — finding", "edited end date: 20 Nov → 27 Nov". */
/* Read from another room (the programme room reads across rooms): notes
 * stay with their team (they can hold case detail). */
static int
foreign(struct tlbot_ctx *ctx, const struct exp_rec *r)
{
	const char *room = tlbot_ctx_room(ctx);

	return r->room_id && room && strcmp(r->room_id, room) != 0;
}

static void
hphrase(struct tlbot_msg *m, struct tlbot_ctx *ctx, const struct exp_rec *r, const struct hrow *g,
	const struct hrow *e, size_t clip)
{
	const char *act = g->action ? g->action : "?";
	const struct hrow *h, *h2;
	char day[11], out[32];

	if (strcmp(act, "started") == 0) {
		tlbot_msg_text(m, " started");
		today(ctx, day);
		if ((h = hfind(g, e, "start_date")) != NULL && h->new_) {
			rec_day(h->new_, day, out, sizeof(out));
			tlbot_msg_textf(m, " on %s", out);
		}
		if ((h = hfind(g, e, "end_date")) != NULL && h->new_) {
			rec_day(h->new_, day, out, sizeof(out));
			tlbot_msg_textf(m, ", until %s", out);
		}
	} else if (strcmp(act, "result") == 0) {
		tlbot_msg_text(m, " result: ");
		if ((h = hfind(g, e, "result_value")) != NULL && h->new_) {
			double v;

			tlbot_msg_text(m, h->new_);
			if (r->unit)
				tlbot_msg_textf(m, " %s", r->unit);
			if (r->target.has && parse_number(h->new_, &v) == 0) {
				struct exp_rec t = *r;

				fmt_num(r->target.v, out, sizeof(out));
				t.result_value.v = v;
				tlbot_msg_textf(m, " (target %s: %s)", out, target_met(&t) ? "met" : "missed");
			}
			tlbot_msg_text(m, " — ");
		}
		if ((h = hfind(g, e, "finding")) != NULL)
			hvalue(m, ctx, NULL, h->new_, clip);
	} else if (strcmp(act, "decided") == 0 || strcmp(act, "abandoned") == 0) {
		h = hfind(g, e, "decision");
		h2 = hfind(g, e, strcmp(act, "decided") == 0 ? "decision_reason" : "abandon_reason");
		tlbot_msg_textf(m, " %s", act);
		if (h && h->new_)
			tlbot_msg_textf(m, ": %s", h->new_);
		if (h2 && h2->new_) {
			tlbot_msg_text(m, h ? " — " : ": ");
			hvalue(m, ctx, NULL, h2->new_, clip);
		}
	} else if (g->field && strcmp(g->field, "note") != 0 && strcmp(g->field, "learning") != 0) {
		/* one line per changed field (edited, and any other action) */
		const struct rec_field *f = field_of(g->field);

		tlbot_msg_textf(m, " %s %s: ", act, f ? f->label : g->field);
		hvalue(m, ctx, g->field, g->old, clip);
		tlbot_msg_text(m, " → ");
		hvalue(m, ctx, g->field, g->new_, clip);
	} else if (g->field && strcmp(g->field, "note") == 0 && foreign(ctx, r)) {
		tlbot_msg_textf(m, " %s (notes are shown in the team's room only)", act);
	} else {
		tlbot_msg_textf(m, " %s", act);
		if (g->new_) {
			tlbot_msg_text(m, ": ");
			text_clip(m, ctx, g->new_, clip);
		}
	}
}

/* Whether rows a and b belong to one line: the same moment, actor and
 * action, for the actions that change several fields at once. */
static int
same_step(const struct hrow *a, const struct hrow *b)
{
	static const char *const grouped[] = { "started", "result", "decided", "abandoned", NULL };

	return a->at == b->at && str_eq(a->who, b->who) && str_eq(a->action, b->action) &&
	       a->action && in_list(grouped, a->action) >= 0;
}

/* "• 2026-11-18 08:26 @alice started on 18 Nov" lines of r's history,
 * oldest first; rows offset.. (at most limit, at most 30). 0 or -1. */
static int
history_lines(struct tlbot_msg *m, struct tlbot_ctx *ctx, const struct exp_rec *r, int64_t offset,
	      int limit, size_t clip)
{
	struct hrow h[30];
	struct tlbot_db_rows q;
	int n = 0, i, j, rc;

	if (limit > 30)
		limit = 30;
	if (tlbot_db_query(ctx, &q, "SELECT at, actor, action, field, old, new FROM history WHERE"
			   " kind = 'E' AND record_id = ? ORDER BY id LIMIT ? OFFSET ?", "iii", r->id,
			   (int64_t)limit, offset) != 0)
		return -1;
	while (n < limit && (rc = tlbot_db_next(&q)) > 0) {
		h[n].at = tlbot_db_col_int(&q, 0);
		h[n].who = tlbot_db_col_dup(&q, 1);
		h[n].action = tlbot_db_col_dup(&q, 2);
		h[n].field = tlbot_db_col_dup(&q, 3);
		h[n].old = tlbot_db_col_dup(&q, 4);
		h[n].new_ = tlbot_db_col_dup(&q, 5);
		n++;
	}
	tlbot_db_done(&q);
	if (rc < 0) {
		hrows_release(h, n);
		return -1;
	}
	tlbot_msg_html(m, "<ul>");
	for (i = 0; i < n; i = j) {
		char when[40];

		for (j = i + 1; j < n && same_step(&h[i], &h[j]); j++)
			;
		local_time(ctx, (time_t)h[i].at, when, sizeof(when));
		tlbot_msg_html(m, "<li>");
		tlbot_msg_plain(m, "• ");
		tlbot_msg_textf(m, "%s ", when);
		if (h[i].who)
			tlbot_msg_user(m, h[i].who);
		hphrase(m, ctx, r, &h[i], &h[j], clip);
		tlbot_msg_html(m, "</li>");
		tlbot_msg_plain(m, "\n");
	}
	tlbot_msg_html(m, "</ul>");
	hrows_release(h, n);
	return 0;
}

static int64_t
count_rows(struct tlbot_ctx *ctx, const char *sql, int64_t id)
{
	int64_t n;

	return tlbot_db_int(ctx, &n, sql, "i", id) == 0 ? n : -1;
}

static void
label(struct tlbot_msg *m, const char *l)
{
	tlbot_msg_br(m);
	tlbot_msg_bold(m, l);
	tlbot_msg_text(m, " ");
}

/* Text rows (notes or learnings) of E-id: the last `limit`, oldest first. */
static int
text_rows(struct tlbot_msg *m, struct tlbot_ctx *ctx, const char *sql, int64_t id, int limit,
	  size_t clip)
{
	struct tlbot_db_rows q;
	int rc;

	if (tlbot_db_query(ctx, &q, sql, "ii", id, (int64_t)limit) != 0)
		return -1;
	tlbot_msg_html(m, "<ul>");
	while ((rc = tlbot_db_next(&q)) > 0) {
		const char *by = tlbot_db_col_text(&q, 1);
		char day[11];

		tlbot_msg_html(m, "<li>");
		tlbot_msg_plain(m, "• ");
		text_clip(m, ctx, tlbot_db_col_text(&q, 0), clip);
		if (tlbot_tz_date(tz_default(ctx), (time_t)tlbot_db_col_int(&q, 2), day) != 0)
			snprintf(day, sizeof(day), "?");
		tlbot_msg_textf(m, " (%s, ", day);
		if (by)
			tlbot_msg_user(m, by);
		tlbot_msg_text(m, ")");
		tlbot_msg_html(m, "</li>");
		tlbot_msg_plain(m, "\n");
	}
	tlbot_msg_html(m, "</ul>");
	tlbot_db_done(&q);
	return rc < 0 ? -1 : 0;
}

/* The line break before a section: in HTML none right after a list (a
 * <br/> after </ul> opens an empty line), in the plain body always. */
static void
block_br(struct tlbot_msg *m)
{
	static const char ul[] = "</ul>";

	if (m->html.len >= sizeof(ul) - 1 &&
	    memcmp(m->html.data + m->html.len - (sizeof(ul) - 1), ul, sizeof(ul) - 1) == 0)
		tlbot_msg_plain(m, "\n");
	else
		tlbot_msg_br(m);
}

/* A "Label: value" line for each field marked REC_SHOWN that has a value
 * (the fields composed into the lines of show_msg are not marked). */
static int
show_fields(struct tlbot_msg *m, struct tlbot_ctx *ctx, const struct exp_rec *r, size_t clip)
{
	const struct rec_field *f;
	char v[4096], head[64];

	for (f = exp_fields; f->column; f++) {
		if (!(f->flags & REC_SHOWN))
			continue;
		rec_value(DESC, f, r, v, sizeof(v));
		if (v[0] == '\0')
			continue;
		snprintf(head, sizeof(head), "%c%s:", toupper((unsigned char)f->label[0]), f->label + 1);
		label(m, head);
		hvalue(m, ctx, f->column, v, clip);
	}
	return 0;
}

/* The full record, texts cut to clip bytes. 0, or -1 on a database error. */
/* The head of `show`: title and status, challenge and people, the
 * hypothesis, method and metric, dates. */
static void
show_plan(struct tlbot_msg *m, struct tlbot_ctx *ctx, const struct exp_rec *r, size_t clip)
{
	char num[40], day[11];

	today(ctx, day);
	exp_link(m, r);
	tlbot_msg_text(m, " ");
	tlbot_msg_html(m, "<b>");
	text_clip(m, ctx, r->title, clip);
	tlbot_msg_html(m, "</b>");
	tlbot_msg_textf(m, " [%s]", r->status);
	if (r->end_date && strcmp(r->end_date, day) < 0 &&
	    (strcmp(r->status, "proposed") == 0 || strcmp(r->status, "running") == 0))
		tlbot_msg_text(m, " — overdue: no result");
	label(m, "Challenge:");
	challenge_ref(m, ctx, r->challenge_id);
	tlbot_msg_text(m, " · owner ");
	tlbot_msg_user(m, r->owner);
	if (r->created_by && !str_eq(r->created_by, r->owner)) {
		tlbot_msg_text(m, " · recorded by ");
		tlbot_msg_user(m, r->created_by);
	}
	label(m, "Hypothesis:");
	tlbot_msg_text(m, "We believe ");
	text_clip(m, ctx, r->believe ? r->believe : "?", clip);
	tlbot_msg_text(m, " will result in ");
	text_clip(m, ctx, r->result_in ? r->result_in : "?", clip);
	tlbot_msg_text(m, ". We will know when ");
	text_clip(m, ctx, r->know_when ? r->know_when : "?", clip);
	tlbot_msg_text(m, ".");
	if (r->method) {
		label(m, "Method:");
		text_clip(m, ctx, r->method, clip);
	}
	if (r->metric) {
		label(m, "Metric:");
		text_clip(m, ctx, r->metric, clip);
		if (r->baseline.has) {
			fmt_num(r->baseline.v, num, sizeof(num));
			tlbot_msg_textf(m, " · baseline %s", num);
		}
		if (r->target.has) {
			fmt_num(r->target.v, num, sizeof(num));
			tlbot_msg_textf(m, " · target %s", num);
		}
		if (r->unit) {
			tlbot_msg_text(m, " · unit ");
			text_clip(m, ctx, r->unit, clip);
		}
	}
	label(m, "Dates:");
	tlbot_msg_textf(m, "start %s · end %s", r->start_date ? r->start_date : "not set",
			r->end_date ? r->end_date : "not set");
}

/* The result, the decision and why it was abandoned, when there are. */
static void
show_outcome(struct tlbot_msg *m, struct tlbot_ctx *ctx, const struct exp_rec *r, size_t clip)
{
	char num[40];

	if (r->finding || r->result_value.has) {
		label(m, "Result:");
		if (r->result_value.has) {
			fmt_num(r->result_value.v, num, sizeof(num));
			tlbot_msg_textf(m, "%s%s", num, r->unit ? " " : "");
			if (r->unit)
				text_clip(m, ctx, r->unit, clip);
			tlbot_msg_text(m, " — ");
		}
		text_clip(m, ctx, r->finding ? r->finding : "", clip);
		if (r->result_value.has && r->target.has)
			tlbot_msg_textf(m, " (target %s)", target_met(r) ? "met" : "missed");
	}
	if (r->decision) {
		label(m, "Decision:");
		tlbot_msg_bold(m, r->decision);
		if (r->decision_reason) {
			tlbot_msg_text(m, " — ");
			text_clip(m, ctx, r->decision_reason, clip);
		}
	}
	if (r->abandon_reason && strcmp(r->status, "abandoned") == 0) {
		label(m, "Abandoned:");
		text_clip(m, ctx, r->abandon_reason, clip);
	}
}

/* The latest learnings and notes (notes only in the team's own room). */
static int
show_texts(struct tlbot_msg *m, struct tlbot_ctx *ctx, const struct exp_rec *r, int64_t nlearn,
	   int64_t nnotes, size_t clip)
{
	const int notes_shown = 5, learn_shown = 10;

	if (nlearn > 0) {
		block_br(m);
		tlbot_msg_bold(m, nlearn > learn_shown ? "Learnings (latest):" : "Learnings:");
		tlbot_msg_plain(m, "\n");
		if (text_rows(m, ctx, "SELECT text, by, at FROM (SELECT * FROM experiment_learnings"
			      " WHERE experiment_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id", r->id,
			      learn_shown, clip) != 0)
			return -1;
	}
	if (nnotes > 0 && foreign(ctx, r)) {
		tlbot_msg_br(m);
		tlbot_msg_textf(m, "Notes: %lld, shown in the team's room only.", (long long)nnotes);
	} else if (nnotes > 0) {
		char head[64];

		block_br(m);
		snprintf(head, sizeof(head), "Notes (%s%lld):", nnotes > notes_shown ? "latest of " : "",
			 (long long)nnotes);
		tlbot_msg_bold(m, head);
		tlbot_msg_plain(m, "\n");
		if (text_rows(m, ctx, "SELECT text, by, at FROM (SELECT * FROM experiment_notes"
			      " WHERE experiment_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id", r->id,
			      notes_shown, clip) != 0)
			return -1;
	}
	return 0;
}

static int
show_msg(struct tlbot_msg *m, struct tlbot_ctx *ctx, const struct exp_rec *r, size_t clip)
{
	const int hist_shown = 15;
	int64_t nhist, nnotes, nlearn;

	nhist = count_rows(ctx, "SELECT count(*) FROM history WHERE kind = 'E' AND record_id = ?", r->id);
	nnotes = count_rows(ctx, "SELECT count(*) FROM experiment_notes WHERE experiment_id = ?", r->id);
	nlearn = count_rows(ctx, "SELECT count(*) FROM experiment_learnings WHERE experiment_id = ?", r->id);
	if (nhist < 0 || nnotes < 0 || nlearn < 0)
		return -1;
	show_plan(m, ctx, r, clip);
	show_outcome(m, ctx, r, clip);
	if (show_fields(m, ctx, r, clip) != 0)
		return -1;
	if (show_texts(m, ctx, r, nlearn, nnotes, clip) != 0)
		return -1;
	block_br(m);
	tlbot_msg_bold(m, "History:");
	tlbot_msg_plain(m, "\n");
	if (history_lines(m, ctx, r, nhist > hist_shown ? nhist - hist_shown : 0, hist_shown,
			  clip < 120 ? clip : 120) != 0)
		return -1;
	if (nhist > hist_shown)
		tlbot_msg_textf(m, "(%lld earlier changes: %sexp history E-%lld)",
				(long long)(nhist - hist_shown), tlbot_ctx_prefix(ctx), (long long)r->id);
	return 0;
}

static int
cmd_show(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	static const size_t clips[] = { 4 * MAX_TEXT, 400, 120 };
	struct exp_rec r;
	struct tlbot_msg m;
	size_t i;

	if (load_arg(ctx, a, &r, ACCESS_READ) != 0)
		return -1;
	/* a record full of long text may not fit one event: cut it shorter */
	for (i = 0; i < sizeof(clips) / sizeof(clips[0]); i++) {
		tlbot_msg_init(&m);
		if (show_msg(&m, ctx, &r, clips[i]) != 0) {
			tlbot_msg_release(&m);
			release(&r);
			return -1;
		}
		if (!m.failed)
			break;
		tlbot_msg_release(&m);
	}
	release(&r);
	if (i == sizeof(clips) / sizeof(clips[0]))
		return tlbot_exp_fail(ctx, "E-%lld is too large to show in one message", (long long)r.id);
	return tlbot_reply(ctx, &m);
}

/* --page N (dispatch checked 1..100000), 1 when not given. */
static int64_t
page_of(const struct tlbot_args *a)
{
	const struct tlbot_value *v = tlbot_args_flag_val(a, "page");

	return v ? v->n : 1;
}

static int
cmd_history(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	struct exp_rec r;
	struct tlbot_msg m;
	int64_t page, n, pages;

	page = page_of(a);
	if (load_arg(ctx, a, &r, ACCESS_READ) != 0)
		return -1;
	n = count_rows(ctx, "SELECT count(*) FROM history WHERE kind = 'E' AND record_id = ?", r.id);
	if (n < 0) {
		release(&r);
		return -1;
	}
	pages = (n + 29) / 30;
	if (page > pages && pages > 0) {
		release(&r);
		return tlbot_exp_fail(ctx, "bad page %lld: E-%lld's history has %lld page%s", (long long)page,
				  (long long)r.id, (long long)pages, pages == 1 ? "" : "s");
	}
	tlbot_msg_init(&m);
	tlbot_msg_text(&m, "History of ");
	exp_link(&m, &r);
	tlbot_msg_textf(&m, " (page %lld of %lld, %lld changes)", (long long)page,
			(long long)(pages ? pages : 1), (long long)n);
	tlbot_msg_plain(&m, "\n");
	if (history_lines(&m, ctx, &r, (page - 1) * 30, 30, 300) != 0) {
		tlbot_msg_release(&m);
		release(&r);
		return -1;
	}
	release(&r);
	return tlbot_reply(ctx, &m);
}

/* One experiment of !exp list: E-34 [status] title — C-12, owner, and
 * its decision or end date (overdue when past and not concluded). */
static void
list_item(struct tlbot_ctx *ctx, struct tlbot_msg *m, const struct exp_rec *r, const char *day)
{
	tlbot_msg_html(m, "<li>");
	tlbot_msg_plain(m, "• ");
	exp_link(m, r);
	tlbot_msg_textf(m, " [%s] ", r->status);
	text_clip(m, ctx, r->title, 120);
	tlbot_msg_text(m, " — ");
	challenge_ref(m, ctx, r->challenge_id);
	tlbot_msg_text(m, ", ");
	tlbot_msg_user(m, r->owner);
	if (r->decision)
		tlbot_msg_textf(m, ", decided: %s", r->decision);
	else if (r->end_date) {
		tlbot_msg_textf(m, ", until %s", r->end_date);
		if (strcmp(r->end_date, day) < 0 &&
		    (strcmp(r->status, "running") == 0 || strcmp(r->status, "proposed") == 0))
			tlbot_msg_text(m, " (overdue)");
	}
	tlbot_msg_html(m, "</li>");
	tlbot_msg_plain(m, "\n");
}

/* The WHERE of !exp list (alias e) for its filters: constant fragments
 * only; every value is bound (an absent filter binds NULL, or 0 for the
 * challenge): ?1 room, ?2 status, ?3 challenge, ?4 owner, ?5 today. */
static void
list_where(char *where, size_t size, const char *st, int overdue_only, int has_owner, int has_ch)
{
	snprintf(where, size, "e.room_id = ?1%s%s%s%s",
		 st && !overdue_only && strcasecmp(st, "open") != 0 ? " AND e.status = ?2" : " AND ?2 IS NULL",
		 st && (overdue_only || strcasecmp(st, "open") == 0) ? " AND e.status IN ('proposed', 'running')" : "",
		 overdue_only ? " AND e.end_date < ?5" : " AND ?5 IS NULL",
		 has_owner ? " AND e.owner = ?4" : " AND ?4 IS NULL");
	snprintf(where + strlen(where), size - strlen(where), "%s",
		 has_ch ? " AND e.challenge_id = ?3" : " AND ?3 = 0");
}

/* The owner filter of !exp list: --owner, or --mine (the sender); *owner
 * stays NULL without either. 0 or -1 (failed). */
static int
list_owner(struct tlbot_ctx *ctx, const struct tlbot_args *a, char **owner)
{
	const char *ow = tlbot_args_get(a, "owner");

	if (tlbot_args_has(a, "mine") && ow)
		return tlbot_exp_fail(ctx, "--mine and --owner both name the owner: give one");
	if (ow && parse_owner(ctx, ow, owner) != 0)
		return -1;
	if (tlbot_args_has(a, "mine") && (*owner = strdup(tlbot_ctx_sender(ctx))) == NULL)
		return tlbot_exp_fail(ctx, "out of memory");
	return 0;
}

/* The count and the page's rows of !exp list for where (see
 * list_where) and its values. 0 or -1 (ctx marked). */
static int
list_query(struct tlbot_ctx *ctx, struct tlbot_db_rows *q, const char *where, const char *stv,
	   int64_t cid, const char *owner, const char *before, int64_t page, int64_t *total)
{
	char sql[1024];
	struct tlbot_buf b;
	int rc;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM experiments e WHERE %s", where);
	if (tlbot_db_int(ctx, total, sql, "ttitt", tlbot_ctx_room(ctx), stv, cid, owner, before) != 0)
		return -1;
	tlbot_buf_init(&b, 8192);
	rec_select(DESC, "e", &b);
	tlbot_buf_printf(&b, " WHERE %s ORDER BY e.id DESC LIMIT %d OFFSET ?6", where, PAGE_SIZE);
	rc = tlbot_db_query(ctx, q, tlbot_buf_str(&b), "ttitti", tlbot_ctx_room(ctx), stv, cid, owner,
			    before, (page - 1) * PAGE_SIZE);
	tlbot_buf_release(&b);
	return rc;
}

static int
cmd_list(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	const char *st = tlbot_args_get(a, "status"), *ch = tlbot_args_get(a, "challenge");
	const char *p = tlbot_ctx_prefix(ctx);
	char *owner = NULL, where[512], day[11], filt[256] = "";
	const char *stv;
	int64_t cid = 0, page, total = -1, pages;
	struct tlbot_msg m;
	struct tlbot_db_rows q;
	int rc, n = 0, overdue_only = 0;

	if (tlbot_args_has(a, "all-rooms"))
		return tlbot_exp_list_all(ctx, a); /* the programme room only */
	page = page_of(a);
	if (st && strcasecmp(st, "overdue") == 0)
		overdue_only = 1;
	else if (st && strcasecmp(st, "open") != 0 && in_list(statuses, st) < 0)
		return tlbot_exp_fail(ctx, "unknown status '%s': use proposed, running, concluded, abandoned,"
				  " open (proposed or running) or overdue", st);
	if (ch)
		cid = tlbot_args_flag_val(a, "challenge")->n; /* C-12 from dispatch */
	if (list_owner(ctx, a, &owner) != 0)
		return -1;
	today(ctx, day);
	/* constant fragments only; every value is bound (an absent filter
	 * binds NULL, or 0 for the challenge) */
	list_where(where, sizeof(where), st, overdue_only, owner != NULL, ch != NULL);
	stv = st && !overdue_only && strcasecmp(st, "open") != 0 ? statuses[in_list(statuses, st)] : NULL;
	if (list_query(ctx, &q, where, stv, cid, owner, overdue_only ? day : NULL, page, &total) != 0)
		goto fail;
	if (st)
		snprintf(filt + strlen(filt), sizeof(filt) - strlen(filt), " %s", st);
	pages = (total + PAGE_SIZE - 1) / PAGE_SIZE;
	if (total == 0) {
		tlbot_db_done(&q);
		free(owner);
		return tlbot_replyf(ctx, "No%s experiments in this room%s. Record one with %sexp new"
				    " C-12 \"title\" \"We believe ...\"", filt,
				    ch || owner ? " matching that" : "", p);
	}
	if (page > pages) {
		tlbot_db_done(&q);
		free(owner);
		return tlbot_exp_fail(ctx, "bad page %lld: there %s %lld page%s", (long long)page,
				  pages == 1 ? "is" : "are", (long long)pages, pages == 1 ? "" : "s");
	}
	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "Experiments");
	tlbot_msg_textf(&m, "%s — %lld in all", filt, (long long)total);
	if (pages > 1)
		tlbot_msg_textf(&m, ", page %lld of %lld", (long long)page, (long long)pages);
	tlbot_msg_plain(&m, "\n");
	tlbot_msg_html(&m, "<ul>");
	while ((rc = tlbot_db_next(&q)) > 0) {
		struct exp_rec r;

		if (rec_read(DESC, &q, &r) != 0) {
			rc = -1;
			break;
		}
		n++;
		list_item(ctx, &m, &r, day);
		release(&r);
	}
	tlbot_msg_html(&m, "</ul>");
	tlbot_db_done(&q);
	if (rc < 0) {
		tlbot_msg_release(&m);
		goto fail;
	}
	if (page < pages)
		tlbot_msg_textf(&m, "More: %sexp list --page %lld", p, (long long)page + 1);
	free(owner);
	return tlbot_reply(ctx, &m);
fail:
	free(owner);
	return -1;
}

/* Weekday index (0 = Monday) of "fri" / "friday", or -1. */
static int
parse_wday(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 3)
		return -1;
	for (i = 0; i < 7; i++)
		if (strncasecmp(day_names[i], s, n) == 0 && (n == 3 || n == strlen(day_names[i])))
			return (int)i;
	return -1;
}

static int
cmd_digest(struct tlbot_ctx *ctx, const struct tlbot_args *a)
{
	const char *room = tlbot_ctx_room(ctx), *p = tlbot_ctx_prefix(ctx);
	struct digest_cfg c;
	time_t next = 0;
	char when[40];
	int wday = -1, minute = -1;

	/* in the programme room: the cross-team digest posted there */
	if (tlbot_exp_in_programme_room(ctx))
		room = CROSS_ROOM;
	if (digest_get(ctx, room, &c) != 0)
		return -1;
	if (a->argc == 0) {
		if (!c.enabled)
			return tlbot_replyf(ctx, "The weekly learning digest is off in this room. Turn it"
					    " on with %sexp digest fri 16:00", p);
		return tlbot_replyf(ctx, "The weekly learning digest is posted here on %ss at %02d:%02d"
				    " (%s)%s. Change it with %sexp digest DAY HH:MM [ZONE], stop it with"
				    " %sexp digest off.", day_names[c.wday], c.minute / 60, c.minute % 60,
				    c.tz, c.exists ? "" : " once the room has experiments", p, p);
	}
	if (!tlbot_ctx_allowed(ctx, TLBOT_PERM_WRITE, tlbot_ctx_sender(ctx)))
		return tlbot_exp_fail(ctx, "not allowed: changing the digest needs a room moderator"
				      " (the power level set for write commands) or a tlbot admin");
	if (a->argc == 1 && strcasecmp(a->argv[0], "off") == 0) {
		c.enabled = 0;
		if (digest_put(ctx, room, &c, tlbot_ctx_now(ctx), NULL) != 0)
			return -1;
		return tlbot_replyf(ctx, "The weekly learning digest is off in this room. Turn it on"
				    " again with %sexp digest fri 16:00", p);
	}
	if (a->argc >= 1)
		wday = parse_wday(a->argv[0]);
	if (a->argc >= 2)
		minute = tlbot_hhmm_parse(a->argv[1]);
	if (wday < 0 || a->argc < 2)
		return tlbot_exp_fail(ctx, "bad digest day '%s': write %sexp digest DAY HH:MM [ZONE] with DAY"
				  " mon..sun (e.g. %sexp digest fri 16:00), or %sexp digest off",
				  a->argv[0], p, p, p);
	if (minute < 0)
		return tlbot_exp_fail(ctx, "bad time '%s': write HH:MM in 24 hours, such as 16:00", a->argv[1]);
	if (a->argc == 3) {
		if (!tlbot_tz_valid(a->argv[2]))
			return tlbot_exp_fail(ctx, "unknown time zone '%s': use an IANA name such as"
					  " Europe/London", a->argv[2]);
		snprintf(c.tz, sizeof(c.tz), "%s", a->argv[2]);
	}
	c.enabled = 1;
	c.wday = wday;
	c.minute = minute;
	if (digest_put(ctx, room, &c, tlbot_ctx_now(ctx), &next) != 0)
		return -1;
	local_time(ctx, next, when, sizeof(when));
	return tlbot_replyf(ctx, "The weekly learning digest will be posted here on %ss at %02d:%02d"
			    " (%s); the next one is due %s.", day_names[wday], minute / 60, minute % 60,
			    c.tz, when);
}

static int
ref_lookup(struct tlbot_ctx *ctx, int64_t num, char **title, char **room_id, char **event_id)
{
	struct exp_rec r;
	int rc = load(ctx, num, &r);

	if (rc != 0)
		return rc;
	*title = r.title;
	*room_id = r.room_id;
	*event_id = r.created_event;
	r.title = r.room_id = r.created_event = NULL;
	release(&r);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Hooks for other families                                                  */
/* ------------------------------------------------------------------------ */

/* One record's changes in (since, until], in words and time order, after
 * "E-3 title:"; then "overdue" when it is. */
static int
summary_record(struct tlbot_ctx *ctx, struct tlbot_summary *sm, int64_t id, const char *date,
	       time_t since, time_t until)
{
	struct tlbot_msg *m = sm->m;
	struct tlbot_db_rows q;
	struct exp_rec r;
	int rc, k = 0;
	int64_t last_at = -1;
	char last_action[32] = "";

	rc = load(ctx, id, &r);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (tlbot_db_query(ctx, &q, "SELECT action, field, new, at FROM history WHERE kind = 'E' AND"
			   " record_id = ? AND at > ? AND at <= ? AND action IN ('created', 'started',"
			   " 'result', 'decided', 'abandoned', 'learned') ORDER BY at, id", "iii", id,
			   (int64_t)since, (int64_t)until) != 0) {
		release(&r);
		return -1;
	}
	tlbot_summary_item(sm);
	exp_link(m, &r);
	tlbot_msg_text(m, " ");
	text_clip(m, ctx, r.title, 200);
	tlbot_msg_text(m, ":");
	while ((rc = tlbot_db_next(&q)) > 0) {
		const char *action = tlbot_db_col_text(&q, 0), *field = tlbot_db_col_text(&q, 1);
		const char *v = tlbot_db_col_text(&q, 2);
		int64_t at = tlbot_db_col_int(&q, 3);

		if (action == NULL)
			continue;
		/* one action that changed several fields is one change */
		if (at == last_at && strcmp(action, last_action) == 0 &&
		    !(strcmp(action, "result") == 0 && field && strcmp(field, "result_value") == 0))
			continue;
		if (strcmp(action, "result") == 0 && field && strcmp(field, "status") == 0)
			continue; /* the value row (or the finding) says it */
		last_at = at;
		snprintf(last_action, sizeof(last_action), "%s", action);
		tlbot_msg_text(m, k++ ? "; " : " ");
		if (strcmp(action, "result") == 0 && v && field && strcmp(field, "result_value") == 0) {
			double val;

			tlbot_msg_textf(m, "result: %s%s%s", v, r.unit ? " " : "", r.unit ? r.unit : "");
			if (r.target.has && parse_number(v, &val) == 0) {
				struct exp_rec t = r;
				char num[40];

				t.result_value.v = val;
				fmt_num(r.target.v, num, sizeof(num));
				tlbot_msg_textf(m, " (target %s: %s)", num, target_met(&t) ? "met" : "missed");
			}
		} else if (strcmp(action, "result") == 0) {
			tlbot_msg_text(m, "concluded");
		} else if (strcmp(action, "decided") == 0) {
			tlbot_msg_textf(m, "decision: %s", r.decision ? r.decision : v ? v : "(none)");
		} else if (strcmp(action, "learned") == 0) {
			tlbot_msg_text(m, "learning recorded");
		} else {
			tlbot_msg_text(m, action); /* created, started, abandoned */
		}
	}
	tlbot_db_done(&q);
	if (rc == 0 && r.end_date && strcmp(r.end_date, date) < 0 &&
	    (strcmp(r.status, "proposed") == 0 || strcmp(r.status, "running") == 0))
		tlbot_msg_textf(m, "%soverdue (end date %s)", k ? "; " : " ", r.end_date);
	tlbot_summary_item_end(sm);
	release(&r);
	return rc < 0 ? -1 : 1;
}

/* After the SELECT of the record's fields: the room's overdue experiments
 * that did not change in (since, until]; ?1 room, ?2 today, ?3 since, ?4 until. */
static const char sql_overdue_unchanged[] =
	"WHERE e.room_id = ?1 AND e.end_date IS NOT NULL AND e.end_date <> '' AND e.end_date < ?2"
	" AND e.status IN ('proposed', 'running') AND NOT EXISTS (SELECT 1 FROM history h"
	" WHERE h.kind = 'E' AND h.record_id = e.id AND h.at > ?3 AND h.at <= ?4 AND h.action IN"
	" ('created', 'started', 'result', 'decided', 'abandoned', 'learned'))"
	" ORDER BY e.end_date, e.id LIMIT 100";

/* struct tlbot_cmd.summary_since: experiments changed since the last
 * stand-up (new ones included), then the overdue ones not changed. */
static int
summary_since(struct tlbot_ctx *ctx, struct tlbot_summary *sm, const char *room_id,
	      const char *date, time_t since, time_t until)
{
	struct tlbot_db_rows q;
	struct tlbot_buf b;
	int64_t ids[100];
	int n, i, rc, total = 0;

	n = tlbot_db_ids(ctx, ids, 100, "SELECT record_id FROM history WHERE kind = 'E'"
			 " AND room_id = ? AND at > ? AND at <= ? AND action IN ('created',"
			 " 'started', 'result', 'decided', 'abandoned', 'learned')"
			 " GROUP BY record_id ORDER BY MIN(at), MIN(id) LIMIT 100", "tii",
			 room_id, (int64_t)since, (int64_t)until);
	if (n < 0)
		return -1;
	for (i = 0; i < n; i++) {
		rc = summary_record(ctx, sm, ids[i], date, since, until);
		if (rc < 0)
			return -1;
		total += rc;
	}
	/* the overdue ones that did not change: one query */
	tlbot_buf_init(&b, 8192);
	rec_select(DESC, "e", &b);
	tlbot_buf_adds(&b, sql_overdue_unchanged);
	rc = tlbot_db_query(ctx, &q, tlbot_buf_str(&b), "ttii", room_id, date, (int64_t)since,
			    (int64_t)until);
	tlbot_buf_release(&b);
	if (rc != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		struct exp_rec r;

		if (rec_read(DESC, &q, &r) != 0) {
			rc = -1;
			break;
		}
		tlbot_summary_item(sm);
		exp_link(sm->m, &r);
		tlbot_msg_text(sm->m, " ");
		text_clip(sm->m, ctx, r.title, 200);
		tlbot_msg_textf(sm->m, ": overdue (end date %s)", r.end_date);
		tlbot_summary_item_end(sm);
		release(&r);
		total++;
	}
	tlbot_db_done(&q);
	return rc < 0 ? -1 : total;
}

/* struct tlbot_cmd.linked: the experiments of challenge C-num. */
static int
linked(struct tlbot_ctx *ctx, struct tlbot_msg *m, const char *label_text, const char *prefix,
       int64_t num)
{
	struct tlbot_db_rows q;
	int n = 0, rc;

	if (strcmp(prefix, "C") != 0)
		return 0;
	if (tlbot_db_query(ctx, &q, "SELECT id, title, status FROM experiments WHERE challenge_id = ?"
			   " ORDER BY id LIMIT 50", "i", num) != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		char ref[32];

		if (n++ == 0) {
			tlbot_msg_br(m);
			tlbot_msg_bold(m, label_text);
			tlbot_msg_text(m, " ");
		} else {
			tlbot_msg_text(m, "; ");
		}
		snprintf(ref, sizeof(ref), "E-%lld", (long long)tlbot_db_col_int(&q, 0));
		tlbot_msg_refs(m, ctx, ref);
		tlbot_msg_text(m, " ");
		tlbot_msg_text(m, tlbot_db_col_text(&q, 1) ? tlbot_db_col_text(&q, 1) : "");
		if (tlbot_db_col_text(&q, 2))
			tlbot_msg_textf(m, " (%s)", tlbot_db_col_text(&q, 2));
	}
	tlbot_db_done(&q);
	return rc < 0 ? -1 : n;
}

/* ------------------------------------------------------------------------ */
/* The table entry                                                           */
/* ------------------------------------------------------------------------ */

static const char *const aliases[] = { "exp", "experiments", NULL };
#define EXP_REF { TLBOT_REF("id", "E"), .desc = "the experiment, E-34" }
#define EXP_PAGE { TLBOT_INT("--page", 1, 100000), .desc = "which page" }
static const struct tlbot_param new_params[] = {
	{ TLBOT_REF("challenge", "C"), .desc = "the challenge it belongs to" },
	{ TLBOT_TEXT("title", 0), .desc = "a short name (quote it when it has spaces)" },
	{ TLBOT_TEXT("sentence", 0), .mode = TLBOT_OPTIONAL,
	  .label = "We believe X will result in Y. We will know when Z.",
	  .desc = "the hypothesis: We believe X will result in Y. We will know when Z." },
	{ TLBOT_TEXT("--believe", 0), .desc = "what we believe" },
	{ TLBOT_TEXT("--result-in", 0), .desc = "what it will result in" },
	{ TLBOT_TEXT("--know-when", 0), .desc = "how we will know" },
	{ TLBOT_TEXT("--hypothesis", 0), .desc = "the whole sentence" },
	{ TLBOT_TEXT("--method", 0), .desc = "how it is run" },
	{ TLBOT_TEXT("--metric", 0), .desc = "what is measured" },
	{ TLBOT_NUM("--baseline"), .desc = "the value now" },
	{ TLBOT_NUM("--target"), .desc = "the value hoped for" },
	{ TLBOT_TEXT("--unit", 0), .label = "U", .desc = "the unit of the metric" },
	{ TLBOT_DATE("--start"), .desc = "when it starts" },
	{ TLBOT_DATE("--until"), .desc = "when it ends" },
	{ TLBOT_USER("--owner"), .desc = "who owns it" },
	TLBOT_PARAMS_END,
};
static const struct tlbot_param start_params[] = {
	EXP_REF, { TLBOT_DATE("--until"), .desc = "when it ends" }, TLBOT_PARAMS_END,
};
static const struct tlbot_param note_params[] = {
	EXP_REF, { TLBOT_TEXT("text", 0), .desc = "the note" }, TLBOT_PARAMS_END,
};
static const struct tlbot_param result_params[] = {
	EXP_REF,
	{ TLBOT_TEXT("finding", 0), .desc = "what was found" },
	{ TLBOT_NUM("--value"), .desc = "the observed value of the metric" },
	TLBOT_PARAMS_END,
};
static const struct tlbot_param decide_params[] = {
	EXP_REF,
	{ TLBOT_ENUM("decision", "persevere|pivot|stop|scale"), .desc = "what was decided" },
	{ TLBOT_TEXT("reason", 0), .desc = "why" },
	TLBOT_PARAMS_END,
};
static const struct tlbot_param learn_params[] = {
	EXP_REF, { TLBOT_TEXT("learning", 0), .desc = "one short statement" }, TLBOT_PARAMS_END,
};
static const struct tlbot_param abandon_params[] = {
	EXP_REF, { TLBOT_TEXT("reason", 0), .desc = "why it stops" }, TLBOT_PARAMS_END,
};
static const struct tlbot_param list_params[] = {
	{ TLBOT_REF("--challenge", "C"), .desc = "only this challenge's" },
	{ TLBOT_TEXT("--status", 0), .label = "S",
	  .desc = "proposed, running, concluded, abandoned, open or overdue" },
	{ TLBOT_BOOL("--mine"), .desc = "only yours" },
	{ TLBOT_USER("--owner"), .desc = "only this person's" },
	EXP_PAGE,
	{ TLBOT_BOOL("--all-rooms"), .desc = "every team's (the programme room only)" },
	TLBOT_PARAMS_END,
};
static const struct tlbot_param search_params[] = {
	{ TLBOT_TEXT("words", 0), .mode = TLBOT_OPTIONAL | TLBOT_REPEAT,
	  .desc = "up to 3 words to look for" },
	TLBOT_PARAMS_END,
};
static const struct tlbot_param show_params[] = { EXP_REF, TLBOT_PARAMS_END };
static const struct tlbot_param history_params[] = { EXP_REF, EXP_PAGE, TLBOT_PARAMS_END };
/* every editable field of the record's table, and the hypothesis as a sentence */
#define REC_REF_PREFIX "C"
static const struct tlbot_param edit_params[] = {
	EXP_REF,
	EXP_FIELDS(REC_X_EDIT_PARAM)
	{ TLBOT_TEXT("--hypothesis", 0), .desc = "the whole sentence" },
	TLBOT_PARAMS_END,
};
static const struct tlbot_param export_params[] = {
	{ TLBOT_REF("--challenge", "C"), .desc = "only this challenge's" },
	{ TLBOT_TEXT("--status", 0), .label = "S", .desc = "only this status" },
	{ TLBOT_ENUM("--format", "md|csv|json"), .desc = "the file format" },
	TLBOT_PARAMS_END,
};
static const struct tlbot_param digest_params[] = {
	{ TLBOT_TEXT("day", 0), .mode = TLBOT_OPTIONAL | TLBOT_WORD, .label = "DAY|off",
	  .desc = "the weekday, or off" },
	{ TLBOT_TIME("time"), .mode = TLBOT_OPTIONAL, .desc = "the time of day" },
	{ TLBOT_ZONE("zone"), .mode = TLBOT_OPTIONAL, .desc = "the time zone" },
	TLBOT_PARAMS_END,
};

static const struct tlbot_subcmd subcmds[] = {
	{ "new", "record a proposed experiment (or give --believe \"...\" --result-in \"...\""
	  " --know-when \"...\" instead of the sentence)", TLBOT_PERM_ANYONE, new_params, cmd_new,
	  "new C-12 \"Text reminders\" We believe a text the day before will result in fewer missed"
	  " visits. We will know when missed visits fall below 10%. --until +4w", 0 },
	{ "start", "start a proposed experiment", TLBOT_PERM_ANYONE, start_params, cmd_start,
	  "start E-34 --until 31/01/2027", 0 },
	{ "note", "add a note at any time (no quotes needed)", TLBOT_PERM_ANYONE, note_params,
	  cmd_note, "note E-34 Spoke to the team, they can refer too", 0 },
	{ "result", "record the observed value and finding: the experiment is concluded",
	  TLBOT_PERM_ANYONE, result_params, cmd_result, "result E-34 --value 9 fell to 9%", 0 },
	{ "decide", "record the decision taken on the result", TLBOT_PERM_ANYONE, decide_params,
	  cmd_decide, "decide E-34 scale worked in both areas", 0 },
	{ "learn", "add a learning (one short statement)", TLBOT_PERM_ANYONE, learn_params,
	  cmd_learn, "learn E-34 people answer texts, not letters", 0 },
	{ "abandon", "abandon an experiment (from any state)", TLBOT_PERM_ANYONE, abandon_params,
	  cmd_abandon, "abandon E-34 the pilot site closed", 0 },
	{ "list", "list this room's experiments, newest first", TLBOT_PERM_ANYONE, list_params,
	  cmd_list, "list --status running", TLBOT_SUB_READS },
	{ "show", "the full record with its history", TLBOT_PERM_ANYONE, show_params, cmd_show,
	  "show E-34", TLBOT_SUB_READS },
	{ "history", "every change to an experiment", TLBOT_PERM_ANYONE, history_params,
	  cmd_history, "history E-34", TLBOT_SUB_READS },
	{ "edit", "change fields (kept in the history)", TLBOT_PERM_ANYONE, edit_params, cmd_edit,
	  "edit E-34 --until friday", 0 },
	{ "export", "export the log: a message when small, else an uploaded file",
	  TLBOT_PERM_ANYONE, export_params, tlbot_exp_export, "export --format csv", TLBOT_SUB_READS },
	{ "search", "in the programme room: experiments of every team by title, hypothesis,"
	  " finding or learnings", TLBOT_PERM_ANYONE, search_params, tlbot_exp_search,
	  "search text reminders", TLBOT_SUB_READS },
	{ "digest", "show or set this room's weekly learning digest (default Fridays 16:00)",
	  TLBOT_PERM_ANYONE, digest_params, cmd_digest, "digest fri 4pm Europe/London", 0 },
	{ NULL, NULL, 0, NULL, NULL, NULL, 0 },
};

/* data protection: commands/experiment_privacy.c */
int experiment_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int experiment_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                           struct tlbot_dp_report *report);

const struct tlbot_cmd tlbot_cmd_experiment = {
	.name = "experiment",
	.aliases = aliases,
	.summary = "the experiment log: hypothesis, result, decision and learnings",
	.help = "An experiment belongs to a challenge and goes proposed → running → concluded"
		" (or abandoned).\n\n"
		"Example: !exp new C-12 \"Text reminders\" We believe a text"
		" the day before will result in fewer missed visits. We will know when missed"
		" visits fall below 10%. --metric \"missed visits\" --baseline 18 --target 10"
		" --unit % --until +4w. Then !exp start E-1, !exp result E-1 --value 9 fell to"
		" 9%, !exp decide E-1 scale worked in both areas, !exp learn E-1 people"
		" answer texts, not letters.\n\n"
		"The owner is reminded (DM and room) when the end"
		" date passes without a result, then weekly. A weekly learning digest is posted"
		" on Fridays at 16:00 (change with !exp digest DAY HH:MM, stop with !exp digest"
		" off).\n\nChanges need the owner, the creator or a room moderator; notes and"
		" learnings anyone.\n\nExports: md (a table), csv (UTF-8 with BOM, RFC 4180; text"
		" starting with = + - @ gets a leading ' so spreadsheets never run it), json.",
	.perm = TLBOT_PERM_ANYONE,
	.subcmds = subcmds,
	.schema = &schema,
	.jobs = jobs,
	.ref_prefix = "E",
	.ref_lookup = ref_lookup,
	.export_user = experiment_export_user,
	.forget_user = experiment_forget_user,
	.summary_since = summary_since,
	.linked = linked,
};
