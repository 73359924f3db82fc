#!/usr/bin/env bash
# Runs the unit suites under valgrind memcheck: any invalid access, use of
# uninitialised memory or definite/indirect leak fails the run.
#
#   scripts/memcheck.sh             every unit suite (what CI runs)
#   scripts/memcheck.sh test_policy one suite
#
# unit.test_chan_footprint is left out: it measures glibc's heap with
# mallinfo2(), which valgrind's allocator does not fill in.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
builddir=build
cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE=OFF >/dev/null
cmake --build "$builddir" -j"$(nproc)" >/dev/null
failed=() n=0
for t in "$builddir"/tests/unit_test_*; do
	name=${t##*/unit_}
	[ $# -eq 0 ] || [ "$name" = "$1" ] || continue
	[ "$name" = test_chan_footprint ] && continue
	n=$((n + 1))
	log=$(mktemp)
	if valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=99 "$t" >"$log" 2>&1; then
		echo "memcheck: $name: clean"
	else
		failed+=("$name")
		echo "memcheck: $name FAILED:" >&2
		grep -E "==[0-9]+==|FAILED|^ +[0-9]+\. " "$log" | head -30 >&2
	fi
	rm -f "$log"
done
[ "$n" -gt 0 ] || { echo "memcheck: no unit suite named $1" >&2; exit 2; }
if [ ${#failed[@]} -gt 0 ]; then
	echo "memcheck: ${#failed[@]} of $n suites failed: ${failed[*]}" >&2
	exit 1
fi
echo "memcheck: $n unit suites, no error and no leak"
