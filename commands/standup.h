/* Private to the stand-up family (commands/standup*.c): the room schedule,
 * roster, answers, planning of the recurring jobs and the summary. */
#ifndef TLBOT_COMMANDS_STANDUP_H
#define TLBOT_COMMANDS_STANDUP_H

#include "record.h"
#include "tlbot/command.h"

#define SU_DEFAULT_SUMMARY_AFTER 45 /* minutes after the prompt */
#define SU_DEFAULT_REMIND_LEAD   15 /* minutes before the summary */

/* A room's stand-up settings as stored (strings owned). */
struct su_room {
	char *room_id;
	int minute; /* prompt time, minutes after local midnight */
	char *tz;
	unsigned days;      /* weekday bits, Monday = bit 0 */
	int summary_minute; /* resolved: explicit or minute + 45 */
	int summary_explicit;
	char *q[3]; /* questions: yesterday, today, blockers */
	int enabled;
	char *mode;      /* "dm" | "room" */
	int remind_lead; /* minutes before the summary; 0 = no reminder */
	char *division;  /* bank holidays division or NULL */
	int64_t gen;     /* bumped on every change; part of job keys */
	char *next_date; /* the planned stand-up date, or NULL */
};

/* A list of owned strings. */
struct su_list {
	size_t n, cap;
	char **v;
};

void su_list_release(struct su_list *l);
int su_list_add(struct su_list *l, const char *s); /* 0 or -1; skips duplicates */
int su_list_has(const struct su_list *l, const char *s);

/* 0 (filled, release it), 1 when the room has no schedule, -1 error. */
int su_room_load(struct tlbot_ctx *ctx, const char *room_id, struct su_room *r);
void su_room_release(struct su_room *r);


/* The people expected at the stand-up of room on date: the team roster
 * (team_members) when there is one, else the people joined to the room
 * (not bots) and those who answered there before and have not left. *from_roster tells which. 0 or -1. */
int su_members(struct tlbot_ctx *ctx, const char *room_id, const char *date, struct su_list *out,
               int *from_roster);
/* 1 if user_id is the bot or another bot (a "bot" segment in the
 * localpart, or seen sending m.notice), else 0. */
int su_is_other_bot(struct tlbot_ctx *ctx, const char *user_id);
/* 1 if user is away from room on date (until date copied to until, 11
 * bytes, when non-NULL), else 0. */
int su_is_away(struct tlbot_ctx *ctx, const char *room_id, const char *user_id, const char *date,
               char *until);
/* Hooks for other families (struct tlbot_cmd): a person's zone changed
 * (re-plan every enabled stand-up: personal prompt times follow it), and
 * their away periods for !me. */
int su_tz_changed(struct tlbot_ctx *ctx, const char *user_id);
int su_about_user(struct tlbot_ctx *ctx, struct tlbot_msg *m, const char *user_id,
                  const char *today);

/* Split answer text into yesterday / today / blockers (new strings, NULL
 * when absent; caller frees). Markers: y: t: b:, yesterday: today:
 * blockers:, or lines starting with the room's questions; without
 * markers, lines in question order (one line alone is "today"). Returns
 * the number of sections found (0 when text is empty). */
int su_parse_answer(const char *text, char *const q[3], char **y, char **t, char **b);
/* 1 if the blockers text means "no blockers" (none, n/a, nothing...). */
int su_no_blocker(const char *b);
/* 1 if text carries at least one section marker. */
int su_has_marker(const char *text, char *const q[3]);

/* A stand-up answer's fields (see record.h): member, column, flag, type,
 * max, edit, flags, label. Its key is (room, user, date): the current
 * answer of the day; earlier ones stay as rows of history (the table's
 * id, replaced_by and withdrawn are the family's bookkeeping, set by
 * su_answer_record and the redaction of an answer, not fields). Adding a
 * field is one row here and one migration. */
#define SU_ANSWER_FIELDS(X)                                                                        \
	X(room_id, "room_id", "room", R_TEXT, 0, RE_FIXED, REC_KEY | REC_REQUIRED | REC_INTERNAL,  \
	  "room")                                                                                  \
	X(user_id, "user_id", "user", R_USER, 0, RE_FIXED, REC_KEY | REC_REQUIRED | REC_SHOWN,     \
	  "person")                                                                                \
	X(date, "date", "date", R_DATE, 0, RE_FIXED, REC_KEY | REC_REQUIRED | REC_SHOWN, "date")   \
	X(yesterday, "yesterday", "yesterday", R_TEXT, 0, RE_FIXED, REC_SHOWN, "yesterday")        \
	X(today, "today", "today", R_TEXT, 0, RE_FIXED, REC_SHOWN, "today")                        \
	X(blockers, "blockers", "blockers", R_TEXT, 0, RE_FIXED, REC_SHOWN, "blockers")            \
	X(event_id, "event_id", "event", R_TEXT, 0, RE_FIXED, REC_INTERNAL, "event")               \
	X(source, "source", "source", R_TEXT, 0, RE_FIXED, REC_REQUIRED | REC_INTERNAL, "source")  \
	X(at, "at", "at", R_TIME, 0, RE_FIXED, REC_INTERNAL, "given at")

struct su_answer {
	SU_ANSWER_FIELDS(REC_X_MEMBER)
};

/* The record's description: table standup_answers, no history. */
extern const struct rec_desc su_answer_desc;

/* Record answer a (its at is set to now) for its (room, user, date); a
 * previous current answer of that day is kept as history (replaced_by).
 * Returns the new row id or -1. */
int64_t su_answer_record(struct tlbot_ctx *ctx, struct su_answer *a);
/* The current answer of (room, user, date) into a (release it with
 * rec_release): 0, 1 when there is none (a zeroed), -1 (ctx marked). */
int su_answer_current(struct tlbot_ctx *ctx, const char *room_id, const char *user_id,
                      const char *date, struct su_answer *a);
/* Every current answer of room for date, in the order they were given:
 * *v a new array of *n answers (su_answers_free). 0 or -1 (ctx marked). */
int su_answers_of_day(struct tlbot_ctx *ctx, const char *room_id, const char *date,
                      struct su_answer **v, size_t *n);
void su_answers_free(struct su_answer *v, size_t n);

/* Plan the next stand-up of r whose summary is after `after` (prompt,
 * per-person prompts, reminder, summary jobs). 0 or -1. */
int su_plan(struct tlbot_ctx *ctx, struct su_room *r, time_t after);
/* Settings changed: bump the generation, cancel pending jobs, plan again
 * from now. 0 or -1. */
int su_replan(struct tlbot_ctx *ctx, const char *room_id);
/* Is date a day without stand-up for r (skip date or bank holiday)?
 * 1 skip (reason into why when non-NULL), 0 no, -1 error. */
int su_date_skipped(struct tlbot_ctx *ctx, const struct su_room *r, const char *date, char *why,
                    size_t whylen);

/* Build the summary of room for date into m (initialised by the caller),
 * covering challenge and experiment activity after since. r may be NULL
 * (room without a schedule: default questions). 0 or -1. */
int su_summary_build(struct tlbot_ctx *ctx, const struct su_room *r, const char *room_id,
                     const char *date, time_t since, struct tlbot_msg *m);
/* 1 if m is too large to send as one event (both parts together). */
int su_msg_too_big(const struct tlbot_msg *m);
/* The time of the last scheduled summary posted in room before `before`,
 * or 0 when none. */
time_t su_last_summary_at(struct tlbot_ctx *ctx, const char *room_id, time_t before);

/* The room's zone (r may be NULL: the configured default). Borrowed. */
const char *su_room_tz(struct tlbot_ctx *ctx, const struct su_room *r);
/* "09:30" from minutes after midnight. */
void su_hhmm(int minute, char out[6]);
/* 1 if user has a current answer in room for date. */
int su_has_answer(struct tlbot_ctx *ctx, const char *room, const char *user, const char *date);
/* 1 if the scheduled summary of room for date was posted. */
int su_summary_posted(struct tlbot_ctx *ctx, const char *room, const char *date);

/* commands/standup_answer.c: the answer subcommands and non-command
 * messages (DM replies, edits, redactions). */
int su_cmd_answer(struct tlbot_ctx *ctx, const struct tlbot_args *args);
int su_on_message(struct tlbot_ctx *ctx);
/* commands/standup_jobs.c: prompt, reminder, summary. */
extern const struct tlbot_job_kind su_jobs[];

/* A matrix.to link to the room, labelled with its name (else its id). */
void su_room_link(struct tlbot_msg *m, struct tlbot_ctx *ctx, const char *room_id);

/* Helpers shared by the files. */
char *su_strdup(const char *s);
/* Formatted bot text (at most 2 KiB) whose `backticked` commands are
 * <code> (tlbot_msg_text_code). */
void su_textf_code(struct tlbot_msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
