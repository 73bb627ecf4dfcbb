/* The team family's data-protection hooks: the teams a person leads and
 * their roster rows (role, tour of duty). Forgetting keeps the roster
 * whole under the pseudonym. */
#include "tlbot/command.h"

int team_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int team_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                     struct tlbot_dp_report *report);

int
team_export_user(struct tlbot_ctx *ctx, const char *u, struct tlbot_dp_export *out)
{
	int a, b;

	a = tlbot_dp_export(ctx, out, "team.teams_led",
	                    "SELECT * FROM teams WHERE lead = ?1 ORDER BY room_id", u);
	b = a < 0 ? -1
	          : tlbot_dp_export(ctx, out, "team.membership",
	                            "SELECT * FROM team_members WHERE user_id = ?1 OR added_by = ?1"
	                            " ORDER BY room_id",
	                            u);
	return b < 0 ? -1 : a + b;
}

int
team_forget_user(struct tlbot_ctx *ctx, const char *u, const char *p, struct tlbot_dp_report *r)
{
	int a, b;

	a = tlbot_dp_forget(ctx, r, "teams led pseudonymised",
	                    "UPDATE teams SET lead = ?2 WHERE lead = ?1", u, p);
	b = a < 0 ? -1
	          : tlbot_dp_forget(ctx, r, "team roster rows pseudonymised",
	                            "UPDATE team_members SET"
	                            " user_id = CASE WHEN user_id = ?1 THEN ?2 ELSE user_id END,"
	                            " added_by = CASE WHEN added_by = ?1 THEN ?2 ELSE added_by END"
	                            " WHERE user_id = ?1 OR added_by = ?1",
	                            u, p);
	return b < 0 ? -1 : a + b;
}
