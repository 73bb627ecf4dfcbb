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
/* The user a flag value names: a full id, "me", a room member by localpart
 * or display name ("erin", "@erin", "Erin Hughes"), or the one person
 * mentioned with a pill whose display name matches. NULL if it cannot be
 * told. Borrowed. Not checked: see tlbot_check_person. */
const char *tlbot_resolve_user(struct tlbot_ctx *ctx, const char *v);
/* 0 if id may be named: a member of the room (or the room's members are
 * unknown), or a user the homeserver's profile lookup found. Else fails
 * the command: no such user; or, not asked yet, a lookup is requested (the
 * worker asks, then runs the command again) and the refusal says so. */
int tlbot_check_person(struct tlbot_ctx *ctx, const char *id);
/* The people named by positional arguments from index first: full user ids,
 * "me", room members by localpart or display name, and everyone mentioned
 * (another word is accepted only when the message carries pills); each
 * checked with tlbot_check_person. Returns 0 or fails the command. */
int tlbot_collect_users(struct tlbot_ctx *ctx, const struct tlbot_args *args, size_t first,
			struct tlbot_users *u);
/* Characters (not bytes) in a UTF-8 string. */
size_t tlbot_utf8_len(const char *s);

#endif
