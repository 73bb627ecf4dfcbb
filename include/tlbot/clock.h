/* Time sources. Wall time may be overridden for tests; monotonic never is. */
#ifndef TLBOT_CLOCK_H
#define TLBOT_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Enable the test clock: when path is non-NULL, tlbot_clock_now() returns the
 * integer (epoch seconds) in that file while the file exists and parses;
 * otherwise real time. Set from the environment TLBOT_TEST_CLOCK_FILE. */
void tlbot_clock_set_override(const char *path);
/* Current wall-clock time in epoch seconds (test override aware). */
time_t tlbot_clock_now(void);
/* Milliseconds from a monotonic clock, for timeouts and backoff. */
int64_t tlbot_clock_mono_ms(void);
/* *ts = the real-time clock ms milliseconds from now (0 <= ms < 1000), the
 * absolute time pthread_cond_timedwait takes. */
void tlbot_clock_abs_in(struct timespec *ts, long ms);

#endif
