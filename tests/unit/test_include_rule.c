/* The layering rules (docs/architecture.md, docs/conventions.md habits 1
 * and 6), checked on the source text:
 *
 *   1. commands/ stays off the network and off the daemon's internals: it
 *      includes no transport, core or store header and no network or
 *      database library header, and calls no libcurl, libwebsockets,
 *      Matrix API (tlbot_mx_*) or HTTP (tlbot_http_*) function, and no
 *      SQLite function (sqlite3_*, SQLITE_*: the store is reached only
 *      through tlbot_db_* of command.h). What it may
 *      include from include/tlbot/ is the command API and the pure
 *      utilities listed below.
 *   2. The store stays off commands/: bot/store/ includes nothing from
 *      commands/ and never walks the command table (schema components are
 *      handed in by whoever opens the store). db.c implements the command
 *      API's store calls, so it alone may include command.h.
 *   3. Utilities stay utilities: bot/util/ includes no transport, core or
 *      store header.
 *
 * Comments are ignored. */
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srctree.h"
#include "tap.h"

/* include/tlbot headers commands/ may use, and why */
static const char *const command_headers[] = {
	"tlbot/command.h",    /* the command API */
	"tlbot/args.h",	      /* typed arguments (help walks the parameter tables) */
	"tlbot/buf.h",	      /* the capped buffer */
	"tlbot/export.h",     /* CSV/JSON/Markdown writers */
	"tlbot/holidays.h",   /* bank-holiday lookups (fetching is the daemon's) */
	"tlbot/sched_time.h", /* next occurrence of a wall time */
	"tlbot/tz.h",	      /* zone conversions */
	"tlbot/when.h",	      /* dates, durations, times as people write them */
	NULL,
};

/* system headers no command may include */
static const char *const command_banned_system[] = { "curl/", "libwebsockets.h", "sqlite3.h",
						     "olm/", "openssl/", "sys/socket.h",
						     "netdb.h", NULL };

/* calls no command may make (prefixes of identifiers) */
static const char *const command_banned_calls[] = { "curl_", "lws_", "tlbot_mx_", "tlbot_http_",
						    "tlbot_ws_", "tlbot_sync_", "socket(",
						    "sqlite3_", "SQLITE_", NULL };

/* headers bot/util/ may not include */
static const char *const util_banned[] = { "tlbot/http.h", "tlbot/matrix.h", "tlbot/sync.h",
					   "tlbot/ws.h", "tlbot/router.h", "tlbot/ctx.h",
					   "tlbot/daemon.h", "tlbot/store.h", "tlbot/command.h",
					   "tlbot/config.h", NULL };

static int violations;

static int
in_list(const char *const *list, const char *name)
{
	for (; *list; list++)
		if (strcmp(*list, name) == 0)
			return 1;
	return 0;
}

static int
has_prefix(const char *const *list, const char *name)
{
	for (; *list; list++)
		if (strncmp(name, *list, strlen(*list)) == 0)
			return 1;
	return 0;
}

static void
violation(const char *file, int line, const char *what, const char *name)
{
	printf("# %s:%d: %s %s\n", file, line, what, name);
	violations++;
}

/* Check one file's #include lines and calls against its directory's rule. */
static void
check_file(const char *root, const char *rel)
{
	char path[4096], name[256];
	char *text, *p;
	int line = 1, is_cmd = strncmp(rel, "commands/", 9) == 0;
	int is_store = strncmp(rel, "bot/store/", 10) == 0;
	int is_util = strncmp(rel, "bot/util/", 9) == 0;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	text = srctree_load(path);
	CHECK(text != NULL);
	if (text == NULL)
		return;
	for (p = text; *p; p++) {
		if (*p == '\n') {
			line++;
			continue;
		}
		if ((p == text || p[-1] == '\n') && strncmp(p, "#include", 8) == 0) {
			const char *a = p + 8, *e;
			char close;
			size_t n;

			while (*a == ' ' || *a == '\t')
				a++;
			close = *a == '<' ? '>' : '"';
			e = strchr(a + 1, close);
			if (e == NULL || (n = (size_t)(e - a - 1)) >= sizeof(name))
				continue;
			memcpy(name, a + 1, n);
			name[n] = '\0';
			if (is_cmd && close == '>' && has_prefix(command_banned_system, name))
				violation(rel, line, "commands/ includes", name);
			if (is_cmd && close == '"' && strncmp(name, "tlbot/", 6) == 0 &&
			    !in_list(command_headers, name))
				violation(rel, line, "commands/ includes the internal header", name);
			if (is_store && close == '"' && strchr(name, '/') == NULL)
				violation(rel, line, "the store includes a local header", name);
			if (is_store && strcmp(name, "tlbot/command.h") == 0 &&
			    strcmp(rel, "bot/store/db.c") != 0)
				violation(rel, line, "the store includes", name);
			if (is_util && in_list(util_banned, name))
				violation(rel, line, "a utility includes", name);
			continue;
		}
		if ((is_cmd || is_store) && (p == text || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z') ||
							  (p[-1] >= 'A' && p[-1] <= 'Z') ||
							  (p[-1] >= '0' && p[-1] <= '9')))) {
			if (is_cmd && has_prefix(command_banned_calls, p)) {
				size_t n = strcspn(p, " (;,)\n");

				snprintf(name, sizeof(name), "%.*s", (int)(n < 60 ? n : 60), p);
				violation(rel, line, "commands/ calls", name);
			}
			if (is_store && strncmp(p, "tlbot_commands", 14) == 0)
				violation(rel, line, "the store walks", "the command table");
		}
	}
	free(text);
}

TEST(commands_off_the_network_and_internals)
{
	int files = 0;

	violations = 0;
	srctree_walk(srctree_root(), "commands", check_file, &files);
	printf("# %d files in commands/\n", files);
	CHECK(files > 15);
	CHECK_INT(violations, ==, 0);
}

TEST(store_off_commands)
{
	int files = 0;

	violations = 0;
	srctree_walk(srctree_root(), "bot/store", check_file, &files);
	CHECK(files >= 2);
	CHECK_INT(violations, ==, 0);
}

TEST(utilities_off_the_daemon)
{
	int files = 0;

	violations = 0;
	srctree_walk(srctree_root(), "bot/util", check_file, &files);
	CHECK(files > 5);
	CHECK_INT(violations, ==, 0);
}

/* The checker itself: a file that breaks each rule is caught. */
TEST(catches_what_it_should)
{
	char dir[] = "/tmp/tlbot-include-rule-XXXXXX", path[512];
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/commands", dir);
	CHECK_INT(mkdir(path, 0700), ==, 0);
	snprintf(path, sizeof(path), "%s/commands/bad.c", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	fputs("#include <curl/curl.h>\n#include \"tlbot/matrix.h\"\n#include \"tlbot/command.h\"\n"
	      "/* curl_easy_init() in a comment is fine */\n"
	      "static void f(void) { curl_easy_init(); tlbot_mx_send(0); my_curl_x(); }\n"
	      "static int g(void *s) { return sqlite3_step(s) == SQLITE_ROW; }\n",
	      f);
	fclose(f);
	violations = 0;
	check_file(dir, "commands/bad.c");
	/* curl.h, matrix.h, curl_easy_init, tlbot_mx_send, sqlite3_step, SQLITE_ROW */
	CHECK_INT(violations, ==, 6);
	unlink(path);
	snprintf(path, sizeof(path), "%s/commands", dir);
	rmdir(path);
	rmdir(dir);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(commands_off_the_network_and_internals),
	TEST_ENTRY(store_off_commands),
	TEST_ENTRY(utilities_off_the_daemon),
	TEST_ENTRY(catches_what_it_should),
	TEST_END,
};

TAP_MAIN(tests)
