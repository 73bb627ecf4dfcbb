/* !help [command]: generated from the command table, so it never drifts. */
#include <string.h>

#include "tlbot/command.h"

static const char *const help_aliases[] = { "h", "commands", NULL };

static void
usage_line(struct tlbot_msg *m, const char *prefix, const char *family, const char *usage)
{
	char line[1024];

	snprintf(line, sizeof(line), "%s%s%s%s", prefix, family, usage && *usage ? " " : "",
		 usage ? usage : "");
	tlbot_msg_code(m, line);
}

static int
help_all(struct tlbot_ctx *ctx)
{
	const char *prefix = tlbot_ctx_prefix(ctx);
	struct tlbot_msg m;
	size_t i;

	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, "tlbot commands");
	tlbot_msg_plain(&m, "\n");
	tlbot_msg_html(&m, "<ul>");
	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_cmd *c = tlbot_commands[i];
		char name[64];

		snprintf(name, sizeof(name), "%s%s", prefix, c->name);
		tlbot_msg_html(&m, "<li>");
		tlbot_msg_plain(&m, "• ");
		tlbot_msg_code(&m, name);
		tlbot_msg_textf(&m, " — %s", c->summary);
		tlbot_msg_html(&m, "</li>");
		tlbot_msg_plain(&m, "\n");
	}
	tlbot_msg_html(&m, "</ul>");
	tlbot_msg_textf(&m, "Type %shelp <command> for its usage and examples.", prefix);
	return tlbot_reply(ctx, &m);
}

static int
help_one(struct tlbot_ctx *ctx, const struct tlbot_cmd *c)
{
	const char *prefix = tlbot_ctx_prefix(ctx);
	struct tlbot_msg m;
	size_t i;

	tlbot_msg_init(&m);
	tlbot_msg_bold(&m, c->name);
	tlbot_msg_textf(&m, " — %s", c->summary);
	if (c->aliases && c->aliases[0]) {
		tlbot_msg_text(&m, " (also ");
		for (i = 0; c->aliases[i]; i++) {
			char a[64];

			snprintf(a, sizeof(a), "%s%s", prefix, c->aliases[i]);
			if (i)
				tlbot_msg_text(&m, ", ");
			tlbot_msg_code(&m, a);
		}
		tlbot_msg_text(&m, ")");
	}
	tlbot_msg_br(&m);
	if (c->subcmds) {
		const struct tlbot_subcmd *s;

		tlbot_msg_html(&m, "<ul>");
		for (s = c->subcmds; s->name; s++) {
			tlbot_msg_html(&m, "<li>");
			tlbot_msg_plain(&m, "• ");
			usage_line(&m, prefix, c->name, s->usage);
			tlbot_msg_textf(&m, " — %s", s->summary);
			tlbot_msg_html(&m, "</li>");
			tlbot_msg_plain(&m, "\n");
		}
		tlbot_msg_html(&m, "</ul>");
	} else {
		tlbot_msg_text(&m, "Usage: ");
		usage_line(&m, prefix, c->name, c->usage);
		tlbot_msg_br(&m);
	}
	if (c->help)
		tlbot_msg_text(&m, c->help);
	return tlbot_reply(ctx, &m);
}

static int
help(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const struct tlbot_cmd *c;
	const char *name;

	if (args->argc == 0)
		return help_all(ctx);
	name = args->argv[0];
	/* accept "!help !ping" as well as "!help ping" */
	if (*name && strchr("!/", *name) && name[1])
		name++;
	c = tlbot_command_find(name);
	if (c == NULL)
		return tlbot_fail(ctx, "no command named '%s': %shelp lists all commands", name,
				  tlbot_ctx_prefix(ctx));
	return help_one(ctx, c);
}

const struct tlbot_cmd tlbot_cmd_help = {
	.name = "help",
	.aliases = help_aliases,
	.usage = "[command]",
	.summary = "list the commands, or show one command's usage and examples",
	.help = "Examples: !help, !help challenge",
	.perm = TLBOT_PERM_ANYONE,
	.min_args = 0,
	.max_args = 1,
	.handler = help,
};
