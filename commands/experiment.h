/* Private to the experiment family (commands/experiment*.c): the record as
 * loaded from the store, shared between the commands and the export. */
#ifndef TLBOT_COMMANDS_EXPERIMENT_H
#define TLBOT_COMMANDS_EXPERIMENT_H

#include "tlbot/command.h"

struct exp_rec {
	int64_t id, challenge_id;
	char *room_id, *title, *owner, *believe, *result_in, *know_when, *method, *metric,
		*unit, *start_date, *end_date, *status, *finding, *decision, *decision_reason,
		*abandon_reason, *created_by, *created_event;
	int has_baseline, has_target, has_result;
	double baseline, target, result_value;
	int64_t created_at, updated_at;
};

/* The column list tlbot_exp_rec_read expects, in order (prefix "e."). */
#define TLBOT_EXP_COLUMNS                                                           \
	"e.id, e.challenge_id, e.room_id, e.title, e.owner, e.believe, e.result_in,"  \
	" e.know_when, e.method, e.metric, e.unit, e.start_date, e.end_date, e.status," \
	" e.finding, e.decision, e.decision_reason, e.abandon_reason, e.created_by,"  \
	" e.created_event, e.baseline, e.target, e.result_value, e.created_at,"       \
	" e.updated_at"

/* Fill r from the current row of s (selected with TLBOT_EXP_COLUMNS from
 * column 0). Returns 0, or -1 when out of memory (r is then released). */
int tlbot_exp_rec_read(sqlite3_stmt *s, struct exp_rec *r);
void tlbot_exp_rec_release(struct exp_rec *r);

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
/* Refuse with the database's message; always -1. */
int tlbot_exp_db_fail(struct tlbot_ctx *ctx);

#endif
