/* tlbot: a Matrix bot for test-and-learn teams. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tlbot/clock.h"
#include "tlbot/command.h"
#include "tlbot/config.h"
#include "tlbot/daemon.h"
#include "tlbot/holidays.h"
#include "tlbot/log.h"
#include "tlbot/matrix.h"
#include "tlbot/metrics.h"
#include "tlbot/metrics_http.h"
#include "tlbot/ws.h"

static volatile sig_atomic_t stopping;

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: tlbot [-c FILE] [--check-config] [--help] [--version]\n"
		"\n"
		"A Matrix bot for test-and-learn teams: challenges, experiments,\n"
		"stand-ups and reminders, answered in the room.\n"
		"\n"
		"  -c, --config FILE   read the YAML configuration FILE (the TLBOT_*\n"
		"                      environment variables override it; without -c the\n"
		"                      environment alone configures the bot)\n"
		"  -n, --check-config  check the configuration, report every problem\n"
		"                      with its line number, and exit (0 when valid)\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"See config/tlbot.example.yaml for every setting.\n");
}

struct report_ctx {
	const char *file;
	int count;
};

static void
report(int line, const char *msg, void *arg)
{
	struct report_ctx *rc = arg;

	rc->count++;
	if (line > 0)
		fprintf(stderr, "%s:%d: %s\n", rc->file ? rc->file : "config", line, msg);
	else
		fprintf(stderr, "%s: %s\n", rc->file ? rc->file : "environment", msg);
}

/* Warn when a config file holding secrets can be read by other users. */
static void
check_permissions(const char *path, const struct tlbot_config *c)
{
	struct stat sb;

	if (path && stat(path, &sb) == 0 && (sb.st_mode & 0044) &&
	    (c->password || c->access_token)) {
		log_warnx("%s is readable by other users and holds a secret: chmod 600 it, or move "
			  "the secret to access_token_file / TLBOT_ACCESS_TOKEN", path);
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct tlbot_config cfg;
	struct tlbot_daemon d;
	struct report_ctx rep = { NULL, 0 };
	const char *config_path = NULL;
	enum tlbot_log_level lvl;
	struct sigaction sa;
	pthread_t worker, housekeeper;
	struct tlbot_metrics_server *metrics = NULL;
	int ch, check_only = 0, problems = 0;

	while ((ch = getopt_long(argc, argv, "c:nhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': config_path = optarg; break;
		case 'n': check_only = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("tlbot %s\n", TLBOT_VERSION); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tlbot: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 64;
	}

	tlbot_config_init(&cfg);
	if (config_path) {
		rep.file = config_path;
		problems += tlbot_config_load_file(&cfg, config_path, report, &rep) != 0;
	}
	rep.file = NULL;
	problems += tlbot_config_load_env(&cfg, NULL, report, &rep) != 0;
	rep.file = config_path;
	problems += tlbot_config_finish(&cfg, report, &rep) != 0;
	if (check_only) {
		if (rep.count == 0)
			printf("%s: configuration OK\n", config_path ? config_path : "environment");
		else
			fprintf(stderr, "%d problem%s found\n", rep.count, rep.count == 1 ? "" : "s");
		tlbot_config_release(&cfg);
		return rep.count == 0 ? 0 : 1;
	}
	if (rep.count > 0 || problems) {
		fprintf(stderr, "tlbot: the configuration has %d problem%s (see above); "
			"`tlbot --check-config -c FILE` checks it\n", rep.count, rep.count == 1 ? "" : "s");
		tlbot_config_release(&cfg);
		return 1;
	}
	if (tlbot_log_parse_level(cfg.log_level, &lvl) == 0)
		tlbot_log_set_level(lvl);
	tlbot_log_set_json(cfg.log_format && strcmp(cfg.log_format, "json") == 0);
	tlbot_log_add_secret(cfg.password);
	tlbot_log_add_secret(cfg.access_token);
	check_permissions(config_path, &cfg);
	if (getenv("TLBOT_TEST_CLOCK_FILE")) {
		tlbot_clock_set_override(getenv("TLBOT_TEST_CLOCK_FILE"));
		log_warnx("test clock override active (TLBOT_TEST_CLOCK_FILE): for tests only");
	}
	srandom((unsigned)(tlbot_clock_mono_ms() ^ getpid()));

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&d, 0, sizeof(d));
	d.cfg = &cfg;
	d.stop = &stopping;
	pthread_mutex_init(&d.lock, NULL);
	pthread_cond_init(&d.wake, NULL);
	if (tlbot_http_global_init() != 0)
		fatalx("cannot initialise libcurl");
	tlbot_http_set_abort_flag(&stopping);
	log_info("tlbot %s starting (database %s, transport %s)", TLBOT_VERSION, cfg.database,
		 cfg.transport);

	{
		char cache[4200];

		tlbot_holidays_cache_for(cfg.database, cache, sizeof(cache));
		tlbot_holidays_set_cache_path(cache);
	}
	{
		mode_t old = umask(077); /* the database holds the access token */
		int rc = tlbot_store_open(&d.st, cfg.database, tlbot_command_schemas());

		umask(old);
		if (rc != 0)
			fatalx("cannot open the database %s (see above)", cfg.database);
	}
	tlbot_metrics_init();
	if (tlbot_metrics_server_start(&cfg, &metrics) != 0)
		fatalx("cannot start the metrics listener (metrics_listen: %s)", cfg.metrics_listen);
	while (tlbot_mx_discover(cfg.homeserver, cfg.ca_file, &d.base_url) != TLBOT_OK) {
		log_warnx("cannot resolve homeserver %s yet; retrying in 5 s", cfg.homeserver);
		if (tlbot_daemon_sleep(&d, 5000))
			goto done;
	}
	if (tlbot_http_init(&d.http, d.base_url, cfg.ca_file) != 0)
		fatalx("cannot initialise HTTP");
	if (tlbot_daemon_login(&d) != 0) {
		d.exit_code = stopping ? 0 : 2;
		goto done;
	}
	free(d.user_id);
	d.user_id = strdup(cfg.user_id);
	/* Transport selection: websocket and auto run the WebSocket stream
	 * (ws.c, which falls back to /sync in auto mode); sync runs /sync. */
	if (strcmp(cfg.transport, "sync") != 0 && (d.ws = tlbot_ws_new(&d)) == NULL) {
		d.exit_code = 1;
		goto done;
	}
	if (pthread_create(&worker, NULL, tlbot_worker_main, &d) != 0)
		fatal("cannot start the worker thread");
	if (pthread_create(&housekeeper, NULL, tlbot_housekeeping_main, &d) != 0)
		fatal("cannot start the housekeeping thread");
	if (d.ws)
		tlbot_ws_transport_run(&d);
	else
		tlbot_sync_run(&d);
	stopping = 1;
	tlbot_daemon_wake(&d);
	pthread_join(worker, NULL);
	pthread_join(housekeeper, NULL);
	log_info("stopped cleanly");
done:
	tlbot_metrics_server_stop(metrics);
	tlbot_ws_free(d.ws);
	tlbot_http_release(&d.http);
	tlbot_store_close(&d.st);
	free(d.base_url);
	free(d.user_id);
	free(d.device_id);
	free(d.token);
	free(d.filter);
	tlbot_config_release(&cfg);
	tlbot_http_global_cleanup();
	return d.exit_code;
}
