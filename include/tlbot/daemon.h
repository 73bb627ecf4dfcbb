/* The running daemon: identity, the receive side (transport -> router) and
 * the worker (outbox sender and scheduler), each thread with its own store
 * connection and HTTP handle. */
#ifndef TLBOT_DAEMON_H
#define TLBOT_DAEMON_H

#include <pthread.h>
#include <signal.h>

#include "tlbot/config.h"
#include "tlbot/http.h"
#include "tlbot/router.h"
#include "tlbot/store.h"

struct tlbot_ws;
struct tlbot_crypto;

struct tlbot_daemon {
	struct tlbot_config *cfg;
	char *base_url;
	char *user_id;
	char *device_id;
	char *token;
	volatile sig_atomic_t *stop;  /* set by signals or a fatal condition */
	int exit_code;                /* set with stop on a fatal condition */
	pthread_mutex_t lock;
	pthread_cond_t wake;          /* outbox rows were committed */
	int woken;
	/* batches the receive side applied since start (atomic): the worker
	 * waits for the first before it creates a DM room (worker.c) */
	int batches_applied;
	/* called (under lock) by tlbot_daemon_wake and _fail: the worker sets it
	 * to wake its curl multi wait (worker.c) */
	void (*wake_hook)(void *arg);
	void *wake_arg;
	/* receive side (main thread) */
	struct tlbot_store st;
	struct tlbot_http http;
	struct tlbot_router router;
	char *filter;                 /* filter id or inline JSON */
	/* WebSocket transport (bot/transport/ws.c): NULL with transport sync. Lives from
	 * before the worker starts until after it is joined. */
	struct tlbot_ws *ws;
	/* auto transport: tlbot_sync_run returns once this monotonic time (ms)
	 * has passed, so the WebSocket can be re-probed; 0 = never. */
	int64_t sync_until_ms;
	/* End-to-end encryption (bot/crypto/), NULL with encryption: off.
	 * Created before the worker starts; used by both threads, each with
	 * its own store connection and HTTP handle. */
	struct tlbot_crypto *crypto;
};

/* Stop the daemon with a message (fatal conditions found by a thread). */
void tlbot_daemon_fail(struct tlbot_daemon *d, int code);
/* Wake the worker: new outbox rows or jobs are committed. */
void tlbot_daemon_wake(struct tlbot_daemon *d);
/* Sleep up to ms, returning early on stop. Returns 1 if stopping. */
int tlbot_daemon_sleep(struct tlbot_daemon *d, long ms);

/* Log in (or reuse the stored token/device) and check the identity.
 * Returns 0, or -1 after logging what the operator must do. */
int tlbot_daemon_login(struct tlbot_daemon *d);
/* Set up the receive side once (router, gap filling, sync filter in
 * d->filter); later calls do nothing. Shared by both transports. */
void tlbot_sync_prepare(struct tlbot_daemon *d);
/* The refused-position policy both transports share (sync.c, ws.c): the
 * homeserver refused for good to sync (a 4xx that is not a rate limit or a
 * bad token), from a stored position when from_position. The first
 * refusal renews the sync filter (d->filter) and returns 0: retry. Refused
 * again from a stored position: kv next_batch is deleted and 1 returned:
 * start afresh. who prefixes the log line; *refused is the caller's count
 * (zero it after a batch is applied). */
int tlbot_sync_refused(struct tlbot_daemon *d, const char *who, int *refused, int from_position,
		       const char *errcode, const char *error, long status);
/* The position to sync from, shared by both transports: kv next_batch
 * (new string), or NULL for a fresh start, also when a first sync was cut
 * short (kv first_sync_partial; next_batch is then dropped). */
char *tlbot_sync_start_position(struct tlbot_daemon *d);
/* The first sync applied a chunk of rooms at a time (sync.c), shared by
 * the WebSocket transport's first update: body is the undecoded text.
 * Returns 0 with *next its next_batch (new string); 1 when body is not a
 * sync batch (no top-level next_batch, or an answer: decode it as usual);
 * -1 when it could not be applied (nothing kept beyond whole chunks). */
int tlbot_sync_first_apply(struct tlbot_daemon *d, const char *body, size_t len, char **next);
/* The /sync receive loop; returns when stopping (or at d->sync_until_ms). */
int tlbot_sync_run(struct tlbot_daemon *d);
/* The worker thread body (arg: struct tlbot_daemon *). */
void *tlbot_worker_main(void *arg);

/* The housekeeping thread body (arg: struct tlbot_daemon *): refreshes the
 * GOV.UK bank-holidays copy next to the database once a day. Slow network
 * work lives here so it never delays replies or scheduled jobs. */
void *tlbot_housekeeping_main(void *arg);
/* Retention (retention_days): delete stand-up answers and reminders older
 * than that, through every family's retain hook, in one transaction on a
 * store connection of its own. Returns rows deleted, or -1 (logged). */
int tlbot_retention_run(const struct tlbot_config *cfg, const char *bot_user);
/* Where the refreshed bank-holidays copy lives: next to the database. */
void tlbot_holidays_cache_for(const char *database, char *out, size_t outlen);

/* The sync filter JSON the bot uses (static string). */
const char *tlbot_sync_filter_json(int timeline_limit, char *buf, size_t buflen);

/* The batch-apply policy both transports share (sync.c, ws.c): apply one
 * sync-shaped batch (borrowed) from position *since in one transaction;
 * after three consecutive failures (*failures, kept by the caller) its
 * events are applied one by one, so a poison event is skipped instead of
 * stalling every room. Returns 0 when it was applied: *since is then a new
 * copy of its next_batch (the old one freed), *failures is 0 and the
 * worker is woken. Returns -1 when nothing of it was kept (logged with
 * who, e.g. "sync"); the caller retries as its transport does. */
int tlbot_daemon_apply(struct tlbot_daemon *d, int *failures, const char *who,
		       const json_t *batch, char **since);
/* After a large batch: hand the freed heap pages back to the system, so
 * the idle daemon does not keep the peak of a first sync. */
void tlbot_daemon_trim(void);

#endif
