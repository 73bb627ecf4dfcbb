/* !notify on|off: whether tlbot may send you direct messages (assignments,
 * reminders). The preference is kept by the core (user_prefs); mentions in
 * rooms are not affected. */
#include <strings.h>

#include "tlbot/command.h"

static int
notify(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const char *sender = tlbot_ctx_sender(ctx), *v;
	const char *prefix = tlbot_ctx_prefix(ctx);
	int on;

	if (args->argc == 0) {
		on = tlbot_ctx_dm_enabled(ctx, sender);
		return tlbot_replyf(ctx,
		                    "Direct messages from me are %s for you. Turn them %s with"
		                    " %snotify %s.",
		                    on ? "on" : "off", on ? "off" : "on", prefix,
		                    on ? "off" : "on");
	}
	v = args->argv[0];
	if (strcasecmp(v, "on") == 0 || strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0)
		on = 1;
	else if (strcasecmp(v, "off") == 0 || strcasecmp(v, "no") == 0 ||
	         strcasecmp(v, "false") == 0)
		on = 0;
	else
		return tlbot_fail(ctx, "'%s' is not on or off: usage: %snotify [on|off]", v,
		                  prefix);
	if (tlbot_ctx_set_dm_enabled(ctx, sender, on) != 0)
		return tlbot_fail(ctx, "could not save your setting: nothing was changed");
	if (on)
		return tlbot_replyf(ctx, "Direct messages are on: I will message you when you are"
		                         " assigned something or it is due.");
	return tlbot_replyf(ctx,
	                    "Direct messages are off: you will still be mentioned in rooms."
	                    " %snotify on turns them back on.",
	                    prefix);
}

static const struct tlbot_param notify_params[] = {
        {TLBOT_ENUM("state", "on|off"), .mode = TLBOT_OPTIONAL, .desc = "on or off"}, TLBOT_PARAMS_END};

const struct tlbot_cmd tlbot_cmd_notify = {
        .name = "notify",
        .summary = "turn direct messages from tlbot on or off for yourself",
        .help = "Without an argument, says whether direct messages are on. They tell you when you"
                " are assigned a challenge and when it is due; room mentions continue either way.",
        .perm = TLBOT_PERM_ANYONE,
        .params = notify_params,
        .example = "off",
        .handler = notify,
};
