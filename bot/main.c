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
#include "tlbot/crypto.h"
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

/* The one option table: getopt, --help and the man page tlbot(8) (--man,
 * run by the build) are all generated from it. */
static const struct option_doc {
	const char *name;
	int ch;
	const char *arg;  /* NULL: no argument */
	const char *help; /* one sentence; the help wraps it */
} options[] = {
	{ "config", 'c', "FILE",
	  "read the YAML configuration FILE (the TLBOT_* environment variables override it; "
	  "without -c the environment alone configures the bot)" },
	{ "check-config", 'n', NULL,
	  "check the configuration, report every problem with its line number, and exit "
	  "(0 when valid)" },
	{ "help", 'h', NULL, "show this help" },
	{ "version", 'V', NULL, "show the version" },
};
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

static const char summary[] = "A Matrix bot for test-and-learn teams: challenges, experiments, "
			      "stand-ups and reminders, answered in the room.";

/* Print text wrapped at width, every line indented by indent (the first
 * after first columns already used). */
static void
wrap(FILE *f, const char *text, int indent, int first, int width)
{
	int col = first;

	while (*text) {
		const char *sp = strchr(text, ' ');
		int n = sp ? (int)(sp - text) : (int)strlen(text);

		if (col > indent && col + 1 + n > width) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', f);
			col++;
		} else if (col < indent) {
			fprintf(f, "%*s", indent - col, "");
			col = indent;
		}
		fprintf(f, "%.*s", n, text);
		col += n;
		text += n;
		while (*text == ' ')
			text++;
	}
	fputc('\n', f);
}

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: tlbot");
	for (i = 0; i < NOPTIONS; i++) {
		if (options[i].arg)
			fprintf(f, " [-%c %s]", options[i].ch, options[i].arg);
		else
			fprintf(f, " [--%s]", options[i].name);
	}
	fprintf(f, "\n\n");
	wrap(f, summary, 0, 0, 72);
	fprintf(f, "\n");
	for (i = 0; i < NOPTIONS; i++) {
		char head[64];
		int n = snprintf(head, sizeof(head), "  -%c, --%s%s%s", options[i].ch, options[i].name,
				 options[i].arg ? " " : "", options[i].arg ? options[i].arg : "");

		fputs(head, f);
		wrap(f, options[i].help, 22, n, 76);
	}
	fprintf(f, "\nSee config/tlbot.example.yaml for every setting.\n");
}

/* roff-escape s: backslashes, leading dots and quotes, hyphens. */
static void
roff(FILE *f, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", f);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", f);
		else if (*s == '-')
			fputs("\\-", f);
		else
			fputc(*s, f);
	}
}

/* The man page tlbot(8), from the same table (the build writes it). */
static void
manpage(FILE *f)
{
	size_t i;

	fprintf(f, ".TH TLBOT 8 \"\" \"tlbot %s\" \"System Administration\"\n", TLBOT_VERSION);
	fprintf(f, ".SH NAME\ntlbot \\- a Matrix bot for test\\-and\\-learn teams\n");
	fprintf(f, ".SH SYNOPSIS\n.B tlbot\n");
	for (i = 0; i < NOPTIONS; i++) {
		fprintf(f, "[\\fB\\-%c\\fR", options[i].ch);
		if (options[i].arg)
			fprintf(f, " \\fI%s\\fR", options[i].arg);
		fprintf(f, "]\n");
	}
	fprintf(f, ".SH DESCRIPTION\n");
	roff(f, summary);
	fprintf(f, "\nIt reads its configuration, logs in to the homeserver, and answers commands "
		   "such as \\fB!help\\fR in the rooms it is invited to; everything it records is "
		   "kept in one SQLite database.\n");
	fprintf(f, ".SH OPTIONS\n");
	for (i = 0; i < NOPTIONS; i++) {
		fprintf(f, ".TP\n\\fB\\-%c\\fR, \\fB\\-\\-", options[i].ch);
		roff(f, options[i].name);
		fprintf(f, "\\fR");
		if (options[i].arg)
			fprintf(f, " \\fI%s\\fR", options[i].arg);
		fprintf(f, "\n");
		roff(f, options[i].help);
		fprintf(f, ".\n");
	}
	fprintf(f, ".SH ENVIRONMENT\n"
		   "Every configuration key can be given as \\fBTLBOT_\\fR\\fIKEY\\fR (upper "
		   "case; lists comma\\-separated), which overrides the file, e.g. "
		   "\\fBTLBOT_ACCESS_TOKEN_FILE\\fR, \\fBTLBOT_DATABASE\\fR, "
		   "\\fBTLBOT_METRICS_LISTEN\\fR.\n");
	fprintf(f, ".SH FILES\n"
		   ".TP\n/etc/tlbot/tlbot.yaml\nthe configuration (mode 0640, group tlbot); every key "
		   "is described in %s/tlbot.example.yaml\n"
		   ".TP\n/var/lib/tlbot/tlbot.db\nthe database (mode 0600): records, the outbox, "
		   "the access token\n"
		   ".TP\n%s/bank\\-holidays.json\nthe shipped GOV.UK bank holidays, refreshed daily "
		   "beside the database\n",
		TLBOT_DOCDIR, TLBOT_DATADIR);
	fprintf(f, ".SH SIGNALS\nSIGTERM and SIGINT stop the bot cleanly: what was committed "
		   "is kept and the outbox is sent after the next start.\n");
	fprintf(f, ".SH EXIT STATUS\n.TP\n0\nstopped cleanly, or \\fB\\-\\-check\\-config\\fR "
		   "found no problem\n.TP\n1\na configuration problem or a fatal error\n"
		   ".TP\n2\nthe homeserver rejected the credentials (restarting will not help)\n"
		   ".TP\n64\na wrong command line\n");
	fprintf(f, ".SH SEE ALSO\n\\fBtlbot\\-wsgateway \\-\\-help\\fR, "
		   "\\fBsystemctl\\fR(1); %s/data\\-protection.md\n",
		TLBOT_DOCDIR);
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

/* Read the command line. Returns -1 to go on (config_path and
 * check_only set), else the exit status (after --help, --version, --man
 * or a usage error). */
static int
parse_options(int argc, char **argv, const char **config_path, int *check_only)
{
	struct option opts[NOPTIONS + 2];
	char shortopts[2 * NOPTIONS + 1];
	size_t i, k = 0;
	int ch;

	for (i = 0; i < NOPTIONS; i++) {
		opts[i].name = options[i].name;
		opts[i].has_arg = options[i].arg ? required_argument : no_argument;
		opts[i].flag = NULL;
		opts[i].val = options[i].ch;
		shortopts[k++] = (char)options[i].ch;
		if (options[i].arg)
			shortopts[k++] = ':';
	}
	shortopts[k] = '\0';
	/* not in the table: writes the man page from it (the build runs it) */
	opts[NOPTIONS] = (struct option){ "man", no_argument, NULL, 'M' };
	opts[NOPTIONS + 1] = (struct option){ NULL, 0, NULL, 0 };
	while ((ch = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		switch (ch) {
		case 'M': manpage(stdout); return 0;
		case 'c': *config_path = optarg; break;
		case 'n': *check_only = 1; break;
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
	return -1;
}

/* Load the configuration (file, then environment) into cfg and check it.
 * Returns -1 to go on, else the exit status (--check-config's answer,
 * or 1 for a configuration with problems; cfg is then released). */
static int
load_config(struct tlbot_config *cfg, const char *config_path, int check_only)
{
	struct report_ctx rep = { NULL, 0 };
	int problems = 0;

	tlbot_config_init(cfg);
	if (config_path) {
		rep.file = config_path;
		problems += tlbot_config_load_file(cfg, config_path, report, &rep) != 0;
	}
	rep.file = NULL;
	problems += tlbot_config_load_env(cfg, NULL, report, &rep) != 0;
	rep.file = config_path;
	problems += tlbot_config_finish(cfg, report, &rep) != 0;
	if (check_only) {
		if (rep.count == 0)
			printf("%s: configuration OK\n", config_path ? config_path : "environment");
		else
			fprintf(stderr, "%d problem%s found\n", rep.count, rep.count == 1 ? "" : "s");
		tlbot_config_release(cfg);
		return rep.count == 0 ? 0 : 1;
	}
	if (rep.count > 0 || problems) {
		fprintf(stderr, "tlbot: the configuration has %d problem%s (see above); "
			"`tlbot --check-config -c FILE` checks it\n", rep.count, rep.count == 1 ? "" : "s");
		tlbot_config_release(cfg);
		return 1;
	}
	return -1;
}

/* Logging as configured (secrets masked), the file permission check, the
 * test clock, the random seed and the signal handlers. */
static void
setup_process(const struct tlbot_config *cfg, const char *config_path)
{
	enum tlbot_log_level lvl;
	struct sigaction sa;

	if (tlbot_log_parse_level(cfg->log_level, &lvl) == 0)
		tlbot_log_set_level(lvl);
	tlbot_log_set_json(cfg->log_format && strcmp(cfg->log_format, "json") == 0);
	tlbot_log_add_secret(cfg->password);
	tlbot_log_add_secret(cfg->access_token);
	check_permissions(config_path, cfg);
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
}

/* The bank-holiday cache beside the database, and the database itself
 * (created private: it holds the access token). */
static void
open_store(struct tlbot_daemon *d, const struct tlbot_config *cfg)
{
	char cache[4200];
	mode_t old;
	int rc;

	tlbot_holidays_cache_for(cfg->database, cache, sizeof(cache));
	tlbot_holidays_set_cache_path(cache);
	old = umask(077);
	rc = tlbot_store_open(&d->st, cfg->database, tlbot_command_schemas());
	umask(old);
	if (rc != 0)
		fatalx("cannot open the database %s (see above)", cfg->database);
}

/* Find the homeserver, log in, set up encryption and the transport, run
 * the worker and housekeeping threads beside the transport until a
 * signal stops them. Sets d->exit_code on the ways out that fail. */
static void
connect_and_run(struct tlbot_daemon *d, const struct tlbot_config *cfg)
{
	pthread_t worker, housekeeper;

	while (tlbot_mx_discover(cfg->homeserver, cfg->ca_file, &d->base_url) != TLBOT_OK) {
		log_warnx("cannot resolve homeserver %s yet; retrying in 5 s", cfg->homeserver);
		if (tlbot_daemon_sleep(d, 5000))
			return;
	}
	if (tlbot_http_init(&d->http, d->base_url, cfg->ca_file) != 0)
		fatalx("cannot initialise HTTP");
	if (tlbot_daemon_login(d) != 0) {
		d->exit_code = stopping ? 0 : 2;
		return;
	}
	free(d->user_id);
	d->user_id = strdup(cfg->user_id);
	if (strcmp(cfg->encryption, "on") == 0) {
		d->crypto = tlbot_crypto_new(cfg, &d->st, &d->http, d->user_id, d->device_id);
		if (d->crypto == NULL) {
			log_error("encryption: cannot set up the device keys (see above); set "
				  "encryption: off to run without end-to-end encryption");
			d->exit_code = 1;
			return;
		}
	} else {
		log_info("encryption: off (encryption: off): encrypted rooms are not read");
	}
	/* Transport selection: websocket and auto run the WebSocket stream
	 * (ws.c, which falls back to /sync in auto mode); sync runs /sync. */
	if (strcmp(cfg->transport, "sync") != 0 && (d->ws = tlbot_ws_new(d)) == NULL) {
		d->exit_code = 1;
		return;
	}
	if (pthread_create(&worker, NULL, tlbot_worker_main, d) != 0)
		fatal("cannot start the worker thread");
	if (pthread_create(&housekeeper, NULL, tlbot_housekeeping_main, d) != 0)
		fatal("cannot start the housekeeping thread");
	if (d->ws)
		tlbot_ws_transport_run(d);
	else
		tlbot_sync_run(d);
	stopping = 1;
	tlbot_daemon_wake(d);
	pthread_join(worker, NULL);
	pthread_join(housekeeper, NULL);
	log_info("stopped cleanly");
}

int
main(int argc, char **argv)
{
	struct tlbot_config cfg;
	struct tlbot_daemon d;
	const char *config_path = NULL;
	struct tlbot_metrics_server *metrics = NULL;
	int check_only = 0, rc;

	rc = parse_options(argc, argv, &config_path, &check_only);
	if (rc >= 0)
		return rc;
	rc = load_config(&cfg, config_path, check_only);
	if (rc >= 0)
		return rc;
	setup_process(&cfg, config_path);

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
	open_store(&d, &cfg);
	tlbot_metrics_init();
	if (tlbot_metrics_server_start(&cfg, &metrics) != 0)
		fatalx("cannot start the metrics listener (metrics_listen: %s)", cfg.metrics_listen);
	connect_and_run(&d, &cfg);

	tlbot_metrics_server_stop(metrics);
	tlbot_ws_free(d.ws);
	tlbot_crypto_free(d.crypto);
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
