/* !help [command [subcommand]]: generated from the command table (usage
 * from the same parameter tables dispatch checks), so it never drifts. */
#include <string.h>
#include <strings.h>

#include "tlbot/args.h"
#include "tlbot/command.h"

static const char *const help_aliases[] = { "h", "commands", NULL };

/* The three first steps of a new team, in order: family, subcommand. */
static const char *const first_steps[][2] = {
	{ "team", "add" },
	{ "challenge", "new" },
	{ "standup", "schedule" },
};

static const struct tlbot_subcmd *
sub_named(const struct tlbot_cmd *c, const char *name)
{
	const struct tlbot_subcmd *s;

	for (s = c ? c->subcmds : NULL; s && s->name; s++)
		if (strcasecmp(s->name, name) == 0)
			return s;
	return NULL;
}

static void
usage_line(struct tlbot_msg *m, const char *prefix, const struct tlbot_cmd *c,
	   const struct tlbot_subcmd *s)
{
	const struct tlbot_param *params = s ? s->params : c->params;
	struct tlbot_buf b;

	tlbot_buf_init(&b, 2048);
	tlbot_buf_printf(&b, "%s%s", prefix, c->name);
	if (s)
		tlbot_buf_printf(&b, " %s", s->name);
	if (params && params->name) {
		tlbot_buf_addc(&b, ' ');
		tlbot_params_usage(params, &b);
	}
	tlbot_msg_code(m, tlbot_buf_str(&b));
	tlbot_buf_release(&b);
}

static void
example_line(struct tlbot_msg *m, const char *prefix, const struct tlbot_cmd *c,
	     const char *example)
{
	char line[1024];

	snprintf(line, sizeof(line), "%s%s %s", prefix, c->name, example);
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
	tlbot_msg_br(&m);
	tlbot_msg_text(&m, "A new team starts with these three, in order:");
	tlbot_msg_html(&m, "<ol>");
	for (i = 0; i < sizeof(first_steps) / sizeof(first_steps[0]); i++) {
		const struct tlbot_cmd *c = tlbot_command_find(first_steps[i][0]);
		const struct tlbot_subcmd *s = sub_named(c, first_steps[i][1]);

		if (c == NULL || s == NULL)
			continue;
		tlbot_msg_html(&m, "<li>");
		{
			char num[8];

			snprintf(num, sizeof(num), "\n%zu. ", i + 1);
			tlbot_msg_plain(&m, num);
		}
		if (s->example)
			example_line(&m, prefix, c, s->example);
		else
			usage_line(&m, prefix, c, s);
		tlbot_msg_textf(&m, " — %s", s->summary);
		tlbot_msg_html(&m, "</li>");
	}
	tlbot_msg_html(&m, "</ol>");
	tlbot_msg_plain(&m, "\n");
	tlbot_msg_text(&m, "All commands:");
	tlbot_msg_html(&m, "<ul>");
	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_cmd *c = tlbot_commands[i];
		char name[64];

		snprintf(name, sizeof(name), "%s%s", prefix, c->name);
		tlbot_msg_plain(&m, "\n");
		tlbot_msg_html(&m, "<li>");
		tlbot_msg_plain(&m, "• ");
		tlbot_msg_code(&m, name);
		tlbot_msg_textf(&m, " — %s", c->summary);
		tlbot_msg_html(&m, "</li>");
	}
	tlbot_msg_html(&m, "</ul>");
	tlbot_msg_plain(&m, "\n");
	tlbot_msg_textf(&m, "Type %shelp <command> for its usage and examples.", prefix);
	return tlbot_reply(ctx, &m);
}

/* The long help as short paragraphs: a blank line in the text starts a
 * new one. */
static void
paragraphs(struct tlbot_msg *m, const char *text)
{
	while (text && *text) {
		const char *end = strstr(text, "\n\n");
		size_t n = end ? (size_t)(end - text) : strlen(text);
		char para[2048];

		snprintf(para, sizeof(para), "%.*s", (int)n, text);
		tlbot_msg_html(m, "<p>");
		tlbot_msg_text(m, para);
		tlbot_msg_html(m, "</p>");
		text = end ? end + 2 : NULL;
		if (text && *text)
			tlbot_msg_plain(m, "\n\n");
	}
}

static void
sub_item(struct tlbot_msg *m, const char *prefix, const struct tlbot_cmd *c,
	 const struct tlbot_subcmd *s)
{
	tlbot_msg_plain(m, "\n");
	tlbot_msg_html(m, "<li>");
	tlbot_msg_plain(m, "• ");
	usage_line(m, prefix, c, s);
	tlbot_msg_textf(m, " — %s", s->summary);
	if (s->example) {
		tlbot_msg_text(m, ". Example: ");
		example_line(m, prefix, c, s->example);
	}
	tlbot_msg_html(m, "</li>");
}

static int
help_one(struct tlbot_ctx *ctx, const struct tlbot_cmd *c, const struct tlbot_subcmd *only)
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
	if (c->subcmds) {
		const struct tlbot_subcmd *s;

		tlbot_msg_html(&m, "<ul>");
		for (s = c->subcmds; s->name; s++)
			if (only == NULL || only == s)
				sub_item(&m, prefix, c, s);
		tlbot_msg_html(&m, "</ul>");
		tlbot_msg_plain(&m, "\n");
	} else {
		tlbot_msg_br(&m);
		tlbot_msg_text(&m, "Usage: ");
		usage_line(&m, prefix, c, NULL);
		if (c->example) {
			tlbot_msg_text(&m, ". Example: ");
			example_line(&m, prefix, c, c->example);
		}
		tlbot_msg_plain(&m, "\n");
	}
	if (c->help && only == NULL)
		paragraphs(&m, c->help);
	return tlbot_reply(ctx, &m);
}

/* The family name or alias nearest to name, or NULL when none is close. */
static const char *
nearest(const char *name)
{
	const char *best = NULL;
	size_t bestd = (size_t)-1, i, j;

	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_cmd *c = tlbot_commands[i];

		for (j = 0; j == 0 || (c->aliases && c->aliases[j - 1]); j++) {
			const char *cand = j == 0 ? c->name : c->aliases[j - 1];
			size_t d = tlbot_edit_distance(name, cand);

			if (d < bestd) {
				bestd = d;
				best = c->name;
			}
		}
	}
	return bestd <= 2 || (best && bestd <= strlen(name) / 3) ? best : NULL;
}

static int
help(struct tlbot_ctx *ctx, const struct tlbot_args *args)
{
	const struct tlbot_cmd *c;
	const struct tlbot_subcmd *s = NULL;
	const char *name, *near;

	if (args->argc == 0)
		return help_all(ctx);
	name = args->argv[0];
	/* accept "!help !ping" as well as "!help ping" */
	if (*name && strchr("!/", *name) && name[1])
		name++;
	c = tlbot_command_find(name);
	if (c == NULL) {
		near = strlen(name) <= 64 ? nearest(name) : NULL;
		if (near)
			return tlbot_fail(ctx, "no command named '%.60s': did you mean %shelp %s?", name,
					  tlbot_ctx_prefix(ctx), near);
		return tlbot_fail(ctx, "no command named '%.60s': %shelp lists all commands", name,
				  tlbot_ctx_prefix(ctx));
	}
	if (args->argc > 1 && c->subcmds) {
		s = sub_named(c, args->argv[1]);
		if (s == NULL)
			return tlbot_fail(ctx, "%s%s has no subcommand '%.60s': %shelp %s lists them",
					  tlbot_ctx_prefix(ctx), c->name, args->argv[1],
					  tlbot_ctx_prefix(ctx), c->name);
	}
	return help_one(ctx, c, s);
}

static const struct tlbot_param help_params[] = {
	{ TLBOT_TEXT("command", 0), .mode = TLBOT_OPTIONAL | TLBOT_WORD,
	  .desc = "a command, to see its usage and examples" },
	{ TLBOT_TEXT("subcommand", 0), .mode = TLBOT_OPTIONAL | TLBOT_WORD,
	  .desc = "one of its subcommands" },
	TLBOT_PARAMS_END,
};

const struct tlbot_cmd tlbot_cmd_help = {
	.name = "help",
	.aliases = help_aliases,
	.summary = "list the commands, or show one command's usage and examples",
	.help = "Start with !help, then !help challenge (or any command) for its usage and"
		" examples.",
	.example = "challenge",
	.perm = TLBOT_PERM_ANYONE,
	.params = help_params,
	.handler = help,
	.mode = TLBOT_SUB_READS,
};
