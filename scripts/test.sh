#!/usr/bin/env bash
# The one test command: installs what is missing, builds, starts a
# throwaway PostgreSQL cluster, runs every CTest suite, stops the cluster.
#
#   scripts/test.sh               normal build (build/)
#   scripts/test.sh --sanitize    ASan + UBSan build (build-asan/)
#   scripts/test.sh -R REGEX      only the CTest tests matching REGEX
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

sanitize=OFF builddir=build ctest_args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--sanitize) sanitize=ON builddir=build-asan ;;
	-R) ctest_args+=(-R "$2"); shift ;;
	*) echo "test.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

bash scripts/setup.sh

cmake -S . -B "$builddir" -DSTRATA_SANITIZE="$sanitize" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$builddir" -j"$(nproc)"

pgdir=$(mktemp -d /tmp/strata-test-pg.XXXXXX)
pgport=$((20000 + RANDOM % 20000))
cleanup() {
	"$root/scripts/pg.sh" stop "$pgdir" || true
	rm -rf "$pgdir"
}
trap cleanup EXIT
scripts/pg.sh start "$pgdir" "$pgport" >/dev/null

export STRATA_TEST_PGHOST=$pgdir STRATA_TEST_PGPORT=$pgport
if [ "$sanitize" = ON ]; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cd "$builddir"
ctest --output-on-failure -j2 "${ctest_args[@]}"
