/* Wall clock with a test override; monotonic clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlbot/clock.h"

static char *override_path;

void
tlbot_clock_set_override(const char *path)
{
	free(override_path);
	override_path = path && *path ? strdup(path) : NULL;
}

time_t
tlbot_clock_now(void)
{
	if (override_path) {
		FILE *f = fopen(override_path, "r");

		if (f) {
			char line[32];
			char *end;
			long long v = 0;
			int ok = 0;

			if (fgets(line, sizeof(line), f)) {
				v = strtoll(line, &end, 10);
				ok = end != line && v > 0;
			}
			fclose(f);
			if (ok)
				return (time_t)v;
		}
	}
	return time(NULL);
}

int64_t
tlbot_clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
tlbot_clock_abs_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += ms * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}
