#!/usr/bin/env bash
# Reports benchmark: a master holding SLAVES slaves x ENDPOINTS endpoints,
# EVENTS events, the results of two master tasks and the slaves' licences,
# and the time of each report across slaves as an operator gets it
# (strata-ctl --json through the admin socket, process start included).
#
#   bench/reports.sh                         100 slaves x 10,000 endpoints, 1,000,000 events
#   SLAVES=10 ENDPOINTS=1000 EVENTS=50000 bench/reports.sh
#   RUNS=21 bench/reports.sh                 runs per report (default 11)
#   NO_DOC=1 bench/reports.sh                do not rewrite docs/BENCHMARKS.md
#
# The rows are written straight into the master's partitions (the shape a
# sync leaves them in: bench/sync.sh measures getting them there), then
# ANALYZEd. Prints one JSON object on its last line and writes the
# "Reports" section of docs/BENCHMARKS.md. Stops everything it started.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
root=$(pwd)

slaves=${SLAVES:-100}
per=${ENDPOINTS:-10000}
events=${EVENTS:-1000000}
runs=${RUNS:-11}

builddir=build-bench
cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE=OFF >/dev/null
cmake --build "$builddir" -j"$(nproc)" >/dev/null

work=$(mktemp -d /tmp/strata-bench.XXXXXX)
chmod 755 "$work"
base=$((29000 + RANDOM % 900))
pgport=$base mport=$((base + 1))
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	"$root/scripts/pg.sh" stop "$work/pg" || true
	rm -rf "$work"
}
trap cleanup EXIT

msql() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$work/pg" -p "$pgport" -U postgres -d hq "$@"; }
mctl() { "$builddir/strata-ctl" -s "$work/hq/admin.sock" "$@"; }

say "PostgreSQL cluster on port $pgport"
scripts/pg.sh start "$work/pg" "$pgport" >/dev/null
scripts/pg.sh createdb "$work/pg" "$pgport" hq
strata_write_conf "$work/hq" master hq "host=$work/pg port=$pgport user=postgres dbname=hq" notice \
	"  <sync-listen address=\"127.0.0.1\" port=\"$mport\" hosts=\"127.0.0.1\"/>"
"$builddir/strata-master" -c "$work/hq/server.xml" >>"$work/hq/daemon.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do mctl status >/dev/null 2>&1 && break; sleep 0.1; done
mctl status >/dev/null || { tail -20 "$work/hq/daemon.log" >&2; exit 1; }

say "loading $slaves slaves x $per endpoints, $events events, two master tasks"
t0=$(now)
msql <<SQL
-- Slaves in every health: most synced within their interval, some late.
INSERT INTO slaves (name, state, cert_serial, address, sync_interval, registered_at,
	last_attempt_at, last_sync_at, rows_received)
SELECT 'site-' || lpad(i::text, 3, '0'), 'active', md5(i::text), '10.0.' || i || '.1', 1800,
	now() - interval '30 days', now() - make_interval(secs => (i % 7) * 60),
	now() - make_interval(secs => CASE WHEN i % 25 = 0 THEN 5000 WHEN i % 40 = 0 THEN 9000
		ELSE (i % 7) * 60 END), 100000
FROM generate_series(1, $slaves) i;
SELECT strata_partitions_create(id) FROM slaves;
INSERT INTO groups (slave_id, id, parent_id, name, path, created_at, version)
SELECT s.id, g, NULL, 'g' || g, '/branch/g' || g, now(), g FROM slaves s, generate_series(1, 20) g;
INSERT INTO endpoints (slave_id, id, uid, hostname, group_id, os, agent_version, address, mode,
	status, last_seen, enrolled_at, policy_version, policy_target, version)
SELECT s.id, e, md5(s.id || ':' || e), 'host-' || e, 1 + e % 20, 'Debian 12', '0.1',
	'10.' || (e % 250) || '.' || (e / 250 % 250) || '.1', CASE WHEN e % 10 = 0 THEN 'poll' ELSE 'push' END,
	CASE WHEN e % 10 = 0 THEN 'unreachable' WHEN e % 7 = 0 THEN 'offline' ELSE 'online' END,
	now() - make_interval(secs => e % 600), now() - interval '20 days', 3,
	CASE WHEN e % 10 = 3 THEN 4 ELSE 3 END, e
FROM slaves s, generate_series(1, $per) e;
INSERT INTO events (slave_id, id, endpoint_id, kind, severity, occurred_at, details, version)
SELECT 1 + (v % $slaves), v, 1 + (v / $slaves) % $per,
	(ARRAY['status', 'status', 'status', 'detection', 'inventory', 'policy'])[1 + v % 6],
	(ARRAY['info', 'info', 'low', 'medium', 'high', 'critical', 'info'])[1 + v % 7],
	now() - make_interval(secs => (v::bigint * 2593) % (30 * 86400)), '{}', v
FROM generate_series(1, $events) v;
INSERT INTO tasks (name, kind, target_group) VALUES ('inventory-all', 'inventory', NULL),
	('scan-branch', 'scan', '/branch/g1');
INSERT INTO task_results (slave_id, task_id, endpoint_id, status, result, updated_at, version,
	master_task_id)
SELECT e.slave_id, 1, e.id, (ARRAY['succeeded', 'succeeded', 'succeeded', 'failed', 'pending',
	'running'])[1 + e.id % 6], '{}', now(), e.id, t.id
FROM endpoints e, tasks t WHERE t.name = 'inventory-all';
INSERT INTO task_results (slave_id, task_id, endpoint_id, status, result, updated_at, version,
	master_task_id)
SELECT e.slave_id, 2, e.id, CASE WHEN e.id % 3 = 0 THEN 'pending' ELSE 'succeeded' END, '{}',
	now(), e.id, t.id
FROM endpoints e, tasks t WHERE t.name = 'scan-branch' AND e.group_id = 1;
-- Every slave licensed but the last, some of them nearly full.
INSERT INTO slave_licences (slave_id, licence_id, holder, seats, valid_from, valid_until, features,
	installed_at, seats_used, version)
SELECT id, 'LIC-' || id, 'Site ' || id, CASE WHEN id % 10 = 0 THEN $per ELSE 2 * $per END,
	now() - interval '100 days', now() + interval '265 days', '["push"]', now() - interval '99 days',
	$per, 1
FROM slaves WHERE id < $slaves;
ANALYZE;
SQL
load_s=$(elapsed "$t0" "$(now)")
nres=$(msql -c "SELECT count(*) FROM task_results")
say "loaded in $load_s s ($nres task results)"

# name|ctl words
reports=(
	"endpoints|report endpoints"
	"compliance|report compliance"
	"events_7d|report events"
	"events_30d_detection|report events --days 30 --kind detection"
	"tasks|report tasks"
	"task_status|task status inventory-all"
	"sync|report sync"
	"licences|license list"
	"slave_list|slave list"
)

json_fig=
table=
all_pass=pass
for r in "${reports[@]}"; do
	name=${r%%|*} words=${r#*|}
	times=()
	# shellcheck disable=SC2086
	mctl --json $words >"$work/out.json" # warm-up, and the output is checked below
	[ -s "$work/out.json" ] || { echo "bench: $words printed nothing" >&2; exit 1; }
	for _ in $(seq "$runs"); do
		t0=$(now)
		# shellcheck disable=SC2086
		mctl --json $words >/dev/null
		times+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
	done
	read -r med p95 <<<"$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 }
		END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
		      i = int(0.95 * NR + 0.999); if (i > NR) i = NR; print m, v[i] }')"
	ok=$(verdict "$med" 200 le)
	[ "$ok" = pass ] || all_pass=fail
	say "$words: median $med ms, p95 $p95 ms ($ok)"
	json_fig="$json_fig\"$name\":{\"median_ms\":$med,\"p95_ms\":$p95,\"pass\":\"$ok\"},"
	table="$table| \`$words\` | $med ms | $p95 ms | $ok |
"
done

if [ "${NO_DOC:-0}" != 1 ]; then
	pgver=$(msql -c "SHOW server_version")
	section=$(mktemp)
	cat >"$section" <<MD
## Reports

What is measured: a master (\`strata-master\`, PostgreSQL $pgver on a
throwaway cluster) holding $slaves slaves × $per endpoints in 20 groups
each, $events events spread over 30 days, the results of two master
tasks ($nres rows: one task on every endpoint, one on one group) and a
licence for all slaves but one. The
rows are written straight into the slaves' partitions and ANALYZEd (the
shape a sync leaves them in). Each report is asked $runs times with
\`strata-ctl --json\` through the admin socket after one warm-up; the time
is the whole command as an operator runs it, process start included.
Every 25th slave is degraded and every 40th failed, so the late marks are
computed too.

Run it with \`bench/reports.sh\` (a few minutes, most of it loading;
\`SLAVES=N ENDPOINTS=N EVENTS=N\` for smaller runs). It prints a JSON object
on its last line and rewrites this section.

Last run: $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 " GiB" }') RAM; loading took $load_s s.

| report | median | p95 | target: median < 200 ms |
|---|---:|---:|---|
${table}
MD
	bench_replace_section docs/BENCHMARKS.md "Reports" "$section"
fi
printf '{"slaves":%s,"endpoints_per_slave":%s,"events":%s,"task_results":%s,"runs":%s,%s"pass":"%s"}\n' \
	"$slaves" "$per" "$events" "$nres" "$runs" "$json_fig" "$all_pass"
