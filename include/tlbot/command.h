/* The only header commands/ needs: the command table entry, the context a
 * handler runs in, the reply API and store access. Handlers never touch the
 * network: they read and write the store (inside the batch transaction the
 * router opened) and enqueue messages in the outbox. */
#ifndef TLBOT_COMMAND_H
#define TLBOT_COMMAND_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>

#include "tlbot/msg.h"
#include "tlbot/parse.h"
#include "tlbot/schema.h"

struct tlbot_ctx;
struct tlbot_dp_export;
struct tlbot_dp_report;
struct tlbot_summary;

enum tlbot_perm {
	TLBOT_PERM_ANYONE = 0,  /* any allowed user in the room */
	TLBOT_PERM_WRITE,       /* power level >= config power_level (default 50) or a bot admin */
	TLBOT_PERM_ADMIN,       /* a configured bot admin */
};

typedef int (*tlbot_handler_fn)(struct tlbot_ctx *ctx, const struct tlbot_args *args);

/* ---- typed arguments ----
 * A command's arguments are one table of parameters: positionals in order,
 * then flags (names starting with "--"), ended by an entry with name NULL.
 * Dispatch checks them all before the handler runs, with one wording for
 * every error, and hands the handler normalised values; usage, !help and
 * the MSC4391 command descriptions are generated from the same table.
 *
 *	static const struct tlbot_param new_params[] = {
 *		{ TLBOT_TEXT("title", 200), .desc = "what the challenge is" },
 *		{ TLBOT_DATE("--due"), .desc = "when it is due" },
 *		{ TLBOT_USER("--lead") },
 *		{ TLBOT_ENUM("--status", "open|active|done") },
 *		{ TLBOT_BOOL("--mine") },
 *		TLBOT_PARAMS_END,
 *	};
 *
 * What the handler gets (argv[i] and tlbot_args_get, as before, plus the
 * typed value in args->val[i] / tlbot_args_val):
 *   TEXT(max)      the text; max characters (0: no limit). The LAST
 *                  positional, when it is TEXT, takes the rest of the line
 *                  unquoted: "!exp note E-1 Spoke to the team" gives
 *                  "Spoke to the team" (words joined by one space).
 *   INT(min,max)   val.n; argv is the number as typed
 *   NUM            val.d (a plain decimal number, no exponent, no nan)
 *   DATE           argv "YYYY-MM-DD" in the sender's zone (when.h forms:
 *                  31/01/2027, 31 Jan, friday, next monday, +6m ...);
 *                  val.n = days since 1970-01-01
 *   DURATION       val.n = seconds (2h, 2 hours, 90 minutes, 1 week);
 *                  argv normalised to "7200s"
 *   TIME           argv "HH:MM"; val.n = minutes after midnight (5pm, 17:00)
 *   ZONE           an installed IANA zone ("Europe/London")
 *   USER           "@user:server" (checked), or a word for the family to
 *                  resolve ("me", a display name or localpart)
 *   REF("C")       argv normalised to "C-12" (c-12 and 12 accepted);
 *                  val.n = 12. A record of the family with that
 *                  ref_prefix must belong to the command's room (see
 *                  ref_lookup): any other room's record gets the same
 *                  answer as an unknown id. The programme room
 *                  (digest_room) may read across rooms with subcommands
 *                  marked TLBOT_SUB_READS.
 *   ENUM("a|b")    argv the choice, lower-cased (case-insensitive match)
 *   BOOL           a flag without a value
 *   ROOM           argv a room id "!abc:server" or an alias "#name:server"
 *                  (tlbot_mxuri_id_ok); ROOM_ID (choices "!") room ids only
 * Modes (.mode, OR-ed): TLBOT_OPTIONAL (a positional that may be left out;
 * the ones after it too), TLBOT_REPEAT (a positional: one or more, or zero
 * or more with TLBOT_OPTIONAL, each checked; a flag: may be given more
 * than once), TLBOT_NONE_OK ("none" is accepted as is, to clear a field),
 * TLBOT_WORD (a TEXT positional that is one word, never the rest). */
enum tlbot_ptype {
	TLBOT_P_TEXT = 0,
	TLBOT_P_INT,
	TLBOT_P_NUM,
	TLBOT_P_DATE,
	TLBOT_P_DURATION,
	TLBOT_P_TIME,
	TLBOT_P_ZONE,
	TLBOT_P_USER,
	TLBOT_P_REF,
	TLBOT_P_ENUM,
	TLBOT_P_BOOL,
	TLBOT_P_ROOM,
};

#define TLBOT_OPTIONAL 0x1u
#define TLBOT_REPEAT 0x2u
#define TLBOT_NONE_OK 0x4u
#define TLBOT_WORD 0x8u

struct tlbot_param {
	const char *name;      /* "title" (positional) or "--due" (flag) */
	enum tlbot_ptype type;
	long long min, max;    /* INT range; TEXT: max characters (0 = any) */
	const char *choices;   /* ENUM "a|b|c"; REF the prefix letter(s) "C" */
	unsigned mode;         /* TLBOT_OPTIONAL | TLBOT_REPEAT | ... */
	const char *label;     /* how usage writes the value (default from the type) */
	const char *desc;      /* a few words: !help and MSC4391 descriptions */
};

/* The end of a parameter table (designated, so no compiler sees a
 * missing field initializer). */
#define TLBOT_PARAMS_END { .name = NULL }

#define TLBOT_TEXT(nm, mx) .name = (nm), .type = TLBOT_P_TEXT, .max = (mx)
#define TLBOT_INT(nm, lo, hi) .name = (nm), .type = TLBOT_P_INT, .min = (lo), .max = (hi)
#define TLBOT_NUM(nm) .name = (nm), .type = TLBOT_P_NUM
#define TLBOT_DATE(nm) .name = (nm), .type = TLBOT_P_DATE
#define TLBOT_DURATION(nm) .name = (nm), .type = TLBOT_P_DURATION
#define TLBOT_TIME(nm) .name = (nm), .type = TLBOT_P_TIME
#define TLBOT_ZONE(nm) .name = (nm), .type = TLBOT_P_ZONE
#define TLBOT_USER(nm) .name = (nm), .type = TLBOT_P_USER
#define TLBOT_REF(nm, prefix) .name = (nm), .type = TLBOT_P_REF, .choices = (prefix)
#define TLBOT_ENUM(nm, ch) .name = (nm), .type = TLBOT_P_ENUM, .choices = (ch)
#define TLBOT_BOOL(nm) .name = (nm), .type = TLBOT_P_BOOL
#define TLBOT_ROOM(nm) .name = (nm), .type = TLBOT_P_ROOM
#define TLBOT_ROOM_ID(nm) .name = (nm), .type = TLBOT_P_ROOM, .choices = "!"

/* The typed value of positional i / of flag name (last given); NULL when
 * absent. */
const struct tlbot_value *tlbot_args_val(const struct tlbot_args *a, size_t i);
const struct tlbot_value *tlbot_args_flag_val(const struct tlbot_args *a, const char *name);

/* Subcommand modes. */
#define TLBOT_SUB_READS 0x1u /* only reads: the programme room may use it across rooms */

struct tlbot_subcmd {
	const char *name;
	const char *summary;      /* one line */
	enum tlbot_perm perm;
	const struct tlbot_param *params; /* NULL = no arguments */
	tlbot_handler_fn handler;
	const char *example;      /* one example after the family name, or NULL:
				   * "new Cut the cost --due +12w" (checked by a test) */
	unsigned mode;            /* TLBOT_SUB_READS */
};


/* A scheduled job as the handler sees it (borrowed). */
struct tlbot_job {
	int64_t id;
	const char *kind;
	const char *room_id;   /* may be NULL */
	const char *key;       /* unique key given at scheduling */
	const char *payload;   /* JSON text given at scheduling, or "{}" */
	time_t due;
	int missed;            /* 1: more than the grace period late; don't post,
				* just reschedule a recurrence if any */
};

struct tlbot_job_kind {
	const char *kind;      /* "challenge.due" */
	/* Runs inside the job's transaction; return 0 (job done) or -1 after
	 * tlbot_fail (rolled back; the job is recorded as failed and logged,
	 * not retried, so one broken job never blocks the others). A database
	 * error reported with tlbot_db_error rolls back and is retried on a
	 * later tick. */
	int (*fire)(struct tlbot_ctx *ctx, const struct tlbot_job *job);
};

/* Who counts as on a team on a date (the roster hook): */
enum tlbot_roster_span {
	TLBOT_ROSTER_ON_DATE,   /* their tour of duty covers the date (started
				 * by it, not ended before it), in the order
				 * they were added (the stand-up asks them) */
	TLBOT_ROSTER_NOT_ENDED, /* their tour has not ended before the date,
				 * started or not, by time added then user id
				 * (!challenge assign --team) */
};

struct tlbot_cmd {
	const char *name;              /* "challenge" */
	const char *const *aliases;    /* NULL-terminated or NULL */
	const char *summary;           /* one line for !help */
	const char *help;              /* short paragraphs (blank line between), or NULL */
	enum tlbot_perm perm;          /* for families without subcommands */
	const struct tlbot_param *params; /* for families without subcommands */
	tlbot_handler_fn handler;      /* families without subcommands */
	const char *example;           /* families without subcommands */
	unsigned mode;                 /* families without subcommands: TLBOT_SUB_READS */
	const struct tlbot_subcmd *subcmds; /* terminated by an entry with name NULL */
	const struct tlbot_schema *schema;  /* or NULL */
	const struct tlbot_job_kind *jobs;  /* terminated by kind NULL, or NULL */
	/* Optional: the records this family owns can be referenced in any text
	 * as "<ref_prefix>-<n>" ("C-12"). ref_lookup fills the record's title,
	 * room and the id of the event that created it (new strings, caller
	 * frees; room/event may be NULL) and returns 0, or 1 if no such
	 * record, -1 on error. */
	const char *ref_prefix;
	int (*ref_lookup)(struct tlbot_ctx *ctx, int64_t num, char **title, char **room_id,
			  char **event_id);
	/* Optional: every message in a served room that is not a command (free
	 * text, replies, edits, redactions) from an allowed user, in a
	 * savepoint like a command. Return 1 if consumed, 0 if not, -1 after
	 * tlbot_fail (rolled back; the reason is logged, not sent). */
	int (*on_message)(struct tlbot_ctx *ctx);
	/* Optional data-protection hooks (!admin export-user / forget and
	 * retention_days; see docs/data-protection.md). Each family answers
	 * for its own tables only, through tlbot_dp_* below.
	 * export_user: add what the family holds about user_id to out, under
	 * keys of its own (tlbot_dp_export). forget_user: delete what is the
	 * person's alone and replace their id by pseudonym in shared records
	 * and history (tlbot_dp_forget), adding what changed to report.
	 * retain: delete personal records older than before (epoch s).
	 * Each returns the number of rows found/changed, or -1 after
	 * tlbot_db_error. */
	int (*export_user)(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
	int (*forget_user)(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
			   struct tlbot_dp_report *report);
	int (*retain)(struct tlbot_ctx *ctx, time_t before, struct tlbot_dp_report *report);
	/* Optional hooks through which families reach each other (never
	 * through another family's tables):
	 * summary_since: this family's part of the stand-up summary's "since
	 * the last stand-up": one item (tlbot_summary_item) per record of
	 * room_id that changed in (since, until], or is overdue on date,
	 * records in the order of their first change, each change in words.
	 * Returns the number of items, or -1 (ctx marked).
	 * linked: append this family's records that point at record
	 * <prefix>-<num> ("C", 12) as " E-3 title (status)" joined by "; "
	 * after `label` (nothing when there are none). Returns how many, -1. */
	int (*summary_since)(struct tlbot_ctx *ctx, struct tlbot_summary *s, const char *room_id,
			     const char *date, time_t since, time_t until);
	int (*linked)(struct tlbot_ctx *ctx, struct tlbot_msg *m, const char *label,
		      const char *prefix, int64_t num);
	/* leads: who answers for this family's records in room_id: of record
	 * <ref_prefix>-num when num > 0, else of each of the room's records
	 * (in id order); add(arg, user, num, status) for each that has one.
	 * Returns 0, 1 when num is not a record of room_id, -1 (ctx marked).
	 * room_profile: the team's name and region for room_id (new strings,
	 * NULL when unknown). 0 or -1. */
	int (*leads)(struct tlbot_ctx *ctx, const char *room_id, int64_t num,
		     void (*add)(void *arg, const char *user_id, int64_t num, const char *status),
		     void *arg);
	int (*room_profile)(struct tlbot_ctx *ctx, const char *room_id, char **name, char **region);
	/* roster: the people on room_id's team on date (YYYY-MM-DD), add(arg,
	 * user) for each; span says who counts (enum tlbot_roster_span).
	 * Returns how many, or -1 (ctx marked). */
	int (*roster)(struct tlbot_ctx *ctx, const char *room_id, const char *date,
		      enum tlbot_roster_span span, void (*add)(void *arg, const char *user_id),
		      void *arg);
	/* A person's own settings (the me family keeps them; others ask
	 * through tlbot_user_tz, never its table):
	 * user_tz: the zone user_id chose (!me tz) into out: 0, 1 when they
	 * chose none, -1 (ctx marked).
	 * user_tz_changed: user_id's zone changed: re-plan what this family
	 * scheduled at their local time. 0 or -1 (ctx marked).
	 * about_user: append to m what this family holds for user_id that
	 * !me shows, one line each ending in tlbot_msg_br; today is their
	 * date (YYYY-MM-DD). Returns the number of lines, or -1. */
	int (*user_tz)(struct tlbot_ctx *ctx, const char *user_id, char *out, size_t outlen);
	int (*user_tz_changed)(struct tlbot_ctx *ctx, const char *user_id);
	int (*about_user)(struct tlbot_ctx *ctx, struct tlbot_msg *m, const char *user_id,
			  const char *today);
};

/* One list of items across families (the stand-up summary): the first
 * item opens it, tlbot_summary_end closes it, so it is one valid <ul>. */
struct tlbot_summary {
	struct tlbot_msg *m;
	int n;
};
/* Open the next item: "<li>" (and "• " in the plain body). */
void tlbot_summary_item(struct tlbot_summary *s);
/* Close the item: "</li>" (a line break in the plain body). */
void tlbot_summary_item_end(struct tlbot_summary *s);
/* Close the list if it was opened. */
void tlbot_summary_end(struct tlbot_summary *s);

/* The registry (commands/table.c): NULL-terminated. */
extern const struct tlbot_cmd *const tlbot_commands[];
/* The schema components of the table's families, NULL-terminated, for
 * tlbot_store_open (a static list, rebuilt on each call). */
const struct tlbot_schema *const *tlbot_command_schemas(void);
/* Find by name or alias (case-insensitive); NULL if none. */
const struct tlbot_cmd *tlbot_command_find(const char *name);
/* The zone user_id's times are read in: their own (the user_tz hook of
 * the family that keeps it) when it is an installed zone, else dflt, else
 * "UTC", into out. Returns 1 for their own, 0 for the default. */
int tlbot_user_tz(struct tlbot_ctx *ctx, const char *user_id, const char *dflt, char *out,
		  size_t outlen);

/* ---- context: who, where, when (all borrowed, valid during the call) ---- */
const char *tlbot_ctx_sender(const struct tlbot_ctx *ctx);   /* NULL in jobs */
const char *tlbot_ctx_room(const struct tlbot_ctx *ctx);     /* NULL in jobs without room */
const char *tlbot_ctx_event_id(const struct tlbot_ctx *ctx); /* NULL in jobs */
const char *tlbot_ctx_body(const struct tlbot_ctx *ctx);     /* message text (new content for edits) */
const char *tlbot_ctx_prefix(const struct tlbot_ctx *ctx);   /* "!" as typed, or the first configured */
const char *tlbot_ctx_bot_user(const struct tlbot_ctx *ctx);
/* For on_message: the event this one replies to, the event it edits
 * (m.replace target), the thread root; NULL when none. */
const char *tlbot_ctx_in_reply_to(const struct tlbot_ctx *ctx);
const char *tlbot_ctx_replaces(const struct tlbot_ctx *ctx);
const char *tlbot_ctx_thread_root(const struct tlbot_ctx *ctx);
/* For on_message on an m.room.redaction: the redacted event id (the body
 * is then ""); NULL otherwise. */
const char *tlbot_ctx_redacts(const struct tlbot_ctx *ctx);
/* 1 if the room is a direct-message room between the bot and the sender. */
int tlbot_ctx_is_dm(const struct tlbot_ctx *ctx);
/* Origin timestamp of the event (seconds), or now in jobs. */
time_t tlbot_ctx_event_time(const struct tlbot_ctx *ctx);
/* Wall clock (test override aware). */
time_t tlbot_ctx_now(const struct tlbot_ctx *ctx);
/* Users mentioned in the command message (m.mentions, pills, plain ids). */
size_t tlbot_ctx_nmentions(const struct tlbot_ctx *ctx);
const char *tlbot_ctx_mention(const struct tlbot_ctx *ctx, size_t i);
/* Configuration values commands may need. */
const char *tlbot_ctx_default_tz(const struct tlbot_ctx *ctx);
int tlbot_ctx_grace_s(const struct tlbot_ctx *ctx);
const char *tlbot_ctx_digest_room(const struct tlbot_ctx *ctx);
const char *tlbot_ctx_bank_holidays_file(const struct tlbot_ctx *ctx);
int tlbot_ctx_dm_default(const struct tlbot_ctx *ctx);

/* Permissions from the room's current m.room.power_levels and m.room.create
 * (users_default, creators of room versions >= 12 are above everyone).
 * Returns the power level; INT64_MAX for creators of v12+ rooms. */
int64_t tlbot_ctx_power(const struct tlbot_ctx *ctx, const char *room_id, const char *user_id);
int tlbot_ctx_is_admin(const struct tlbot_ctx *ctx, const char *user_id);
/* 1 if user may run commands needing perm in the ctx room. */
int tlbot_ctx_allowed(const struct tlbot_ctx *ctx, enum tlbot_perm perm, const char *user_id);

/* ---- people (bot/core/members.c) ---- */
/* 1 if user is joined to (or invited into) the ctx room, as the bot knows
 * from /sync and /joined_members, else 0. */
int tlbot_ctx_member(struct tlbot_ctx *ctx, const char *user_id);
/* The room member a word names: a localpart ("erin", "@erin") or a display
 * name ("Erin Hughes"), case-insensitive. Returns how many members match;
 * when exactly one, *id is their user id (borrowed, valid during the call). */
size_t tlbot_ctx_find_member(struct tlbot_ctx *ctx, const char *word, const char **id);
/* What the homeserver said of user (GET /profile, asked by the worker): 1
 * exists, 0 no such user, -1 never asked. */
int tlbot_ctx_profile(struct tlbot_ctx *ctx, const char *user_id);
/* Ask the homeserver whether user exists, after this command (even when it
 * fails: call it, then refuse with "checking"); the command is run again,
 * once, when the answers are in (tlbot_ctx_rerun then says 1). 0 or -1. */
int tlbot_ctx_lookup_user(struct tlbot_ctx *ctx, const char *user_id);
int tlbot_ctx_rerun(const struct tlbot_ctx *ctx);
/* The user's display name in the ctx room (or any room the bot shares),
 * borrowed; NULL when none is known. */
const char *tlbot_ctx_display_name(struct tlbot_ctx *ctx, const char *user_id);
/* A copy of s owned by ctx (freed with it); NULL when full or on OOM. */
const char *tlbot_ctx_keep(struct tlbot_ctx *ctx, const char *s);

/* ---- store: the batch's database connection, inside its transaction ---- */
/* The only way commands and jobs reach SQLite. sql is a string literal
 * (never built from input); types has one letter per bound parameter:
 * 't' text (a NULL pointer binds NULL), 'i' int64_t, 'd' double, 'n' a
 * double that binds NULL when the int before it is 0 (two arguments:
 * int has, double v). Do not BEGIN/COMMIT: the caller owns the transaction.
 *
 * One error contract: every call that fails logs the statement's purpose
 * and SQLite's message and marks the context itself (as tlbot_db_error
 * does), so the batch (or job) is rolled back and retried later, whatever
 * the handler does next; a store failure never reaches the user as a
 * committed "database error". Handlers just return -1. */
/* Run a statement to completion. 0 or -1. */
int tlbot_db_exec(struct tlbot_ctx *ctx, const char *sql, const char *types, ...);
/* The first column of the first row: 0, 1 when there is no row (*out is
 * then 0 / NULL), -1 on error. The text is a new string, NULL for SQL NULL. */
int tlbot_db_int(struct tlbot_ctx *ctx, int64_t *out, const char *sql, const char *types, ...);
int tlbot_db_text(struct tlbot_ctx *ctx, char **out, const char *sql, const char *types, ...);
/* Number of rows the last tlbot_db_exec changed; the rowid of the last
 * row it inserted. */
int64_t tlbot_db_changes(struct tlbot_ctx *ctx);
int64_t tlbot_db_last_id(struct tlbot_ctx *ctx);

/* The first column of up to max rows as integers (record ids) into ids.
 * Returns how many, or -1 (ctx marked). */
int tlbot_db_ids(struct tlbot_ctx *ctx, int64_t *ids, int max, const char *sql,
		 const char *types, ...);

/* A row iterator:
 *	struct tlbot_db_rows q;
 *	if (tlbot_db_query(ctx, &q, "SELECT a, b FROM t WHERE r = ?", "t", room) != 0)
 *		return -1;
 *	while ((rc = tlbot_db_next(&q)) > 0)
 *		use(tlbot_db_col_text(&q, 0), tlbot_db_col_int(&q, 1));
 *	tlbot_db_done(&q);   (always; also after an early break)
 *	if (rc < 0) return -1;
 * tlbot_db_query returns 0 or -1 (ctx marked); tlbot_db_next returns 1 for
 * a row, 0 at the end, -1 on error (ctx marked). */
struct sqlite3_stmt; /* bot/store/db.c's; commands never call SQLite */
struct tlbot_db_rows {
	struct tlbot_ctx *ctx;
	struct sqlite3_stmt *stmt;
};
int tlbot_db_query(struct tlbot_ctx *ctx, struct tlbot_db_rows *q, const char *sql,
		   const char *types, ...);
/* tlbot_db_query with the values in ap (for a wrapper that takes them). */
int tlbot_db_vquery(struct tlbot_ctx *ctx, struct tlbot_db_rows *q, const char *sql,
		    const char *types, va_list ap);
/* Bind parameter i (from 1) of q's statement before its first
 * tlbot_db_next, for values known only at run time (a record's fields):
 * type is one letter of a types string and then its value(s) ('n' takes
 * two: int has, double v). 0 or -1 (ctx marked). */
int tlbot_db_bind(struct tlbot_db_rows *q, int i, int type, ...);
int tlbot_db_next(struct tlbot_db_rows *q);
void tlbot_db_done(struct tlbot_db_rows *q);
/* Columns of the current row. col_text is borrowed (valid until the next
 * tlbot_db_next), NULL for SQL NULL; col_dup is a new string, NULL for SQL
 * NULL (out of memory marks the context); col_null is 1 for SQL NULL. */
int64_t tlbot_db_col_int(const struct tlbot_db_rows *q, int i);
double tlbot_db_col_double(const struct tlbot_db_rows *q, int i);
const char *tlbot_db_col_text(const struct tlbot_db_rows *q, int i);
char *tlbot_db_col_dup(const struct tlbot_db_rows *q, int i);
int tlbot_db_col_null(const struct tlbot_db_rows *q, int i);

/* Report a failed store call that did not go through tlbot_db_* (or an
 * out-of-memory while reading rows): logs what and SQLite's message, and
 * marks the batch (or job) for a rollback and a retry later, since a
 * database error is not the user's fault. Returns -1, for
 * `return tlbot_db_error(ctx, "insert challenge");`. */
int tlbot_db_error(struct tlbot_ctx *ctx, const char *what);
/* The power level write commands need in this deployment (config). */
int tlbot_ctx_power_needed(const struct tlbot_ctx *ctx);
/* The room's name (m.room.name) as a new string, or NULL when it has none. */
char *tlbot_ctx_room_name(struct tlbot_ctx *ctx, const char *room_id);
/* Append one row to the history of record kind-id (kind "E" for E-34):
 * who (the sender, or the bot in jobs), the room, now, the action
 * ("created", "edited"...), and for a changed field its column with the
 * old and new values as text (NULL for none). Returns 0 or -1 (ctx
 * marked). Families read the table `history` (kind, record_id, room_id,
 * at, actor, action, field, old, new) for their own kind only. */
int tlbot_history_add(struct tlbot_ctx *ctx, const char *kind, int64_t id, const char *action,
		      const char *field, const char *old, const char *new_);
/* Next value of a named counter (e.g. "challenge" -> 12 for C-12), stored
 * in the same transaction. Returns -1 on error. */
int64_t tlbot_ctx_next_id(struct tlbot_ctx *ctx, const char *counter);

/* Through the families' hooks: the leads of record <prefix>-num of
 * room_id (num > 0) or of the room's records (num 0) -- see leads above;
 * returns 0, 1 (no such record here, or no family owns the prefix), -1.
 * And the team's name and region of room_id (new strings or NULL). */
int tlbot_leads(struct tlbot_ctx *ctx, const char *prefix, const char *room_id, int64_t num,
		void (*add)(void *arg, const char *user_id, int64_t num, const char *status),
		void *arg);
int tlbot_room_profile(struct tlbot_ctx *ctx, const char *room_id, char **name, char **region);
/* The team's roster of room_id on date through the roster hook (see
 * above): how many were added (0 when no family keeps rosters), or -1. */
int tlbot_roster(struct tlbot_ctx *ctx, const char *room_id, const char *date,
		 enum tlbot_roster_span span, void (*add)(void *arg, const char *user_id),
		 void *arg);

/* Linked records: whether record <prefix>-<num> ("C", 12) exists, asked
 * of the family that owns the prefix (its ref_lookup), so no family reads
 * another's tables. 0 it exists, 1 no such record, 2 no family owns the
 * prefix, -1 on a store error (ctx marked). */
int tlbot_ref_exists(struct tlbot_ctx *ctx, const char *prefix, int64_t num);

/* Append user text (escaped) with every record reference ("C-12",
 * "E-34") that exists rendered as a link to the record: a matrix.to link to
 * the event that created it, the record's title on hover. */
void tlbot_msg_refs(struct tlbot_msg *m, struct tlbot_ctx *ctx, const char *text);

/* ---- replies (enqueued in the outbox, sent after the commit) ---- */
/* Reply to the command: m.notice, m.in_reply_to the command, in its thread
 * if it was in one. Takes the message's contents (m is released). */
int tlbot_reply(struct tlbot_ctx *ctx, struct tlbot_msg *m);
/* One-line plain reply (escaped for HTML). */
int tlbot_replyf(struct tlbot_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Fail the command: every store change it made is rolled back, and the
 * one-line reason (newlines folded to spaces) is sent as the reply. Always returns -1, so handlers can
 * `return tlbot_fail(ctx, "unknown challenge %s", id);`. */
int tlbot_fail(struct tlbot_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A new message (not a reply) to a room: m.notice unless msgtype_text. */
int tlbot_send_room(struct tlbot_ctx *ctx, const char *room_id, struct tlbot_msg *m);
/* A direct message to a user: the sender reuses or creates the DM room
 * (marked in m.direct). Respects the user's notify setting only when the
 * caller checks tlbot_ctx_dm_enabled(). */
int tlbot_send_dm(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_msg *m);
/* Upload data to the media repository and post it as an m.file in room. */
int tlbot_send_file(struct tlbot_ctx *ctx, const char *room_id, const char *filename,
		    const char *mimetype, const void *data, size_t len, const char *caption);
/* Per-user DM preference ("!notify on|off"): 1 on, 0 off. */
int tlbot_ctx_dm_enabled(struct tlbot_ctx *ctx, const char *user_id);
int tlbot_ctx_set_dm_enabled(struct tlbot_ctx *ctx, const char *user_id, int on);

/* ---- scheduler ---- */
/* Schedule a job of kind at due (epoch s). key is unique: scheduling an
 * existing key that has not fired replaces its due time and payload (and
 * revives it if it was cancelled), returning its id; a key that has fired
 * (or was missed) is never fired again: that is a no-op returning 0.
 * payload is JSON text or NULL. Returns the job id, 0, or -1. */
int64_t tlbot_job_schedule(struct tlbot_ctx *ctx, const char *kind, const char *key,
			   const char *room_id, time_t due, const char *payload);
/* Cancel pending jobs whose key equals key (or starts with key when key
 * ends with '*'). Returns the number cancelled, or -1. */
int tlbot_job_cancel(struct tlbot_ctx *ctx, const char *key);

/* ---- formatting helpers shared by families ---- */
/* Parse a date as people write it (include/tlbot/when.h: 2027-01-31,
 * 31/01/2027, 31 Jan, friday, next monday, tomorrow, +2w, +6m ...;
 * relative to now in zone tz). Writes YYYY-MM-DD into out (11 bytes). Returns 0 or -1. */
int tlbot_parse_date(const char *s, time_t now, const char *tz, char out[11]);
/* The error text listing the accepted date forms. */
extern const char tlbot_date_forms[];

/* ---- operators (the admin family) ---- */
/* Figures of the running daemon, from process memory and the store (no
 * network). Strings are borrowed (static or configuration). */
struct tlbot_status {
	const char *version;
	time_t started;              /* wall clock, epoch s */
	time_t last_sync;            /* 0 before the first */
	const char *transport;       /* in use: sync, websocket, or none yet */
	const char *transport_config;/* sync, websocket or auto */
	const char *database;        /* path */
	long long db_bytes, wal_bytes;
	long long rooms_joined, outbox_pending;
	long long olm_sessions, megolm_inbound; /* -1: not reported by the crypto module */
	const char *encryption;      /* configured: "on" or "off" */
	long long encrypted_rooms;   /* joined rooms with m.room.encryption */
};
int tlbot_ctx_status(struct tlbot_ctx *ctx, struct tlbot_status *out);
/* Call fn for each room the bot knows (room id, membership, name or NULL,
 * updated_at); fn returns 0 to go on. Returns the number of rooms, -1. */
int tlbot_ctx_rooms_each(struct tlbot_ctx *ctx,
			 int (*fn)(void *arg, const char *room_id, const char *membership,
				   const char *name, time_t updated),
			 void *arg);
/* Leave room_id: marked left now, the leave is sent after the commit.
 * Returns 0, 1 when the bot is not in that room, -1. */
int tlbot_ctx_leave_room(struct tlbot_ctx *ctx, const char *room_id);
/* Online backup (SQLite backup API, from the last committed state) to a
 * new file beside the database, mode 0600; then PRAGMA integrity_check on
 * the copy. *path is a new string (caller frees); integrity gets "ok" or
 * the first problem. Returns 0 or -1 with why in integrity. */
int tlbot_ctx_backup(struct tlbot_ctx *ctx, char **path, long long *bytes, char *integrity,
		     size_t integritylen);
/* Like tlbot_send_file, to the direct-message room with user_id (created
 * by the sender when there is none). */
int tlbot_send_file_dm(struct tlbot_ctx *ctx, const char *user_id, const char *filename,
		       const char *mimetype, const void *data, size_t len, const char *caption);

/* ---- data protection (bot/core/ops.c walks every family's hooks and the
 * core's own tables) ---- */
/* Everything held about user_id as a JSON document (new string, caller
 * frees; *len its length); *rows the number of records found. 0 or -1. */
int tlbot_dp_export_user(struct tlbot_ctx *ctx, const char *user_id, char **json, size_t *len,
			 long long *rows);
/* Erase user_id: every family's forget_user with the next stable
 * pseudonym ("former member 3", written to pseudonym); *report (new
 * string) says what changed, one line per kind of record. Returns rows
 * changed (0: nothing held), or -1. */
int tlbot_dp_forget_user(struct tlbot_ctx *ctx, const char *user_id, char *pseudonym,
			 size_t pseudonymlen, char **report);
/* Retention: every family's retain with the cut-off before. Returns rows
 * deleted, or -1; *report as above (may be NULL). */
int tlbot_dp_retention(struct tlbot_ctx *ctx, time_t before, char **report);

/* ---- data protection: helpers for the hooks in struct tlbot_cmd ---- */
/* Add the rows of sql (a literal SELECT whose ?1 is bound to user_id) as
 * JSON objects (column: value) to the export's array key (created on
 * first use). Returns the number of rows, or -1 (tlbot_db_error called). */
int tlbot_dp_export(struct tlbot_ctx *ctx, struct tlbot_dp_export *out, const char *key,
		    const char *sql, const char *user_id);
/* Run sql (a literal DELETE or UPDATE; ?1 is user_id, ?2 the pseudonym)
 * and note "what: N" in the report when it changed rows. Returns rows
 * changed, or -1 (tlbot_db_error called). */
int tlbot_dp_forget(struct tlbot_ctx *ctx, struct tlbot_dp_report *report, const char *what,
		    const char *sql, const char *user_id, const char *pseudonym);
/* Run sql (a literal DELETE; ?1 is the cut-off, epoch s) for retention and
 * note it. Returns rows deleted, or -1. */
int tlbot_dp_retain(struct tlbot_ctx *ctx, struct tlbot_dp_report *report, const char *what,
		    const char *sql, time_t before);

/* A family's hooks described once: a table of steps, each an export key
 * or a report line ("teams led pseudonymised") and its literal SQL, bound
 * as for the call above that the walker makes; a table ends with
 * TLBOT_DP_STEPS_END. Each walker runs the steps in order and stops at
 * the first failure. Returns the rows in all, or -1 (tlbot_db_error
 * called). */
struct tlbot_dp_step {
	const char *label;
	const char *sql;
};
#define TLBOT_DP_STEPS_END { NULL, NULL }
int tlbot_dp_export_steps(struct tlbot_ctx *ctx, struct tlbot_dp_export *out,
			  const struct tlbot_dp_step *steps, const char *user_id);
int tlbot_dp_forget_steps(struct tlbot_ctx *ctx, struct tlbot_dp_report *report,
			  const struct tlbot_dp_step *steps, const char *user_id,
			  const char *pseudonym);
int tlbot_dp_retain_steps(struct tlbot_ctx *ctx, struct tlbot_dp_report *report,
			  const struct tlbot_dp_step *steps, time_t before);

#endif
