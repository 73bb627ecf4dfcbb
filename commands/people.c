/* People named in a command; see people.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "people.h"

int
tlbot_users_add(struct tlbot_users *u, const char *id)
{
	size_t i;

	for (i = 0; i < u->n; i++)
		if (strcmp(u->v[i], id) == 0)
			return 0;
	if (u->n == TLBOT_MAX_USERS || (u->v[u->n] = strdup(id)) == NULL)
		return -1;
	u->n++;
	return 0;
}

void
tlbot_users_release(struct tlbot_users *u)
{
	size_t i;

	for (i = 0; i < u->n; i++)
		free(u->v[i]);
	u->n = 0;
}

int
tlbot_users_has(const struct tlbot_users *u, const char *id)
{
	size_t i;

	for (i = 0; id && i < u->n; i++)
		if (strcmp(u->v[i], id) == 0)
			return 1;
	return 0;
}

int
tlbot_user_is_bot(struct tlbot_ctx *ctx, const char *id)
{
	const char *bot = tlbot_ctx_bot_user(ctx);

	return bot && strcmp(bot, id) == 0;
}

int
tlbot_mention_is_pill(struct tlbot_ctx *ctx, const char *id)
{
	return strstr(tlbot_ctx_body(ctx), id) == NULL;
}

const char *
tlbot_resolve_user(struct tlbot_ctx *ctx, const char *v)
{
	size_t i, n = tlbot_ctx_nmentions(ctx), hits = 0, pills = 0;
	const char *hit = NULL, *pill = NULL;

	if (tlbot_is_user_id(v))
		return v;
	if (*v == '@')
		v++;
	if (*v == '\0')
		return NULL;
	for (i = 0; i < n; i++) {
		const char *u = tlbot_ctx_mention(ctx, i);

		if (tlbot_user_is_bot(ctx, u))
			continue;
		if (strncasecmp(u + 1, v, strlen(v)) == 0) {
			hits++;
			hit = u;
		}
		if (tlbot_mention_is_pill(ctx, u)) {
			pills++;
			pill = u;
		}
	}
	if (hits == 1)
		return hit;
	if (hits == 0 && pills == 1)
		return pill;
	return NULL;
}

int
tlbot_collect_users(struct tlbot_ctx *ctx, const struct tlbot_args *args, size_t first,
		    struct tlbot_users *u)
{
	const char *bad = NULL;
	size_t i, pills = 0;

	for (i = first; i < args->argc; i++) {
		if (tlbot_is_user_id(args->argv[i])) {
			if (tlbot_users_add(u, args->argv[i]) != 0)
				goto full;
		} else if (bad == NULL) {
			bad = args->argv[i];
		}
	}
	for (i = 0; i < tlbot_ctx_nmentions(ctx); i++) {
		const char *m = tlbot_ctx_mention(ctx, i);

		if (tlbot_user_is_bot(ctx, m))
			continue;
		if (tlbot_mention_is_pill(ctx, m))
			pills++;
		if (tlbot_users_add(u, m) != 0)
			goto full;
	}
	if (bad && pills == 0)
		return tlbot_fail(ctx,
		                  "'%s' is not a user: mention people or write their full id"
		                  " (@name:server)",
		                  bad);
	return 0;
full:
	return tlbot_fail(ctx, "too many people in one command (at most %d)", TLBOT_MAX_USERS);
}

size_t
tlbot_utf8_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}
