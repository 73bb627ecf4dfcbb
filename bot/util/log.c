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
	char raw[LINE_MAX_LEN], line[LINE_MAX_LEN], stamp[32];
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
	fprintf(stderr, "%s.%03ldZ %s %s\n", stamp, ts.tv_nsec / 1000000, tag, line);
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
