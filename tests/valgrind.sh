#!/bin/sh
# Run every unit test under valgrind: no leaks ("definitely" or "indirectly"
# lost), no invalid reads or writes, no use of uninitialised values.
#
#   tests/valgrind.sh [BUILD_DIR]    (default: build; a non-sanitizer build)
#
# Builds the unit tests if needed, runs each with
# valgrind --leak-check=full --error-exitcode=1, prints one line per test and
# the log of each failure, and exits non-zero when any test fails.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
command -v valgrind >/dev/null 2>&1 || { echo "valgrind: not installed" >&2; exit 1; }
if [ -f "$build/CMakeCache.txt" ] && grep -q '^TLBOT_SANITIZE:BOOL=ON' "$build/CMakeCache.txt"; then
	echo "$build is a sanitizer build: valgrind needs a plain one" >&2
	exit 1
fi
[ -f "$build/CMakeCache.txt" ] || cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Debug >/dev/null
tests=$(cd "$src/tests/unit" && ls test_*.c | sed 's/\.c$//')
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target $tests >/dev/null
export TLBOT_TEST_DATA="$src/tests/data"
# timing checks over 100k rows say nothing under valgrind (50x slower), and
# test_tz comparing 3 million conversions with glibc runs in the plain build
export TLBOT_TAP_SKIP="${TLBOT_TAP_SKIP:-scale_100k,agrees_with_libc}"
logdir=$(mktemp -d "${TMPDIR:-/tmp}/tlbot-valgrind.XXXXXX")
failed=0
for t in $tests; do
	bin=$(find "$build" -type f -name "$t" -perm -u+x | head -n 1)
	if [ -z "$bin" ]; then
		echo "$t: not built" >&2
		failed=$((failed + 1))
		continue
	fi
	log=$logdir/$t.log
	start=$(date +%s)
	if valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
		--errors-for-leak-kinds=definite,indirect --track-origins=yes \
		--error-exitcode=1 "$bin" >"$log" 2>&1; then
		echo "valgrind $t: ok ($(($(date +%s) - start)) s)"
	else
		echo "valgrind $t: FAILED" >&2
		grep -E '==[0-9]+==' "$log" | head -n 60 >&2 || tail -n 40 "$log" >&2
		failed=$((failed + 1))
	fi
done
rm -rf "$logdir"
if [ $failed -ne 0 ]; then
	echo "valgrind: $failed unit test(s) failed" >&2
	exit 1
fi
echo "valgrind: all unit tests clean"
