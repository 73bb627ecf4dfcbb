/* The experiment family's data-protection hooks: experiments a person
 * owns, created or edited, their notes and learnings, and the history rows
 * that name them. Forgetting pseudonymises; the experiment record stays.
 * Described once as step tables. */
#include "tlbot/command.h"

int experiment_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int experiment_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                           struct tlbot_dp_report *report);

static const struct tlbot_dp_step export_steps[] = {
        {"experiment.experiments",
         "SELECT * FROM experiments WHERE owner = ?1 OR created_by = ?1"
         " OR id IN (SELECT record_id FROM history WHERE kind = 'E' AND actor = ?1)"
         " OR instr(title, ?1) > 0 OR instr(believe, ?1) > 0 OR instr(finding, ?1) > 0"
         " OR instr(decision_reason, ?1) > 0 OR instr(abandon_reason, ?1) > 0 ORDER BY id"},
        {"experiment.notes", "SELECT * FROM experiment_notes WHERE by = ?1"
                             " OR instr(text, ?1) > 0 ORDER BY id"},
        {"experiment.learnings", "SELECT * FROM experiment_learnings WHERE by = ?1"
                                 " OR instr(text, ?1) > 0 ORDER BY id"},
        {"experiment.history", "SELECT * FROM history WHERE kind = 'E' AND (actor = ?1"
                               " OR instr(old, ?1) > 0 OR instr(new, ?1) > 0) ORDER BY id"},
        TLBOT_DP_STEPS_END,
};

static const struct tlbot_dp_step forget_steps[] = {
        {"experiments naming them pseudonymised",
         "UPDATE experiments SET owner = CASE WHEN owner = ?1 THEN ?2 ELSE owner END,"
         " created_by = CASE WHEN created_by = ?1 THEN ?2 ELSE created_by END,"
         " title = replace(title, ?1, ?2), believe = replace(believe, ?1, ?2),"
         " finding = replace(finding, ?1, ?2),"
         " decision_reason = replace(decision_reason, ?1, ?2),"
         " abandon_reason = replace(abandon_reason, ?1, ?2)"
         " WHERE owner = ?1 OR created_by = ?1 OR instr(title, ?1) > 0"
         " OR instr(believe, ?1) > 0 OR instr(finding, ?1) > 0"
         " OR instr(decision_reason, ?1) > 0 OR instr(abandon_reason, ?1) > 0"},
        {"experiment notes pseudonymised",
         "UPDATE experiment_notes SET by = CASE WHEN by = ?1 THEN ?2 ELSE by END,"
         " text = replace(text, ?1, ?2) WHERE by = ?1 OR instr(text, ?1) > 0"},
        {"experiment learnings pseudonymised",
         "UPDATE experiment_learnings SET by = CASE WHEN by = ?1 THEN ?2 ELSE by END,"
         " text = replace(text, ?1, ?2) WHERE by = ?1 OR instr(text, ?1) > 0"},
        {"experiment history rows pseudonymised",
         "UPDATE history SET actor = CASE WHEN actor = ?1 THEN ?2 ELSE actor END,"
         " old = replace(old, ?1, ?2), new = replace(new, ?1, ?2)"
         " WHERE kind = 'E' AND (actor = ?1 OR instr(old, ?1) > 0 OR instr(new, ?1) > 0)"},
        TLBOT_DP_STEPS_END,
};

int
experiment_export_user(struct tlbot_ctx *ctx, const char *u, struct tlbot_dp_export *out)
{
	return tlbot_dp_export_steps(ctx, out, export_steps, u);
}

int
experiment_forget_user(struct tlbot_ctx *ctx, const char *u, const char *p,
                       struct tlbot_dp_report *r)
{
	return tlbot_dp_forget_steps(ctx, r, forget_steps, u, p);
}
