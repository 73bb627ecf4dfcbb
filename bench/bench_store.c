/* bench_store: latency of the listing and summary commands at scale.
 *
 * A real file database gets 10,000 challenges and 100,000 experiments (a
 * tenth of them in the measured room, the rest over 99 other rooms): one
 * challenge and one experiment are made through the commands themselves,
 * then copied row by row in SQL (every column of the template, with ids,
 * rooms, titles, owners and statuses varied; their history rows too, spread
 * over a year), so the rows are what the commands write. Then each measured command runs as the daemon runs it: a
 * one-event batch through tlbot_router_apply(), including its transaction
 * and the reply in the outbox.
 *
 *	bench_store [--quick] [--dir DIR]
 *
 * Prints one JSON object on stdout, progress on stderr. A command family
 * that is not in the build is reported under "pending".
 */
#include <jansson.h>
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
#define NROOMS 100
#define ROOM0 "!room0000:bench"
#define ME "@user00:bench"

static struct tlbot_store st;
static struct tlbot_router rt;
static long seq;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
room_id(char *out, size_t len, int r)
{
	snprintf(out, len, "!room%04d:bench", r);
}

static json_t *
event(const char *sender, const char *body)
{
	char id[64];

	snprintf(id, sizeof(id), "$st%ld:bench", ++seq);
	return json_pack("{s:s, s:s, s:s, s:I, s:{s:s, s:s}}", "type", "m.room.message",
			 "sender", sender, "event_id", id, "origin_server_ts",
			 (json_int_t)time(NULL) * 1000, "content", "msgtype", "m.text", "body", body);
}

static int
apply(json_t *batch)
{
	int rc = tlbot_router_apply(&rt, batch, "s0");

	json_decref(batch);
	return rc;
}

/* Join the rooms (users_default 50: everyone may write). */
static int
join_rooms(void)
{
	json_t *join = json_object();
	char rid[64];
	int r;

	for (r = 0; r < NROOMS; r++) {
		room_id(rid, sizeof(rid), r);
		json_object_set_new(join, rid, json_pack(
			"{s:{s:[{s:s, s:s, s:s, s:s, s:I, s:{s:{s:i}, s:i}}]},"
			" s:{s:[{s:s, s:s, s:s, s:s, s:I, s:{s:s}}]}}",
			"state", "events", "type", "m.room.power_levels", "state_key", "", "sender", ME,
			"event_id", "$pl", "origin_server_ts", (json_int_t)1, "content", "users", ME, 100,
			"users_default", 50,
			"timeline", "events", "type", "m.room.member", "state_key", BOT, "sender", BOT,
			"event_id", "$join", "origin_server_ts", (json_int_t)1, "content", "membership",
			"join"));
	}
	/* the same ids in every room are fine: handled once, state stored per room */
	return apply(json_pack("{s:s, s:{s:o}}", "next_batch", "s1", "rooms", "join", join));
}

/* Run one command in room as sender; the reply body into reply (may be
 * NULL). Returns the latency in ms, or -1. */
static double
run(const char *room, const char *sender, const char *body, char *reply, size_t replylen)
{
	json_t *batch = json_pack("{s:s, s:{s:{s:{s:{s:[o]}}}}}", "next_batch", "s2", "rooms",
				  "join", room, "timeline", "events", event(sender, body));
	sqlite3_stmt *s;
	double t0, t1;

	t0 = now_ms();
	if (apply(batch) != 0)
		return -1;
	t1 = now_ms();
	if (reply) {
		reply[0] = '\0';
		if (sqlite3_prepare_v2(st.db, "SELECT json_extract(content, '$.body') FROM outbox"
				       " ORDER BY id DESC LIMIT 1", -1, &s, NULL) == SQLITE_OK) {
			if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
				snprintf(reply, replylen, "%s", (const char *)sqlite3_column_text(s, 0));
			sqlite3_finalize(s);
		}
	}
	return t1 - t0;
}

/* The columns of table except id, comma-separated, into out. 0 or -1. */
static int
columns(const char *table, char *out, size_t len)
{
	char sql[128];
	sqlite3_stmt *s;
	size_t n = 0;

	snprintf(sql, sizeof(sql), "SELECT name FROM pragma_table_info('%s')", table);
	out[0] = '\0';
	if (sqlite3_prepare_v2(st.db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *c = (const char *)sqlite3_column_text(s, 0);

		if (strcmp(c, "id") == 0)
			continue;
		n += (size_t)snprintf(out + n, len - n, "%s%s", n ? "," : "", c);
	}
	sqlite3_finalize(s);
	return n > 0 && n < len ? 0 : -1;
}

/* The SELECT expression for column c of copy number i (SQL "i"). */
static void
column_expr(const char *table, const char *c, char *out, size_t len)
{
	int exp = strcmp(table, "experiments") == 0;

	/* room: a tenth in room 0, the rest over the others (by challenge for
	 * experiments, so an experiment is in its challenge's room) */
	if (strcmp(c, "room_id") == 0 && !exp)
		snprintf(out, len, "printf('!room%%04d:bench', CASE WHEN i %% 10 = 0 THEN 0"
			 " ELSE 1 + i %% 99 END)");
	else if (strcmp(c, "room_id") == 0)
		snprintf(out, len, "(SELECT room_id FROM challenges WHERE id = 1 + i %% 10000)");
	else if (strcmp(c, "challenge_id") == 0)
		snprintf(out, len, "1 + i %% 10000");
	else if (strcmp(c, "title") == 0)
		snprintf(out, len, "'%s ' || i", exp ? "Experiment" : "Challenge");
	else if (strcmp(c, "status") == 0 && exp)
		snprintf(out, len, "CASE i %% 4 WHEN 0 THEN 'proposed' WHEN 1 THEN 'running'"
			 " WHEN 2 THEN 'concluded' ELSE 'abandoned' END");
	else if (strcmp(c, "status") == 0)
		snprintf(out, len, "CASE (i / 10) %% 5 WHEN 0 THEN 'open' WHEN 1 THEN 'active' WHEN 2"
			 " THEN 'paused' WHEN 3 THEN 'done' ELSE 'dropped' END");
	else if (strcmp(c, "owner") == 0 || strcmp(c, "lead") == 0 || strcmp(c, "created_by") == 0)
		snprintf(out, len, "printf('@user%%02d:bench', i %% 20)");
	else if (strcmp(c, "event_id") == 0)
		snprintf(out, len, "printf('$%s%%d:bench', i)", exp ? "e" : "c");
	else
		snprintf(out, len, "t.%s", c);
}

/* Copy row 1 of table into ids 2..n. Returns 0 or -1. */
static int
copy_rows(const char *table, long n)
{
	char cols[2048], sel[8192], expr[256], *sql;
	char *save = NULL, *c, buf[2048];
	size_t k = 0;
	int rc;

	if (columns(table, cols, sizeof(cols)) != 0)
		return -1;
	snprintf(buf, sizeof(buf), "%s", cols);
	for (c = strtok_r(buf, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
		column_expr(table, c, expr, sizeof(expr));
		k += (size_t)snprintf(sel + k, sizeof(sel) - k, "%s%s", k ? ", " : "", expr);
	}
	sql = sqlite3_mprintf("WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n"
			      " WHERE i < %ld) INSERT INTO %s(id, %s) SELECT i, %s FROM n, %s t"
			      " WHERE t.id = 1", n, table, cols, sel, table);
	rc = tlbot_store_exec(&st, "BEGIN") || tlbot_store_exec(&st, sql) ||
	     tlbot_store_exec(&st, "COMMIT");
	sqlite3_free(sql);
	return rc ? -1 : 0;
}

/* Give each copy 2..n of the parent row 1 the history rows of row 1:
 * fk = i, the copy's room, times spread over the past year. 0 or -1. */
static int
copy_history(const char *table, const char *fk, const char *parent, long n, const char *kind)
{
	char cols[2048], sel[8192], buf[2048], *save = NULL, *c, *sql;
	size_t k = 0;
	int rc;

	if (columns(table, cols, sizeof(cols)) != 0)
		return -1;
	snprintf(buf, sizeof(buf), "%s", cols);
	for (c = strtok_r(buf, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
		char expr[256];

		if (strcmp(c, fk) == 0)
			snprintf(expr, sizeof(expr), "i");
		else if (strcmp(c, "room_id") == 0)
			snprintf(expr, sizeof(expr), "(SELECT room_id FROM %s WHERE id = i)", parent);
		else if (strcmp(c, "at") == 0)
			snprintf(expr, sizeof(expr), "t.at - (i %% 365) * 86400 - i %% 86400");
		else
			snprintf(expr, sizeof(expr), "t.%s", c);
		k += (size_t)snprintf(sel + k, sizeof(sel) - k, "%s%s", k ? ", " : "", expr);
	}
	sql = sqlite3_mprintf("WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n"
			      " WHERE i < %ld) INSERT INTO %s(%s) SELECT %s FROM n, %s t"
			      " WHERE t.%s = 1 AND (%Q IS NULL OR t.kind = %Q)", n, table, cols, sel, table,
			      fk, kind, kind);
	rc = tlbot_store_exec(&st, "BEGIN") || tlbot_store_exec(&st, sql) ||
	     tlbot_store_exec(&st, "COMMIT");
	sqlite3_free(sql);
	return rc ? -1 : 0;
}

static int
table_exists(const char *name)
{
	sqlite3_stmt *s;
	int yes = 0;

	if (sqlite3_prepare_v2(st.db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
			       -1, &s, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	yes = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return yes;
}

static long
count(const char *sql)
{
	sqlite3_stmt *s;
	long v = -1;

	if (sqlite3_prepare_v2(st.db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int nq;

/* Measure a command reps times; print its JSON entry. Returns p50 or -1. */
static double
measure(const char *room, const char *sender, const char *cmd, int reps, const char *note)
{
	double lat[64], p50;
	char reply[4096], first[4096];
	int i, ok = 1;
	size_t lines = 0;
	const char *p;

	if (reps > 64)
		reps = 64;
	for (i = 0; i < reps; i++) {
		lat[i] = run(room, sender, cmd, reply, sizeof(reply));
		if (lat[i] < 0)
			return -1;
		if (i == 0)
			snprintf(first, sizeof(first), "%s", reply);
	}
	if (strncmp(first, "unknown command", 15) == 0 || strstr(first, "is not a subcommand"))
		ok = 0;
	for (p = first; *p; p++)
		lines += *p == '\n';
	qsort(lat, (size_t)reps, sizeof(double), cmp_double);
	p50 = lat[reps / 2];
	{
		json_t *o = json_pack("{s:s, s:i, s:f, s:f, s:f, s:i, s:b, s:s, s:s}", "command", cmd,
				      "reps", reps, "p50_ms", p50, "min_ms", lat[0], "max_ms",
				      lat[reps - 1], "reply_lines", (int)lines + 1, "ok", ok,
				      "note", note, "reply_head", first);
		char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

		/* keep the reply head short */
		if (o && strlen(first) > 160) {
			first[160] = '\0';
			json_object_set_new(o, "reply_head", json_string(first));
			free(text);
			text = json_dumps(o, JSON_COMPACT);
		}
		printf("%s\n    %s", nq++ ? "," : "", text ? text : "{}");
		free(text);
		json_decref(o);
	}
	fprintf(stderr, "bench_store: %-40s p50 %7.3f ms, max %7.3f ms (%zu-line reply)%s\n", cmd,
		p50, lat[reps - 1], lines + 1, ok ? "" : " NOT AVAILABLE");
	return ok ? p50 : -1;
}

int
main(int argc, char **argv)
{
	struct tlbot_config cfg;
	char dir[512] = "", path[600], reply[4096];
	long nchal = 10000, nexp = 100000;
	int quick = 0, reps, i, made_dir = 0, rc = 1, have_ch, have_exp, have_su;
	double t0, worst = -1, v;
	const char *pending[8];
	int npending = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			snprintf(dir, sizeof(dir), "%s", argv[++i]);
		else {
			fprintf(stderr, "usage: bench_store [--quick] [--dir DIR]\n");
			return 64;
		}
	}
	reps = quick ? 9 : 31;
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/tlbot-bench-store-XXXXXX");
		if (mkdtemp(dir) == NULL)
			return 1;
		made_dir = 1;
	}
	snprintf(path, sizeof(path), "%s/store.db", dir);
	unlink(path);
	tlbot_log_set_level(TLBOT_LOG_ERROR);
	tlbot_config_init(&cfg);
	cfg.user_id = strdup(BOT);
	cfg.rate_limit_per_min = 100000;
	if (tlbot_store_open(&st, path, tlbot_command_schemas()) != 0)
		return 1;
	tlbot_router_init(&rt, &cfg, BOT, &st);
	if (join_rooms() != 0)
		goto out;

	have_ch = table_exists("challenges");
	have_exp = table_exists("experiments");
	have_su = table_exists("standup_rooms");
	t0 = now_ms();
	if (have_ch) {
		run(ROOM0, ME, "!challenge new \"Template challenge\" --region Sheffield --due +12w",
		    reply, sizeof(reply));
		if (count("SELECT COUNT(*) FROM challenges") != 1 || copy_rows("challenges", nchal) != 0 ||
		    copy_history("history", "record_id", "challenges", nchal, "C") != 0) {
			fprintf(stderr, "bench_store: could not make the challenges (reply: %s)\n", reply);
			have_ch = 0;
		}
	}
	if (have_ch && have_exp) {
		run(ROOM0, ME, "!exp new C-1 \"Template experiment\" \"We believe a text the day before"
		    " will result in fewer missed visits. We will know when missed visits fall below"
		    " 10%.\" --metric \"missed visits\" --baseline 18 --target 10 --unit %",
		    reply, sizeof(reply));
		if (count("SELECT COUNT(*) FROM experiments") != 1 ||
		    copy_rows("experiments", nexp) != 0 ||
		    copy_history("history", "record_id", "experiments", nexp, "E") != 0) {
			fprintf(stderr, "bench_store: could not make the experiments (reply: %s)\n",
				reply);
			have_exp = 0;
		}
	} else {
		have_exp = 0;
	}
	tlbot_store_exec(&st, "UPDATE counters SET value = (SELECT MAX(id) FROM challenges)"
			 " WHERE name LIKE 'chall%'");
	if (have_exp)
		tlbot_store_exec(&st, "UPDATE counters SET value = (SELECT MAX(id) FROM experiments)"
				 " WHERE name LIKE 'exp%'");
	tlbot_store_exec(&st, "ANALYZE");
	fprintf(stderr, "bench_store: %ld challenges, %ld experiments (%ld in the measured room), "
		"%ld + %ld history rows, made in %.1f s\n", have_ch ? count("SELECT COUNT(*) FROM challenges") : 0,
		have_exp ? count("SELECT COUNT(*) FROM experiments") : 0,
		have_exp ? count("SELECT COUNT(*) FROM experiments WHERE room_id = '" ROOM0 "'") : 0,
		count("SELECT COUNT(*) FROM history WHERE kind = 'C'"),
		count("SELECT COUNT(*) FROM history WHERE kind = 'E'"),
		(now_ms() - t0) / 1e3);

	printf("{\"challenges\": %ld, \"experiments\": %ld, \"rooms\": %d, \"measured_room\": "
	       "{\"challenges\": %ld, \"experiments\": %ld},\n  \"queries\": [",
	       have_ch ? count("SELECT COUNT(*) FROM challenges") : 0,
	       have_exp ? count("SELECT COUNT(*) FROM experiments") : 0, NROOMS,
	       have_ch ? count("SELECT COUNT(*) FROM challenges WHERE room_id = '" ROOM0 "'") : 0,
	       have_exp ? count("SELECT COUNT(*) FROM experiments WHERE room_id = '" ROOM0 "'") : 0);
#define HEAD(x)                                            \
	do {                                               \
		v = (x);                                   \
		if (v > worst)                             \
			worst = v;                         \
	} while (0)
	if (have_exp) {
		HEAD(measure(ROOM0, ME, "!exp list", reps, "headline"));
		measure(ROOM0, ME, "!exp list --page 50", reps, "");
		measure(ROOM0, ME, "!exp list --status running", reps, "");
		measure(ROOM0, ME, "!exp list --mine", reps, "");
		measure(ROOM0, ME, "!exp list --challenge C-10", reps, "");
		measure(ROOM0, ME, "!exp show E-50000", reps, "");
	} else {
		pending[npending++] = "!exp list (experiment family not in this build)";
	}
	if (have_ch) {
		HEAD(measure(ROOM0, ME, "!challenge list", reps, "headline"));
		measure(ROOM0, ME, "!challenge list --all-rooms", reps, "");
		measure(ROOM0, ME, "!challenge list --mine", reps, "");
		measure(ROOM0, ME, "!challenge show C-10", reps, "");
	} else {
		pending[npending++] = "!challenge list (challenge family not in this build)";
	}
	if (have_su) {
		char who[64], ans[256];

		run(ROOM0, ME, "!standup schedule 09:00 Europe/London", reply, sizeof(reply));
		for (i = 0; i < 12; i++) {
			snprintf(who, sizeof(who), "@user%02d:bench", i);
			snprintf(ans, sizeof(ans), "!standup y: worked on E-%d t: C-%d and E-%d b: none",
				 i * 100 + 1, i + 1, i * 100 + 2);
			run(ROOM0, who, ans, NULL, 0);
		}
		/* the first summary in a room covers its whole history (here a
		 * year of it); after that, only what changed since the last
		 * scheduled summary: yesterday's, the steady state (headline) */
		measure(ROOM0, ME, "!standup summary", reps, "first summary: a year of history");
		{
			char *sql = sqlite3_mprintf("INSERT INTO standup_summaries(room_id, date, at,"
						    " kind, text) VALUES ('%q', date('now', '-1 day'),"
						    " %lld, 'scheduled', 'yesterday')", ROOM0,
						    (long long)time(NULL) - 86400);

			tlbot_store_exec(&st, sql);
			sqlite3_free(sql);
		}
		v = measure(ROOM0, ME, "!standup summary", reps,
			    "headline: last scheduled summary yesterday");
		if (v < 0)
			pending[npending++] = "!standup summary (not available in this build)";
		HEAD(v);
	} else {
		pending[npending++] = "!standup summary (stand-up family not in this build)";
	}
	printf("\n  ],\n  \"pending\": [");
	for (i = 0; i < npending; i++)
		printf("%s\"%s\"", i ? ", " : "", pending[i]);
	printf("],\n  \"list_query_ms_100k\": ");
	if (worst >= 0)
		printf("%.3f", worst);
	else
		printf("null");
	printf(",\n  \"list_query_note\": \"the slowest p50 of !exp list, !challenge list and "
	       "!standup summary (each a one-event batch incl. its transaction)\"}\n");
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
