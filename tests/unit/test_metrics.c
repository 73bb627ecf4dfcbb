/* Tests for bot/core/metrics.c: lock-free increments from many threads add
 * up exactly, labels are cleaned, health reasons, and the exposition has a
 * HELP and TYPE line before each family. (The real Prometheus parser reads
 * the daemon's output in tests/integration/test_metrics.py.) */
#include <pthread.h>
#include <string.h>

#include "tap.h"
#include "tlbot/config.h"
#include "tlbot/metrics.h"

#define THREADS    4
#define PER_THREAD 20000

static void *
hammer(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < PER_THREAD; i++) {
		tlbot_metrics_command("ping", TLBOT_OUTCOME_OK);
		tlbot_metrics_send("retry", i % 2 ? "M_LIMIT_EXCEEDED" : "network error");
		tlbot_metrics_batch(2);
	}
	return NULL;
}

static int
has_line(const char *text, const char *line)
{
	const char *p = text;
	size_t n = strlen(line);

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return 1;
		p += n;
	}
	return 0;
}

TEST(threads_add_up)
{
	pthread_t t[THREADS];
	struct tlbot_buf b;
	char want[128];
	int i;

	tlbot_metrics_reset();
	tlbot_metrics_init();
	for (i = 0; i < THREADS; i++)
		CHECK_INT(pthread_create(&t[i], NULL, hammer, NULL), ==, 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	CHECK_INT(tlbot_metrics_commands_total(), ==, THREADS * PER_THREAD);
	tlbot_buf_init(&b, 1 << 20);
	CHECK_INT(tlbot_metrics_render(&b, NULL), ==, 0);
	snprintf(want, sizeof(want), "tlbot_commands_total{family=\"ping\",outcome=\"ok\"} %d",
	         THREADS * PER_THREAD);
	CHECK(has_line(tlbot_buf_str(&b), want));
	snprintf(want, sizeof(want),
	         "tlbot_sends_total{result=\"retry\",errcode=\"M_LIMIT_EXCEEDED\"} %d",
	         THREADS * PER_THREAD / 2);
	CHECK(has_line(tlbot_buf_str(&b), want));
	/* errcodes keep [A-Za-z0-9_] only */
	snprintf(want, sizeof(want),
	         "tlbot_sends_total{result=\"retry\",errcode=\"network_error\"} %d",
	         THREADS * PER_THREAD / 2);
	CHECK(has_line(tlbot_buf_str(&b), want));
	snprintf(want, sizeof(want), "tlbot_events_applied_total %d", THREADS * PER_THREAD * 2);
	CHECK(has_line(tlbot_buf_str(&b), want));
	tlbot_buf_release(&b);
}

TEST(families_and_labels)
{
	struct tlbot_buf b;
	const char *t;

	tlbot_metrics_reset();
	tlbot_metrics_init();
	tlbot_metrics_command("CHALLENGE", TLBOT_OUTCOME_REFUSED); /* case-insensitive family */
	tlbot_metrics_command("nosuch", TLBOT_OUTCOME_REFUSED);
	tlbot_metrics_command(NULL, TLBOT_OUTCOME_REFUSED);
	tlbot_metrics_command("ping", TLBOT_OUTCOME_FAILED);
	tlbot_metrics_job("weird\"kind\n", "done", 3);
	tlbot_metrics_rate_limited(1500);
	tlbot_metrics_set_crypto(2, 5, -1, 1);
	tlbot_buf_init(&b, 1 << 20);
	CHECK_INT(tlbot_metrics_render(&b, NULL), ==, 0);
	t = tlbot_buf_str(&b);
	CHECK(has_line(t, "tlbot_commands_total{family=\"challenge\",outcome=\"refused\"} 1"));
	CHECK(has_line(t, "tlbot_commands_total{family=\"unknown\",outcome=\"refused\"} 2"));
	CHECK(has_line(t, "tlbot_commands_total{family=\"ping\",outcome=\"failed\"} 1"));
	CHECK(has_line(t, "tlbot_commands_total{family=\"team\",outcome=\"ok\"} 0"));
	CHECK(has_line(t, "tlbot_jobs_total{kind=\"weird_kind_\",outcome=\"done\"} 1"));
	CHECK(has_line(t, "tlbot_scheduler_lag_seconds 3"));
	CHECK(has_line(t, "tlbot_rate_limited_total 1"));
	CHECK(has_line(t, "tlbot_rate_limited_wait_seconds_total 1.500"));
	CHECK(has_line(t, "tlbot_undecryptable_events 2"));
	CHECK(has_line(t, "tlbot_crypto_sessions{kind=\"olm\"} 5"));
	CHECK(strstr(t, "megolm_inbound") == NULL);
	CHECK(has_line(t, "tlbot_crypto_sessions{kind=\"megolm_outbound\"} 1"));
	CHECK(has_line(t, "# TYPE tlbot_commands_total counter"));
	CHECK(has_line(t, "# TYPE tlbot_outbox_depth gauge") == 0); /* no store given */
	CHECK(has_line(t, "tlbot_transport_info{transport=\"none\",configured=\"\"} 1"));
	tlbot_buf_release(&b);
}

TEST(health)
{
	struct tlbot_metrics_store s = {0, 0, 100, 0, 1, "sync", -1, -1, -1, -1};
	char why[256];

	tlbot_metrics_reset();
	CHECK_INT(tlbot_metrics_health(&s, 90, 300, why, sizeof(why)), ==, 1);
	CHECK_STR(why, "no sync with the homeserver yet");
	tlbot_metrics_sync_ok();
	CHECK_INT(tlbot_metrics_health(&s, 90, 300, why, sizeof(why)), ==, 0);
	CHECK(strncmp(why, "ok: last sync 0 s ago", 21) == 0);
	s.outbox_depth = 7;
	s.outbox_oldest_age_s = 301;
	CHECK_INT(tlbot_metrics_health(&s, 90, 300, why, sizeof(why)), ==, 1);
	CHECK_STR(why, "outbox not draining: 7 rows waiting, the oldest for 301 s (limit 300 s)");
	s.outbox_depth = -1;
	CHECK_INT(tlbot_metrics_health(&s, 90, 300, why, sizeof(why)), ==, 1);
	CHECK_STR(why, "database not readable");
}

static void
count_report(int line, const char *msg, void *arg)
{
	(void)line;
	(void)msg;
	(*(int *)arg)++;
}

/* Problems a YAML snippet has (the operations keys). */
static int
problems(const char *yaml)
{
	struct tlbot_config c;
	int n = 0;

	tlbot_config_init(&c);
	tlbot_config_load_string(&c, yaml, strlen(yaml), count_report, &n);
	tlbot_config_release(&c);
	return n;
}

TEST(config_keys)
{
	struct tlbot_config c;
	int n = 0;
	const char *y = "metrics_listen: \"127.0.0.1:9464\"\nlog_format: json\nretention_days: 90\n"
	                "health_max_sync_age_s: 120\n";

	tlbot_config_init(&c);
	CHECK(c.metrics_listen == NULL); /* off by default */
	CHECK_STR(c.log_format, "text");
	CHECK_INT(c.retention_days, ==, 0); /* keep */
	CHECK_INT(c.health_max_sync_age_s, ==, 90);
	CHECK_INT(c.health_max_outbox_age_s, ==, 300);
	tlbot_config_load_string(&c, y, strlen(y), count_report, &n);
	CHECK_INT(n, ==, 0);
	CHECK_STR(c.metrics_listen, "127.0.0.1:9464");
	CHECK_STR(c.log_format, "json");
	CHECK_INT(c.retention_days, ==, 90);
	CHECK_INT(c.health_max_sync_age_s, ==, 120);
	tlbot_config_release(&c);
	CHECK_INT(problems("metrics_listen: 9464\n"), ==, 0);
	CHECK_INT(problems("metrics_listen: \"[::1]:9464\"\n"), ==, 0);
	CHECK_INT(problems("metrics_listen: \"0.0.0.0:9464\"\n"), ==, 0);
	CHECK_INT(problems("metrics_listen: abc\n"), ==, 1);
	CHECK_INT(problems("metrics_listen: \"host:70000\"\n"), ==, 1);
	CHECK_INT(problems("metrics_listen: \":9464\"\n"), ==, 1);
	CHECK_INT(problems("log_format: xml\n"), ==, 1);
	CHECK_INT(problems("retention_days: -1\n"), ==, 1);
	CHECK_INT(problems("health_max_outbox_age_s: 1\n"), ==, 1);
}

static const struct tap_test tests[] = {
        TEST_ENTRY(config_keys),
        TEST_ENTRY(threads_add_up),
        TEST_ENTRY(families_and_labels),
        TEST_ENTRY(health),
        TEST_END,
};
TAP_MAIN(tests)
