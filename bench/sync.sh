#!/usr/bin/env bash
# Sync benchmark: Strata's first full sync and an incremental sync of 1 % of
# the endpoints, against PostgreSQL's own logical replication (initial copy
# and streaming of the same change) between the same two clusters and the
# same rows.
#
#   bench/sync.sh                     1,000,000 endpoints + 1,000,000 events
#   ROWS=200000 bench/sync.sh         smaller run (ROWS endpoints, ROWS events)
#   BATCH_ROWS=50000 bench/sync.sh    slave's <replication batch-rows>
#   NO_DOC=1 bench/sync.sh            do not rewrite docs/BENCHMARKS.md
#   KEEP=1 bench/sync.sh              leave clusters and daemons running (for profiling)
#
# Prints one JSON object on its last line and writes the "Sync" section of
# docs/BENCHMARKS.md. Stops everything it started and removes its files.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
root=$(pwd)

rows=${ROWS:-1000000}
changed=$((rows / 100))
batch_rows=${BATCH_ROWS:-}

builddir=build-bench
cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE=OFF >/dev/null
cmake --build "$builddir" -j"$(nproc)" >/dev/null

work=$(mktemp -d /tmp/strata-bench.XXXXXX)
chmod 755 "$work"
base=$((27000 + RANDOM % 900))
sport=$base mport=$((base + 1)) syncport=$((base + 2))
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	# A subscription holds a slot on the publisher; drop it before stopping.
	psql -X -q -h "$work/pgm" -p "$mport" -U postgres -d peer \
		-c "DROP SUBSCRIPTION IF EXISTS bench_sub" >/dev/null 2>&1 || true
	"$root/scripts/pg.sh" stop "$work/pgm" || true
	"$root/scripts/pg.sh" stop "$work/pgs" || true
	rm -rf "$work"
}
if [ "${KEEP:-0}" = 1 ]; then trap 'echo "bench: left running: pids ${pids[*]}, work dir $work" >&2' EXIT; else trap cleanup EXIT; fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# slave cluster (publisher) and master cluster (subscriber)
say "PostgreSQL clusters on ports $sport (slave) and $mport (master)"
scripts/pg.sh start "$work/pgs" "$sport" >/dev/null
scripts/pg.sh start "$work/pgm" "$mport" >/dev/null
scripts/pg.sh createdb "$work/pgs" "$sport" site
scripts/pg.sh createdb "$work/pgm" "$mport" hq
scripts/pg.sh createdb "$work/pgm" "$mport" peer
sql_s() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$work/pgs" -p "$sport" -U postgres -d site "$@"; }
sql_m() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$work/pgm" -p "$mport" -U postgres -d "$@"; }

write_conf() { # role name conninfo extra
	strata_write_conf "$work/$2" "$1" "$2" "$3" info "$4"
}
write_conf master hq "host=$work/pgm port=$mport user=postgres dbname=hq" \
	"  <sync-listen address=\"127.0.0.1\" port=\"$syncport\" hosts=\"127.0.0.1,localhost\"/>"
write_conf slave site "host=$work/pgs port=$sport user=postgres dbname=site" \
	"  <master host=\"127.0.0.1\" port=\"$syncport\"/>
  <replication interval=\"1800\"${batch_rows:+ batch-rows=\"$batch_rows\"}/>"

ctl() { local node=$1; shift; "$builddir/strata-ctl" -s "$work/$node/admin.sock" "$@"; }
start() { # binary node
	"$builddir/$1" -c "$work/$2/server.xml" >>"$work/$2/daemon.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do ctl "$2" status >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "bench: $2 did not start:" >&2; tail -20 "$work/$2/daemon.log" >&2; exit 1
}
start strata-master hq
start strata-slave site

say "seeding $rows endpoints and $rows events"
t0=$(now)
sql_s <<SQL
INSERT INTO groups (name, path) VALUES ('servers', '/servers'), ('laptops', '/laptops');
-- heartbeat: a day, so the push server's offline sweep leaves the seeded
-- rows alone while the benchmark runs (it would add a status event each).
INSERT INTO endpoints (uid, hostname, group_id, os, agent_version, address, mode, status, last_seen,
	heartbeat)
SELECT 'uid-' || md5(g::text), 'site-host-' || g || '.branch.example.com', 1 + g % 2,
       (ARRAY['Debian 12','Windows 11 Pro','Ubuntu 24.04','macOS 14.5'])[1 + g % 4], '7.4.' || (g % 20),
       '10.' || (g / 62500) || '.' || (g / 250 % 250) || '.' || (g % 250 + 1),
       (ARRAY['push','push','push','poll'])[1 + g % 4],
       (ARRAY['online','online','online','offline','unreachable'])[1 + g % 5],
       now() - make_interval(secs => g % 86400), 86400
FROM generate_series(1, $rows) g;
INSERT INTO events (endpoint_id, kind, severity, details)
SELECT 1 + g % $rows, (ARRAY['heartbeat-missed','detection','policy-applied'])[1 + g % 3],
       (ARRAY['info','low','high'])[1 + g % 3],
       jsonb_build_object('n', g, 'source', 'agent', 'file', '/var/tmp/sample-' || (g % 997) || '.bin')
FROM generate_series(1, $rows) g;
VACUUM ANALYZE groups, endpoints, events;
SQL
say "seeded in $(elapsed "$t0" "$(now)") s"
width=$(sql_s -c "SELECT round(avg(pg_column_size(e.*))) || ' B endpoints, ' ||
	(SELECT round(avg(pg_column_size(v.*))) FROM events v) || ' B events' FROM endpoints e")
say "average row size: $width"

say "registering the slave"
token=$(ctl hq --json slave add site | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
ctl site register --master "127.0.0.1:$syncport" --token "$token" >/dev/null

total=$((2 * rows + 2))
say "Strata: first full sync ($total rows)"
t0=$(now)
ctl site --timeout 3600 sync now >&2
full_s=$(elapsed "$t0" "$(now)")
got=$(sql_m hq -c "SELECT (SELECT count(*) FROM endpoints) + (SELECT count(*) FROM events)")
[ "$got" = $((2 * rows)) ] || { echo "bench: master holds $got rows, expected $((2 * rows))" >&2; exit 1; }

say "Strata: incremental sync of $changed changed endpoints"
sql_s -c "UPDATE endpoints SET status = 'offline', last_seen = '2030-01-01 00:00:00+00'
	WHERE id % 100 = 0"
t0=$(now)
ctl site --timeout 3600 sync now >&2
incr_s=$(elapsed "$t0" "$(now)")
got=$(sql_m hq -c "SELECT count(*) FROM endpoints WHERE last_seen = '2030-01-01 00:00:00+00'")
[ "$got" = "$changed" ] || { echo "bench: master shows $got changed rows, expected $changed" >&2; exit 1; }

say "logical replication: initial copy ($((2 * rows)) rows)"
sql_m peer <<SQL
CREATE TABLE endpoints (
	id bigint PRIMARY KEY, uid text NOT NULL, hostname text NOT NULL, group_id bigint,
	os text NOT NULL, agent_version text NOT NULL, address text NOT NULL, mode text NOT NULL,
	status text NOT NULL, last_seen timestamptz, enrolled_at timestamptz NOT NULL,
	policy_version bigint NOT NULL, version bigint NOT NULL);
CREATE TABLE events (
	id bigint PRIMARY KEY, endpoint_id bigint, kind text NOT NULL, severity text NOT NULL,
	occurred_at timestamptz NOT NULL, details jsonb NOT NULL, version bigint NOT NULL);
SQL
# The publication carries the columns Strata's streams carry (common/stream.c),
# no more: the slave's own columns (the agent's key, ...) stay out of both.
sql_s -c "CREATE PUBLICATION bench_pub FOR TABLE
	endpoints (id, uid, hostname, group_id, os, agent_version, address, mode, status, last_seen,
		   enrolled_at, policy_version, version),
	events (id, endpoint_id, kind, severity, occurred_at, details, version)"
t0=$(now)
sql_m peer -c "CREATE SUBSCRIPTION bench_sub CONNECTION 'host=$work/pgs port=$sport user=postgres dbname=site'
	PUBLICATION bench_pub WITH (copy_data = true)"
deadline=$((SECONDS + 600))
while [ "$(sql_m peer -c "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")" != 0 ] ||
	[ "$(sql_m peer -c "SELECT count(*) FROM pg_subscription_rel")" != 2 ]; do
	[ $SECONDS -lt $deadline ] || { echo "bench: logical replication's initial copy did not finish in 600 s; see $work/pgm/server.log" >&2; exit 1; }
	sleep 0.05
done
peer_full_s=$(elapsed "$t0" "$(now)")
got=$(sql_m peer -c "SELECT (SELECT count(*) FROM endpoints) + (SELECT count(*) FROM events)")
[ "$got" = $((2 * rows)) ] || { echo "bench: subscriber holds $got rows" >&2; exit 1; }

say "logical replication: the same change on $changed endpoints"
sql_s -c "UPDATE endpoints SET status = 'unreachable', last_seen = '2031-01-01 00:00:00+00'
	WHERE id % 100 = 0"
t0=$(now)
deadline=$((SECONDS + 600))
while [ "$(sql_m peer -c "SELECT count(*) FROM endpoints WHERE last_seen = '2031-01-01 00:00:00+00'")" != "$changed" ]; do
	[ $SECONDS -lt $deadline ] || { echo "bench: logical replication did not stream the change in 600 s; see $work/pgm/server.log" >&2; exit 1; }
	sleep 0.02
done
peer_incr_s=$(elapsed "$t0" "$(now)")

full_rate=$(rate "$total" "$full_s")
incr_rate=$(rate "$changed" "$incr_s")
peer_full_rate=$(rate "$((2 * rows))" "$peer_full_s")
peer_incr_rate=$(rate "$changed" "$peer_incr_s")
full_ratio=$(ratio "$full_rate" "$peer_full_rate")
incr_ratio=$(ratio "$incr_rate" "$peer_incr_rate")
pgver=$(sql_s -c "SHOW server_version")
mem=$(free -g | awk '/^Mem:/ { print $2 " GiB" }')
cores=$(nproc)
date=$(date -u +%Y-%m-%d)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

if [ "${NO_DOC:-0}" != 1 ]; then
	doc=docs/BENCHMARKS.md
	section=$(mktemp)
	cat >"$section" <<MD
## Sync

What is measured: one slave and one master, each on its own throwaway
PostgreSQL $pgver cluster on the same machine (fsync on, synchronous_commit
on, shared_buffers 256 MB). The slave holds $rows endpoints and $rows
events (about $width on disk). Strata's figures are the wall
clock of \`strata-ctl sync now\` from the command's start to its answer:
first the full sync into an empty master, then a sync after an UPDATE of
1 % of the endpoints ($changed rows: status, last_seen). PostgreSQL's own
logical replication runs between the same two clusters over the same rows:
a publication of endpoints and events on the slave's database, a
subscription (copy_data = true) into a fresh database on the master's
cluster with the same columns and primary keys; the initial copy is timed
until both tables are in state 'r' in pg_subscription_rel, the change until
the subscriber shows all $changed updated rows.

Run it with \`bench/sync.sh\` (about a minute on 2 cores; \`ROWS=N\` for a
smaller table, \`BATCH_ROWS=N\` for the slave's batch size). It prints a
JSON object on its last line and rewrites this section.

Last run: $date, commit $commit, $cores cores, $mem RAM, PostgreSQL $pgver,
batch-rows ${batch_rows:-default}.

| | Strata | logical replication | Strata / logical |
|---|---:|---:|---:|
| full sync / initial copy | $full_s s, $full_rate rows/s | $peer_full_s s, $peer_full_rate rows/s | $full_ratio |
| $changed changed endpoints | $incr_s s, $incr_rate rows/s | $peer_incr_s s, $peer_incr_rate rows/s | $incr_ratio |

Targets: full sync at least 0.5× the initial copy's rate; an incremental
sync of 10,000 changed rows under 1 s. Logical replication streams a change
as soon as it commits, so its "incremental" time is a latency, while
Strata's is a whole session (TLS connection reuse, HELLO, one batch per
stream, DOWNLOAD, BYE).
MD
	bench_replace_section "$doc" Sync "$section"
fi

printf '{"rows":%d,"full_s":%s,"full_rows_per_s":%s,"incr_rows":%d,"incr_s":%s,"incr_rows_per_s":%s,' \
	"$total" "$full_s" "$full_rate" "$changed" "$incr_s" "$incr_rate"
printf '"peer_initial_s":%s,"peer_initial_rows_per_s":%s,"peer_incr_s":%s,"peer_incr_rows_per_s":%s,' \
	"$peer_full_s" "$peer_full_rate" "$peer_incr_s" "$peer_incr_rate"
printf '"ratio_full":%s,"ratio_incr":%s}\n' "$full_ratio" "$incr_ratio"
