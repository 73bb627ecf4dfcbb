/* Command dispatch through the one table: family, subcommand, permission,
 * flags and arity are checked here, so handlers hold only their own logic. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlbot/args.h"
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

/* The usage line of a family or subcommand, generated from its params. */
static void
usage_of(struct tlbot_buf *b, const struct tlbot_ctx *ctx, const struct tlbot_cmd *c,
	 const struct tlbot_subcmd *sub)
{
	tlbot_buf_printf(b, "%s%s", ctx->prefix, c->name);
	if (sub)
		tlbot_buf_printf(b, " %s", sub->name);
	if ((sub ? sub->params : c->params) && (sub ? sub->params : c->params)->name) {
		tlbot_buf_addc(b, ' ');
		tlbot_params_usage(sub ? sub->params : c->params, b);
	}
}

static int
fail_usage(struct tlbot_ctx *ctx, const struct tlbot_cmd *c, const struct tlbot_subcmd *sub,
	   const char *problem)
{
	struct tlbot_buf b;

	tlbot_buf_init(&b, 2048);
	usage_of(&b, ctx, c, sub);
	tlbot_fail(ctx, "%s: usage: %s", problem, tlbot_buf_str(&b));
	tlbot_buf_release(&b);
	return -1;
}

/* The zone the sender's dates are read in: their !me tz, else the
 * configured default. */
static void
sender_tz(struct tlbot_ctx *ctx, char *out, size_t outlen)
{
	/* the me family keeps people's zones: asked through its hook */
	tlbot_user_tz(ctx, ctx->sender, ctx->cfg->timezone, out, outlen);
}

/* Record scoping: every REF argument names a record of the command's room
 * (the programme room may read across rooms with TLBOT_SUB_READS); any
 * other gets the answer an unknown id gets. 0, or -1 after tlbot_fail /
 * a store error. */
static int
check_refs(struct tlbot_ctx *ctx, const struct tlbot_checked *ck, const struct tlbot_param *params,
	   unsigned mode)
{
	const char *digest = ctx->cfg->digest_room;
	int across = (mode & TLBOT_SUB_READS) && digest && *digest && ctx->room_id &&
		     strcmp(digest, ctx->room_id) == 0;
	size_t i, n = ck->args.argc + ck->args.nflags;

	for (i = 0; i < n; i++) {
		const struct tlbot_param *p = NULL;
		const char *shown;
		const struct tlbot_value *v;
		const struct tlbot_cmd *fam = NULL;
		char *title = NULL, *room = NULL, *event = NULL;
		size_t k;
		int rc;

		if (i < ck->args.argc) {
			p = ck->argp[i];
			shown = ck->args.argv[i];
			v = &ck->args.val[i];
		} else {
			const struct tlbot_flag *f = &ck->args.flags[i - ck->args.argc];
			const struct tlbot_param *q;

			shown = f->value;
			v = &f->v;
			for (q = params; q && q->name; q++)
				if (tlbot_param_is_flag(q) && strlen(q->name + 2) == strcspn(f->name, "=") &&
				    strncmp(q->name + 2, f->name, strcspn(f->name, "=")) == 0)
					p = q;
		}
		if (p == NULL || p->type != TLBOT_P_REF || shown == NULL || strcmp(shown, "none") == 0)
			continue;
		for (k = 0; tlbot_commands[k]; k++)
			if (tlbot_commands[k]->ref_prefix && p->choices &&
			    strcmp(tlbot_commands[k]->ref_prefix, p->choices) == 0)
				fam = tlbot_commands[k];
		if (fam == NULL || fam->ref_lookup == NULL)
			continue;
		rc = fam->ref_lookup(ctx, v->n, &title, &room, &event);
		if (rc < 0) {
			free(title);
			free(room);
			free(event);
			if (!ctx->db_failed)
				return tlbot_db_error(ctx, "look up a record");
			return -1;
		}
		if (rc == 0 && room && ctx->room_id && strcmp(room, ctx->room_id) != 0 && !across)
			rc = 1;
		if (rc == 0 && room == NULL && !across)
			rc = 1;
		free(title);
		free(room);
		free(event);
		if (rc == 1)
			return tlbot_fail(ctx, "no %s %s here", fam->name, shown);
	}
	return 0;
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
	const struct tlbot_param *params;
	const char *label;
	enum tlbot_perm perm;
	unsigned mode;
	size_t first = 0;
	struct tlbot_checked *ck;
	char err[1024], tz[64];
	int rc, with_usage;

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
		params = sub->params;
		perm = sub->perm;
		mode = sub->mode;
		label = sub->name;
	} else {
		params = c->params;
		perm = c->perm;
		mode = c->mode;
		label = NULL;
	}
	if (!tlbot_ctx_allowed(ctx, perm, ctx->sender))
		return tlbot_fail(ctx, "not allowed: %s%s%s%s needs %s", ctx->prefix, c->name,
				  label ? " " : "", label ? label : "",
				  perm_text(perm, ctx->cfg->power_level));
	ck = malloc(sizeof(*ck));
	if (ck == NULL)
		return tlbot_fail(ctx, "out of memory");
	sender_tz(ctx, tz, sizeof(tz));
	if (tlbot_args_check(params, cl, first, tlbot_ctx_now(ctx), tz, ck, err, sizeof(err),
			     &with_usage) != 0) {
		rc = with_usage ? fail_usage(ctx, c, sub, err) : tlbot_fail(ctx, "%s", err);
	} else if (check_refs(ctx, ck, params, mode) != 0) {
		rc = -1;
	} else {
		rc = (sub ? sub->handler : c->handler)(ctx, &ck->args);
	}
	free(ck);
	return rc;
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
		if (ctx->encrypted) /* the reason may quote the encrypted text */
			log_debug("room %s event %s: command refused: %s", ctx->room_id,
				  ctx->event_id, tlbot_buf_str(&ctx->err));
		else
			log_info("room %s event %s: command refused: %s", ctx->room_id,
				 ctx->event_id, tlbot_buf_str(&ctx->err));
		tlbot_replyf(ctx, "%s", tlbot_buf_str(&ctx->err));
	}
	tlbot_metrics_command(cl ? cl->name : NULL, ctx->db_failed ? TLBOT_OUTCOME_FAILED : ctx->failed ? TLBOT_OUTCOME_REFUSED : TLBOT_OUTCOME_OK);
	if (ctx->db_failed) {
		tlbot_store_rollback_to(ctx->st);
		return -1;
	}
	return tlbot_store_release(ctx->st);
}
