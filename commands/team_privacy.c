/* The team family's data-protection hooks: the teams a person leads and
 * their roster rows (role, tour of duty). Forgetting keeps the roster
 * whole under the pseudonym. Described once as step tables. */
#include "tlbot/command.h"

int team_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int team_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                     struct tlbot_dp_report *report);

static const struct tlbot_dp_step export_steps[] = {
        {"team.teams_led", "SELECT * FROM teams WHERE lead = ?1 ORDER BY room_id"},
        {"team.membership", "SELECT * FROM team_members WHERE user_id = ?1 OR added_by = ?1"
                            " ORDER BY room_id"},
        TLBOT_DP_STEPS_END,
};

static const struct tlbot_dp_step forget_steps[] = {
        {"teams led pseudonymised", "UPDATE teams SET lead = ?2 WHERE lead = ?1"},
        {"team roster rows pseudonymised",
         "UPDATE team_members SET"
         " user_id = CASE WHEN user_id = ?1 THEN ?2 ELSE user_id END,"
         " added_by = CASE WHEN added_by = ?1 THEN ?2 ELSE added_by END"
         " WHERE user_id = ?1 OR added_by = ?1"},
        TLBOT_DP_STEPS_END,
};

int
team_export_user(struct tlbot_ctx *ctx, const char *u, struct tlbot_dp_export *out)
{
	return tlbot_dp_export_steps(ctx, out, export_steps, u);
}

int
team_forget_user(struct tlbot_ctx *ctx, const char *u, const char *p, struct tlbot_dp_report *r)
{
	return tlbot_dp_forget_steps(ctx, r, forget_steps, u, p);
}
