#!/usr/bin/env bash
# Kill points in sync sessions, the full run: builds if needed, starts a
# throwaway PostgreSQL cluster, and runs integration/test_faults_kill with
# STRATA_KILL_POINTS rounds (each round kills the master or the slave with
# SIGKILL at a named faultpoint or at a random moment, restarts it, and
# compares every stream on both sides). CI runs the same test with 20.
#
#   tests/faults/kill.sh                 200 kill points, build/
#   tests/faults/kill.sh --points N      N kill points
#   tests/faults/kill.sh --seed S        a fixed random seed (to replay a run)
#   tests/faults/kill.sh --build DIR     another build directory
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

points=200 seed="" builddir=build
while [ $# -gt 0 ]; do
	case "$1" in
	--points) points=${2:?--points needs a number}; shift ;;
	--seed) seed=${2:?--seed needs a number}; shift ;;
	--build) builddir=${2:?--build needs a directory}; shift ;;
	*) echo "kill.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
case "$points" in
'' | *[!0-9]* | 0) echo "kill.sh: --points must be a positive number, not '$points'" >&2; exit 2 ;;
esac
case "$seed" in
*[!0-9]*) echo "kill.sh: --seed must be a number, not '$seed'" >&2; exit 2 ;;
esac

bash scripts/setup.sh
if [ ! -f "$builddir/CMakeCache.txt" ]; then
	cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$builddir" -j"$(nproc)" --target it_test_faults_kill strata-master strata-slave strata-ctl

pgdir=$(mktemp -d /tmp/strata-kill-pg.XXXXXX)
pgport=$((20000 + RANDOM % 20000))
cleanup() {
	"$root/scripts/pg.sh" stop "$pgdir" || true
	rm -rf "$pgdir"
}
trap cleanup EXIT
scripts/pg.sh start "$pgdir" "$pgport" >/dev/null

export STRATA_TEST_PGHOST=$pgdir STRATA_TEST_PGPORT=$pgport STRATA_KILL_POINTS=$points
[ -n "$seed" ] && export STRATA_KILL_SEED=$seed
log=$(mktemp /tmp/strata-kill.XXXXXX.log)
start=$(date +%s)
status=0
"$builddir/tests/it_test_faults_kill" 2>&1 | tee "$log" || status=$?
echo
echo "kill.sh: $(grep -c '^kill round .*same rows' "$log") of $points rounds passed in $(($(date +%s) - start)) s; output in $log"
grep '^kill points: .* run' "$log" || true
exit "$status"
