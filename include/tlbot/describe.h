/* MSC4391 bot command descriptions, generated from the command table's
 * parameter tables: one state event per command (and subcommand) with
 * typed parameters, and structured invocations turned into the command
 * line the same dispatch checks. */
#ifndef TLBOT_DESCRIBE_H
#define TLBOT_DESCRIBE_H

#include <jansson.h>
#include <stddef.h>

#include "tlbot/command.h"
#include "tlbot/config.h"
#include "tlbot/store.h"

#define TLBOT_MSC4391_TYPE "org.matrix.msc4391.command_description"
#define TLBOT_MSC4391_STABLE_TYPE "m.bot.command_description"
#define TLBOT_MSC4391_INVOKE "org.matrix.msc4391.command"
#define TLBOT_MSC4391_STABLE_INVOKE "m.bot.command"

/* The description content of family c's subcommand s (NULL for a family
 * without subcommands). New reference, or NULL. */
json_t *tlbot_describe_command(const struct tlbot_cmd *c, const struct tlbot_subcmd *s);

/* Keep room's descriptions in step with the table: enqueue a "state"
 * outbox row for each description that differs from the room's state
 * (and an empty one for each the bot published that is gone), when the
 * bot's power level allows that state event type; silently nothing when
 * it does not. 0, or -1 on a store error. */
int tlbot_describe_room(const struct tlbot_config *cfg, struct tlbot_store *st,
			const char *bot_user, const char *room_id);

/* A structured invocation in a message's content (MSC4391 command block):
 * 1 with *text the equivalent command line (new string, prefix first) to
 * run through the usual parser and dispatch; 0 when content has none or
 * it is addressed to another bot (m.mentions without bot_user); -1 with a
 * one-line reason in err when it is malformed. */
int tlbot_structured_command(const json_t *content, const char *bot_user, const char *prefix,
			     char **text, char *err, size_t errlen);

#endif
