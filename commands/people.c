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

/* 1 if the bot knows who is in the ctx room (member events stored), else
 * 0: then ids cannot be checked against the room and are taken as given. */
static int
room_known(struct tlbot_ctx *ctx)
{
	return tlbot_ctx_member(ctx, tlbot_ctx_sender(ctx));
}

int
tlbot_check_person(struct tlbot_ctx *ctx, const char *id)
{
	int p;

	if (tlbot_user_is_bot(ctx, id) || tlbot_ctx_member(ctx, id) || !room_known(ctx))
		return 0;
	p = tlbot_ctx_profile(ctx, id);
	if (p == 1)
		return 0; /* not here, but the homeserver knows them */
	if (p == 0)
		return tlbot_fail(ctx,
		                  "there is no user %s: check the spelling, or invite them to this "
		                  "room first",
		                  id);
	if (tlbot_ctx_rerun(ctx))
		return tlbot_fail(ctx,
		                  "could not check that %s exists: invite them to this room, then "
		                  "try again",
		                  id);
	if (tlbot_ctx_lookup_user(ctx, id) != 0)
		return tlbot_fail(ctx, "too many people outside this room to check at once");
	return tlbot_fail(ctx,
	                  "%s is not in this room: I am asking their homeserver whether they "
	                  "exist and will run this command again when it answers",
	                  id);
}

const char *
tlbot_resolve_user(struct tlbot_ctx *ctx, const char *v)
{
	size_t i, n = tlbot_ctx_nmentions(ctx), hits = 0, pills = 0;
	const char *hit = NULL, *pill = NULL, *member = NULL;

	if (tlbot_is_user_id(v))
		return v;
	if (strcasecmp(v, "me") == 0)
		return tlbot_ctx_sender(ctx);
	/* a member of the room by localpart or display name */
	if (tlbot_ctx_find_member(ctx, v, &member) == 1)
		return member;
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

/* The member named by args[i..] (a display name may take several words,
 * "Erin Hughes"): their id (borrowed) and the number of words used, or
 * NULL with *matches the count for the one word (0 none, >1 ambiguous). */
static const char *
member_words(struct tlbot_ctx *ctx, const struct tlbot_args *args, size_t i, size_t *used,
             size_t *matches)
{
	size_t j, last = args->argc - 1 < i + 3 ? args->argc - 1 : i + 3;

	*matches = 0;
	for (j = last + 1; j-- > i;) {
		char name[512] = "";
		const char *id = NULL;
		size_t k, n, len = 0;

		for (k = i; k <= j; k++) {
			int w = snprintf(name + len, sizeof(name) - len, "%s%s", k > i ? " " : "",
			                 args->argv[k]);

			if (w < 0 || (size_t)w >= sizeof(name) - len)
				break;
			len += (size_t)w;
		}
		if (k <= j)
			continue;
		n = tlbot_ctx_find_member(ctx, name, &id);
		if (n == 1 && id) {
			*used = j - i + 1;
			return id;
		}
		if (j == i)
			*matches = n;
	}
	return NULL;
}

int
tlbot_collect_users(struct tlbot_ctx *ctx, const struct tlbot_args *args, size_t first,
                    struct tlbot_users *u)
{
	const char *bad = NULL;
	size_t i, pills = 0, bad_matches = 0;

	for (i = first; i < args->argc;) {
		const char *a = args->argv[i], *id;
		size_t used = 1, matches = 0;

		if (tlbot_is_user_id(a)) {
			if (tlbot_users_add(u, a) != 0)
				goto full;
		} else if (strcasecmp(a, "me") == 0) {
			if (tlbot_users_add(u, tlbot_ctx_sender(ctx)) != 0)
				goto full;
		} else if ((id = member_words(ctx, args, i, &used, &matches)) != NULL) {
			if (tlbot_users_add(u, id) != 0)
				goto full;
		} else if (bad == NULL) {
			bad = a;
			bad_matches = matches;
		}
		i += used;
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
	if (bad && bad_matches > 1)
		return tlbot_fail(ctx,
		                  "'%s' matches several people here: mention the one you mean or"
		                  " write their id (@name:server)",
		                  bad);
	if (bad && pills == 0)
		return tlbot_fail(ctx,
		                  "'%s' is not a user in this room: mention them, or write their"
		                  " id (@name:server) or their name as the room shows it",
		                  bad);
	/* everyone named must exist: in this room, or known to the homeserver */
	for (i = 0; i < u->n; i++)
		if (tlbot_check_person(ctx, u->v[i]) != 0)
			return -1;
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
