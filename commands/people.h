/* People named in a command (private to commands/): the list a command
 * collects from user-id arguments and mentions, and one person named by a
 * flag value. Shared by challenge.c and team.c. */
#ifndef TLBOT_COMMANDS_PEOPLE_H
#define TLBOT_COMMANDS_PEOPLE_H

#include <stddef.h>

#include "tlbot/command.h"

#define TLBOT_MAX_USERS 32 /* people in one command */

struct tlbot_users {
	size_t n;
	char *v[TLBOT_MAX_USERS]; /* owned */
};

/* Add a copy of id unless present. Returns 0, or -1 when full (or OOM). */
int tlbot_users_add(struct tlbot_users *u, const char *id);
void tlbot_users_release(struct tlbot_users *u);
/* 1 if id is in u (id may be NULL). */
int tlbot_users_has(const struct tlbot_users *u, const char *id);
/* 1 if id is the bot itself. */
int tlbot_user_is_bot(struct tlbot_ctx *ctx, const char *id);
/* 1 if a mention came from a pill (its id is not typed in the body). */
int tlbot_mention_is_pill(struct tlbot_ctx *ctx, const char *id);
/* The user a flag value names: a full id, or the one person mentioned with
 * a pill whose display name (what Element puts in the body) matches. NULL
 * if it cannot be told. Borrowed. */
const char *tlbot_resolve_user(struct tlbot_ctx *ctx, const char *v);
/* The people named by positional arguments from index first: full user ids,
 * and everyone mentioned (a word that is not an id is accepted only when
 * the message carries pills). Returns 0 or fails the command. */
int tlbot_collect_users(struct tlbot_ctx *ctx, const struct tlbot_args *args, size_t first,
			struct tlbot_users *u);
/* Characters (not bytes) in a UTF-8 string. */
size_t tlbot_utf8_len(const char *s);

#endif
