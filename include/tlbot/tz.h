/* IANA time zones, read from the TZif files of tzdata (RFC 8536) once per
 * zone; thread-safe, and never touches the environment (TZ). */
#ifndef TLBOT_TZ_H
#define TLBOT_TZ_H

#include <time.h>

/* 1 if tz names an installed zone ("Europe/London", "UTC"), else 0. */
int tlbot_tz_valid(const char *tz);
/* Local broken-down time of t in zone tz. Returns 0 or -1. */
int tlbot_tz_local(const char *tz, time_t t, struct tm *out);
/* The instant of a local wall time in tz (tm_isdst ignored). A time that
 * does not exist (spring-forward gap) moves forward by the gap; an
 * ambiguous one (autumn repeat) takes the first occurrence. 0 or -1. */
int tlbot_tz_mktime(const char *tz, int year, int mon, int mday, int hour, int min,
		    time_t *out);
/* YYYY-MM-DD of t in tz into out (11 bytes). 0 or -1. */
int tlbot_tz_date(const char *tz, time_t t, char out[11]);

#endif
