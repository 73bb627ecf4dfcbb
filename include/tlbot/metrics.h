/* Operational metrics: counters and gauges kept in process memory with C11
 * atomics, so any thread (receive, worker, scheduler, crypto) increments
 * them without a lock; rendered in the Prometheus text exposition format
 * 0.0.4 by the health/metrics listener (bot/core/metrics_http.c), which
 * adds the gauges read from the database (outbox, sizes, rooms).
 *
 * Names follow Prometheus conventions: the tlbot_ prefix, _total on
 * counters, base units (seconds, bytes). Label values are copied and
 * cut to 63 bytes; errcodes keep [A-Za-z0-9_] only. */
#ifndef TLBOT_METRICS_H
#define TLBOT_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tlbot/buf.h"

enum tlbot_outcome {
	TLBOT_OUTCOME_OK = 0,  /* the command ran */
	TLBOT_OUTCOME_REFUSED, /* tlbot_fail: the user was told why, nothing changed */
	TLBOT_OUTCOME_FAILED,  /* a database error: rolled back, the batch is retried */
};

/* Record the start time and create every command family's and job kind's
 * series at zero (so rate() works from the first scrape). Call once. */
void tlbot_metrics_init(void);
/* Forget everything (tests). */
void tlbot_metrics_reset(void);

/* ---- receive side (sync.c, ws.c, router.c, dispatch.c) ---- */
/* A /sync answer, a stream update or a keepalive answer arrived. */
void tlbot_metrics_sync_ok(void);
/* A batch was committed holding n timeline events. */
void tlbot_metrics_batch(uint64_t events);
/* A command ran: name as typed (resolved to its family, "unknown" when no
 * family has that name or alias; NULL when it did not parse). */
void tlbot_metrics_command(const char *name, enum tlbot_outcome outcome);
/* The transport now in use: "sync" or "websocket" (a static string). */
void tlbot_metrics_transport(const char *name);
/* A WebSocket connection was lost and is being re-established. */
void tlbot_metrics_reconnect(void);

/* ---- worker (worker.c, router.c jobs) ---- */
/* An outbox row was sent (result "ok"), will be retried ("retry") or was
 * dropped ("failed"); errcode: the Matrix errcode or a short reason, ""
 * when ok. */
void tlbot_metrics_send(const char *result, const char *errcode);
/* A 429 answer told the sender to wait wait_ms. */
void tlbot_metrics_rate_limited(long wait_ms);
/* A scheduled job finished: outcome "done", "missed" or "failed"; lag_s
 * is how late it fired (now - due). */
void tlbot_metrics_job(const char *kind, const char *outcome, long lag_s);

/* ---- encryption (bot/crypto/) ---- */
/* Current gauges; a negative value means unknown and is not exported.
 * undecryptable: encrypted events kept while their key has not arrived. */
void tlbot_metrics_set_crypto(long undecryptable, long olm_sessions, long megolm_inbound,
                              long megolm_outbound);
/* An event could not be decrypted (counted once per event). */
void tlbot_metrics_undecryptable_event(void);

/* ---- reading ---- */
/* What the listener reads from its own database connection per scrape;
 * -1 where unknown. */
struct tlbot_metrics_store {
	long long outbox_depth;        /* pending outbox rows */
	long long outbox_oldest_age_s; /* age of the oldest pending row, 0 when none */
	long long db_bytes, wal_bytes; /* file sizes */
	long long rooms;               /* rooms the bot is in */
	const char *transport_config;  /* cfg transport (sync, websocket, auto) */
	/* from the crypto module's tables (-1 when they do not exist, i.e.
	 * encryption never ran); win over tlbot_metrics_set_crypto's values */
	long long crypto_olm, crypto_megolm_in, crypto_megolm_out, crypto_pending;
};

/* Seconds since the last sync_ok (monotonic), -1 before the first one. */
long long tlbot_metrics_sync_age_s(void);
/* Wall time (epoch s) of the start, the last sync_ok (0 before), and the
 * transport in use ("none" before the first). */
time_t tlbot_metrics_start_time(void);
time_t tlbot_metrics_last_sync_time(void);
const char *tlbot_metrics_transport_name(void);
/* The session gauges set by tlbot_metrics_set_crypto (-1: not set). */
void tlbot_metrics_crypto(long long *olm_sessions, long long *megolm_inbound);
/* Commands run so far, all families and outcomes. */
uint64_t tlbot_metrics_commands_total(void);

/* Append the whole exposition (text format 0.0.4) to out. 0 or -1 (the
 * buffer's cap). */
int tlbot_metrics_render(struct tlbot_buf *out, const struct tlbot_metrics_store *s);

/* Health: 0 when healthy, else 1 with a one-line reason in reason. Stale
 * when there was no sync yet or the last one is older than max_sync_age_s;
 * stuck when the oldest pending outbox row is older than max_outbox_age_s. */
int tlbot_metrics_health(const struct tlbot_metrics_store *s, int max_sync_age_s,
                         int max_outbox_age_s, char *reason, size_t reasonlen);

#endif
