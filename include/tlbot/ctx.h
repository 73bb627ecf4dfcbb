/* The context a command handler or job runs in. Daemon-internal: commands
 * use only the accessors in command.h. */
#ifndef TLBOT_CTX_H
#define TLBOT_CTX_H

#include <jansson.h>
#include <time.h>

#include "tlbot/buf.h"
#include "tlbot/command.h"
#include "tlbot/config.h"
#include "tlbot/store.h"

#define TLBOT_CTX_MAX_MENTIONS 32
#define TLBOT_CTX_MAX_KEPT 32
#define TLBOT_CTX_MAX_LOOKUPS 8

struct tlbot_ctx {
	const struct tlbot_config *cfg;
	struct tlbot_store *st;
	const char *bot_user;
	const char *room_id;       /* NULL in jobs without a room */
	const char *sender;        /* NULL in jobs */
	const char *event_id;      /* NULL in jobs */
	const char *body;
	const char *prefix;
	const char *in_reply_to;
	const char *replaces;
	const char *thread_root;
	const char *redacts;
	int is_dm;
	int encrypted;             /* the event came end-to-end encrypted: its
	                            * text is logged at debug level only */
	time_t event_time;
	time_t now;
	const char *txn_base;      /* "e.<event_id>" or "j.<job id>" */
	int msg_index;             /* messages enqueued so far */
	size_t nmentions;
	char *mentions[TLBOT_CTX_MAX_MENTIONS];
	struct tlbot_buf err;      /* set by tlbot_fail */
	int failed;
	int db_failed;             /* a store call failed: roll back the batch */
	/* people (bot/core/members.c): strings handed out borrowed, users whose
	 * existence the homeserver is to be asked about after the command, and
	 * whether this is the command run again after such a lookup */
	size_t nkept;
	char *kept[TLBOT_CTX_MAX_KEPT];
	size_t nlookups;
	char *lookups[TLBOT_CTX_MAX_LOOKUPS];
	int rerun;
};

void tlbot_ctx_init(struct tlbot_ctx *ctx, const struct tlbot_config *cfg,
		    struct tlbot_store *st, const char *bot_user);
void tlbot_ctx_release(struct tlbot_ctx *ctx);
/* The batch's connection, for the store calls of the command API
 * (bot/store/db.c); commands use tlbot_db_* (command.h). */
sqlite3 *tlbot_ctx_db(struct tlbot_ctx *ctx);
void tlbot_ctx_add_mention(struct tlbot_ctx *ctx, const char *user_id);
/* The pill namer (tlbot_msg_namer_fn) for ctx (bot/core/members.c): a
 * member's own display name (not just their localpart), else -1. */
int tlbot_ctx_namer(void *ctx, const char *user_id, char *out, size_t outlen);

/* Enqueue a reply to the ctx event; when ctx has no event, a plain room
 * message. msgtype "m.notice". Returns 0 or -1. */
int tlbot_ctx_enqueue(struct tlbot_ctx *ctx, const char *kind, const char *room_id,
		      const char *user_id, const char *content_json);

/* Run one parsed command in ctx, in a savepoint: cl is the parsed command,
 * or NULL when parsing failed with the one-line reason parse_err (sent as
 * the reply). Returns 0 when handled (reply enqueued), -1 on a database
 * failure (roll back the batch). cl stays the caller's. */
int tlbot_dispatch(struct tlbot_ctx *ctx, const struct tlbot_cmdline *cl, const char *parse_err);

#endif
