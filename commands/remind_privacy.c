/* The reminder family's data-protection hooks: reminders a person set or
 * is the target of (deleted when they are forgotten, with their pending
 * jobs; delivered, missed or cancelled ones after retention_days). */
#include <stdio.h>

#include "tlbot/command.h"

int remind_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int remind_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                       struct tlbot_dp_report *report);
int remind_retain(struct tlbot_ctx *ctx, time_t before, struct tlbot_dp_report *report);

static const struct tlbot_dp_step forget_steps[] = {
        {"reminders deleted", "DELETE FROM reminders WHERE owner = ?1 OR target_user = ?1"},
        {"reminders naming them pseudonymised",
         "UPDATE reminders SET"
         " cancelled_by = CASE WHEN cancelled_by = ?1 THEN ?2"
         " ELSE cancelled_by END, text = replace(text, ?1, ?2)"
         " WHERE cancelled_by = ?1 OR instr(text, ?1) > 0"},
        TLBOT_DP_STEPS_END,
};

int
remind_export_user(struct tlbot_ctx *ctx, const char *u, struct tlbot_dp_export *out)
{
	return tlbot_dp_export(ctx, out, "remind.reminders",
	                       "SELECT * FROM reminders WHERE owner = ?1 OR target_user = ?1"
	                       " OR cancelled_by = ?1 OR instr(text, ?1) > 0 ORDER BY id",
	                       u);
}

int
remind_forget_user(struct tlbot_ctx *ctx, const char *u, const char *p, struct tlbot_dp_report *r)
{
	struct tlbot_db_rows q;
	char key[64];
	int rc;

	if (tlbot_db_query(ctx, &q,
	                   "SELECT id FROM reminders WHERE (owner = ?1 OR target_user = ?1)"
	                   " AND delivered = 0 AND cancelled = 0",
	                   "t", u) != 0)
		return -1;
	while ((rc = tlbot_db_next(&q)) > 0) {
		snprintf(key, sizeof(key), "remind.R-%lld", (long long)tlbot_db_col_int(&q, 0));
		if (tlbot_job_cancel(ctx, key) < 0) {
			tlbot_db_done(&q);
			return tlbot_db_error(ctx, "cancel reminder");
		}
	}
	tlbot_db_done(&q);
	if (rc < 0)
		return -1;
	return tlbot_dp_forget_steps(ctx, r, forget_steps, u, p);
}

int
remind_retain(struct tlbot_ctx *ctx, time_t before, struct tlbot_dp_report *r)
{
	/* only reminders that are over: a pending one is still wanted */
	return tlbot_dp_retain(ctx, r, "reminders",
	                       "DELETE FROM reminders WHERE due < ?1"
	                       " AND (delivered = 1 OR cancelled = 1 OR missed = 1)",
	                       before);
}
