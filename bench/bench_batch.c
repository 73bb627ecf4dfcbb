/* bench_batch: throughput of the batch path without a network.
 *
 * Synthetic /sync bodies (1 MB, 10 MB, and 10,000 events; a mix of
 * commands and chatter from several users in many rooms) are decoded with
 * jansson and applied with tlbot_router_apply() to a real file database,
 * exactly as the daemon does with a /sync answer: one transaction per batch
 * with the handled events, command effects, outbox rows and next_batch.
 * Also the latency of a batch holding one command (the bot's own share of
 * a command's round trip).
 *
 *	bench_batch [--quick] [--dir DIR] [--cmd TEXT]... [--setup-cmd TEXT]...
 *
 * --profile: one 1 MB batch and 200 one-command batches (for callgrind).
 * --cmd: command lines mixed into the chatter (default "!ping"); a command
 * text may contain %d, replaced by a sequence number. --setup-cmd: command
 * lines run once before measuring (e.g. to create E-1).
 * Prints one JSON object on stdout; progress on stderr. Never fails on a
 * time: the exit code is non-zero only when the batch path itself fails.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tlbot/command.h"
#include "tlbot/config.h"
#include "tlbot/log.h"
#include "tlbot/router.h"
#include "tlbot/store.h"

#define BOT "@tlbot:bench"
#define NUSERS 20
#define EVENTS_PER_ROOM 50 /* the bot's sync filter timeline limit */
#define MAX_CMDS 16

struct sbuf {
	char *p;
	size_t n, cap;
};

static void
sb_grow(struct sbuf *b, size_t more)
{
	if (b->n + more + 1 <= b->cap)
		return;
	while (b->n + more + 1 > b->cap)
		b->cap = b->cap ? b->cap * 2 : 1 << 16;
	b->p = realloc(b->p, b->cap);
	if (b->p == NULL) {
		fprintf(stderr, "bench_batch: out of memory\n");
		exit(2);
	}
}

static void __attribute__((format(printf, 2, 3)))
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	sb_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
	va_end(ap);
	b->n += (size_t)n;
}

/* A JSON string literal of s (ASCII plus quotes/backslashes only here). */
static void
sb_jstr(struct sbuf *b, const char *s)
{
	sb_grow(b, strlen(s) * 2 + 2);
	b->p[b->n++] = '"';
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			b->p[b->n++] = '\\';
		b->p[b->n++] = *s;
	}
	b->p[b->n++] = '"';
	b->p[b->n] = '\0';
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 88172645463325252ULL;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static const char *const words[] = {
	"the", "pilot", "housing", "families", "cost", "we", "tried", "a", "call", "with",
	"council", "budget", "temporary", "accommodation", "hub", "next", "week", "data",
	"shows", "fewer", "nights", "in", "B&B", "let's", "meet", "on", "Tuesday", "about",
	"referrals", "outcome", "\"quoted\"", "ok", "thanks", "done", "results", "look", "good",
};

static const char *cmds[MAX_CMDS] = { "!ping" };
static int ncmds = 1;
static const char *setup_cmds[MAX_CMDS];
static int nsetup;
static long evseq;

/* tmpl with its first "%d" replaced by seq. */
static void
cmd_text(char *out, size_t len, const char *tmpl, long seq)
{
	const char *d = strstr(tmpl, "%d");

	if (d == NULL)
		snprintf(out, len, "%s", tmpl);
	else
		snprintf(out, len, "%.*s%ld%s", (int)(d - tmpl), tmpl, seq, d + 2);
}

/* One chatter body of 40..400 bytes. */
static void
chatter(char *out, size_t len)
{
	size_t n = 0, want = 40 + rnd() % 360;

	out[0] = '\0';
	while (n < want && n + 32 < len) {
		const char *w = words[rnd() % (sizeof(words) / sizeof(words[0]))];

		n += (size_t)snprintf(out + n, len - n, "%s%s", n ? " " : "", w);
	}
}

static void
room_id(char *out, size_t len, int r)
{
	snprintf(out, len, "!room%04d:bench", r);
}

/* Append one m.room.message event (JSON) to b. */
static void
add_message(struct sbuf *b, const char *sender, const char *body)
{
	long id = ++evseq;

	sb_printf(b, "{\"type\":\"m.room.message\",\"sender\":\"%s\",\"event_id\":\"$ev%ld_%08x"
		  ":bench\",\"origin_server_ts\":%lld,\"unsigned\":{\"age\":%u},"
		  "\"content\":{\"msgtype\":\"m.text\",\"body\":",
		  sender, id, rnd(), (long long)time(NULL) * 1000, rnd() % 500);
	sb_jstr(b, body);
	sb_printf(b, "}}");
}

/* A sync body of nevents events (or, with nevents 0, of at least
 * min_bytes), EVENTS_PER_ROOM events per room, cmd_every-th event a
 * command. Returns the number of events and commands through out params. */
static char *
make_batch(long nevents, size_t min_bytes, int cmd_every, long *events_out, long *cmds_out,
	   size_t *len_out, int *rooms_out)
{
	static long batchno;
	struct sbuf b = { 0 };
	char text[512], rid[64], sender[64];
	long n = 0, ncmd = 0;
	int room = 0;

	sb_printf(&b, "{\"next_batch\":\"s%ld\",\"rooms\":{\"join\":{", ++batchno + 1000);
	while (nevents ? n < nevents : b.n < min_bytes) {
		int i;

		room_id(rid, sizeof(rid), room);
		sb_printf(&b, "%s\"%s\":{\"timeline\":{\"limited\":false,\"prev_batch\":\"p%ld\","
			  "\"events\":[", room ? "," : "", rid, batchno);
		for (i = 0; i < EVENTS_PER_ROOM && (nevents ? n < nevents : b.n < min_bytes); i++) {
			snprintf(sender, sizeof(sender), "@user%02u:bench", rnd() % NUSERS);
			if (cmd_every > 0 && (n % cmd_every) == cmd_every - 1) {
				cmd_text(text, sizeof(text), cmds[ncmd % ncmds], ncmd + 1);
				ncmd++;
			} else {
				chatter(text, sizeof(text));
			}
			if (i)
				sb_printf(&b, ",");
			add_message(&b, sender, text);
			n++;
		}
		sb_printf(&b, "]},\"state\":{\"events\":[]},\"account_data\":{\"events\":[]},"
			  "\"ephemeral\":{\"events\":[]},\"unread_notifications\":"
			  "{\"highlight_count\":0,\"notification_count\":0}}");
		room++;
	}
	sb_printf(&b, "}},\"account_data\":{\"events\":[]},\"presence\":{\"events\":[]}}");
	*events_out = n;
	*cmds_out = ncmd;
	*len_out = b.n;
	*rooms_out = room;
	return b.p;
}

/* The join batch: nrooms rooms with create, power levels, name and the
 * bot's own join in the timeline, so later batches are answered. */
static char *
make_join_batch(int nrooms)
{
	struct sbuf b = { 0 };
	char rid[64];
	int r;

	sb_printf(&b, "{\"next_batch\":\"s1\",\"rooms\":{\"join\":{");
	for (r = 0; r < nrooms; r++) {
		room_id(rid, sizeof(rid), r);
		sb_printf(&b, "%s\"%s\":{\"state\":{\"events\":["
			  "{\"type\":\"m.room.create\",\"state_key\":\"\",\"sender\":\"@user00:bench\","
			  "\"event_id\":\"$c%d:bench\",\"origin_server_ts\":1,\"content\":"
			  "{\"room_version\":\"10\",\"creator\":\"@user00:bench\"}},"
			  "{\"type\":\"m.room.power_levels\",\"state_key\":\"\",\"sender\":"
			  "\"@user00:bench\",\"event_id\":\"$p%d:bench\",\"origin_server_ts\":1,"
			  "\"content\":{\"users\":{\"@user00:bench\":100},\"users_default\":50}},"
			  "{\"type\":\"m.room.name\",\"state_key\":\"\",\"sender\":\"@user00:bench\","
			  "\"event_id\":\"$n%d:bench\",\"origin_server_ts\":1,\"content\":{\"name\":"
			  "\"team %d\"}}]},\"timeline\":{\"limited\":false,\"events\":["
			  "{\"type\":\"m.room.member\",\"state_key\":\"" BOT "\",\"sender\":\"" BOT "\","
			  "\"event_id\":\"$j%d:bench\",\"origin_server_ts\":1,\"content\":"
			  "{\"membership\":\"join\"}}]}}",
			  r ? "," : "", rid, r, r, r, r, r);
	}
	sb_printf(&b, "}}}");
	return b.p;
}

struct result {
	double parse_s, apply_s;
	size_t bytes;
	long events, cmds;
};

static int
run_batch(struct tlbot_router *rt, const char *text, size_t len, struct result *res)
{
	json_error_t jerr;
	double t0, t1, t2;
	json_t *root;
	int rc;

	t0 = now_s();
	root = json_loadb(text, len, 0, &jerr);
	t1 = now_s();
	if (root == NULL) {
		fprintf(stderr, "bench_batch: synthetic batch does not parse: %s (line %d)\n",
			jerr.text, jerr.line);
		return -1;
	}
	rc = tlbot_router_apply(rt, root, "s0");
	t2 = now_s();
	json_decref(root);
	if (rc != 0) {
		fprintf(stderr, "bench_batch: tlbot_router_apply failed\n");
		return -1;
	}
	res->parse_s = t1 - t0;
	res->apply_s = t2 - t1;
	res->bytes = len;
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double *v, int n, double p)
{
	int i = (int)(p / 100.0 * (n - 1) + 0.5);

	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* Run reps batches of one shape; print a JSON member for it. Uses the
 * median rep. Returns 0 or -1. */
static int
shape(struct tlbot_router *rt, const char *name, long nevents, size_t min_bytes, int reps,
      int cmd_every, int first, double *ev_rate_out, double *mb_rate_out)
{
	double tot[16], mb = 0, evs = 0;
	struct result res[16];
	int i, rooms = 0;

	if (reps > 16)
		reps = 16;
	for (i = 0; i < reps; i++) {
		size_t len;
		char *text = make_batch(nevents, min_bytes, cmd_every, &res[i].events, &res[i].cmds,
					&len, &rooms);

		if (run_batch(rt, text, len, &res[i]) != 0) {
			free(text);
			return -1;
		}
		free(text);
		tot[i] = res[i].parse_s + res[i].apply_s;
		fprintf(stderr, "bench_batch: %s rep %d: %.2f MB, %ld events (%ld commands) in %d "
			"rooms: parse %.1f ms, apply+commit %.1f ms\n", name, i + 1,
			(double)res[i].bytes / 1e6, res[i].events, res[i].cmds, rooms,
			res[i].parse_s * 1e3, res[i].apply_s * 1e3);
	}
	/* the median rep by total time */
	{
		double sorted[16];
		int m = 0;

		memcpy(sorted, tot, sizeof(double) * (size_t)reps);
		qsort(sorted, (size_t)reps, sizeof(double), cmp_double);
		for (i = 0; i < reps; i++)
			if (tot[i] == sorted[reps / 2])
				m = i;
		mb = (double)res[m].bytes / 1e6 / tot[m];
		evs = (double)res[m].events / tot[m];
		printf("%s\"%s\": {\"bytes\": %zu, \"events\": %ld, \"commands\": %ld, \"rooms\": %d, "
		       "\"reps\": %d, \"parse_ms\": %.3f, \"apply_commit_ms\": %.3f, \"total_ms\": %.3f, "
		       "\"mb_per_s\": %.1f, \"events_per_s\": %.0f, "
		       "\"apply_only_mb_per_s\": %.1f, \"apply_only_events_per_s\": %.0f}",
		       first ? "" : ",\n  ", name, res[m].bytes, res[m].events, res[m].cmds, rooms, reps,
		       res[m].parse_s * 1e3, res[m].apply_s * 1e3, tot[m] * 1e3, mb, evs,
		       (double)res[m].bytes / 1e6 / res[m].apply_s, (double)res[m].events / res[m].apply_s);
	}
	*ev_rate_out = evs;
	*mb_rate_out = mb;
	return 0;
}

/* Latency of a batch with a single command (parse + apply + commit). */
static int
single(struct tlbot_router *rt, int n)
{
	double *lat = calloc((size_t)n, sizeof(double));
	int i;

	if (lat == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		struct result res;
		long ev, cm;
		size_t len;
		int rooms;
		char *text = make_batch(1, 0, 1, &ev, &cm, &len, &rooms);

		if (run_batch(rt, text, len, &res) != 0) {
			free(text);
			free(lat);
			return -1;
		}
		free(text);
		lat[i] = (res.parse_s + res.apply_s) * 1e3;
	}
	qsort(lat, (size_t)n, sizeof(double), cmp_double);
	printf(",\n  \"one_command\": {\"n\": %d, \"command\": \"%s\", \"p50_ms\": %.4f, "
	       "\"p95_ms\": %.4f, \"p99_ms\": %.4f, \"max_ms\": %.4f}", n, cmds[0],
	       pct(lat, n, 50), pct(lat, n, 95), pct(lat, n, 99), lat[n - 1]);
	fprintf(stderr, "bench_batch: one-command batch: p50 %.3f ms, p99 %.3f ms\n",
		pct(lat, n, 50), pct(lat, n, 99));
	free(lat);
	return 0;
}

int
main(int argc, char **argv)
{
	struct tlbot_config cfg;
	struct tlbot_store st;
	struct tlbot_router rt;
	char dir[512] = "", path[600];
	double ev1, mb1, ev10, mb10, evk, mbk, best_mb, best_ev;
	int quick = 0, profile = 0, i, rc = 1, made_dir = 0, cmds_given = 0;
	char *join;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--profile") == 0)
			profile = 1;
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			snprintf(dir, sizeof(dir), "%s", argv[++i]);
		else if (strcmp(argv[i], "--cmd") == 0 && i + 1 < argc) {
			if (!cmds_given++)
				ncmds = 0;
			if (ncmds < MAX_CMDS)
				cmds[ncmds++] = argv[++i];
		} else if (strcmp(argv[i], "--setup-cmd") == 0 && i + 1 < argc) {
			if (nsetup < MAX_CMDS)
				setup_cmds[nsetup++] = argv[++i];
		} else {
			fprintf(stderr, "usage: bench_batch [--quick|--profile] [--dir DIR] [--cmd TEXT]... "
				"[--setup-cmd TEXT]...\n");
			return 64;
		}
	}
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/tlbot-bench-batch-XXXXXX");
		if (mkdtemp(dir) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		made_dir = 1;
	}
	snprintf(path, sizeof(path), "%s/batch.db", dir);
	unlink(path);
	tlbot_log_set_level(TLBOT_LOG_WARN);
	tlbot_config_init(&cfg);
	cfg.user_id = strdup(BOT);
	cfg.rate_limit_per_min = 100000; /* many commands from few users */
	if (tlbot_store_open(&st, path, tlbot_command_schemas()) != 0)
		return 1;
	tlbot_router_init(&rt, &cfg, BOT, &st);

	/* join 1000 rooms (10 MB needs ~700 at 50 events per room) */
	join = make_join_batch(1000);
	{
		struct result r;

		if (run_batch(&rt, join, strlen(join), &r) != 0) {
			free(join);
			goto out;
		}
	}
	free(join);
	for (i = 0; i < nsetup; i++) {
		const char *saved = cmds[0];
		long ev, cm;
		size_t len;
		int rooms;
		struct result r;
		char *text;

		cmds[0] = setup_cmds[i];
		text = make_batch(1, 0, 1, &ev, &cm, &len, &rooms);
		cmds[0] = saved;
		if (run_batch(&rt, text, len, &r) != 0) {
			free(text);
			goto out;
		}
		free(text);
	}

	printf("{\"database\": \"file (WAL, synchronous=NORMAL)\", \"command_every\": 10,\n  ");
	if (profile) {
		/* one 1 MB batch and 200 one-command batches: for valgrind */
		rc = shape(&rt, "batch_1mb", 0, 1000000, 1, 10, 1, &ev1, &mb1) != 0 ||
		     single(&rt, 200) != 0;
		printf("}\n");
		goto out;
	}
	if (shape(&rt, "batch_1mb", 0, 1000000, quick ? 3 : 7, 10, 1, &ev1, &mb1) != 0 ||
	    shape(&rt, "batch_10mb", 0, 10000000, quick ? 1 : 3, 10, 0, &ev10, &mb10) != 0 ||
	    shape(&rt, "batch_10k_events", 10000, 0, quick ? 1 : 3, 10, 0, &evk, &mbk) != 0 ||
	    single(&rt, quick ? 300 : 2000) != 0)
		goto out;
	/* headline figures: the 10 MB body for MB/s, the 10,000-event one for events/s */
	best_mb = mb10;
	best_ev = evk;
	printf(",\n  \"batch_mb_per_s\": %.1f, \"batch_events_per_s\": %.0f,\n"
	       "  \"router\": {\"batches\": %llu, \"events\": %llu, \"commands\": %llu, "
	       "\"replies\": %llu}}\n", best_mb, best_ev, (unsigned long long)rt.batches,
	       (unsigned long long)rt.events, (unsigned long long)rt.commands,
	       (unsigned long long)rt.replies);
	(void)ev1; (void)mb1; (void)ev10; (void)mbk;
	rc = 0;
out:
	tlbot_store_close(&st);
	tlbot_config_release(&cfg);
	if (made_dir) {
		char p2[700];

		unlink(path);
		snprintf(p2, sizeof(p2), "%s-wal", path);
		unlink(p2);
		snprintf(p2, sizeof(p2), "%s-shm", path);
		unlink(p2);
		rmdir(dir);
	}
	return rc;
}
