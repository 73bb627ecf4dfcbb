/* The batch path: a sync-shaped batch (from /sync or the WebSocket stream)
 * is applied to the store in ONE transaction: room membership and state,
 * command effects, outgoing messages and the batch's next_batch token. */
#ifndef TLBOT_ROUTER_H
#define TLBOT_ROUTER_H

#include <jansson.h>
#include <stdint.h>
#include <time.h>

#include "tlbot/config.h"
#include "tlbot/store.h"

#define TLBOT_RATE_SLOTS 256

struct tlbot_crypto;
struct tlbot_http;

struct tlbot_rate {
	char user[256];
	double tokens;
	int64_t last_ms;
	int warned;
};

struct tlbot_router {
	const struct tlbot_config *cfg;
	const char *bot_user;
	struct tlbot_store *st;
	/* Fill a gap before a limited timeline: return the events between the
	 * last handled one and prev_batch, oldest first (new reference), or
	 * NULL when they cannot be fetched now (the batch then is not
	 * committed and is retried). NULL callback: no gap filling. */
	json_t *(*fill_gap)(void *arg, const char *room_id, const char *prev_batch);
	void *fill_arg;
	/* Set by the transport after a batch failed several times in a row:
	 * each message then runs in its own savepoint, and one whose handling
	 * fails is logged and skipped (marked handled), so a single poison
	 * event cannot stall the bot. A store that cannot write at all (disk
	 * full) still fails the whole batch, which is retried. */
	int isolate;
	/* MSC4391 command descriptions: 0 never (tests), 1 publish in every
	 * joined room at the next batch (the daemon sets it on start), 2 done
	 * (then again only when the bot joins a room). */
	int describe, joined_new;
	/* End-to-end encryption (bot/crypto/), NULL when off: to-device
	 * events and m.room.encrypted are handled with it; http (the receive
	 * side's handle) fetches device keys of unknown senders. */
	struct tlbot_crypto *crypto;
	struct tlbot_http *http;
	int decrypted;  /* routing a decrypted event now (its text is not logged) */
	struct tlbot_rate rate[TLBOT_RATE_SLOTS];
	int rerun; /* handling a command again after a profile lookup */
	/* figures */
	uint64_t batches, events, commands, replies;
};

void tlbot_router_init(struct tlbot_router *rt, const struct tlbot_config *cfg,
		       const char *bot_user, struct tlbot_store *st);

/* Apply batch (borrowed). since is the token the batch was requested with
 * (NULL on a first sync: its history is marked handled, never answered).
 * On success the transaction holding next_batch is committed and 0 is
 * returned; -1 means nothing was committed (retry the same batch). */
int tlbot_router_apply(struct tlbot_router *rt, const json_t *batch, const char *since);

/* Run a command again once the homeserver has answered the profile
 * lookups it asked for (the worker, after storing the answers, inside the
 * caller's transaction). event_json is the command as enqueued with the
 * lookup; it runs at most once (replies get their own transaction ids).
 * 0 or -1 (database). */
int tlbot_router_rerun(struct tlbot_router *rt, const char *event_json);

/* Run due scheduled jobs (each in its own transaction). Returns the number
 * fired, or -1 on a database error. */
int tlbot_router_run_jobs(struct tlbot_router *rt, time_t now);

#endif
