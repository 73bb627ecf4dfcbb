#!/bin/sh
# Build (if needed) and run one libFuzzer target for a while.
#
#   tests/fuzz/run.sh parse 60     # or: config, batch (fuzz_ prefix optional)
#
# The seed corpus (tests/data/fuzz/NAME) is copied to a temporary
# directory, so the checked-in seeds are never changed; the dictionary is
# tests/fuzz/NAME.dict. Crash inputs go to $BUILD/fuzz-artifacts/NAME/ and
# the script exits non-zero. At the end it prints the total executions and
# exec/s. The build directory is $TLBOT_FUZZ_BUILD, default build-fuzz in
# the source tree; extra libFuzzer options may follow SECONDS.
set -eu

usage() { echo "usage: $0 parse|config|batch|decrypt SECONDS [libFuzzer options...]" >&2; exit 64; }
[ $# -ge 2 ] || usage
name=${1#fuzz_}
secs=$2
shift 2
case $name in parse|config|batch|decrypt) ;; *) usage ;; esac
case $secs in ''|*[!0-9]*) usage ;; esac

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${TLBOT_FUZZ_BUILD:-$src/build-fuzz}
target=fuzz_$name

if [ ! -f "$build/CMakeCache.txt" ]; then
	gen=
	command -v ninja >/dev/null 2>&1 && gen="-G Ninja"
	# shellcheck disable=SC2086
	CC=${CC:-clang} cmake -S "$src" -B "$build" $gen -DTLBOT_FUZZ=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
buildlog=$build/fuzz-build-$name.log
if ! cmake --build "$build" --target "$target" >"$buildlog" 2>&1; then
	cat "$buildlog" >&2
	exit 1
fi

corpus=$(mktemp -d "${TMPDIR:-/tmp}/tlbot-$target.XXXXXX")
trap 'rm -rf "$corpus"' EXIT INT TERM
cp "$src/tests/data/fuzz/$name/"* "$corpus/"
artifacts=$build/fuzz-artifacts/$name
mkdir -p "$artifacts"
log=$build/fuzz-artifacts/$target.log

bin=$(find "$build" -type f -name "$target" -perm -u+x | head -n 1)
set +e
"$bin" -max_total_time="$secs" -print_final_stats=1 \
	-dict="$src/tests/fuzz/$name.dict" -artifact_prefix="$artifacts/" \
	"$@" "$corpus" >"$log" 2>&1
rc=$?
set -e

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*\(cov: [0-9]*\).*\(ft: [0-9]*\).*\(corp: [^ ]*\).*/\1 \2 \3/p')
echo "$target: ${secs}s, ${execs:-?} executions, ${rate:-?} exec/s${cov:+, $cov} (log: $log)"
if [ $rc -ne 0 ]; then
	grep -E 'ERROR|SUMMARY|Test unit written' "$log" >&2 || tail -n 30 "$log" >&2
	echo "$target: FAILED (exit $rc); crash inputs in $artifacts/" >&2
	exit 1
fi
