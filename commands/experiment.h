/* Private to the experiment family (commands/experiment*.c): the record,
 * described once by its field table, shared between the commands and the
 * export. */
#ifndef TLBOT_COMMANDS_EXPERIMENT_H
#define TLBOT_COMMANDS_EXPERIMENT_H

#include "tlbot/command.h"

#include "record.h"

#define EXP_MAX_TITLE 200
#define EXP_MAX_SHORT 200 /* metric name */
#define EXP_MAX_UNIT 40
#define EXP_MAX_TEXT 2000 /* characters: hypothesis parts, method, finding, reasons, notes, learnings */

#define EXP_INT REC_INTERNAL
#define EXP_PUB REC_EXPORTED /* the `show` lines of these fields are composed in cmd_show */
/* The experiment's fields (see record.h): member, column, flag, type, max,
 * edit, flags, label. Adding a field is one row here and one migration. */
#define EXP_FIELDS(X)                                                                          \
	X(id, "id", "id", R_ID, 0, RE_FIXED, REC_EXPORTED, "id")                               \
	X(room_id, "room_id", "room", R_TEXT, 0, RE_FIXED, REC_REQUIRED | EXP_INT, "room")       \
	X(title, "title", "title", R_TEXT, EXP_MAX_TITLE, RE_EDIT, REC_REQUIRED | EXP_PUB,       \
	  "title")                                                                             \
	X(owner, "owner", "owner", R_USER, 0, RE_EDIT, REC_REQUIRED | EXP_PUB, "owner")          \
	X(status, "status", "status", R_TEXT, 0, RE_FIXED, REC_REQUIRED | EXP_PUB, "status")     \
	X(believe, "believe", "believe", R_TEXT, EXP_MAX_TEXT, RE_EDIT, EXP_PUB, "change")       \
	X(result_in, "result_in", "result-in", R_TEXT, EXP_MAX_TEXT, RE_EDIT, EXP_PUB,           \
	  "expected outcome")                                                                  \
	X(know_when, "know_when", "know-when", R_TEXT, EXP_MAX_TEXT, RE_EDIT, EXP_PUB, "measure") \
	X(method, "method", "method", R_TEXT, EXP_MAX_TEXT, RE_EDIT, EXP_PUB, "method")          \
	X(metric, "metric", "metric", R_TEXT, EXP_MAX_SHORT, RE_EDIT, EXP_PUB, "metric")         \
	X(baseline, "baseline", "baseline", R_REAL, 0, RE_EDIT, EXP_PUB, "baseline")             \
	X(target, "target", "target", R_REAL, 0, RE_EDIT, EXP_PUB, "target")                     \
	X(unit, "unit", "unit", R_TEXT, EXP_MAX_UNIT, RE_EDIT, EXP_PUB, "unit")                  \
	X(start_date, "start_date", "start", R_DATE, 0, RE_EDIT, EXP_PUB, "start date")          \
	X(end_date, "end_date", "until", R_DATE, 0, RE_EDIT, EXP_PUB, "end date")                \
	X(challenge_id, "challenge_id", "challenge", R_REF, 0, RE_EDIT, REC_REQUIRED | EXP_PUB,  \
	  "challenge")                                                                         \
	X(result_value, "result_value", "value", R_REAL, 0, RE_FIXED, EXP_PUB, "result")         \
	X(finding, "finding", "finding", R_TEXT, EXP_MAX_TEXT, RE_FIXED, EXP_PUB, "finding")      \
	X(decision, "decision", "decision", R_TEXT, 0, RE_FIXED, EXP_PUB, "decision")            \
	X(decision_reason, "decision_reason", "decision-reason", R_TEXT, EXP_MAX_TEXT, RE_FIXED, \
	  EXP_PUB, "reason")                                                                   \
	X(abandon_reason, "abandon_reason", "abandon-reason", R_TEXT, EXP_MAX_TEXT, RE_FIXED,    \
	  EXP_PUB, "reason for abandoning")                                                    \
	X(created_by, "created_by", "created-by", R_USER, 0, RE_FIXED, EXP_INT | REC_EXPORTED,   \
	  "created by")                                                                        \
	X(created_at, "created_at", "created-at", R_TIME, 0, RE_FIXED, EXP_INT | REC_EXPORTED,   \
	  "created")                                                                           \
	X(created_event, "created_event", "created-event", R_TEXT, 0, RE_FIXED, EXP_INT,         \
	  "created in event")                                                                  \
	X(updated_at, "updated_at", "updated-at", R_TIME, 0, RE_FIXED, EXP_INT | REC_EXPORTED,   \
	  "updated")

struct exp_rec {
	EXP_FIELDS(REC_X_MEMBER)
};

/* The record's description: table, fields, history kind "E". */
extern const struct rec_desc tlbot_exp_desc;

/* "!exp export" (commands/experiment_export.c). */
int tlbot_exp_export(struct tlbot_ctx *ctx, const struct tlbot_args *args);

/* The programme view (commands/experiment_search.c): "!exp list
 * --all-rooms" and "!exp search WORDS", in the digest_room only. */
int tlbot_exp_list_all(struct tlbot_ctx *ctx, const struct tlbot_args *args);
int tlbot_exp_search(struct tlbot_ctx *ctx, const struct tlbot_args *args);
/* 1 if the ctx room is the configured programme room (digest_room). */
int tlbot_exp_in_programme_room(struct tlbot_ctx *ctx);
/* Refuse what only the programme room may do; always -1. */
int tlbot_exp_programme_only(struct tlbot_ctx *ctx, const char *what);

/* Parse "C-12", "c-12", "C12" or "12" (letter 'C'), likewise "E-34".
 * Returns 0 and the number, or -1. */
int tlbot_exp_parse_ref(const char *s, char letter, int64_t *out);

/* tlbot_fail, kept to one line (line breaks in echoed user text become
 * spaces, and the reason is cut at 700 bytes); always -1. */
int tlbot_exp_fail(struct tlbot_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
