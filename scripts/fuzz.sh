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
#
# Exits 1 when a target crashes, leaks or aborts; the input that did it is
# kept in build-fuzz/artifacts/ and printed. Needs clang (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60 only=
while [ $# -gt 0 ]; do
	case "$1" in
	--seconds) seconds=$2; shift ;;
	--only) only=$2; shift ;;
	*) echo "usage: scripts/fuzz.sh [--seconds N] [--only NAME]" >&2; exit 2 ;;
	esac
	shift
done
case "$seconds" in '' | *[!0-9]*) echo "fuzz: --seconds needs a whole number" >&2; exit 2 ;; esac

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
failed=()
for t in "${targets[@]}"; do
	short=${t#fuzz_}
	seeds=tests/fuzz/corpus/$short
	[ "$short" = cfg ] && seeds=conf
	mkdir -p "$work/$short"
	# New inputs go to the scratch corpus; the seeds stay as they are.
	if "$builddir/tests/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$builddir/artifacts/$t-" "$work/$short" "$seeds" >"$work/$t.log" 2>&1; then
		runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$work/$t.log")
		echo "fuzz: $t: ${runs:-?} runs in ${seconds} s, no crash"
	else
		failed+=("$t")
		echo "fuzz: $t FAILED:" >&2
		grep -E "ERROR|SUMMARY|Test unit written|==[0-9]+==" "$work/$t.log" | head -20 >&2
	fi
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]} (inputs in $builddir/artifacts/)" >&2
	exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds} s each, no crash"
