/* The stand-up family's data-protection hooks: a person's answers,
 * prompts and away periods (deleted when they are forgotten, and answers
 * and prompts after retention_days), and their name in the room settings,
 * skips and the stored summaries (pseudonymised). Described once as step
 * tables. */
#include "tlbot/command.h"

int standup_export_user(struct tlbot_ctx *ctx, const char *user_id, struct tlbot_dp_export *out);
int standup_forget_user(struct tlbot_ctx *ctx, const char *user_id, const char *pseudonym,
                        struct tlbot_dp_report *report);
int standup_retain(struct tlbot_ctx *ctx, time_t before, struct tlbot_dp_report *report);

static const struct tlbot_dp_step export_steps[] = {
        {"standup.answers", "SELECT * FROM standup_answers WHERE user_id = ?1 ORDER BY id"},
        {"standup.prompts", "SELECT * FROM standup_prompts WHERE user_id = ?1 ORDER BY at"},
        {"standup.away", "SELECT * FROM standup_away WHERE user_id = ?1 OR set_by = ?1"},
        {"standup.settings_changed",
         "SELECT room_id, updated_by, updated_at FROM standup_rooms WHERE updated_by = ?1"},
        {"standup.skips_added", "SELECT * FROM standup_skips WHERE added_by = ?1"},
        {"standup.summaries_naming",
         "SELECT * FROM standup_summaries WHERE instr(text, ?1) > 0 ORDER BY id"},
        TLBOT_DP_STEPS_END,
};

static const struct tlbot_dp_step forget_steps[] = {
        {"stand-up answers deleted", "DELETE FROM standup_answers WHERE user_id = ?1"},
        {"stand-up prompts deleted", "DELETE FROM standup_prompts WHERE user_id = ?1"},
        {"stand-up away periods deleted", "DELETE FROM standup_away WHERE user_id = ?1"},
        {"stand-up away periods set by them pseudonymised",
         "UPDATE standup_away SET set_by = ?2 WHERE set_by = ?1"},
        {"stand-up settings pseudonymised",
         "UPDATE standup_rooms SET updated_by = ?2 WHERE updated_by = ?1"},
        {"stand-up skips pseudonymised",
         "UPDATE standup_skips SET added_by = ?2 WHERE added_by = ?1"},
        {"stand-up summaries pseudonymised",
         "UPDATE standup_summaries SET text = replace(text, ?1, ?2) WHERE instr(text, ?1) > 0"},
        TLBOT_DP_STEPS_END,
};

static const struct tlbot_dp_step retain_steps[] = {
        {"stand-up answers", "DELETE FROM standup_answers WHERE at < ?1"},
        {"stand-up prompts", "DELETE FROM standup_prompts WHERE at < ?1"},
        /* a summary is the answers of its day put together */
        {"stand-up summaries", "DELETE FROM standup_summaries WHERE at < ?1"},
        TLBOT_DP_STEPS_END,
};

int
standup_export_user(struct tlbot_ctx *ctx, const char *u, struct tlbot_dp_export *out)
{
	return tlbot_dp_export_steps(ctx, out, export_steps, u);
}

int
standup_forget_user(struct tlbot_ctx *ctx, const char *u, const char *p, struct tlbot_dp_report *r)
{
	return tlbot_dp_forget_steps(ctx, r, forget_steps, u, p);
}

int
standup_retain(struct tlbot_ctx *ctx, time_t before, struct tlbot_dp_report *r)
{
	return tlbot_dp_retain_steps(ctx, r, retain_steps, before);
}
