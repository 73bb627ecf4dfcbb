/* Tests for bot/core/config.c: YAML loading with line numbers, environment
 * overlay, secret files, checks and allow-lists. Data in tests/data/config;
 * time zones come from tests/data/config/zoneinfo through TZDIR. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "tlbot/config.h"

struct problems {
	size_t n;
	int line[64];
	char msg[64][512];
};

static void
collect(int line, const char *msg, void *arg)
{
	struct problems *p = arg;

	if (p->n < 64) {
		p->line[p->n] = line;
		snprintf(p->msg[p->n], sizeof(p->msg[0]), "%s", msg);
		p->n++;
	}
}

/* The line of the first problem whose message contains needle, or -1. */
static int
line_of(const struct problems *p, const char *needle)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strstr(p->msg[i], needle))
			return p->line[i];
	return -1;
}

static void
dump(const struct problems *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		printf("#     line %d: %s\n", p->line[i], p->msg[i]);
}

/* Load a YAML string into a fresh config. */
static int
load(struct tlbot_config *c, struct problems *p, const char *yaml)
{
	memset(p, 0, sizeof(*p));
	tlbot_config_init(c);
	return tlbot_config_load_string(c, yaml, strlen(yaml), collect, p);
}

static void
use_test_zones(void)
{
	setenv("TZDIR", tap_data_path("config/zoneinfo"), 1);
}

/* A fake environment for tlbot_config_load_env. */
static const char *const *fake_env;

static char *
fake_getenv(const char *name)
{
	size_t n = strlen(name), i;

	for (i = 0; fake_env && fake_env[i]; i++)
		if (strncmp(fake_env[i], name, n) == 0 && fake_env[i][n] == '=')
			return (char *)fake_env[i] + n + 1;
	return NULL;
}

TEST(defaults)
{
	struct tlbot_config c;

	tlbot_config_init(&c);
	CHECK_STR(c.database, "tlbot.db");
	CHECK_INT(c.prefixes.n, ==, 2);
	CHECK_STR(c.prefixes.v[0], "!");
	CHECK_STR(c.prefixes.v[1], "/");
	CHECK_STR(c.log_level, "info");
	CHECK_STR(c.transport, "sync");
	CHECK_STR(c.timezone, "Europe/London");
	CHECK_INT(c.power_level, ==, 50);
	CHECK_INT(c.sync_timeout_ms, ==, 30000);
	CHECK_INT(c.timeline_limit, ==, 50);
	CHECK_INT(c.grace_period_s, ==, 7200);
	CHECK_INT(c.rate_limit_per_min, ==, 20);
	CHECK_INT(c.handled_events_max, ==, 10000);
	CHECK_STR(c.dm_notifications, "on");
	CHECK(c.homeserver == NULL && c.user_id == NULL && c.password == NULL);
	CHECK(c.access_token == NULL && c.source_path == NULL && c.digest_room == NULL);
	CHECK_INT(c.allowed_users.n + c.allowed_servers.n + c.allowed_rooms.n + c.admins.n, ==, 0);
	tlbot_config_release(&c);
	CHECK(c.database == NULL);
	tlbot_config_release(&c); /* twice is harmless */
}

TEST(good_file)
{
	struct tlbot_config c;
	struct problems p;

	use_test_zones();
	memset(&p, 0, sizeof(p));
	tlbot_config_init(&c);
	CHECK_INT(tlbot_config_load_file(&c, tap_data_path("config/good.yaml"), collect, &p), ==, 0);
	dump(&p);
	CHECK_STR(c.source_path, tap_data_path("config/good.yaml"));
	CHECK_STR(c.homeserver, "https://matrix.example.org:8448");
	CHECK_STR(c.user_id, "@tlbot:example.org");
	CHECK_STR(c.access_token_file, "/run/credentials/tlbot/token");
	CHECK(c.access_token == NULL && c.password == NULL);
	CHECK_STR(c.device_id, "TLBOTDEV1");
	CHECK_STR(c.database, "/var/lib/tlbot/tlbot.db");
	CHECK_INT(c.prefixes.n, ==, 2);
	CHECK_STR(c.prefixes.v[1], "tl!");
	CHECK_INT(c.allowed_users.n, ==, 2);
	CHECK_STR(c.allowed_users.v[1], "@*:team.example.gov.uk");
	CHECK_INT(c.allowed_servers.n, ==, 2);
	CHECK_INT(c.allowed_rooms.n, ==, 1);
	/* a single scalar is a list of one */
	CHECK_INT(c.admins.n, ==, 1);
	CHECK_STR(c.admins.v[0], "@alice:example.org");
	CHECK_STR(c.log_level, "debug");
	CHECK_STR(c.transport, "websocket");
	CHECK_STR(c.websocket_url, "wss://gateway.example.org/_matrix/client/unstable/stream");
	CHECK_STR(c.ca_file, "/etc/ssl/private-ca.pem");
	CHECK_INT(c.power_level, ==, 75);
	CHECK_INT(c.sync_timeout_ms, ==, 25000);
	CHECK_INT(c.timeline_limit, ==, 100);
	CHECK_INT(c.grace_period_s, ==, 5400);
	CHECK_INT(c.rate_limit_per_min, ==, 30);
	CHECK_INT(c.handled_events_max, ==, 5000);
	CHECK_STR(c.dm_notifications, "off");
	CHECK_STR(c.digest_room, "!digest:example.org");
	CHECK_STR(c.bank_holidays_file, "/usr/share/tlbot/bank-holidays.json");
	/* the token file does not exist here: finish says so, naming the file */
	CHECK_INT(tlbot_config_finish(&c, collect, &p), ==, 1);
	CHECK_INT(line_of(&p, "cannot read access_token_file '/run/credentials/tlbot/token'"), ==, 0);
	tlbot_config_release(&c);
}

TEST(example_file_is_valid)
{
	static const char *const env[] = { "TLBOT_ACCESS_TOKEN=syt_from_env", NULL };
	struct tlbot_config c;
	struct problems p;

	use_test_zones();
	memset(&p, 0, sizeof(p));
	tlbot_config_init(&c);
	CHECK_INT(tlbot_config_load_file(&c, tap_data_path("../../config/tlbot.example.yaml"),
					 collect, &p), ==, 0);
	fake_env = env;
	CHECK_INT(tlbot_config_load_env(&c, fake_getenv, collect, &p), ==, 0);
	/* the example's access_token_file is ignored because the token is set */
	CHECK_INT(tlbot_config_finish(&c, collect, &p), ==, 0);
	dump(&p);
	CHECK_STR(c.access_token, "syt_from_env");
	tlbot_config_release(&c);
}

TEST(minimal_file_finishes)
{
	struct tlbot_config c;
	struct problems p;

	use_test_zones();
	memset(&p, 0, sizeof(p));
	tlbot_config_init(&c);
	CHECK_INT(tlbot_config_load_file(&c, tap_data_path("config/minimal.yaml"), collect, &p), ==, 0);
	CHECK_INT(tlbot_config_finish(&c, collect, &p), ==, 0);
	dump(&p);
	CHECK_STR(c.homeserver, "example.org");
	CHECK_STR(c.access_token, "syt_minimal_secret_value");
	tlbot_config_release(&c);
}

TEST(bad_file_every_problem_with_its_line)
{
	struct tlbot_config c;
	struct problems p;
	int n;

	use_test_zones();
	memset(&p, 0, sizeof(p));
	tlbot_config_init(&c);
	n = tlbot_config_load_file(&c, tap_data_path("config/bad.yaml"), collect, &p);
	CHECK_INT(n, ==, 17);
	CHECK_INT(p.n, ==, 17);
	CHECK_INT(line_of(&p, "unknown key 'homeservr' (did you mean 'homeserver'?)"), ==, 3);
	CHECK_INT(line_of(&p, "invalid user_id 'bob' (expected @localpart:server)"), ==, 4);
	CHECK_INT(line_of(&p, "password must be a string, not a list"), ==, 5);
	CHECK_INT(line_of(&p, "power_level must be an integer, not 'lots'"), ==, 6);
	CHECK_INT(line_of(&p, "sync_timeout_ms out of range: 99999999999 (expected 1000 to 600000)"), ==, 7);
	CHECK_INT(line_of(&p, "timeline_limit out of range: 0 (expected 1 to 1000)"), ==, 8);
	CHECK_INT(line_of(&p, "grace_period must be a duration like 2h, 90m, 45s"), ==, 9);
	CHECK_INT(line_of(&p, "dm_notifications must be on or off, not 'maybe'"), ==, 10);
	CHECK_INT(line_of(&p, "invalid transport 'carrier-pigeon' (expected sync, websocket or auto)"),
		  ==, 11);
	CHECK_INT(line_of(&p, "invalid log_level 'verbose'"), ==, 12);
	CHECK_INT(line_of(&p, "invalid prefix 'toolong' (1 to 4 bytes, no spaces)"), ==, 13);
	CHECK_INT(line_of(&p, "entries of admins must be strings, not a mapping"), ==, 16);
	CHECK_INT(line_of(&p, "database must be a string, not a mapping"), ==, 17);
	CHECK_INT(line_of(&p, "unknown timezone 'Mars/Olympus_Mons'"), ==, 19);
	CHECK_INT(line_of(&p, "duplicate key 'user_id' (first at line 4)"), ==, 20);
	CHECK_INT(line_of(&p, "unknown key 'frobnicate'"), ==, 21);
	CHECK_INT(line_of(&p, "empty entry in allowed_rooms"), ==, 22);
	/* no suggestion when nothing is close */
	CHECK_INT(line_of(&p, "did you mean 'frob"), ==, -1);
	/* a refused value is not stored; the previous one stays */
	CHECK(c.user_id == NULL);
	CHECK_INT(c.power_level, ==, 50);
	CHECK_STR(c.transport, "sync");
	CHECK_INT(c.prefixes.n, ==, 2);
	CHECK_STR(c.prefixes.v[1], "/");
	CHECK_INT(c.admins.n, ==, 0);
	/* finish does not report refused keys as missing again */
	memset(&p, 0, sizeof(p));
	CHECK_INT(tlbot_config_finish(&c, collect, &p), ==, 1);
	CHECK_INT(line_of(&p, "missing homeserver"), ==, 0);
	tlbot_config_release(&c);
}

TEST(every_problem_message_is_one_line_and_lowercase)
{
	struct tlbot_config c;
	struct problems p;
	size_t i;

	use_test_zones();
	memset(&p, 0, sizeof(p));
	tlbot_config_init(&c);
	tlbot_config_load_file(&c, tap_data_path("config/bad.yaml"), collect, &p);
	tlbot_config_finish(&c, collect, &p);
	CHECK(p.n > 10);
	for (i = 0; i < p.n; i++) {
		CHECK(strchr(p.msg[i], '\n') == NULL);
		CHECK(!(p.msg[i][0] >= 'A' && p.msg[i][0] <= 'Z'));
		CHECK(p.msg[i][strlen(p.msg[i]) - 1] != '.');
	}
	tlbot_config_release(&c);
}

TEST(syntax_error)
{
	struct tlbot_config c;
	struct problems p;

	memset(&p, 0, sizeof(p));
	tlbot_config_init(&c);
	CHECK_INT(tlbot_config_load_file(&c, tap_data_path("config/syntax.yaml"), collect, &p), ==, 1);
	CHECK_INT(p.n, ==, 1);
	CHECK_CONTAINS(p.msg[0], "invalid yaml: ");
	CHECK_INT(p.line[0], ==, 4);
	CHECK_STR(p.msg[0], "invalid yaml: found character that cannot start any token "
			    "(while scanning for the next token)");
	/* keys before the error were read */
	CHECK_STR(c.homeserver, "https://matrix.example.org");
	CHECK_STR(c.database, "tlbot.db");
	tlbot_config_release(&c);

	CHECK_INT(load(&c, &p, "log_level: warn: c\n"), ==, 1);
	CHECK_STR(p.msg[0], "invalid yaml: mapping values are not allowed in this context");
	CHECK_INT(p.line[0], ==, 1);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "homeserver: x\n\t- tab\n"), ==, 1);
	CHECK_INT(p.line[0], ==, 2);
	tlbot_config_release(&c);
	/* problems before a syntax error are reported as well */
	CHECK_INT(load(&c, &p, "bogus: 1\nuser_id: \"unterminated\n"), ==, 2);
	CHECK_INT(line_of(&p, "unknown key 'bogus'"), ==, 1);
	CHECK_INT(line_of(&p, "invalid yaml"), >=, 2);
	tlbot_config_release(&c);
}

TEST(odd_documents)
{
	struct tlbot_config c;
	struct problems p;

	CHECK_INT(load(&c, &p, ""), ==, 0);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "# only a comment\n"), ==, 0);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "~\n"), ==, 0);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "just text\n"), ==, 1);
	CHECK_STR(p.msg[0], "expected key: value pairs at the top level, not a scalar");
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "- a\n- b\n"), ==, 1);
	CHECK_STR(p.msg[0], "expected key: value pairs at the top level, not a list");
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "log_level: warn\n---\nlog_level: debug\n"), ==, 1);
	CHECK_INT(line_of(&p, "more than one yaml document"), ==, 2);
	CHECK_STR(c.log_level, "warn");
	tlbot_config_release(&c);
	/* complex keys */
	CHECK_INT(load(&c, &p, "? [a, b]\n: 1\nlog_level: warn\n"), ==, 1);
	CHECK_INT(line_of(&p, "keys must be plain names, not a list"), ==, 1);
	CHECK_STR(c.log_level, "warn");
	tlbot_config_release(&c);
	/* aliases are refused, anchors are harmless */
	CHECK_INT(load(&c, &p, "admins: &a ['@x:example.org']\nallowed_users: *a\n"), ==, 1);
	CHECK_INT(line_of(&p, "aliases are not supported (in allowed_users)"), ==, 2);
	CHECK_INT(c.admins.n, ==, 1);
	tlbot_config_release(&c);
	/* NUL bytes in a scalar */
	CHECK_INT(load(&c, &p, "database: \"a\\0b\"\n"), ==, 1);
	CHECK_STR(p.msg[0], "database contains a NUL byte");
	tlbot_config_release(&c);
	/* not NUL-terminated input */
	tlbot_config_init(&c);
	memset(&p, 0, sizeof(p));
	CHECK_INT(tlbot_config_load_string(&c, "log_level: warnXXXX", 15, collect, &p), ==, 0);
	CHECK_STR(c.log_level, "warn");
	tlbot_config_release(&c);
	/* NULL text is an empty document */
	tlbot_config_init(&c);
	CHECK_INT(tlbot_config_load_string(&c, NULL, 0, NULL, NULL), ==, 0);
	tlbot_config_release(&c);
}

TEST(unreadable_file)
{
	struct tlbot_config c;
	struct problems p;

	memset(&p, 0, sizeof(p));
	tlbot_config_init(&c);
	CHECK_INT(tlbot_config_load_file(&c, "/nonexistent/tlbot.yaml", collect, &p), ==, -1);
	CHECK_INT(p.n, ==, 1);
	CHECK_INT(p.line[0], ==, 0);
	CHECK_STR(p.msg[0], "cannot read config file '/nonexistent/tlbot.yaml': "
			    "No such file or directory");
	CHECK(c.source_path == NULL);
	memset(&p, 0, sizeof(p));
	CHECK_INT(tlbot_config_load_file(&c, tap_data_path("config"), collect, &p), ==, -1);
	CHECK_CONTAINS(p.msg[0], "Is a directory");
	tlbot_config_release(&c);
}

/* 0 would poll /sync in a tight loop (and be answered from Synapse's
 * response cache): refused, with the range */
TEST(sync_timeout_zero_refused)
{
	struct tlbot_config c;
	struct problems p;

	CHECK_INT(load(&c, &p, "sync_timeout_ms: 0\n"), ==, 1);
	CHECK_CONTAINS(p.msg[0], "sync_timeout_ms out of range: 0 (expected 1000 to 600000)");
	tlbot_config_release(&c);
}

TEST(types_and_values)
{
	struct tlbot_config c;
	struct problems p;

	use_test_zones();
	/* quoted numbers, booleans of every spelling */
	CHECK_INT(load(&c, &p, "power_level: \"0\"\ndm_notifications: false\n"
			       "sync_timeout_ms: 1000\nhandled_events_max: 10000000\n"), ==, 0);
	CHECK_INT(c.power_level, ==, 0);
	CHECK_STR(c.dm_notifications, "off");
	CHECK_INT(c.handled_events_max, ==, 10000000);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "dm_notifications: yes\n"), ==, 0);
	CHECK_STR(c.dm_notifications, "on");
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "dm_notifications: On\n"), ==, 0);
	CHECK_STR(c.dm_notifications, "on");
	tlbot_config_release(&c);

	/* 0 turns the rate limit off */
	CHECK_INT(load(&c, &p, "rate_limit_per_min: 0\n"), ==, 0);
	CHECK_INT(c.rate_limit_per_min, ==, 0);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "rate_limit_per_min: -1\n"), ==, 1);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "power_level: -1\n"), ==, 1);
	CHECK_STR(p.msg[0], "power_level out of range: -1 (expected 0 to 1000000)");
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "power_level: 1000001\n"), ==, 1);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "power_level: 99999999999999999999999\n"), ==, 1);
	CHECK_CONTAINS(p.msg[0], "power_level out of range");
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "power_level: 5.5\n"), ==, 1);
	CHECK_STR(p.msg[0], "power_level must be an integer, not '5.5'");
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "power_level: 0x10\n"), ==, 1);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "power_level: ' 5'\n"), ==, 1);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "power_level: [1]\n"), ==, 1);
	CHECK_STR(p.msg[0], "power_level must be an integer, not a list");
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "homeserver: {a: 1}\n"), ==, 1);
	CHECK_STR(p.msg[0], "homeserver must be a string, not a mapping");
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "admins: {a: 1}\n"), ==, 1);
	CHECK_STR(p.msg[0], "admins must be a string or a list of strings, not a mapping");
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "admins: [[\"@a:b\"]]\n"), ==, 1);
	CHECK_STR(p.msg[0], "entries of admins must be strings, not a list");
	tlbot_config_release(&c);

	/* empty and null values leave the default */
	CHECK_INT(load(&c, &p, "database:\nlog_level: ~\ntransport: ''\nprefixes: null\n"), ==, 0);
	CHECK_STR(c.database, "tlbot.db");
	CHECK_STR(c.log_level, "info");
	CHECK_STR(c.transport, "sync");
	CHECK_INT(c.prefixes.n, ==, 2);
	tlbot_config_release(&c);
	/* an explicit empty list empties it */
	CHECK_INT(load(&c, &p, "prefixes: []\n"), ==, 0);
	CHECK_INT(c.prefixes.n, ==, 0);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "admins:\n  -\n  - '@a:b.c'\n"), ==, 1);
	CHECK_INT(line_of(&p, "empty entry in admins"), ==, 2);
	tlbot_config_release(&c);
}

TEST(value_checks)
{
	static const struct {
		const char *yaml, *msg;
	} bad[] = {
		{ "homeserver: 'https://'\n", "invalid homeserver 'https://'" },
		{ "homeserver: 'ftp://x.org'\n", "invalid homeserver 'ftp://x.org'" },
		{ "homeserver: 'matrix .org'\n", "invalid homeserver" },
		{ "homeserver: 'x.org/path'\n", "invalid homeserver" },
		{ "homeserver: 'https://x.org:99999999'\n", "invalid homeserver" },
		{ "user_id: '@bob'\n", "invalid user_id '@bob'" },
		{ "device_id: 'two words'\n", "invalid device_id 'two words'" },
		{ "prefixes: ['! ']\n", "invalid prefix '! '" },
		{ "prefixes: ['']\n", "empty entry in prefixes" },
		{ "allowed_users: ['alice']\n", "invalid entry 'alice' in allowed_users" },
		{ "allowed_servers: ['example.org/x']\n", "invalid entry 'example.org/x' in allowed_servers" },
		{ "allowed_rooms: ['general']\n", "invalid entry 'general' in allowed_rooms" },
		{ "admins: ['@a :b']\n", "invalid entry '@a :b' in admins" },
		{ "websocket_url: 'gateway.example.org'\n", "invalid websocket_url" },
		{ "timezone: '../../etc/passwd'\n", "invalid timezone '../../etc/passwd'" },
		{ "timezone: '/etc/passwd'\n", "invalid timezone" },
		{ "timezone: 'Europe'\n", "unknown timezone 'Europe'" },       /* a directory */
		{ "timezone: 'zone.tab'\n", "unknown timezone 'zone.tab'" },   /* not a zone */
		{ "digest_room: 'general'\n", "invalid digest_room 'general'" },
		{ "database: \"a\\nb\"\n", "database contains a control character" },
		{ "grace_period: 31d\n", "grace_period out of range: 31d (expected at most 30 days)" },
		{ "grace_period: 99999999999999999999h\n", "grace_period out of range" },
		{ "grace_period: 2x\n", "grace_period must be a duration" },
		{ "grace_period: h\n", "grace_period must be a duration" },
		{ "grace_period: 1h30\n", "grace_period must be a duration" },
		{ "grace_period: -5\n", "grace_period out of range" },
		{ "log_level: 'INFO'\n", "invalid log_level 'INFO'" },
	};
	struct tlbot_config c;
	struct problems p;
	size_t i;

	use_test_zones();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int n = load(&c, &p, bad[i].yaml);

		if (n != 1 || strstr(p.msg[0], bad[i].msg) == NULL) {
			printf("#   case %zu: %s", i, bad[i].yaml);
			dump(&p);
		}
		CHECK_INT(n, ==, 1);
		CHECK_CONTAINS(p.msg[0], bad[i].msg);
		CHECK_INT(p.line[0], ==, 1);
		tlbot_config_release(&c);
	}
	/* and some good ones */
	CHECK_INT(load(&c, &p, "homeserver: HTTPS://Matrix.Example.org/base/\n"
			       "websocket_url: ws://[::1]:8080/stream\n"
			       "timezone: UTC\nallowed_servers: ['[::1]:8448', '*']\n"
			       "allowed_rooms: ['#team:example.org', '*:example.org']\n"
			       "grace_period: 1d2h3m4s\n"), ==, 0);
	dump(&p);
	CHECK_INT(c.grace_period_s, ==, 86400 + 7200 + 180 + 4);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "grace_period: 45s\n"), ==, 0);
	CHECK_INT(c.grace_period_s, ==, 45);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "grace_period: 2h\n"), ==, 0);
	CHECK_INT(c.grace_period_s, ==, 7200);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "grace_period: 600\n"), ==, 0);
	CHECK_INT(c.grace_period_s, ==, 600);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "grace_period: 0\n"), ==, 0);
	CHECK_INT(c.grace_period_s, ==, 0);
	tlbot_config_release(&c);
}

TEST(list_limits)
{
	char yaml[4096];
	struct tlbot_config c;
	struct problems p;
	size_t i, n = 0;

	n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "admins:\n");
	for (i = 0; i < 64; i++)
		n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "  - '@u%zu:x.org'\n", i);
	CHECK_INT(load(&c, &p, yaml), ==, 1);
	CHECK_INT(line_of(&p, "too many entries in admins (max 63)"), ==, 65);
	CHECK_INT(c.admins.n, ==, 0);
	tlbot_config_release(&c);
	/* 63 fit, and the list stays NULL-terminated */
	yaml[n - strlen("  - '@u63:x.org'\n")] = '\0';
	CHECK_INT(load(&c, &p, yaml), ==, 0);
	CHECK_INT(c.admins.n, ==, 63);
	CHECK(c.admins.v[63] == NULL);
	tlbot_config_release(&c);
	/* prefixes are usable as the parser's NULL-terminated list */
	CHECK_INT(load(&c, &p, "prefixes: ['tl!', '?']\n"), ==, 0);
	CHECK(c.prefixes.v[2] == NULL);
	tlbot_config_release(&c);
}

TEST(unknown_keys_and_suggestions)
{
	struct tlbot_config c;
	struct problems p;

	CHECK_INT(load(&c, &p, "acess_token_file: /x\nloglevel: info\nHomeserver: x.org\n"
			       "grace_period_s: 60\nallowed_user: '@a:b'\nzzz: 1\n"), ==, 6);
	CHECK_INT(line_of(&p, "unknown key 'acess_token_file' (did you mean 'access_token_file'?)"), ==, 1);
	CHECK_INT(line_of(&p, "unknown key 'loglevel' (did you mean 'log_level'?)"), ==, 2);
	CHECK_INT(line_of(&p, "unknown key 'Homeserver' (did you mean 'homeserver'?)"), ==, 3);
	CHECK_INT(line_of(&p, "unknown key 'grace_period_s' (did you mean 'grace_period'?)"), ==, 4);
	CHECK_INT(line_of(&p, "unknown key 'allowed_user' (did you mean 'allowed_users'?)"), ==, 5);
	CHECK_STR(p.msg[5], "unknown key 'zzz'");
	/* the values of unknown keys are skipped whatever their shape */
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "x: {a: [1, {b: 2}]}\nlog_level: warn\n"), ==, 1);
	CHECK_STR(c.log_level, "warn");
	tlbot_config_release(&c);
	/* a long or odd key is echoed short and on one line */
	CHECK_INT(load(&c, &p, "\"a\\nb0123456789012345678901234567890123456789"
			       "0123456789012345678901234567890123456789\": 1\n"), ==, 1);
	CHECK_CONTAINS(p.msg[0], "unknown key 'a?b0123");
	CHECK_CONTAINS(p.msg[0], "...'");
	tlbot_config_release(&c);
}

TEST(duplicate_keys)
{
	struct tlbot_config c;
	struct problems p;

	CHECK_INT(load(&c, &p, "log_level: warn\ntransport: auto\nlog_level: debug\n"
			       "log_level: error\n"), ==, 2);
	CHECK_INT(line_of(&p, "duplicate key 'log_level' (first at line 1)"), ==, 3);
	CHECK_STR(p.msg[1], "duplicate key 'log_level' (first at line 1)");
	CHECK_INT(p.line[1], ==, 4);
	CHECK_STR(c.log_level, "warn");
	tlbot_config_release(&c);
}

TEST(secrets_never_echoed)
{
	static const char *const env[] = {
		"TLBOT_PASSWORD=secret\x01with-control", "TLBOT_ACCESS_TOKEN=tok\nsecret-line", NULL
	};
	struct tlbot_config c;
	struct problems p;
	size_t i;

	memset(&p, 0, sizeof(p));
	tlbot_config_init(&c);
	CHECK_INT(tlbot_config_load_file(&c, tap_data_path("config/secrets-misplaced.yaml"), collect,
					 &p), ==, 3);
	CHECK_INT(line_of(&p, "password must be a string, not a mapping"), ==, 3);
	CHECK_INT(line_of(&p, "access_token must be a string, not a list"), ==, 5);
	CHECK_INT(line_of(&p, "unknown key 'acess_token' (did you mean 'access_token'?)"), ==, 6);
	fake_env = env;
	CHECK_INT(tlbot_config_load_env(&c, fake_getenv, collect, &p), ==, 2);
	CHECK_INT(line_of(&p, "password contains a control character or line break "
			      "(from TLBOT_PASSWORD)"), ==, 0);
	CHECK_INT(line_of(&p, "(from TLBOT_ACCESS_TOKEN)"), ==, 0);
	tlbot_config_finish(&c, collect, &p);
	CHECK(p.n >= 5);
	for (i = 0; i < p.n; i++) {
		CHECK_NOT_CONTAINS(p.msg[i], "hunter2");
		CHECK_NOT_CONTAINS(p.msg[i], "syt_");
		CHECK_NOT_CONTAINS(p.msg[i], "secret");
	}
	tlbot_config_release(&c);
}

TEST(env_overlay)
{
	static const char *const env[] = {
		"TLBOT_HOMESERVER=https://env.example.org",
		"TLBOT_USER_ID=@envbot:example.org",
		"TLBOT_ACCESS_TOKEN=syt_env",
		"TLBOT_ALLOWED_USERS= @a:example.org , ,@*:x.org,",
		"TLBOT_ADMINS=@boss:example.org",
		"TLBOT_LOG_LEVEL=warn",
		"TLBOT_GRACE_PERIOD=1h",
		"TLBOT_POWER_LEVEL=10",
		"TLBOT_DM_NOTIFICATIONS=false",
		"TLBOT_TRANSPORT=",          /* empty: ignored */
		"TLBOT_DATABASE=/tmp/env.db",
		"TLBOT_DIGEST_ROOM=!d:example.org",
		NULL
	};
	struct tlbot_config c;
	struct problems p;

	use_test_zones();
	CHECK_INT(load(&c, &p, "homeserver: https://file.example.org\nlog_level: debug\n"
			       "transport: auto\nallowed_users: ['@file:example.org']\n"), ==, 0);
	fake_env = env;
	CHECK_INT(tlbot_config_load_env(&c, fake_getenv, collect, &p), ==, 0);
	dump(&p);
	/* the environment wins over the file */
	CHECK_STR(c.homeserver, "https://env.example.org");
	CHECK_STR(c.log_level, "warn");
	CHECK_STR(c.user_id, "@envbot:example.org");
	CHECK_STR(c.access_token, "syt_env");
	CHECK_INT(c.allowed_users.n, ==, 2);
	CHECK_STR(c.allowed_users.v[0], "@a:example.org");
	CHECK_STR(c.allowed_users.v[1], "@*:x.org");
	CHECK_INT(c.admins.n, ==, 1);
	CHECK_INT(c.grace_period_s, ==, 3600);
	CHECK_INT(c.power_level, ==, 10);
	CHECK_STR(c.dm_notifications, "off");
	CHECK_STR(c.database, "/tmp/env.db");
	CHECK_STR(c.digest_room, "!d:example.org");
	/* what the environment leaves out keeps the file's value */
	CHECK_STR(c.transport, "auto");
	CHECK_INT(tlbot_config_finish(&c, collect, &p), ==, 0);
	dump(&p);
	tlbot_config_release(&c);
}

TEST(env_every_key_has_a_variable)
{
	static const char *const env[] = {
		"TLBOT_HOMESERVER=example.org", "TLBOT_USER_ID=@b:example.org",
		"TLBOT_PASSWORD=pw", "TLBOT_PASSWORD_FILE=/p", "TLBOT_ACCESS_TOKEN=t",
		"TLBOT_ACCESS_TOKEN_FILE=/t", "TLBOT_DEVICE_ID=DEV", "TLBOT_DATABASE=/d.db",
		"TLBOT_PREFIXES=!,?", "TLBOT_ALLOWED_USERS=@u:x.org", "TLBOT_ALLOWED_SERVERS=x.org",
		"TLBOT_ALLOWED_ROOMS=!r:x.org", "TLBOT_ADMINS=@a:x.org", "TLBOT_LOG_LEVEL=error",
		"TLBOT_TRANSPORT=websocket", "TLBOT_WEBSOCKET_URL=wss://g.x.org/s",
		"TLBOT_CA_FILE=/ca.pem", "TLBOT_TIMEZONE=UTC", "TLBOT_POWER_LEVEL=1",
		"TLBOT_SYNC_TIMEOUT_MS=2000", "TLBOT_TIMELINE_LIMIT=3", "TLBOT_GRACE_PERIOD=4",
		"TLBOT_RATE_LIMIT_PER_MIN=5", "TLBOT_HANDLED_EVENTS_MAX=600",
		"TLBOT_DM_NOTIFICATIONS=off", "TLBOT_DIGEST_ROOM=!g:x.org",
		"TLBOT_BANK_HOLIDAYS_FILE=/bh.json", NULL
	};
	struct tlbot_config c;
	struct problems p;

	use_test_zones();
	memset(&p, 0, sizeof(p));
	tlbot_config_init(&c);
	fake_env = env;
	CHECK_INT(tlbot_config_load_env(&c, fake_getenv, collect, &p), ==, 0);
	dump(&p);
	CHECK_STR(c.homeserver, "example.org");
	CHECK_STR(c.user_id, "@b:example.org");
	CHECK_STR(c.password, "pw");
	CHECK_STR(c.password_file, "/p");
	CHECK_STR(c.access_token, "t");
	CHECK_STR(c.access_token_file, "/t");
	CHECK_STR(c.device_id, "DEV");
	CHECK_STR(c.database, "/d.db");
	CHECK_INT(c.prefixes.n, ==, 2);
	CHECK_STR(c.prefixes.v[1], "?");
	CHECK_STR(c.allowed_users.v[0], "@u:x.org");
	CHECK_STR(c.allowed_servers.v[0], "x.org");
	CHECK_STR(c.allowed_rooms.v[0], "!r:x.org");
	CHECK_STR(c.admins.v[0], "@a:x.org");
	CHECK_STR(c.log_level, "error");
	CHECK_STR(c.transport, "websocket");
	CHECK_STR(c.websocket_url, "wss://g.x.org/s");
	CHECK_STR(c.ca_file, "/ca.pem");
	CHECK_STR(c.timezone, "UTC");
	CHECK_INT(c.power_level, ==, 1);
	CHECK_INT(c.sync_timeout_ms, ==, 2000);
	CHECK_INT(c.timeline_limit, ==, 3);
	CHECK_INT(c.grace_period_s, ==, 4);
	CHECK_INT(c.rate_limit_per_min, ==, 5);
	CHECK_INT(c.handled_events_max, ==, 600);
	CHECK_STR(c.dm_notifications, "off");
	CHECK_STR(c.digest_room, "!g:x.org");
	CHECK_STR(c.bank_holidays_file, "/bh.json");
	/* the direct secrets are set, so their files are never opened */
	CHECK_INT(tlbot_config_finish(&c, collect, &p), ==, 0);
	dump(&p);
	tlbot_config_release(&c);
}

TEST(env_problems)
{
	static const char *const env[] = {
		"TLBOT_POWER_LEVEL=high", "TLBOT_TRANSPORT=pigeon", "TLBOT_ADMINS=@ok:x.org,bad",
		"TLBOT_GRACE_PERIOD=forever", NULL
	};
	struct tlbot_config c;
	struct problems p;

	CHECK_INT(load(&c, &p, "admins: ['@file:x.org']\n"), ==, 0);
	fake_env = env;
	CHECK_INT(tlbot_config_load_env(&c, fake_getenv, collect, &p), ==, 4);
	CHECK_INT(line_of(&p, "power_level must be an integer, not 'high' (from TLBOT_POWER_LEVEL)"),
		  ==, 0);
	CHECK_INT(line_of(&p, "invalid transport 'pigeon' (expected sync, websocket or auto) "
			      "(from TLBOT_TRANSPORT)"), ==, 0);
	CHECK_INT(line_of(&p, "invalid entry 'bad' in admins"), ==, 0);
	CHECK_INT(line_of(&p, "(from TLBOT_GRACE_PERIOD)"), ==, 0);
	/* refused values are not stored */
	CHECK_INT(c.admins.n, ==, 1);
	CHECK_STR(c.admins.v[0], "@file:x.org");
	CHECK_STR(c.transport, "sync");
	tlbot_config_release(&c);
	/* real getenv when no function is given */
	setenv("TLBOT_TIMELINE_LIMIT", "77", 1);
	CHECK_INT(load(&c, &p, ""), ==, 0);
	CHECK_INT(tlbot_config_load_env(&c, NULL, collect, &p), ==, 0);
	CHECK_INT(c.timeline_limit, ==, 77);
	unsetenv("TLBOT_TIMELINE_LIMIT");
	tlbot_config_release(&c);
	fake_env = NULL;
}

TEST(secret_files)
{
	struct tlbot_config c;
	struct problems p;

	use_test_zones();
	CHECK_INT(load(&c, &p, "homeserver: example.org\nuser_id: '@b:example.org'\n"), ==, 0);
	c.access_token_file = strdup(tap_data_path("config/token.txt"));
	c.password_file = strdup(tap_data_path("config/password.txt"));
	CHECK_INT(tlbot_config_finish(&c, collect, &p), ==, 0);
	dump(&p);
	CHECK_STR(c.access_token, "syt_token_from_file");
	/* only the trailing line break is stripped */
	CHECK_STR(c.password, "pa ss w0rd");
	tlbot_config_release(&c);

	/* a direct value wins over its file (which is then not even read) */
	CHECK_INT(load(&c, &p, "homeserver: example.org\nuser_id: '@b:example.org'\n"
			       "access_token: direct\naccess_token_file: /nonexistent\n"), ==, 0);
	CHECK_INT(tlbot_config_finish(&c, collect, &p), ==, 0);
	CHECK_STR(c.access_token, "direct");
	tlbot_config_release(&c);

	CHECK_INT(load(&c, &p, "homeserver: example.org\nuser_id: '@b:example.org'\n"), ==, 0);
	c.access_token_file = strdup(tap_data_path("config/empty-secret.txt"));
	c.password_file = strdup(tap_data_path("config/two-lines.txt"));
	CHECK_INT(tlbot_config_finish(&c, collect, &p), ==, 2);
	CHECK_INT(line_of(&p, "empty-secret.txt' is empty"), ==, 0);
	CHECK_INT(line_of(&p, "two-lines.txt' holds more than one line"), ==, 0);
	/* no "missing credentials" on top: the files were named */
	CHECK_INT(line_of(&p, "missing credentials"), ==, -1);
	CHECK(c.access_token == NULL && c.password == NULL);
	tlbot_config_release(&c);

	CHECK_INT(load(&c, &p, "homeserver: example.org\nuser_id: '@b:example.org'\n"
			       "password_file: /nonexistent/pw\n"), ==, 0);
	c.access_token_file = strdup(tap_data_path("config"));
	CHECK_INT(tlbot_config_finish(&c, collect, &p), ==, 2);
	CHECK_INT(line_of(&p, "cannot read password_file '/nonexistent/pw': No such file or directory"),
		  ==, 0);
	CHECK_INT(line_of(&p, "not a regular file"), ==, 0);
	tlbot_config_release(&c);
}

TEST(finish_required_and_consistency)
{
	struct tlbot_config c;
	struct problems p;

	use_test_zones();
	CHECK_INT(load(&c, &p, ""), ==, 0);
	CHECK_INT(tlbot_config_finish(&c, collect, &p), ==, 3);
	CHECK_INT(line_of(&p, "missing homeserver"), ==, 0);
	CHECK_INT(line_of(&p, "missing user_id"), ==, 0);
	CHECK_INT(line_of(&p, "missing credentials"), ==, 0);
	tlbot_config_release(&c);

	/* values set by code are checked too */
	CHECK_INT(load(&c, &p, "homeserver: example.org\nuser_id: '@b:example.org'\n"
			       "password: pw\nprefixes: []\n"), ==, 0);
	free(c.transport);
	c.transport = strdup("pigeon");
	free(c.log_level);
	c.log_level = strdup("loud");
	free(c.timezone);
	c.timezone = strdup("Nowhere/City");
	c.power_level = 1000001;
	c.timeline_limit = 0;
	CHECK_INT(tlbot_config_finish(&c, collect, &p), ==, 6);
	CHECK_INT(line_of(&p, "invalid transport 'pigeon'"), ==, 0);
	CHECK_INT(line_of(&p, "invalid log_level 'loud'"), ==, 0);
	CHECK_INT(line_of(&p, "unknown timezone 'Nowhere/City'"), ==, 0);
	CHECK_INT(line_of(&p, "power_level out of range: 1000001"), ==, 0);
	CHECK_INT(line_of(&p, "timeline_limit out of range: 0"), ==, 0);
	CHECK_INT(line_of(&p, "prefixes is empty"), ==, 0);
	tlbot_config_release(&c);

	/* a report function is optional: problems are still counted */
	tlbot_config_init(&c);
	CHECK_INT(tlbot_config_finish(&c, NULL, NULL), ==, 3);
	tlbot_config_release(&c);
}

TEST(real_zoneinfo)
{
	struct tlbot_config c;
	struct problems p;
	FILE *f = fopen("/usr/share/zoneinfo/Europe/London", "rb");

	if (f == NULL)
		TAP_SKIP("no /usr/share/zoneinfo");
	fclose(f);
	unsetenv("TZDIR");
	CHECK_INT(load(&c, &p, "timezone: America/New_York\n"), ==, 0);
	tlbot_config_release(&c);
	CHECK_INT(load(&c, &p, "timezone: Europe\n"), ==, 1);
	tlbot_config_release(&c);
	use_test_zones();
}

/* ------------------------------------------------------------ allow-lists */

static void
config_with(struct tlbot_config *c, const char *yaml)
{
	struct problems p;

	if (load(c, &p, yaml) != 0)
		dump(&p);
}

TEST(allow_own_server_by_default)
{
	struct tlbot_config c;

	config_with(&c, "user_id: '@bot:example.org'\n");
	CHECK(tlbot_config_user_allowed(&c, "@alice:example.org"));
	CHECK(!tlbot_config_user_allowed(&c, "@mallory:evil.example"));
	CHECK(!tlbot_config_user_allowed(&c, "@alice:example.org.evil"));
	CHECK(!tlbot_config_user_allowed(&c, "@alice:sub.example.org"));
	CHECK(!tlbot_config_user_allowed(&c, "not-an-id"));
	CHECK(!tlbot_config_user_allowed(&c, NULL));
	tlbot_config_release(&c);
	/* without a bot id nobody is allowed */
	config_with(&c, "");
	CHECK(!tlbot_config_user_allowed(&c, "@alice:example.org"));
	tlbot_config_release(&c);
	/* the own server includes the port */
	config_with(&c, "user_id: '@bot:example.org:8448'\n");
	CHECK(tlbot_config_user_allowed(&c, "@a:example.org:8448"));
	CHECK(!tlbot_config_user_allowed(&c, "@a:example.org"));
	tlbot_config_release(&c);
}

TEST(allow_users_and_servers)
{
	struct tlbot_config c;

	config_with(&c, "user_id: '@bot:example.org'\n"
			"allowed_users: ['@alice:partner.example', '@*:team.gov.uk']\n");
	CHECK(tlbot_config_user_allowed(&c, "@alice:partner.example"));
	CHECK(!tlbot_config_user_allowed(&c, "@bob:partner.example"));
	CHECK(tlbot_config_user_allowed(&c, "@anyone:team.gov.uk"));
	/* a list replaces the own-server default */
	CHECK(!tlbot_config_user_allowed(&c, "@carol:example.org"));
	tlbot_config_release(&c);

	config_with(&c, "user_id: '@bot:example.org'\nallowed_servers: ['*.gov.uk', 'example.org']\n");
	CHECK(tlbot_config_user_allowed(&c, "@a:council.gov.uk"));
	CHECK(tlbot_config_user_allowed(&c, "@a:example.org"));
	CHECK(!tlbot_config_user_allowed(&c, "@a:gov.uk.evil"));
	/* server globs match the server part only, never the localpart */
	CHECK(!tlbot_config_user_allowed(&c, "@example.org:evil.example"));
	CHECK(!tlbot_config_user_allowed(&c, "@a:evil.example"));
	tlbot_config_release(&c);

	/* either list suffices */
	config_with(&c, "user_id: '@bot:example.org'\nallowed_users: ['@x:one.example']\n"
			"allowed_servers: ['two.example']\n");
	CHECK(tlbot_config_user_allowed(&c, "@x:one.example"));
	CHECK(tlbot_config_user_allowed(&c, "@y:two.example"));
	CHECK(!tlbot_config_user_allowed(&c, "@y:one.example"));
	tlbot_config_release(&c);
	/* globs are case-sensitive */
	config_with(&c, "allowed_users: ['@alice:*']\n");
	CHECK(!tlbot_config_user_allowed(&c, "@Alice:x.org"));
	tlbot_config_release(&c);
}

TEST(admins)
{
	struct tlbot_config c;

	config_with(&c, "user_id: '@bot:example.org'\n"
			"admins: ['@boss:elsewhere.example', '@*:admins.example.org']\n");
	CHECK(tlbot_config_is_admin(&c, "@boss:elsewhere.example"));
	CHECK(tlbot_config_is_admin(&c, "@anyone:admins.example.org"));
	CHECK(!tlbot_config_is_admin(&c, "@boss:example.org"));
	CHECK(!tlbot_config_is_admin(&c, "@bossy:elsewhere.example"));
	CHECK(!tlbot_config_is_admin(&c, NULL));
	/* admins are always allowed to use the bot */
	CHECK(tlbot_config_user_allowed(&c, "@boss:elsewhere.example"));
	tlbot_config_release(&c);
	config_with(&c, "");
	CHECK(!tlbot_config_is_admin(&c, "@a:b.c"));
	tlbot_config_release(&c);
}

TEST(rooms)
{
	struct tlbot_config c;

	config_with(&c, "");
	CHECK(tlbot_config_room_allowed(&c, "!any:example.org"));
	CHECK(!tlbot_config_room_allowed(&c, NULL));
	tlbot_config_release(&c);
	config_with(&c, "allowed_rooms: ['!abc:example.org', '!*:team.example']\n");
	CHECK(tlbot_config_room_allowed(&c, "!abc:example.org"));
	CHECK(tlbot_config_room_allowed(&c, "!zzz:team.example"));
	CHECK(!tlbot_config_room_allowed(&c, "!abd:example.org"));
	CHECK(!tlbot_config_room_allowed(&c, "!ABC:example.org"));
	tlbot_config_release(&c);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(defaults),
	TEST_ENTRY(good_file),
	TEST_ENTRY(example_file_is_valid),
	TEST_ENTRY(minimal_file_finishes),
	TEST_ENTRY(bad_file_every_problem_with_its_line),
	TEST_ENTRY(every_problem_message_is_one_line_and_lowercase),
	TEST_ENTRY(syntax_error),
	TEST_ENTRY(odd_documents),
	TEST_ENTRY(unreadable_file),
	TEST_ENTRY(types_and_values),
	TEST_ENTRY(value_checks),
	TEST_ENTRY(list_limits),
	TEST_ENTRY(unknown_keys_and_suggestions),
	TEST_ENTRY(duplicate_keys),
	TEST_ENTRY(secrets_never_echoed),
	TEST_ENTRY(env_overlay),
	TEST_ENTRY(env_every_key_has_a_variable),
	TEST_ENTRY(env_problems),
	TEST_ENTRY(secret_files),
	TEST_ENTRY(finish_required_and_consistency),
	TEST_ENTRY(real_zoneinfo),
	TEST_ENTRY(sync_timeout_zero_refused),
	TEST_ENTRY(allow_own_server_by_default),
	TEST_ENTRY(allow_users_and_servers),
	TEST_ENTRY(admins),
	TEST_ENTRY(rooms),
	TEST_END
};

TAP_MAIN(tests)
