/* Configuration: YAML file (libyaml events) overlaid by TLBOT_* environment,
 * then checked. See include/tlbot/config.h.
 *
 * Every problem is reported with its line and loading goes on, so a person
 * fixing a config file sees all of its mistakes at once. Secret values
 * (password, access_token) are never echoed in a message. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "tlbot/config.h"
#include "tlbot/log.h"
#include "tlbot/parse.h"

#define MSG_MAX 512
#define ECHO_MAX 64             /* bytes of a value or key quoted in a message */
#define SECRET_FILE_MAX 4096
#define ZONEINFO_DIR "/usr/share/zoneinfo"

typedef void (*report_fn)(int line, const char *msg, void *arg);

enum ktype {
	K_STR,       /* char * */
	K_SECRET,    /* char *, never echoed */
	K_LIST,      /* struct tlbot_strlist */
	K_INT,       /* int, within [min, max] */
	K_DURATION,  /* int seconds: "2h", "90m", "45s", "1h30m" or an integer */
	K_BOOL,      /* char * "on" | "off" */
};

/* A value check: 0 if v is acceptable, else -1 with the problem in why
 * (which must not contain v when the key is secret). */
typedef int (*check_fn)(const char *key, const char *v, char *why, size_t whylen);

struct key {
	const char *name;
	enum ktype type;
	size_t off;
	check_fn check;
	long long min, max;
};

static int check_homeserver(const char *, const char *, char *, size_t);
static int check_user_id(const char *, const char *, char *, size_t);
static int check_secret(const char *, const char *, char *, size_t);
static int check_path(const char *, const char *, char *, size_t);
static int check_device(const char *, const char *, char *, size_t);
static int check_prefix(const char *, const char *, char *, size_t);
static int check_user_glob(const char *, const char *, char *, size_t);
static int check_server_glob(const char *, const char *, char *, size_t);
static int check_room_glob(const char *, const char *, char *, size_t);
static int check_log_level(const char *, const char *, char *, size_t);
static int check_transport(const char *, const char *, char *, size_t);
static int check_ws_url(const char *, const char *, char *, size_t);
static int check_timezone(const char *, const char *, char *, size_t);
static int check_room_id(const char *, const char *, char *, size_t);
static int check_listen(const char *, const char *, char *, size_t);
static int check_log_format(const char *, const char *, char *, size_t);

#define F(field) offsetof(struct tlbot_config, field)

static const struct key keys[] = {
	{ "homeserver", K_STR, F(homeserver), check_homeserver, 0, 0 },
	{ "user_id", K_STR, F(user_id), check_user_id, 0, 0 },
	{ "password", K_SECRET, F(password), check_secret, 0, 0 },
	{ "password_file", K_STR, F(password_file), check_path, 0, 0 },
	{ "access_token", K_SECRET, F(access_token), check_secret, 0, 0 },
	{ "access_token_file", K_STR, F(access_token_file), check_path, 0, 0 },
	{ "device_id", K_STR, F(device_id), check_device, 0, 0 },
	{ "database", K_STR, F(database), check_path, 0, 0 },
	{ "prefixes", K_LIST, F(prefixes), check_prefix, 0, 0 },
	{ "allowed_users", K_LIST, F(allowed_users), check_user_glob, 0, 0 },
	{ "allowed_servers", K_LIST, F(allowed_servers), check_server_glob, 0, 0 },
	{ "allowed_rooms", K_LIST, F(allowed_rooms), check_room_glob, 0, 0 },
	{ "admins", K_LIST, F(admins), check_user_glob, 0, 0 },
	{ "log_level", K_STR, F(log_level), check_log_level, 0, 0 },
	{ "transport", K_STR, F(transport), check_transport, 0, 0 },
	{ "websocket_url", K_STR, F(websocket_url), check_ws_url, 0, 0 },
	{ "ca_file", K_STR, F(ca_file), check_path, 0, 0 },
	{ "timezone", K_STR, F(timezone), check_timezone, 0, 0 },
	{ "power_level", K_INT, F(power_level), NULL, 0, 1000000 },
	/* not 0: the bot would poll in a tight loop, and Synapse answers a
	 * repeated since + timeout=0 /sync from its response cache */
	{ "sync_timeout_ms", K_INT, F(sync_timeout_ms), NULL, 1000, 600000 },
	{ "timeline_limit", K_INT, F(timeline_limit), NULL, 1, 1000 },
	{ "grace_period", K_DURATION, F(grace_period_s), NULL, 0, 30 * 86400 },
	{ "rate_limit_per_min", K_INT, F(rate_limit_per_min), NULL, 0, 100000 }, /* 0: off */
	{ "handled_events_max", K_INT, F(handled_events_max), NULL, 100, 10000000 },
	{ "dm_notifications", K_BOOL, F(dm_notifications), NULL, 0, 0 },
	{ "digest_room", K_STR, F(digest_room), check_room_id, 0, 0 },
	{ "bank_holidays_file", K_STR, F(bank_holidays_file), check_path, 0, 0 },
	{ "websocket_ping_s", K_INT, F(websocket_ping_s), NULL, 1, 3600 },
	{ "websocket_reprobe_s", K_INT, F(websocket_reprobe_s), NULL, 1, 86400 },
	{ "websocket_token_in_query", K_BOOL, F(websocket_token_in_query), NULL, 0, 0 },
	{ "metrics_listen", K_STR, F(metrics_listen), check_listen, 0, 0 },
	{ "health_max_sync_age_s", K_INT, F(health_max_sync_age_s), NULL, 5, 86400 },
	{ "health_max_outbox_age_s", K_INT, F(health_max_outbox_age_s), NULL, 5, 86400 },
	{ "log_format", K_STR, F(log_format), check_log_format, 0, 0 },
	{ "retention_days", K_INT, F(retention_days), NULL, 0, 36500 }, /* 0: keep */
	{ "send_concurrency", K_INT, F(send_concurrency), NULL, 1, 64 },
	{ "send_per_room", K_INT, F(send_per_room), NULL, 1, 64 },
	{ "send_give_up", K_DURATION, F(send_give_up_s), NULL, 1, 30 * 86400 },
	{ "encryption", K_BOOL, F(encryption), NULL, 0, 0 },
	{ "pickle_key_file", K_STR, F(pickle_key_file), check_path, 0, 0 },
	{ "pickle_key", K_SECRET, F(pickle_key), check_secret, 0, 0 },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* ---------------------------------------------------------------- helpers */

static char *
xstrndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p == NULL)
		fatalx("out of memory");
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

static char **
str_field(struct tlbot_config *c, const struct key *k)
{
	return (char **)(void *)((char *)c + k->off);
}

static struct tlbot_strlist *
list_field(struct tlbot_config *c, const struct key *k)
{
	return (struct tlbot_strlist *)(void *)((char *)c + k->off);
}

static int *
int_field(struct tlbot_config *c, const struct key *k)
{
	return (int *)(void *)((char *)c + k->off);
}

static const struct key *
find_key(const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static size_t
key_index(const struct key *k)
{
	return (size_t)(k - keys);
}

static void
list_clear(struct tlbot_strlist *l)
{
	size_t i;

	for (i = 0; i < l->n && i < TLBOT_CONFIG_MAX_LIST; i++)
		free(l->v[i]);
	memset(l, 0, sizeof(*l));
}

/* Copy at most ECHO_MAX bytes of s (len bytes) into out as printable text:
 * control bytes become '?', a cut is marked "...". */
static void
echo(const char *s, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < len && i < ECHO_MAX && o + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)s[i];

		out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	if (i < len && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static int
has_space_or_control(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v <= 0x20 || *v == 0x7f)
			return 1;
	return 0;
}

static int
has_control(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return 1;
	return 0;
}

static int
ascii_icase_prefix(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++) {
		char a = *s, b = *prefix;

		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (a != b)
			return 0;
	}
	return 1;
}

static int
is_dns_char(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.';
}

/* Length of a server name (hostname or [ipv6], optional :port) at the start
 * of s, or 0. */
static size_t
server_name_len(const char *s)
{
	size_t i = 0, n;

	if (s[0] == '[') {
		for (i = 1; s[i] && s[i] != ']'; i++)
			if (!(strchr("0123456789abcdefABCDEF:.", s[i])))
				return 0;
		if (s[i] != ']' || i < 3)
			return 0;
		i++;
	} else {
		while (is_dns_char((unsigned char)s[i]))
			i++;
		if (i == 0 || i > 255 || s[0] == '.' || s[0] == '-')
			return 0;
	}
	if (s[i] == ':') {
		for (n = 0; s[i + 1 + n] >= '0' && s[i + 1 + n] <= '9'; n++)
			;
		if (n == 0 || n > 5)
			return 0;
		i += 1 + n;
	}
	return i;
}

/* -------------------------------------------------------------- checks */

/* Refuse v for key: "invalid KEY 'V' (how)" into why, or for an entry of
 * the list key "invalid entry 'V' in KEY (how)". Returns -1. */
static int
refuse(const char *key, const char *v, int entry, const char *how, char *why, size_t whylen)
{
	char e[ECHO_MAX + 8];

	echo(v, strlen(v), e, sizeof(e));
	if (entry)
		snprintf(why, whylen, "invalid entry '%s' in %s (%s)", e, key, how);
	else
		snprintf(why, whylen, "invalid %s '%s' (%s)", key, e, how);
	return -1;
}

static int
invalid(const char *key, const char *v, const char *how, char *why, size_t whylen)
{
	return refuse(key, v, 0, how, why, whylen);
}

static int
invalid_entry(const char *key, const char *v, const char *how, char *why, size_t whylen)
{
	return refuse(key, v, 1, how, why, whylen);
}

static int
check_homeserver(const char *key, const char *v, char *why, size_t whylen)
{
	const char *host = v;
	size_t n;

	if (ascii_icase_prefix(v, "https://"))
		host = v + 8;
	else if (ascii_icase_prefix(v, "http://"))
		host = v + 7;
	n = server_name_len(host);
	if (n && (host[n] == '\0' || (host != v && host[n] == '/' && !has_space_or_control(host + n))))
		return 0;
	return invalid(key, v, "expected https://host[:port] or a server name", why, whylen);
}

static int
check_user_id(const char *key, const char *v, char *why, size_t whylen)
{
	if (tlbot_is_user_id(v))
		return 0;
	return invalid(key, v, "expected @localpart:server", why, whylen);
}

/* Secrets and paths: any text without control bytes. */
static int
no_control(const char *key, const char *v, const char *what, char *why, size_t whylen)
{
	if (!has_control(v))
		return 0;
	snprintf(why, whylen, "%s contains a control character%s", key, what);
	return -1;
}

static int
check_secret(const char *key, const char *v, char *why, size_t whylen)
{
	return no_control(key, v, " or line break", why, whylen);
}

static int
check_path(const char *key, const char *v, char *why, size_t whylen)
{
	return no_control(key, v, "", why, whylen);
}

static int
check_device(const char *key, const char *v, char *why, size_t whylen)
{
	const char *p;

	for (p = v; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			break;
	if (*p == '\0' && p - v <= 255)
		return 0;
	return invalid(key, v, "printable ASCII without spaces", why, whylen);
}

static int
check_prefix(const char *key, const char *v, char *why, size_t whylen)
{
	size_t n = strlen(v);

	if (n >= 1 && n <= 4 && !has_space_or_control(v))
		return 0;
	return invalid("prefix", v, "1 to 4 bytes, no spaces", why, whylen);
}

static int
check_user_glob(const char *key, const char *v, char *why, size_t whylen)
{
	if ((v[0] == '@' || v[0] == '*' || v[0] == '?') && strlen(v) <= 255 &&
	    !has_space_or_control(v))
		return 0;
	return invalid_entry(key, v, "expected a user id like @alice:example.org or a glob like "
			     "@*:example.org", why, whylen);
}

static int
check_server_glob(const char *key, const char *v, char *why, size_t whylen)
{
	const char *p;

	for (p = v; *p; p++)
		if (!is_dns_char((unsigned char)*p) && !strchr("*?:[]", *p))
			break;
	if (*p == '\0' && p != v && p - v <= 255)
		return 0;
	return invalid_entry(key, v, "expected a server name like example.org or a glob like "
			     "*.example.org", why, whylen);
}

static int
check_room_glob(const char *key, const char *v, char *why, size_t whylen)
{
	if ((v[0] == '!' || v[0] == '#' || v[0] == '*' || v[0] == '?') && strlen(v) <= 255 &&
	    !has_space_or_control(v))
		return 0;
	return invalid_entry(key, v, "expected a room id like !abc:example.org or a glob", why,
			     whylen);
}

static int
check_room_id(const char *key, const char *v, char *why, size_t whylen)
{
	const char *colon = strchr(v, ':');

	if ((v[0] == '!' || v[0] == '#') && colon && colon > v + 1 && colon[1] &&
	    strlen(v) <= 255 && !has_space_or_control(v))
		return 0;
	return invalid(key, v, "expected a room id like !abc:example.org", why, whylen);
}

static int
check_log_level(const char *key, const char *v, char *why, size_t whylen)
{
	enum tlbot_log_level l;

	if (tlbot_log_parse_level(v, &l) == 0)
		return 0;
	return invalid(key, v, "expected error, warn, info or debug", why, whylen);
}

static int
check_transport(const char *key, const char *v, char *why, size_t whylen)
{
	if (strcmp(v, "sync") == 0 || strcmp(v, "websocket") == 0 || strcmp(v, "auto") == 0)
		return 0;
	return invalid(key, v, "expected sync, websocket or auto", why, whylen);
}

/* metrics_listen: "PORT" or "HOST:PORT" ("[v6]:PORT"), port 1..65535. */
static int
check_listen(const char *key, const char *v, char *why, size_t whylen)
{
	const char *colon = strrchr(v, ':'), *port = colon ? colon + 1 : v;
	char *end = NULL;
	long n;

	errno = 0;
	n = *port ? strtol(port, &end, 10) : 0;
	if (errno == 0 && end && *end == '\0' && n >= 1 && n <= 65535 &&
	    (colon == NULL || colon > v))
		return 0;
	return invalid(key, v, "expected PORT or HOST:PORT, e.g. 127.0.0.1:9464", why, whylen);
}

static int
check_log_format(const char *key, const char *v, char *why, size_t whylen)
{
	if (strcmp(v, "text") == 0 || strcmp(v, "json") == 0)
		return 0;
	return invalid(key, v, "expected text or json", why, whylen);
}

static int
check_ws_url(const char *key, const char *v, char *why, size_t whylen)
{
	static const char *const schemes[] = { "wss://", "ws://", "https://", "http://", NULL };
	size_t i, n;

	for (i = 0; schemes[i]; i++) {
		if (ascii_icase_prefix(v, schemes[i])) {
			const char *host = v + strlen(schemes[i]);

			n = server_name_len(host);
			if (n && (host[n] == '\0' || host[n] == '/') && !has_space_or_control(host))
				return 0;
			break;
		}
	}
	return invalid(key, v, "expected wss://host/path or ws://host/path", why, whylen);
}

static int
check_timezone(const char *key, const char *v, char *why, size_t whylen)
{
	const char *dir = getenv("TZDIR"), *p;
	char path[512], e[ECHO_MAX + 8], magic[4];
	struct stat st;
	FILE *f;
	int ok = 0;

	echo(v, strlen(v), e, sizeof(e));
	if (dir == NULL || dir[0] == '\0')
		dir = ZONEINFO_DIR;
	for (p = v; *p; p++)
		if (!is_dns_char((unsigned char)*p) && *p != '_' && *p != '/' && *p != '+')
			break;
	if (*p || v[0] == '\0' || v[0] == '/' || v[0] == '.' || strstr(v, "..") || strlen(v) > 64) {
		snprintf(why, whylen, "invalid %s '%s' (expected an IANA name like Europe/London)",
			 key, e);
		return -1;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, v) < sizeof(path) &&
	    stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
		f = fopen(path, "rb");
		if (f) {
			ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
			fclose(f);
		}
	}
	if (ok)
		return 0;
	snprintf(why, whylen, "unknown %s '%s' (no such zone in %s)", key, e, dir);
	return -1;
}

/* ------------------------------------------------------------- reporting */

struct ctx {
	struct tlbot_config *c;
	report_fn report;
	void *arg;
	int problems;
	int seen_line[NKEYS];   /* line of a key already given in this file */
	const char *env;        /* the variable being read, or NULL */
};

static void
problem(struct ctx *x, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
problem(struct ctx *x, int line, const char *fmt, ...)
{
	char msg[MSG_MAX];
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = strlen(msg);
	if (x->env)
		snprintf(msg + n, sizeof(msg) - n, " (from %s)", x->env);
	x->problems++;
	if (x->report)
		x->report(line, msg, x->arg);
}

/* Parse a whole decimal integer. Returns 0, -1 if not an integer, -2 if
 * outside [min, max] (*out still set, clamped to the long long range). */
static int
parse_int(const char *v, long long min, long long max, long long *out)
{
	char *end;

	if (v[0] == '\0' || v[0] == ' ' || v[0] == '\t')
		return -1;
	errno = 0;
	*out = strtoll(v, &end, 10);
	if (*end != '\0')
		return -1;
	if (errno == ERANGE || *out < min || *out > max)
		return -2;
	return 0;
}

/* "2h", "90m", "45s", "1d", "1h30m" or a whole number of seconds. */
static int
parse_duration(const char *v, long long max, long long *out)
{
	long long total = 0;
	const char *p = v;

	if (parse_int(v, 0, max, out) != -1)
		return *out < 0 ? -2 : (*out > max ? -2 : 0);
	if (*p == '\0')
		return -1;
	while (*p) {
		long long n = 0, unit;

		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9') {
			if (n > max)
				return -2;
			n = n * 10 + (*p++ - '0');
		}
		switch (*p++) {
		case 's': unit = 1; break;
		case 'm': unit = 60; break;
		case 'h': unit = 3600; break;
		case 'd': unit = 86400; break;
		default: return -1;
		}
		if (n > max / unit || total > max - n * unit) {
			while (*p) /* still reject junk after a huge value */
				if (!strchr("0123456789smhd", *p++))
					return -1;
			return -2;
		}
		total += n * unit;
	}
	*out = total;
	return 0;
}

/* Check and store one scalar value of a non-list key. Returns 0 or -1
 * (reported). */
static int
set_scalar(struct ctx *x, const struct key *k, const char *v, int line)
{
	char why[MSG_MAX], e[ECHO_MAX + 8];
	long long n;
	int rc;

	switch (k->type) {
	case K_STR:
	case K_SECRET:
		if (k->check && k->check(k->name, v, why, sizeof(why)) != 0) {
			problem(x, line, "%s", why);
			return -1;
		}
		free(*str_field(x->c, k));
		*str_field(x->c, k) = xstrdup(v);
		return 0;
	case K_BOOL: {
		static const char *const on[] = { "on", "true", "yes", "1", NULL };
		static const char *const off[] = { "off", "false", "no", "0", NULL };
		const char *val = NULL;
		size_t i;

		for (i = 0; on[i] && val == NULL; i++)
			if (ascii_icase_prefix(v, on[i]) && strlen(v) == strlen(on[i]))
				val = "on";
		for (i = 0; off[i] && val == NULL; i++)
			if (ascii_icase_prefix(v, off[i]) && strlen(v) == strlen(off[i]))
				val = "off";
		if (val == NULL) {
			echo(v, strlen(v), e, sizeof(e));
			problem(x, line, "%s must be on or off, not '%s'", k->name, e);
			return -1;
		}
		free(*str_field(x->c, k));
		*str_field(x->c, k) = xstrdup(val);
		return 0;
	}
	case K_INT:
	case K_DURATION:
		if (k->type == K_INT)
			rc = parse_int(v, k->min, k->max, &n);
		else
			rc = parse_duration(v, k->max, &n);
		echo(v, strlen(v), e, sizeof(e));
		if (rc == -1) {
			if (k->type == K_INT)
				problem(x, line, "%s must be an integer, not '%s'", k->name, e);
			else
				problem(x, line, "%s must be a duration like 2h, 90m, 45s or a number "
					"of seconds, not '%s'", k->name, e);
			return -1;
		}
		if (rc == -2) {
			if (k->type == K_INT)
				problem(x, line, "%s out of range: %s (expected %lld to %lld)", k->name,
					e, k->min, k->max);
			else
				problem(x, line, "%s out of range: %s (expected at most %lld days)",
					k->name, e, k->max / 86400);
			return -1;
		}
		*int_field(x->c, k) = (int)n;
		return 0;
	case K_LIST:
		break;
	}
	return -1;
}

/* Check one list entry and add it to l. Returns 0 or -1 (reported). */
static int
list_add(struct ctx *x, const struct key *k, struct tlbot_strlist *l, const char *v, int line)
{
	char why[MSG_MAX];

	if (v[0] == '\0') {
		problem(x, line, "empty entry in %s", k->name);
		return -1;
	}
	if (k->check && k->check(k->name, v, why, sizeof(why)) != 0) {
		problem(x, line, "%s", why);
		return -1;
	}
	/* one slot stays NULL so l->v works as a NULL-terminated list */
	if (l->n >= TLBOT_CONFIG_MAX_LIST - 1) {
		problem(x, line, "too many entries in %s (max %d)", k->name,
			TLBOT_CONFIG_MAX_LIST - 1);
		return -1;
	}
	l->v[l->n++] = xstrdup(v);
	return 0;
}

/* Replace the list of k with l (taken over), or drop l and mark k refused
 * when bad is set. */
static void
list_commit(struct ctx *x, const struct key *k, struct tlbot_strlist *l, int bad)
{
	if (bad) {
		list_clear(l);
		x->c->refused |= 1ULL << key_index(k);
		return;
	}
	list_clear(list_field(x->c, k));
	*list_field(x->c, k) = *l;
	x->c->refused &= ~(1ULL << key_index(k));
}

static void
did_you_mean(const char *name, char *out, size_t outlen)
{
	char lower[ECHO_MAX + 1];
	size_t i, best = NKEYS, bestd = (size_t)-1, n = strlen(name);

	out[0] = '\0';
	if (n > ECHO_MAX)
		return;
	for (i = 0; i <= n; i++)
		lower[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
	for (i = 0; i < NKEYS; i++) {
		size_t kl = strlen(keys[i].name), d;

		/* the distance is at least the difference in length */
		if ((n > kl ? n - kl : kl - n) > 3)
			continue;
		d = tlbot_edit_distance(lower, keys[i].name);

		if (d < bestd) {
			bestd = d;
			best = i;
		}
	}
	if (best < NKEYS && (bestd <= 2 || (bestd <= 3 && n >= 10)))
		snprintf(out, outlen, " (did you mean '%s'?)", keys[best].name);
}

/* ------------------------------------------------------------- YAML side */

struct yctx {
	struct ctx x;
	yaml_parser_t parser;
	int broken;            /* a syntax error was reported: stop */
};

static int
line_of(const yaml_event_t *ev)
{
	return (int)ev->start_mark.line + 1;
}

/* Next event. Returns 0, or -1 after reporting a syntax error. */
static int
next_event(struct yctx *y, yaml_event_t *ev)
{
	if (y->broken)
		return -1;
	if (yaml_parser_parse(&y->parser, ev))
		return 0;
	y->broken = 1;
	{
		const yaml_parser_t *p = &y->parser;
		int line = (int)p->problem_mark.line + 1;
		const char *what = p->problem ? p->problem : "syntax error";

		if (p->error == YAML_MEMORY_ERROR)
			problem(&y->x, 0, "out of memory reading yaml");
		else if (p->context)
			problem(&y->x, line, "invalid yaml: %s (%s)", what, p->context);
		else
			problem(&y->x, line, "invalid yaml: %s", what);
	}
	return -1;
}

/* Having read the start event of a node (ev), consume the rest of it. */
static int
skip_rest(struct yctx *y, const yaml_event_t *start)
{
	long depth;
	yaml_event_t ev;

	if (start->type != YAML_MAPPING_START_EVENT && start->type != YAML_SEQUENCE_START_EVENT)
		return 0;
	depth = 1;
	while (depth > 0) {
		if (next_event(y, &ev) != 0)
			return -1;
		if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT)
			depth++;
		else if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT)
			depth--;
		else if (ev.type == YAML_STREAM_END_EVENT || ev.type == YAML_NO_EVENT)
			depth = 0;
		yaml_event_delete(&ev);
	}
	return 0;
}

static const char *
node_kind(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_MAPPING_START_EVENT: return "a mapping";
	case YAML_SEQUENCE_START_EVENT: return "a list";
	case YAML_ALIAS_EVENT: return "an alias";
	default: return "a scalar";
	}
}

static int
is_null(const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;

	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return ev->data.scalar.length == 0;
	return ev->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* A scalar with an embedded NUL cannot be a C string. */
static int
has_nul(const yaml_event_t *ev)
{
	return memchr(ev->data.scalar.value, '\0', ev->data.scalar.length) != NULL;
}

/* The value of key k (at line kline), whose first event is ev. Problems
 * with a scalar are reported at its line, wrong types at the key's. */
static int
read_value(struct yctx *y, const struct key *k, int kline, yaml_event_t *ev)
{
	struct ctx *x = &y->x;
	int line = ev->type == YAML_SCALAR_EVENT ? line_of(ev) : kline;

	if (ev->type == YAML_SCALAR_EVENT) {
		if (is_null(ev))
			return 0;
		if (has_nul(ev)) {
			problem(x, line, "%s contains a NUL byte", k->name);
		} else if (k->type == K_LIST) {
			struct tlbot_strlist l;

			memset(&l, 0, sizeof(l));
			list_commit(x, k, &l,
				    list_add(x, k, &l, (const char *)ev->data.scalar.value, line));
			return 0;
		} else if (set_scalar(x, k, (const char *)ev->data.scalar.value, line) == 0) {
			x->c->refused &= ~(1ULL << key_index(k));
			return 0;
		}
		x->c->refused |= 1ULL << key_index(k);
		return 0;
	}
	if (ev->type == YAML_SEQUENCE_START_EVENT && k->type == K_LIST) {
		struct tlbot_strlist l;
		int bad = 0;

		memset(&l, 0, sizeof(l));
		for (;;) {
			yaml_event_t item;

			if (next_event(y, &item) != 0) {
				list_clear(&l);
				return -1;
			}
			if (item.type == YAML_SEQUENCE_END_EVENT) {
				yaml_event_delete(&item);
				break;
			}
			if (item.type != YAML_SCALAR_EVENT) {
				problem(x, line_of(&item), "entries of %s must be strings, not %s",
					k->name, node_kind(&item));
				bad = 1;
				if (skip_rest(y, &item) != 0) {
					yaml_event_delete(&item);
					list_clear(&l);
					return -1;
				}
			} else if (has_nul(&item)) {
				problem(x, line_of(&item), "entry of %s contains a NUL byte", k->name);
				bad = 1;
			} else if (is_null(&item)) {
				problem(x, line_of(&item), "empty entry in %s", k->name);
				bad = 1;
			} else if (list_add(x, k, &l, (const char *)item.data.scalar.value,
					    line_of(&item)) != 0) {
				bad = 1;
			}
			yaml_event_delete(&item);
		}
		list_commit(x, k, &l, bad);
		return 0;
	}
	if (ev->type == YAML_ALIAS_EVENT)
		problem(x, line, "aliases are not supported (in %s)", k->name);
	else if (k->type == K_LIST)
		problem(x, line, "%s must be a string or a list of strings, not %s", k->name,
			node_kind(ev));
	else if (k->type == K_INT || k->type == K_DURATION)
		problem(x, line, "%s must be %s, not %s", k->name,
			k->type == K_INT ? "an integer" : "a duration", node_kind(ev));
	else
		problem(x, line, "%s must be a string, not %s", k->name, node_kind(ev));
	x->c->refused |= 1ULL << key_index(k);
	return skip_rest(y, ev);
}

/* The pairs of the top-level mapping (its start event already read). */
static int
read_mapping(struct yctx *y)
{
	struct ctx *x = &y->x;

	for (;;) {
		yaml_event_t kev, vev;
		const struct key *k = NULL;
		char e[ECHO_MAX + 8], hint[96];
		int rc, kline;

		if (next_event(y, &kev) != 0)
			return -1;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			return 0;
		}
		kline = line_of(&kev);
		if (kev.type != YAML_SCALAR_EVENT) {
			problem(x, kline, "keys must be plain names, not %s", node_kind(&kev));
			rc = skip_rest(y, &kev);
		} else if (has_nul(&kev)) {
			problem(x, kline, "unknown key with a NUL byte");
			rc = 0;
		} else {
			const char *name = (const char *)kev.data.scalar.value;

			k = find_key(name);
			if (k == NULL) {
				echo(name, kev.data.scalar.length, e, sizeof(e));
				did_you_mean(name, hint, sizeof(hint));
				problem(x, kline, "unknown key '%s'%s", e, hint);
			} else if (x->seen_line[key_index(k)]) {
				problem(x, kline, "duplicate key '%s' (first at line %d)", k->name,
					x->seen_line[key_index(k)]);
				k = NULL;
			} else {
				x->seen_line[key_index(k)] = kline;
			}
			rc = 0;
		}
		yaml_event_delete(&kev);
		if (rc != 0)
			return -1;
		if (next_event(y, &vev) != 0)
			return -1;
		if (k)
			rc = read_value(y, k, kline, &vev);
		else
			rc = skip_rest(y, &vev);
		yaml_event_delete(&vev);
		if (rc != 0)
			return -1;
	}
}

static int
load_parser(struct tlbot_config *c, struct yctx *y, report_fn report, void *arg)
{
	yaml_event_t ev;
	int docs = 0;

	y->x.c = c;
	y->x.report = report;
	y->x.arg = arg;
	for (;;) {
		if (next_event(y, &ev) != 0)
			break;
		if (ev.type == YAML_STREAM_END_EVENT || ev.type == YAML_NO_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
			problem(&y->x, line_of(&ev), "more than one yaml document (only one is read)");
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type == YAML_MAPPING_START_EVENT) {
			int rc = read_mapping(y);

			yaml_event_delete(&ev);
			if (rc != 0)
				break;
			continue;
		}
		if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_ALIAS_EVENT ||
		    (ev.type == YAML_SCALAR_EVENT && !is_null(&ev))) {
			problem(&y->x, line_of(&ev), "expected key: value pairs at the top level, "
				"not %s", node_kind(&ev));
			if (skip_rest(y, &ev) != 0) {
				yaml_event_delete(&ev);
				break;
			}
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&y->parser);
	return y->x.problems;
}

int
tlbot_config_load_string(struct tlbot_config *c, const char *yaml, size_t len,
			 report_fn report, void *arg)
{
	struct yctx y;

	memset(&y, 0, sizeof(y));
	if (!yaml_parser_initialize(&y.parser)) {
		y.x.report = report;
		y.x.arg = arg;
		problem(&y.x, 0, "out of memory reading yaml");
		return y.x.problems;
	}
	yaml_parser_set_input_string(&y.parser, (const unsigned char *)(yaml ? yaml : ""),
				     yaml ? len : 0);
	return load_parser(c, &y, report, arg);
}

int
tlbot_config_load_file(struct tlbot_config *c, const char *path, report_fn report, void *arg)
{
	struct yctx y;
	struct stat st;
	FILE *f;
	int rc;

	memset(&y, 0, sizeof(y));
	y.x.report = report;
	y.x.arg = arg;
	f = fopen(path, "rb");
	if (f == NULL || fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
		int err = f ? (S_ISDIR(st.st_mode) ? EISDIR : errno) : errno;

		problem(&y.x, 0, "cannot read config file '%s': %s", path, strerror(err));
		if (f)
			fclose(f);
		return -1;
	}
	if (!yaml_parser_initialize(&y.parser)) {
		fclose(f);
		problem(&y.x, 0, "out of memory reading yaml");
		return y.x.problems;
	}
	free(c->source_path);
	c->source_path = xstrdup(path);
	yaml_parser_set_input_file(&y.parser, f);
	rc = load_parser(c, &y, report, arg);
	fclose(f);
	return rc;
}

/* ------------------------------------------------------------ environment */

int
tlbot_config_load_env(struct tlbot_config *c, char *(*getenv_fn)(const char *),
		      report_fn report, void *arg)
{
	struct ctx x;
	size_t i, j;

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.report = report;
	x.arg = arg;
	if (getenv_fn == NULL)
		getenv_fn = getenv;
	for (i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		char name[64];
		const char *v;

		memcpy(name, "TLBOT_", 6);
		for (j = 0; k->name[j] && j + 7 < sizeof(name); j++)
			name[6 + j] = (k->name[j] >= 'a' && k->name[j] <= 'z') ?
				(char)(k->name[j] - 'a' + 'A') : k->name[j];
		name[6 + j] = '\0';
		v = getenv_fn(name);
		if (v == NULL || v[0] == '\0')
			continue;
		x.env = name;
		if (k->type == K_LIST) {
			struct tlbot_strlist l;
			int bad = 0;

			memset(&l, 0, sizeof(l));
			while (*v) {
				const char *end = strchr(v, ','), *a, *b;
				char *item;

				if (end == NULL)
					end = v + strlen(v);
				for (a = v; a < end && (*a == ' ' || *a == '\t'); a++)
					;
				for (b = end; b > a && (b[-1] == ' ' || b[-1] == '\t'); b--)
					;
				if (b > a) {
					item = xstrndup(a, (size_t)(b - a));
					if (list_add(&x, k, &l, item, 0) != 0)
						bad = 1;
					free(item);
				}
				v = *end ? end + 1 : end;
			}
			list_commit(&x, k, &l, bad);
		} else if (set_scalar(&x, k, v, 0) == 0) {
			c->refused &= ~(1ULL << i);
		} else {
			c->refused |= 1ULL << i;
		}
		x.env = NULL;
	}
	return x.problems;
}

/* ----------------------------------------------------------------- finish */

/* Read a secret from path into *out (trailing newline stripped). */
static void
read_secret(struct ctx *x, const char *what, const char *path, char **out)
{
	char buf[SECRET_FILE_MAX + 2];
	size_t n;
	FILE *f = fopen(path, "rb");
	struct stat st;

	if (f == NULL || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		int err = f ? EINVAL : errno;

		problem(x, 0, "cannot read %s '%s': %s", what, path,
			f ? "not a regular file" : strerror(err));
		if (f)
			fclose(f);
		return;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	if (ferror(f)) {
		problem(x, 0, "cannot read %s '%s': %s", what, path, strerror(errno));
		fclose(f);
		return;
	}
	fclose(f);
	if (n > SECRET_FILE_MAX) {
		problem(x, 0, "%s '%s' is too large (max %d bytes)", what, path, SECRET_FILE_MAX);
		return;
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (n == 0) {
		problem(x, 0, "%s '%s' is empty", what, path);
	} else if (memchr(buf, '\0', n) || has_control(buf)) {
		problem(x, 0, "%s '%s' holds more than one line or a control character", what, path);
	} else {
		free(*out);
		*out = xstrndup(buf, n);
	}
	memset(buf, 0, sizeof(buf));
}

static int
refused(const struct tlbot_config *c, const char *name)
{
	const struct key *k = find_key(name);

	return k && (c->refused & (1ULL << key_index(k)));
}

/* Check the value of key k, whoever set it, reporting what is wrong. */
static void
check_key(struct ctx *x, const struct key *k)
{
	struct tlbot_config *c = x->c;
	char why[MSG_MAX];
	size_t j;

	switch (k->type) {
	case K_STR:
	case K_SECRET: {
		const char *v = *str_field(c, k);

		if (v && v[0] && k->check && k->check(k->name, v, why, sizeof(why)) != 0)
			problem(x, 0, "%s", why);
		break;
	}
	case K_BOOL: {
		const char *v = *str_field(c, k);

		if (v && strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
			problem(x, 0, "%s must be on or off", k->name);
		break;
	}
	case K_INT:
	case K_DURATION: {
		int v = *int_field(c, k);

		if (v < k->min || v > k->max)
			problem(x, 0, "%s out of range: %d (expected %lld to %lld)", k->name,
				v, k->min, k->max);
		break;
	}
	case K_LIST: {
		const struct tlbot_strlist *l = list_field(c, k);

		if (l->n >= TLBOT_CONFIG_MAX_LIST || l->v[l->n] != NULL) {
			problem(x, 0, "too many entries in %s (max %d)", k->name,
				TLBOT_CONFIG_MAX_LIST - 1);
			break;
		}
		for (j = 0; j < l->n; j++) {
			if (l->v[j] == NULL || l->v[j][0] == '\0')
				problem(x, 0, "empty entry in %s", k->name);
			else if (k->check && k->check(k->name, l->v[j], why, sizeof(why)) != 0)
				problem(x, 0, "%s", why);
		}
		break;
	}
	}
}

int
tlbot_config_finish(struct tlbot_config *c, report_fn report, void *arg)
{
	struct ctx x;
	size_t i;

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.report = report;
	x.arg = arg;

	if ((c->password == NULL || c->password[0] == '\0') && c->password_file &&
	    c->password_file[0])
		read_secret(&x, "password_file", c->password_file, &c->password);
	if ((c->access_token == NULL || c->access_token[0] == '\0') && c->access_token_file &&
	    c->access_token_file[0])
		read_secret(&x, "access_token_file", c->access_token_file, &c->access_token);

	if ((c->homeserver == NULL || c->homeserver[0] == '\0') && !refused(c, "homeserver"))
		problem(&x, 0, "missing homeserver (the server's URL or name; or TLBOT_HOMESERVER)");
	if ((c->user_id == NULL || c->user_id[0] == '\0') && !refused(c, "user_id"))
		problem(&x, 0, "missing user_id (the bot's @name:server; or TLBOT_USER_ID)");
	if ((c->password == NULL || c->password[0] == '\0') &&
	    (c->access_token == NULL || c->access_token[0] == '\0') &&
	    !refused(c, "password") && !refused(c, "access_token") &&
	    !(c->password_file && c->password_file[0]) &&
	    !(c->access_token_file && c->access_token_file[0]))
		problem(&x, 0, "missing credentials: set access_token_file, access_token, "
			"password_file or password (or TLBOT_ACCESS_TOKEN)");

	/* every value, whoever set it */
	for (i = 0; i < NKEYS; i++)
		check_key(&x, &keys[i]);
	if (c->prefixes.n == 0 && !refused(c, "prefixes"))
		problem(&x, 0, "prefixes is empty (commands need at least one, like \"!\")");
	if (c->database == NULL || c->database[0] == '\0')
		problem(&x, 0, "missing database (a path like tlbot.db)");
	if (c->log_level == NULL || c->transport == NULL || c->timezone == NULL ||
	    c->dm_notifications == NULL)
		problem(&x, 0, "log_level, transport, timezone and dm_notifications must be set");
	return x.problems;
}

/* -------------------------------------------------------- init, release */

void
tlbot_config_init(struct tlbot_config *c)
{
	memset(c, 0, sizeof(*c));
	c->database = xstrdup("tlbot.db");
	c->prefixes.v[0] = xstrdup("!");
	c->prefixes.v[1] = xstrdup("/");
	c->prefixes.n = 2;
	c->log_level = xstrdup("info");
	c->transport = xstrdup("sync");
	c->timezone = xstrdup("Europe/London");
	c->power_level = 50;
	c->sync_timeout_ms = 30000;
	c->timeline_limit = 50;
	c->grace_period_s = 7200;
	c->rate_limit_per_min = 20;
	c->handled_events_max = 10000;
	c->dm_notifications = xstrdup("on");
	c->websocket_ping_s = 60;
	c->websocket_reprobe_s = 600;
	c->websocket_token_in_query = xstrdup("off");
	c->health_max_sync_age_s = 90;
	c->health_max_outbox_age_s = 300;
	c->log_format = xstrdup("text");
	c->send_concurrency = 8;
	c->send_per_room = 3;
	c->send_give_up_s = 300;
	c->encryption = xstrdup("on");
}

/* Overwrite a secret before freeing it. */
static void
free_secret(char *s)
{
	if (s) {
		volatile char *p = s;

		while (*p)
			*p++ = '\0';
		free(s);
	}
}

void
tlbot_config_release(struct tlbot_config *c)
{
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];

		if (k->type == K_LIST)
			list_clear(list_field(c, k));
		else if (k->type == K_SECRET)
			free_secret(*str_field(c, k));
		else if (k->type == K_STR || k->type == K_BOOL)
			free(*str_field(c, k));
	}
	free(c->source_path);
	memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------ allow-lists */

/* The server part of a user id (after the first ':'), or NULL. */
static const char *
server_of(const char *user_id)
{
	const char *colon = user_id ? strchr(user_id, ':') : NULL;

	return colon ? colon + 1 : NULL;
}

static int
any_glob(const struct tlbot_strlist *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n && i < TLBOT_CONFIG_MAX_LIST; i++)
		if (l->v[i] && tlbot_glob_match(l->v[i], s))
			return 1;
	return 0;
}

int
tlbot_config_user_allowed(const struct tlbot_config *c, const char *user_id)
{
	const char *server, *own;

	if (!tlbot_is_user_id(user_id))
		return 0;
	server = server_of(user_id);
	if (tlbot_config_is_admin(c, user_id))
		return 1;
	if (c->allowed_users.n == 0 && c->allowed_servers.n == 0) {
		own = tlbot_is_user_id(c->user_id) ? server_of(c->user_id) : NULL;
		return own && strcmp(own, server) == 0;
	}
	return any_glob(&c->allowed_users, user_id) || any_glob(&c->allowed_servers, server);
}

int
tlbot_config_room_allowed(const struct tlbot_config *c, const char *room_id)
{
	if (room_id == NULL)
		return 0;
	if (c->allowed_rooms.n == 0)
		return 1;
	return any_glob(&c->allowed_rooms, room_id);
}

int
tlbot_config_is_admin(const struct tlbot_config *c, const char *user_id)
{
	if (!tlbot_is_user_id(user_id))
		return 0;
	return any_glob(&c->admins, user_id);
}

_Static_assert(sizeof(keys) / sizeof(keys[0]) <= 64, "refused is a 64-bit mask of keys");
