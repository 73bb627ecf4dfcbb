/* The one command table. Adding a command family is one file in commands/
 * and one line here; !help walks this same table. */
#include <stdio.h>

#include "tlbot/command.h"
#include "tlbot/tz.h"

extern const struct tlbot_cmd tlbot_cmd_help;
extern const struct tlbot_cmd tlbot_cmd_ping;
extern const struct tlbot_cmd tlbot_cmd_challenge, tlbot_cmd_team, tlbot_cmd_notify;
extern const struct tlbot_cmd tlbot_cmd_experiment;
extern const struct tlbot_cmd tlbot_cmd_standup, tlbot_cmd_remind, tlbot_cmd_me;
extern const struct tlbot_cmd tlbot_cmd_admin;

const struct tlbot_cmd *const tlbot_commands[] = {
	&tlbot_cmd_help,
	&tlbot_cmd_ping,
	&tlbot_cmd_challenge, &tlbot_cmd_team, &tlbot_cmd_notify,
	&tlbot_cmd_experiment,
	&tlbot_cmd_standup, &tlbot_cmd_remind, &tlbot_cmd_me,
	&tlbot_cmd_admin,
	NULL,
};

const struct tlbot_schema *const *
tlbot_command_schemas(void)
{
	static const struct tlbot_schema *list[sizeof(tlbot_commands) / sizeof(tlbot_commands[0])];
	size_t i, n = 0;

	for (i = 0; tlbot_commands[i]; i++)
		if (tlbot_commands[i]->schema)
			list[n++] = tlbot_commands[i]->schema;
	list[n] = NULL;
	return list;
}

int
tlbot_user_tz(struct tlbot_ctx *ctx, const char *user_id, const char *dflt, char *out,
	      size_t outlen)
{
	char own[128];
	size_t i;

	snprintf(out, outlen, "%s", dflt ? dflt : "UTC");
	if (user_id == NULL)
		return 0;
	for (i = 0; tlbot_commands[i]; i++) {
		if (tlbot_commands[i]->user_tz == NULL)
			continue;
		if (tlbot_commands[i]->user_tz(ctx, user_id, own, sizeof(own)) != 0 ||
		    !tlbot_tz_valid(own))
			return 0;
		snprintf(out, outlen, "%s", own);
		return 1;
	}
	return 0;
}
