/* The challenge family's data-protection hooks (struct tlbot_cmd
 * export_user / forget_user): challenges a person leads, sponsors or
 * created, their assignments and the history rows that name them. Names
 * in shared records become the pseudonym; nothing is deleted, so the
 * team's record stays whole. Described once as step tables. */
#include "tlbot/command.h"

int challenge_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int challenge_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                          struct tlbot_dp_report *report);

static const struct tlbot_dp_step export_steps[] = {
        {"challenge.challenges",
         "SELECT * FROM challenges WHERE lead = ?1 OR created_by = ?1"
         " OR instr(sponsor, ?1) > 0 OR instr(title, ?1) > 0"
         " OR instr(description, ?1) > 0 OR instr(outcome, ?1) > 0 ORDER BY id"},
        {"challenge.assignments", "SELECT * FROM challenge_assignees WHERE user_id = ?1"
                                  " OR assigned_by = ?1 ORDER BY challenge_id"},
        {"challenge.history", "SELECT * FROM history WHERE kind = 'C' AND (actor = ?1"
                              " OR instr(old, ?1) > 0 OR instr(new, ?1) > 0) ORDER BY id"},
        TLBOT_DP_STEPS_END,
};

static const struct tlbot_dp_step forget_steps[] = {
        {"challenges naming them pseudonymised",
         "UPDATE challenges SET lead = CASE WHEN lead = ?1 THEN ?2 ELSE lead END,"
         " created_by = CASE WHEN created_by = ?1 THEN ?2 ELSE created_by END,"
         " sponsor = replace(sponsor, ?1, ?2), title = replace(title, ?1, ?2),"
         " description = replace(description, ?1, ?2), outcome = replace(outcome, ?1, ?2)"
         " WHERE lead = ?1 OR created_by = ?1 OR instr(sponsor, ?1) > 0"
         " OR instr(title, ?1) > 0 OR instr(description, ?1) > 0 OR instr(outcome, ?1) > 0"},
        {"challenge assignments pseudonymised",
         "UPDATE challenge_assignees SET"
         " user_id = CASE WHEN user_id = ?1 THEN ?2 ELSE user_id END,"
         " assigned_by = CASE WHEN assigned_by = ?1 THEN ?2 ELSE assigned_by END"
         " WHERE user_id = ?1 OR assigned_by = ?1"},
        {"challenge history rows pseudonymised",
         "UPDATE history SET"
         " actor = CASE WHEN actor = ?1 THEN ?2 ELSE actor END,"
         " old = replace(old, ?1, ?2), new = replace(new, ?1, ?2)"
         " WHERE kind = 'C' AND (actor = ?1 OR instr(old, ?1) > 0"
         " OR instr(new, ?1) > 0)"},
        TLBOT_DP_STEPS_END,
};

int
challenge_export_user(struct tlbot_ctx *ctx, const char *u, struct tlbot_dp_export *out)
{
	return tlbot_dp_export_steps(ctx, out, export_steps, u);
}

int
challenge_forget_user(struct tlbot_ctx *ctx, const char *u, const char *p,
                      struct tlbot_dp_report *r)
{
	return tlbot_dp_forget_steps(ctx, r, forget_steps, u, p);
}
