/* The me family's data-protection hooks: a person's own settings (time
 * zone), deleted when they are forgotten. */
#include "tlbot/command.h"

int me_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int me_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                   struct tlbot_dp_report *report);

int
me_export_user(struct tlbot_ctx *ctx, const char *u, struct tlbot_dp_export *out)
{
	return tlbot_dp_export(ctx, out, "me.settings", "SELECT * FROM me_prefs WHERE user_id = ?1",
	                       u);
}

int
me_forget_user(struct tlbot_ctx *ctx, const char *u, const char *p, struct tlbot_dp_report *r)
{
	return tlbot_dp_forget(ctx, r, "personal settings deleted",
	                       "DELETE FROM me_prefs WHERE user_id = ?1", u, p);
}
