/* Logging: one line per event on stderr, levels, never secrets. */
#ifndef TLBOT_LOG_H
#define TLBOT_LOG_H

enum tlbot_log_level { TLBOT_LOG_ERROR, TLBOT_LOG_WARN, TLBOT_LOG_INFO, TLBOT_LOG_DEBUG };

void tlbot_log_set_level(enum tlbot_log_level level);
enum tlbot_log_level tlbot_log_get_level(void);
/* Parse "error|warn|info|debug"; returns 0 or -1. */
int tlbot_log_parse_level(const char *s, enum tlbot_log_level *out);
/* Line format: 0 text (default), 1 JSON: one object a line with time,
 * level, module, room, event and message (room/event null when the line
 * names none), for log shippers. Redaction applies to both. */
void tlbot_log_set_json(int on);
/* Register a secret (access token, password) that must never be printed:
 * any occurrence in a log line is replaced by "[redacted]". The string is
 * copied. Up to 8 secrets. */
void tlbot_log_add_secret(const char *secret);
/* Copy in to out (outlen bytes, NUL-terminated, cut if longer) with every
 * registered secret replaced by "[redacted]". */
void tlbot_log_redact(const char *in, char *out, unsigned long outlen);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* adds strerror(errno) */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit(1): start-up problems and out-of-memory only. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
