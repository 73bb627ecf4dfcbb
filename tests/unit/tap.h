/* Tiny test helper, libuv style: a table of tests, CHECK macros that print
 * file:line and the values on failure, a TAP-ish line per test and a final
 * "N passed, M failed" summary; the exit status is non-zero on any failure.
 *
 *	TEST(adds) { CHECK_INT(1 + 1, ==, 2); }
 *	static const struct tap_test tests[] = { TEST_ENTRY(adds), TEST_END };
 *	TAP_MAIN(tests)
 *
 * Run one test by name: ./test_x adds. A failed check does not stop its
 * test (so a test closes what it opened); use CHECK_OR_RETURN for checks
 * the rest of the test depends on.
 */
#ifndef TLBOT_TAP_H
#define TLBOT_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tap_test {
	const char *name;
	void (*fn)(void);
};

#define TEST(name) static void test_##name(void)
#define TEST_ENTRY(name) { #name, test_##name }
#define TEST_END { NULL, NULL }

static int tap_failed_checks;   /* in the current test */
static unsigned long tap_nchecks;

static inline int
tap_fail_(const char *file, int line, const char *what)
{
	printf("#   %s:%d: check failed: %s\n", file, line, what);
	tap_failed_checks++;
	return 0;
}

#define CHECK(cond) \
	(tap_nchecks++, (cond) ? 1 : tap_fail_(__FILE__, __LINE__, #cond))

#define CHECK_OR_RETURN(cond) \
	do { if (!CHECK(cond)) return; } while (0)

#define CHECK_INT(a, op, b)                                                      \
	do {                                                                     \
		long long tap_a_ = (long long)(a), tap_b_ = (long long)(b);      \
		tap_nchecks++;                                                   \
		if (!(tap_a_ op tap_b_)) {                                       \
			tap_fail_(__FILE__, __LINE__, #a " " #op " " #b);        \
			printf("#     left:  %lld\n#     right: %lld\n", tap_a_, tap_b_); \
		}                                                                \
	} while (0)

#define CHECK_STR(a, b)                                                          \
	do {                                                                     \
		const char *tap_a_ = (a), *tap_b_ = (b);                         \
		tap_nchecks++;                                                   \
		if (tap_a_ == NULL || tap_b_ == NULL ? tap_a_ != tap_b_          \
						     : strcmp(tap_a_, tap_b_) != 0) { \
			tap_fail_(__FILE__, __LINE__, #a " == " #b);             \
			printf("#     left:  \"%s\"\n#     right: \"%s\"\n",     \
			       tap_a_ ? tap_a_ : "(null)", tap_b_ ? tap_b_ : "(null)"); \
		}                                                                \
	} while (0)

#define CHECK_CONTAINS(hay, needle)                                              \
	do {                                                                     \
		const char *tap_h_ = (hay), *tap_n_ = (needle);                  \
		tap_nchecks++;                                                   \
		if (tap_h_ == NULL || strstr(tap_h_, tap_n_) == NULL) {          \
			tap_fail_(__FILE__, __LINE__, #hay " contains " #needle); \
			printf("#     text:   \"%s\"\n#     wanted: \"%s\"\n",    \
			       tap_h_ ? tap_h_ : "(null)", tap_n_);              \
		}                                                                \
	} while (0)

#define CHECK_NOT_CONTAINS(hay, needle)                                          \
	do {                                                                     \
		const char *tap_h_ = (hay), *tap_n_ = (needle);                  \
		tap_nchecks++;                                                   \
		if (tap_h_ != NULL && strstr(tap_h_, tap_n_) != NULL) {          \
			tap_fail_(__FILE__, __LINE__, #hay " lacks " #needle);   \
			printf("#     text:     \"%s\"\n#     unwanted: \"%s\"\n", \
			       tap_h_, tap_n_);                                  \
		}                                                                \
	} while (0)

/* Path of a file under tests/data: $TLBOT_TEST_DATA (set by CTest), else
 * the source tree when built by CMake, else ./tests/data. Static storage. */
static inline const char *
tap_data_path(const char *rel)
{
	static char path[4096];
	const char *dir = getenv("TLBOT_TEST_DATA");

#ifdef TLBOT_SOURCE_DIR
	if (dir == NULL || dir[0] == '\0')
		dir = TLBOT_SOURCE_DIR "/tests/data";
#endif
	if (dir == NULL || dir[0] == '\0')
		dir = "tests/data";
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, rel) >= sizeof(path))
		return NULL;
	return path;
}

/* TAP_SKIP("why"): end the current test as skipped (the machine lacks what
 * it needs). A binary with a skipped test and no failure exits 77, which
 * CTest reports as "Skipped" (SKIP_RETURN_CODE, tests/CMakeLists.txt); with
 * TLBOT_ALLOWED_SKIPS set (CI: a comma-separated list of <binary>.<test>
 * names), a skip not on the list is a failure. */
static int tap_skip_current;
static const char *tap_skip_reason = "";

#define TAP_SKIP(why) \
	do { tap_skip_current = 1; tap_skip_reason = (why); return; } while (0)

static inline int
tap_in_list_(const char *list, const char *name)
{
	const char *p;
	size_t len = strlen(name);

	for (p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (strncmp(p, name, len) == 0 && (p[len] == ',' || p[len] == '\0'))
			return 1;
	return 0;
}

/* May this test be skipped? Yes unless TLBOT_ALLOWED_SKIPS is set and does
 * not list "<binary>.<test>". */
static inline int
tap_skip_allowed_(const char *argv0, const char *name)
{
	const char *list = getenv("TLBOT_ALLOWED_SKIPS");
	const char *base = strrchr(argv0, '/');
	char full[256];

	if (list == NULL)
		return 1;
	base = base ? base + 1 : argv0;
	if ((size_t)snprintf(full, sizeof(full), "%s.%s", base, name) >= sizeof(full))
		return 0;
	return tap_in_list_(list, full);
}

/* Is name in the comma-separated list TLBOT_TAP_SKIP? (slow tests skipped
 * under valgrind, see tests/valgrind.sh) */
static inline int
tap_skipped(const char *name)
{
	return tap_in_list_(getenv("TLBOT_TAP_SKIP"), name);
}

static inline int
tap_run(const struct tap_test *tests, int argc, char **argv)
{
	int passed = 0, failed = 0, skipped = 0, n = 0, i;

	for (i = 0; tests[i].name; i++)
		if (argc < 2 || strcmp(argv[1], tests[i].name) == 0)
			n++;
	printf("1..%d\n", n);
	n = 0;
	for (i = 0; tests[i].name; i++) {
		if (argc >= 2 && strcmp(argv[1], tests[i].name) != 0)
			continue;
		/* asked for by the caller (tests/valgrind.sh): not a skip of
		 * CTest's, the exit status stays 0 */
		if (tap_skipped(tests[i].name)) {
			printf("ok %d - %s # SKIP TLBOT_TAP_SKIP\n", ++n, tests[i].name);
			passed++;
			continue;
		}
		tap_failed_checks = 0;
		tap_skip_current = 0;
		tests[i].fn();
		fflush(stdout);
		if (tap_skip_current && !tap_failed_checks) {
			const char *why = tap_skip_reason ? tap_skip_reason : "";

			if (tap_skip_allowed_(argv[0], tests[i].name)) {
				printf("ok %d - %s # SKIP %s\n", ++n, tests[i].name, why);
				skipped++;
			} else {
				printf("not ok %d - %s # skipped (%s) but not in "
				       "TLBOT_ALLOWED_SKIPS\n", ++n, tests[i].name, why);
				failed++;
			}
		} else if (tap_failed_checks) {
			printf("not ok %d - %s\n", ++n, tests[i].name);
			failed++;
		} else {
			printf("ok %d - %s\n", ++n, tests[i].name);
			passed++;
		}
	}
	if (n == 0 && argc >= 2) {
		printf("# no test named %s\n", argv[1]);
		failed++;
	}
	printf("# %lu checks\n%d passed, %d failed, %d skipped\n", tap_nchecks, passed, failed,
	       skipped);
	return failed ? 1 : skipped ? 77 : 0;
}

#define TAP_MAIN(table) \
	int main(int argc, char **argv) { return tap_run(table, argc, argv); }

#endif
