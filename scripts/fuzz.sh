#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz/fuzz_*.c) for a while: the
# decoders of untrusted input (frames and sync messages, agent messages,
# server.xml, policy documents, licences, the COPY text of a slave's
# batches, admin socket requests and the strata-ctl command lines that
# make them). Each starts from its seed corpus (tests/fuzz/corpus/NAME; the
# example configurations for fuzz_cfg), which also replays the inputs of
# crashes found and fixed before.
#
#   scripts/fuzz.sh                 60 s per target (what CI runs)
#   scripts/fuzz.sh --seconds 600   longer
#   scripts/fuzz.sh --only policy   one target
#   scripts/fuzz.sh --jobs 1        one target at a time (default: one
#                                   per core; each target is one process)
#
# Exits 1 when a target crashes, leaks or aborts; the input that did it is
# kept in build-fuzz/artifacts/ and printed. Needs clang (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60 only= jobs=$(nproc)
while [ $# -gt 0 ]; do
	case "$1" in
	--seconds) seconds=$2; shift ;;
	--only) only=$2; shift ;;
	--jobs) jobs=$2; shift ;;
	*) echo "usage: scripts/fuzz.sh [--seconds N] [--only NAME] [--jobs N]" >&2; exit 2 ;;
	esac
	shift
done
case "$seconds" in '' | *[!0-9]*) echo "fuzz: --seconds needs a whole number" >&2; exit 2 ;; esac
case "$jobs" in '' | 0 | *[!0-9]*) echo "fuzz: --jobs needs a whole number above 0" >&2; exit 2 ;; esac

bash scripts/setup.sh
builddir=build-fuzz
cmake -S . -B "$builddir" -DSTRATA_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=()
for src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	[ -z "$only" ] || [ "$name" = "fuzz_$only" ] || continue
	targets+=("$name")
done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no target named $only" >&2; exit 2; }
cmake --build "$builddir" -j"$(nproc)" --target "${targets[@]}" >/dev/null

work=$(mktemp -d /tmp/strata-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$builddir/artifacts"
# One target: 0 when it ran its time without a crash; its verdict goes to
# $work/$t.verdict so that targets can run side by side.
run_target() {
	local t=$1 short=${1#fuzz_} seeds
	seeds=tests/fuzz/corpus/$short
	[ "$short" = cfg ] && seeds=conf
	mkdir -p "$work/$short"
	# New inputs go to the scratch corpus; the seeds stay as they are.
	if "$builddir/tests/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$builddir/artifacts/$t-" "$work/$short" "$seeds" >"$work/$t.log" 2>&1; then
		runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$work/$t.log")
		echo "fuzz: $t: ${runs:-?} runs in ${seconds} s, no crash" >"$work/$t.verdict"
	else
		{
			echo "fuzz: $t FAILED:"
			grep -E "ERROR|SUMMARY|Test unit written|==[0-9]+==" "$work/$t.log" | head -20
		} >"$work/$t.verdict"
		return 1
	fi
}

running=0
for t in "${targets[@]}"; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
	fi
	run_target "$t" &
	running=$((running + 1))
done
wait || true
failed=()
for t in "${targets[@]}"; do
	if grep -q FAILED "$work/$t.verdict" 2>/dev/null || [ ! -s "$work/$t.verdict" ]; then
		failed+=("$t")
		cat "$work/$t.verdict" >&2 2>/dev/null || echo "fuzz: $t gave no verdict" >&2
	else
		cat "$work/$t.verdict"
	fi
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]} (inputs in $builddir/artifacts/)" >&2
	exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds} s each ($jobs at a time), no crash"
