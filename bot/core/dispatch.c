/* Command dispatch through the one table: family, subcommand, permission,
 * flags and arity are checked here, so handlers hold only their own logic. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlbot/ctx.h"
#include "tlbot/log.h"
#include "tlbot/metrics.h"

const struct tlbot_cmd *
tlbot_command_find(const char *name)
{
	size_t i, j;

	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_cmd *c = tlbot_commands[i];

		if (strcasecmp(c->name, name) == 0)
			return c;
		for (j = 0; c->aliases && c->aliases[j]; j++)
			if (strcasecmp(c->aliases[j], name) == 0)
				return c;
	}
	return NULL;
}

/* The nearest family name or alias to name, or NULL when none is close. */
static const char *
nearest_command(const char *name)
{
	const char *best = NULL;
	size_t bestd = (size_t)-1, i, j;

	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_cmd *c = tlbot_commands[i];
		size_t d = tlbot_edit_distance(name, c->name);

		if (d < bestd) {
			bestd = d;
			best = c->name;
		}
		for (j = 0; c->aliases && c->aliases[j]; j++) {
			d = tlbot_edit_distance(name, c->aliases[j]);
			if (d < bestd) {
				bestd = d;
				best = c->name;
			}
		}
		/* a prefix ("chal") is a strong hint */
		if (strlen(name) >= 3 && strncasecmp(c->name, name, strlen(name)) == 0) {
			bestd = 0;
			best = c->name;
		}
	}
	return bestd <= 2 || (best && bestd <= strlen(name) / 2) ? best : NULL;
}

static const struct tlbot_subcmd *
find_sub(const struct tlbot_cmd *c, const char *name, const char **nearest)
{
	const struct tlbot_subcmd *s, *best = NULL;
	size_t bestd = (size_t)-1;

	for (s = c->subcmds; s->name; s++) {
		size_t d;

		if (strcasecmp(s->name, name) == 0)
			return s;
		d = tlbot_edit_distance(name, s->name);
		if (d < bestd) {
			bestd = d;
			best = s;
		}
	}
	*nearest = best && bestd <= 2 ? best->name : NULL;
	return NULL;
}

/* The name of positional argument i in a usage string: the i-th token that
 * is not a [bracketed] optional part or a --flag, without quotes or <>. */
static void
usage_arg_name(const char *usage, size_t i, char *out, size_t outlen)
{
	const char *p = usage;
	size_t k = 0;
	int depth = 0;

	snprintf(out, outlen, "argument");
	/* skip the subcommand word itself when usage starts with one */
	while (*p) {
		const char *start;
		size_t n;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p && *p != ' ')
			p++;
		n = (size_t)(p - start);
		if (start[0] == '[')
			depth++;
		if (depth == 0 && start[0] != '-' && start != usage) {
			if (k == i) {
				while (n && (*start == '"' || *start == '<' || *start == '\'')) {
					start++;
					n--;
				}
				while (n && (start[n - 1] == '"' || start[n - 1] == '>' ||
					     start[n - 1] == '\'' || start[n - 1] == '.'))
					n--;
				snprintf(out, outlen, "%.*s", (int)n, start);
				return;
			}
			k++;
		}
		if (memchr(start, ']', n))
			depth = depth > 0 ? depth - 1 : 0;
	}
}

static int
fail_usage(struct tlbot_ctx *ctx, const struct tlbot_cmd *c, const char *sub_usage,
	   const char *problem)
{
	return tlbot_fail(ctx, "%s: usage: %s%s %s", problem, ctx->prefix, c->name,
			  sub_usage ? sub_usage : (c->usage ? c->usage : ""));
}

static const char *
perm_text(enum tlbot_perm p, int level)
{
	static char buf[128];

	switch (p) {
	case TLBOT_PERM_WRITE:
		snprintf(buf, sizeof(buf), "a power level of at least %d in this room%s, or to be a tlbot admin",
			 level, level == 50 ? " (moderator)" : level == 100 ? " (admin)" : "");
		return buf;
	case TLBOT_PERM_ADMIN:
		return "to be a tlbot admin (see `admins` in the configuration)";
	default:
		return "nothing";
	}
}

/* Run the command in cl. Returns 0, or -1 with ctx->failed/db_failed set. */
static int
run(struct tlbot_ctx *ctx, const struct tlbot_cmdline *cl)
{
	const struct tlbot_cmd *c = tlbot_command_find(cl->name);
	const struct tlbot_subcmd *sub = NULL;
	const char *const *flags;
	const char *usage, *label;
	enum tlbot_perm perm;
	int min, max;
	size_t first = 0;
	struct tlbot_args args;
	char err[512];

	if (c == NULL) {
		const char *near = nearest_command(cl->name);

		if (near)
			return tlbot_fail(ctx, "unknown command %s%s: did you mean %s%s? (%shelp lists all commands)",
					  ctx->prefix, cl->name, ctx->prefix, near, ctx->prefix);
		return tlbot_fail(ctx, "unknown command %s%s: %shelp lists all commands",
				  ctx->prefix, cl->name, ctx->prefix);
	}
	if (c->subcmds) {
		const char *near = NULL;
		struct tlbot_buf names;
		const struct tlbot_subcmd *s;

		if (cl->ntok > 0 && !cl->tok[0].quoted)
			sub = find_sub(c, cl->tok[0].text, &near);
		if (sub == NULL) {
			tlbot_buf_init(&names, 1024);
			for (s = c->subcmds; s->name; s++)
				tlbot_buf_printf(&names, "%s%s", s == c->subcmds ? "" : ", ", s->name);
			if (cl->ntok == 0)
				tlbot_fail(ctx, "missing subcommand: %s%s takes one of %s (%shelp %s)",
					   ctx->prefix, c->name, tlbot_buf_str(&names), ctx->prefix, c->name);
			else if (near)
				tlbot_fail(ctx, "unknown subcommand %s%s %s: did you mean %s%s %s?",
					   ctx->prefix, c->name, cl->tok[0].text, ctx->prefix, c->name, near);
			else
				tlbot_fail(ctx, "unknown subcommand %s%s %s: it takes one of %s",
					   ctx->prefix, c->name, cl->tok[0].text, tlbot_buf_str(&names));
			tlbot_buf_release(&names);
			return -1;
		}
		first = 1;
		flags = sub->flags;
		usage = sub->usage;
		perm = sub->perm;
		min = sub->min_args;
		max = sub->max_args;
		label = sub->name;
	} else {
		flags = c->flags;
		usage = c->usage;
		perm = c->perm;
		min = c->min_args;
		max = c->max_args;
		label = NULL;
	}
	if (!tlbot_ctx_allowed(ctx, perm, ctx->sender))
		return tlbot_fail(ctx, "not allowed: %s%s%s%s needs %s", ctx->prefix, c->name,
				  label ? " " : "", label ? label : "",
				  perm_text(perm, ctx->cfg->power_level));
	if (tlbot_args_bind(cl, first, flags, &args, err, sizeof(err)) != 0)
		return fail_usage(ctx, c, usage, err);
	if ((int)args.argc < min) {
		char name[64], problem[96];

		usage_arg_name(usage ? usage : "", args.argc, name, sizeof(name));
		snprintf(problem, sizeof(problem), "missing %s", name);
		return fail_usage(ctx, c, usage, problem);
	}
	if (max >= 0 && (int)args.argc > max) {
		char problem[600];

		snprintf(problem, sizeof(problem), "unexpected argument '%s' (quote text with spaces)",
			 args.argv[max]);
		return fail_usage(ctx, c, usage, problem);
	}
	return (sub ? sub->handler : c->handler)(ctx, &args);
}

int
tlbot_dispatch(struct tlbot_ctx *ctx, const struct tlbot_cmdline *cl, const char *parse_err)
{
	if (tlbot_store_savepoint(ctx->st) != 0)
		return -1;
	ctx->failed = 0;
	if (cl == NULL) {
		tlbot_fail(ctx, "%s", parse_err);
	} else {
		ctx->prefix = cl->prefix;
		run(ctx, cl);
	}
	if (!ctx->db_failed && ctx->failed) {
		/* nothing the command did is kept; only the one-line reason */
		tlbot_store_rollback_to(ctx->st);
		if (tlbot_store_savepoint(ctx->st) != 0)
			return -1;
		log_info("room %s event %s: command refused: %s", ctx->room_id, ctx->event_id,
			 tlbot_buf_str(&ctx->err));
		tlbot_replyf(ctx, "%s", tlbot_buf_str(&ctx->err));
	}
	tlbot_metrics_command(cl ? cl->name : NULL, ctx->db_failed ? TLBOT_OUTCOME_FAILED : ctx->failed ? TLBOT_OUTCOME_REFUSED : TLBOT_OUTCOME_OK);
	if (ctx->db_failed) {
		tlbot_store_rollback_to(ctx->st);
		return -1;
	}
	return tlbot_store_release(ctx->st);
}
