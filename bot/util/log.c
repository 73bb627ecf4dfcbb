/* Logging to stderr: one line per event, secrets redacted. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tlbot/log.h"

#define MAX_SECRETS 8
#define LINE_MAX_LEN 2048

static enum tlbot_log_level level = TLBOT_LOG_INFO;
static int json_lines;
static char *secrets[MAX_SECRETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void
tlbot_log_set_level(enum tlbot_log_level l)
{
	level = l;
}

enum tlbot_log_level
tlbot_log_get_level(void)
{
	return level;
}

int
tlbot_log_parse_level(const char *s, enum tlbot_log_level *out)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum tlbot_log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = TLBOT_LOG_WARN;
		return 0;
	}
	return -1;
}

void
tlbot_log_set_json(int on)
{
	json_lines = on;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when invalid. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
	    (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return n;
}

/* Append "s" (n bytes) as a JSON string to out at *o (cap outlen, always
 * leaving room to close the line): quotes, backslashes and controls
 * escaped, invalid UTF-8 replaced by U+FFFD. */
static void
json_str(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;

	if (*o + 8 >= outlen)
		return;
	out[(*o)++] = '"';
	while (p < end && *p && *o + 16 < outlen) {
		size_t k = utf8_len(p);

		if (k == 0 || p + k > end) {
			memcpy(out + *o, "\\ufffd", 6);
			*o += 6;
			p++;
		} else if (*p == '"' || *p == '\\') {
			out[(*o)++] = '\\';
			out[(*o)++] = (char)*p++;
		} else if (*p < 0x20) {
			*o += (size_t)snprintf(out + *o, outlen - *o, "\\u%04x", *p);
			p++;
		} else {
			memcpy(out + *o, p, k);
			*o += k;
			p += k;
		}
	}
	out[(*o)++] = '"';
}

/* The id after "room " / " event " at the start of line (a room or event
 * id: no spaces, no trailing colon). */
static size_t
id_after(const char *line, const char *word, const char **id)
{
	const char *p = strstr(line, word);
	size_t n;

	*id = NULL;
	if (p == NULL || (p != line && strcmp(word, "room ") == 0))
		return 0;
	p += strlen(word);
	if (*p != '!' && *p != '$')
		return 0;
	for (n = 0; p[n] && p[n] != ' '; n++)
		;
	if (n > 0 && p[n - 1] == ':')
		n--;
	*id = p;
	return n;
}

/* The module a line is from: its "word: " prefix (sync, websocket,
 * database...), else what it starts with. */
static void
module_of(const char *line, char *out, size_t outlen)
{
	static const struct {
		const char *start, *module;
	} starts[] = { { "room ", "router" }, { "outbox ", "outbox" }, { "job ", "scheduler" },
		       { "created DM", "outbox" }, { "logged in", "login" }, { "running as", "login" },
		       { "tlbot ", "main" }, { "stopped", "main" } };
	size_t n, i;

	for (n = 0; n < 24 && line[n] && line[n] != ':'; n++)
		if (!((line[n] >= 'a' && line[n] <= 'z') || line[n] == ' ' || line[n] == '-'))
			break;
	if (n > 0 && line[n] == ':' && line[n + 1] == ' ') {
		snprintf(out, outlen, "%.*s", (int)n, line);
		return;
	}
	for (i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		if (strncmp(line, starts[i].start, strlen(starts[i].start)) == 0) {
			snprintf(out, outlen, "%s", starts[i].module);
			return;
		}
	}
	snprintf(out, outlen, "tlbot");
}

/* One JSON object for line into out. */
static void
json_line(const char *stamp, const char *tag, const char *line, char *out, size_t outlen)
{
	const char *room, *event;
	size_t o = 0, rn = id_after(line, "room ", &room), en = id_after(line, " event ", &event);
	char module[32];

	module_of(line, module, sizeof(module));
	o += (size_t)snprintf(out, outlen, "{\"time\":\"%s\",\"level\":\"%s\",\"module\":", stamp,
			      tag);
	json_str(out, outlen, &o, module, strlen(module));
	o += (size_t)snprintf(out + o, outlen - o, ",\"room\":");
	if (room)
		json_str(out, outlen, &o, room, rn);
	else
		o += (size_t)snprintf(out + o, outlen - o, "null");
	o += (size_t)snprintf(out + o, outlen - o, ",\"event\":");
	if (event)
		json_str(out, outlen, &o, event, en);
	else
		o += (size_t)snprintf(out + o, outlen - o, "null");
	o += (size_t)snprintf(out + o, outlen - o, ",\"message\":");
	json_str(out, outlen, &o, line, strlen(line));
	snprintf(out + o, outlen - o, "}");
}

void
tlbot_log_add_secret(const char *secret)
{
	size_t i;

	if (secret == NULL || strlen(secret) < 4)
		return;
	pthread_mutex_lock(&lock);
	for (i = 0; i < MAX_SECRETS; i++) {
		if (secrets[i] && strcmp(secrets[i], secret) == 0)
			break;
		if (secrets[i] == NULL) {
			secrets[i] = strdup(secret);
			break;
		}
	}
	pthread_mutex_unlock(&lock);
}

void
tlbot_log_redact(const char *in, char *out, unsigned long outlen)
{
	static const char placeholder[] = "[redacted]";
	size_t o = 0, i;

	if (outlen == 0)
		return;
	pthread_mutex_lock(&lock);
	while (*in && o + 1 < outlen) {
		size_t skip = 0;

		for (i = 0; i < MAX_SECRETS && secrets[i]; i++) {
			size_t n = strlen(secrets[i]);

			if (strncmp(in, secrets[i], n) == 0) {
				skip = n;
				break;
			}
		}
		if (skip) {
			size_t k;

			for (k = 0; placeholder[k] && o + 1 < outlen; k++)
				out[o++] = placeholder[k];
			in += skip;
		} else {
			out[o++] = *in++;
		}
	}
	out[o] = '\0';
	pthread_mutex_unlock(&lock);
}

__attribute__((format(printf, 4, 0))) static void
vlog(enum tlbot_log_level l, const char *tag, int with_errno, const char *fmt, va_list ap)
{
	char raw[LINE_MAX_LEN], line[LINE_MAX_LEN], stamp[40], js[LINE_MAX_LEN * 2];
	int saved = errno;
	struct timespec ts;
	struct tm tm;
	size_t n;

	if (l > level)
		return;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	if (with_errno) {
		n = strlen(raw);
		snprintf(raw + n, sizeof(raw) - n, ": %s", strerror(saved));
	}
	/* one event, one line: fold embedded newlines */
	for (n = 0; raw[n]; n++)
		if (raw[n] == '\n' || raw[n] == '\r')
			raw[n] = ' ';
	tlbot_log_redact(raw, line, sizeof(line));
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	if (json_lines) {
		n = strlen(stamp);
		snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ", ts.tv_nsec / 1000000);
		json_line(stamp, tag, line, js, sizeof(js));
		fprintf(stderr, "%s\n", js);
	} else {
		fprintf(stderr, "%s.%03ldZ %s %s\n", stamp, ts.tv_nsec / 1000000, tag, line);
	}
	errno = saved;
}

#define LOGFN(fn, lvl, tag, err)                      \
	void fn(const char *fmt, ...)                 \
	{                                             \
		va_list ap;                           \
		va_start(ap, fmt);                    \
		vlog(lvl, tag, err, fmt, ap);         \
		va_end(ap);                           \
	}

LOGFN(log_warn, TLBOT_LOG_WARN, "warn", 1)
LOGFN(log_warnx, TLBOT_LOG_WARN, "warn", 0)
LOGFN(log_error, TLBOT_LOG_ERROR, "error", 0)
LOGFN(log_info, TLBOT_LOG_INFO, "info", 0)
LOGFN(log_debug, TLBOT_LOG_DEBUG, "debug", 0)

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(TLBOT_LOG_ERROR, "fatal", 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(TLBOT_LOG_ERROR, "fatal", 0, fmt, ap);
	va_end(ap);
	exit(1);
}
