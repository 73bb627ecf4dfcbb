/* Operational counters (see include/tlbot/metrics.h): plain atomics for the
 * unlabelled ones, and one fixed open-addressed table for the labelled
 * series (commands by family and outcome, sends by result and errcode, jobs
 * by kind and outcome). A series is created once by claiming a free slot
 * with a compare-and-swap; every later increment is one atomic add. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "tlbot/clock.h"
#include "tlbot/command.h"
#include "tlbot/metrics.h"

#define SLOTS     512
#define LABEL_MAX 64

enum family { M_COMMANDS, M_SENDS, M_JOBS, M_NFAMILIES };

struct slot {
	atomic_int state; /* 0 free, 1 being filled, 2 ready */
	int family;
	char l1[LABEL_MAX], l2[LABEL_MAX];
	atomic_ullong v;
};

static struct slot slots[SLOTS];
static atomic_ullong overflow; /* increments that found the table full */

static atomic_ullong batches, events, reconnects, rate_limited, rate_wait_ms, undecryptable_total;
static atomic_llong last_sync_mono_ms = -1, last_sync_wall, start_wall, sched_lag_s = -1;
static atomic_llong crypto_undecryptable = -1, crypto_olm = -1, crypto_megolm_in = -1,
                    crypto_megolm_out = -1;
static _Atomic(const char *) transport_name;

static const char *const outcome_names[] = {"ok", "refused", "failed"};

/* Copy a label value, cut at LABEL_MAX - 1; errcode-like values keep only
 * [A-Za-z0-9_] (others become '_'), so nothing needs escaping later. */
static void
copy_label(char *dst, const char *src, int strict)
{
	size_t i;

	for (i = 0; src && src[i] && i < LABEL_MAX - 1; i++) {
		char c = src[i];

		if (strict && !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		                (c >= '0' && c <= '9') || c == '_'))
			c = '_';
		/* label values are quoted: keep them printable and quote-free */
		if (c == '"' || c == '\\' || (unsigned char)c < 0x20)
			c = '_';
		dst[i] = c;
	}
	dst[i] = '\0';
}

static unsigned
hash(int family, const char *a, const char *b)
{
	unsigned h = 2166136261u ^ (unsigned)family;

	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (; *b; b++)
		h = (h ^ (unsigned char)*b) * 16777619u;
	return h;
}

/* Add n to the series (family, l1, l2), creating it when new. */
static void
add(int family, const char *l1_raw, const char *l2_raw, int strict2, unsigned long long n)
{
	char l1[LABEL_MAX], l2[LABEL_MAX];
	unsigned h, i;

	copy_label(l1, l1_raw, 0);
	copy_label(l2, l2_raw, strict2);
	h = hash(family, l1, l2);
	for (i = 0; i < SLOTS; i++) {
		struct slot *s = &slots[(h + i) % SLOTS];
		int st = atomic_load_explicit(&s->state, memory_order_acquire);

		if (st == 0) {
			int expected = 0;

			if (atomic_compare_exchange_strong(&s->state, &expected, 1)) {
				s->family = family;
				memcpy(s->l1, l1, sizeof(l1));
				memcpy(s->l2, l2, sizeof(l2));
				atomic_store_explicit(&s->state, 2, memory_order_release);
				atomic_fetch_add_explicit(&s->v, n, memory_order_relaxed);
				return;
			}
			st = expected;
		}
		/* another thread is filling this slot: a few stores away */
		while (st == 1)
			st = atomic_load_explicit(&s->state, memory_order_acquire);
		if (s->family == family && strcmp(s->l1, l1) == 0 && strcmp(s->l2, l2) == 0) {
			atomic_fetch_add_explicit(&s->v, n, memory_order_relaxed);
			return;
		}
	}
	atomic_fetch_add_explicit(&overflow, n, memory_order_relaxed);
}

void
tlbot_metrics_init(void)
{
	size_t i, j, k;

	atomic_store(&start_wall, (long long)time(NULL));
	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_cmd *c = tlbot_commands[i];

		for (k = 0; k < 3; k++)
			add(M_COMMANDS, c->name, outcome_names[k], 0, 0);
		for (j = 0; c->jobs && c->jobs[j].kind; j++) {
			add(M_JOBS, c->jobs[j].kind, "done", 0, 0);
			add(M_JOBS, c->jobs[j].kind, "missed", 0, 0);
			add(M_JOBS, c->jobs[j].kind, "failed", 0, 0);
		}
	}
	add(M_SENDS, "ok", "", 1, 0);
}

void
tlbot_metrics_reset(void)
{
	size_t i;

	for (i = 0; i < SLOTS; i++) {
		atomic_store(&slots[i].state, 0);
		atomic_store(&slots[i].v, 0);
	}
	atomic_store(&overflow, 0);
	atomic_store(&batches, 0);
	atomic_store(&events, 0);
	atomic_store(&reconnects, 0);
	atomic_store(&rate_limited, 0);
	atomic_store(&rate_wait_ms, 0);
	atomic_store(&undecryptable_total, 0);
	atomic_store(&last_sync_mono_ms, -1);
	atomic_store(&last_sync_wall, 0);
	atomic_store(&sched_lag_s, -1);
	atomic_store(&crypto_undecryptable, -1);
	atomic_store(&crypto_olm, -1);
	atomic_store(&crypto_megolm_in, -1);
	atomic_store(&crypto_megolm_out, -1);
	atomic_store(&transport_name, NULL);
}

void
tlbot_metrics_sync_ok(void)
{
	atomic_store_explicit(&last_sync_mono_ms, (long long)tlbot_clock_mono_ms(),
	                      memory_order_relaxed);
	atomic_store_explicit(&last_sync_wall, (long long)time(NULL), memory_order_relaxed);
}

void
tlbot_metrics_batch(uint64_t n)
{
	atomic_fetch_add_explicit(&batches, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&events, n, memory_order_relaxed);
	tlbot_metrics_sync_ok();
}

void
tlbot_metrics_command(const char *name, enum tlbot_outcome outcome)
{
	const struct tlbot_cmd *c = name ? tlbot_command_find(name) : NULL;

	if ((int)outcome < 0 || outcome > TLBOT_OUTCOME_FAILED)
		outcome = TLBOT_OUTCOME_FAILED;
	add(M_COMMANDS, c ? c->name : "unknown", outcome_names[outcome], 0, 1);
}

void
tlbot_metrics_transport(const char *name)
{
	atomic_store(&transport_name, name);
}

void
tlbot_metrics_reconnect(void)
{
	atomic_fetch_add_explicit(&reconnects, 1, memory_order_relaxed);
}

void
tlbot_metrics_send(const char *result, const char *errcode)
{
	add(M_SENDS, result, errcode ? errcode : "", 1, 1);
}

void
tlbot_metrics_rate_limited(long wait_ms)
{
	atomic_fetch_add_explicit(&rate_limited, 1, memory_order_relaxed);
	if (wait_ms > 0)
		atomic_fetch_add_explicit(&rate_wait_ms, (unsigned long long)wait_ms,
		                          memory_order_relaxed);
}

void
tlbot_metrics_job(const char *kind, const char *outcome, long lag_s)
{
	add(M_JOBS, kind, outcome, 0, 1);
	atomic_store_explicit(&sched_lag_s, lag_s > 0 ? lag_s : 0, memory_order_relaxed);
}

void
tlbot_metrics_set_crypto(long undecryptable, long olm_sessions, long megolm_inbound,
                         long megolm_outbound)
{
	atomic_store(&crypto_undecryptable, undecryptable);
	atomic_store(&crypto_olm, olm_sessions);
	atomic_store(&crypto_megolm_in, megolm_inbound);
	atomic_store(&crypto_megolm_out, megolm_outbound);
}

void
tlbot_metrics_undecryptable_event(void)
{
	atomic_fetch_add_explicit(&undecryptable_total, 1, memory_order_relaxed);
}

long long
tlbot_metrics_sync_age_s(void)
{
	long long t = atomic_load(&last_sync_mono_ms);

	if (t < 0)
		return -1;
	return (tlbot_clock_mono_ms() - t) / 1000;
}

time_t
tlbot_metrics_start_time(void)
{
	return (time_t)atomic_load(&start_wall);
}

time_t
tlbot_metrics_last_sync_time(void)
{
	return (time_t)atomic_load(&last_sync_wall);
}

const char *
tlbot_metrics_transport_name(void)
{
	const char *t = atomic_load(&transport_name);

	return t ? t : "none";
}

void
tlbot_metrics_crypto(long long *olm_sessions, long long *megolm_inbound)
{
	*olm_sessions = atomic_load(&crypto_olm);
	*megolm_inbound = atomic_load(&crypto_megolm_in);
}

uint64_t
tlbot_metrics_commands_total(void)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < SLOTS; i++)
		if (atomic_load(&slots[i].state) == 2 && slots[i].family == M_COMMANDS)
			n += atomic_load(&slots[i].v);
	return n;
}

/* ---- exposition ---- */

static int
head(struct tlbot_buf *b, const char *name, const char *type, const char *help)
{
	return tlbot_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int
one(struct tlbot_buf *b, const char *name, const char *type, const char *help, long long v)
{
	if (head(b, name, type, help) != 0)
		return -1;
	return tlbot_buf_printf(b, "%s %lld\n", name, v);
}

static int
labelled(struct tlbot_buf *b, int family, const char *name, const char *k1, const char *k2,
         const char *help)
{
	size_t i;

	if (head(b, name, "counter", help) != 0)
		return -1;
	for (i = 0; i < SLOTS; i++) {
		const struct slot *s = &slots[i];

		if (atomic_load_explicit(&s->state, memory_order_acquire) != 2 ||
		    s->family != family)
			continue;
		if (tlbot_buf_printf(b, "%s{%s=\"%s\",%s=\"%s\"} %llu\n", name, k1, s->l1, k2,
		                     s->l2, (unsigned long long)atomic_load(&s->v)) != 0)
			return -1;
	}
	return 0;
}

/* The figures read from the store at scrape time (-1: not read). */
static int
render_store(struct tlbot_buf *b, const struct tlbot_metrics_store *s)
{
	int rc = 0;

	if (s->outbox_depth >= 0)
		rc |= one(b, "tlbot_outbox_depth", "gauge",
		          "Outbox rows waiting to be sent.", s->outbox_depth);
	if (s->outbox_oldest_age_s >= 0)
		rc |= one(b, "tlbot_outbox_oldest_age_seconds", "gauge",
		          "Age of the oldest outbox row waiting (0 when none).",
		          s->outbox_oldest_age_s);
	if (s->db_bytes >= 0)
		rc |= one(b, "tlbot_database_size_bytes", "gauge",
		          "Size of the SQLite database file.", s->db_bytes);
	if (s->wal_bytes >= 0)
		rc |= one(b, "tlbot_database_wal_size_bytes", "gauge",
		          "Size of the SQLite write-ahead log.", s->wal_bytes);
	if (s->rooms >= 0)
		rc |= one(b, "tlbot_rooms", "gauge", "Rooms the bot has joined.", s->rooms);
	return rc;
}

/* Encryption gauges: the store's figures when it gave them, else the
 * counters the crypto module keeps. */
static int
render_crypto(struct tlbot_buf *b, const struct tlbot_metrics_store *s)
{
	long long cu = s && s->crypto_pending >= 0 ? s->crypto_pending
	                                           : atomic_load(&crypto_undecryptable);
	long long co = s && s->crypto_olm >= 0 ? s->crypto_olm : atomic_load(&crypto_olm);
	long long cmi = s && s->crypto_megolm_in >= 0 ? s->crypto_megolm_in
	                                              : atomic_load(&crypto_megolm_in);
	long long cmo = s && s->crypto_megolm_out >= 0 ? s->crypto_megolm_out
	                                               : atomic_load(&crypto_megolm_out);
	int rc = 0;

	if (cu >= 0)
		rc |= one(b, "tlbot_undecryptable_events", "gauge",
		          "Encrypted events kept while their room key has not arrived.", cu);
	if (co >= 0 || cmi >= 0 || cmo >= 0) {
		rc |= head(b, "tlbot_crypto_sessions", "gauge",
		           "Olm and Megolm sessions held, by kind.");
		if (co >= 0)
			rc |= tlbot_buf_printf(b, "tlbot_crypto_sessions{kind=\"olm\"} %lld\n", co);
		if (cmi >= 0)
			rc |= tlbot_buf_printf(
			        b, "tlbot_crypto_sessions{kind=\"megolm_inbound\"} %lld\n", cmi);
		if (cmo >= 0)
			rc |= tlbot_buf_printf(
			        b, "tlbot_crypto_sessions{kind=\"megolm_outbound\"} %lld\n", cmo);
	}
	return rc;
}

int
tlbot_metrics_render(struct tlbot_buf *b, const struct tlbot_metrics_store *s)
{
	long long age = tlbot_metrics_sync_age_s(), lag = atomic_load(&sched_lag_s);
	const char *tr = tlbot_metrics_transport_name();
	int rc = 0;

	rc |= head(b, "tlbot_build_info", "gauge", "Version of the running tlbot.");
	rc |= tlbot_buf_printf(b, "tlbot_build_info{version=\"%s\"} 1\n", TLBOT_VERSION);
	rc |= one(b, "tlbot_start_time_seconds", "gauge", "When the daemon started (Unix time).",
	          (long long)atomic_load(&start_wall));
	rc |= one(b, "tlbot_sync_last_success_timestamp_seconds", "gauge",
	          "When the last /sync answer, stream update or keepalive answer arrived (Unix "
	          "time, 0 "
	          "before the first).",
	          (long long)atomic_load(&last_sync_wall));
	if (age >= 0)
		rc |= one(b, "tlbot_sync_lag_seconds", "gauge",
		          "Seconds since the last /sync answer, stream update or keepalive answer.",
		          age);
	rc |= one(b, "tlbot_batches_applied_total", "counter",
	          "Sync batches and stream updates committed.", (long long)atomic_load(&batches));
	rc |= one(b, "tlbot_events_applied_total", "counter",
	          "Timeline events in committed batches.", (long long)atomic_load(&events));
	rc |= labelled(b, M_COMMANDS, "tlbot_commands_total", "family", "outcome",
	               "Commands run, by family and outcome (ok, refused, failed).");
	rc |= labelled(b, M_SENDS, "tlbot_sends_total", "result", "errcode",
	               "Outbox sends by result (ok, retry, failed) and Matrix errcode.");
	rc |= one(b, "tlbot_rate_limited_total", "counter",
	          "Answers 429 M_LIMIT_EXCEEDED received while sending.",
	          (long long)atomic_load(&rate_limited));
	rc |= head(b, "tlbot_rate_limited_wait_seconds_total", "counter",
	           "Time the homeserver's 429 answers asked the sender to wait.");
	rc |= tlbot_buf_printf(b, "tlbot_rate_limited_wait_seconds_total %.3f\n",
	                       (double)atomic_load(&rate_wait_ms) / 1000.0);
	rc |= labelled(b, M_JOBS, "tlbot_jobs_total", "kind", "outcome",
	               "Scheduled jobs finished, by kind and outcome (done, missed, failed).");
	if (lag >= 0)
		rc |= one(b, "tlbot_scheduler_lag_seconds", "gauge",
		          "How late the last scheduled job fired.", lag);
	if (s)
		rc |= render_store(b, s);
	rc |= head(b, "tlbot_transport_info", "gauge",
	           "The transport in use (1) and the configured choice.");
	rc |= tlbot_buf_printf(b, "tlbot_transport_info{transport=\"%s\",configured=\"%s\"} 1\n",
	                       tr, s && s->transport_config ? s->transport_config : "");
	rc |= one(b, "tlbot_transport_reconnects_total", "counter",
	          "WebSocket connections lost and re-established.",
	          (long long)atomic_load(&reconnects));
	rc |= one(b, "tlbot_undecryptable_events_total", "counter",
	          "Encrypted events that could not be decrypted when they arrived.",
	          (long long)atomic_load(&undecryptable_total));
	rc |= render_crypto(b, s);
	rc |= one(b, "tlbot_metrics_label_overflow_total", "counter",
	          "Increments dropped because the labelled-series table was full.",
	          (long long)atomic_load(&overflow));
	return rc ? -1 : 0;
}

int
tlbot_metrics_health(const struct tlbot_metrics_store *s, int max_sync_age_s, int max_outbox_age_s,
                     char *reason, size_t reasonlen)
{
	long long age = tlbot_metrics_sync_age_s();

	if (age < 0) {
		snprintf(reason, reasonlen, "no sync with the homeserver yet");
		return 1;
	}
	if (age > max_sync_age_s) {
		snprintf(reason, reasonlen, "stalled: last sync %lld s ago (limit %d s)", age,
		         max_sync_age_s);
		return 1;
	}
	if (s && s->outbox_depth < 0) {
		snprintf(reason, reasonlen, "database not readable");
		return 1;
	}
	if (s && s->outbox_oldest_age_s > max_outbox_age_s) {
		snprintf(reason, reasonlen,
		         "outbox not draining: %lld rows waiting, the oldest for %lld s (limit %d "
		         "s)",
		         s->outbox_depth, s->outbox_oldest_age_s, max_outbox_age_s);
		return 1;
	}
	snprintf(reason, reasonlen, "ok: last sync %lld s ago, %lld outbox rows waiting", age,
	         s ? s->outbox_depth : 0);
	return 0;
}
