#!/usr/bin/env bash
# The main job on a fresh machine: a master and two slaves with seeded
# endpoints on a throwaway PostgreSQL cluster. Registers both slaves,
# syncs, pushes a policy down, and prints a report across both slaves.
# Stops everything it started.
#
#   scripts/demo.sh            run and clean up
#   KEEP=1 scripts/demo.sh     leave the daemons running (prints how to stop)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

work=$(mktemp -d /tmp/strata-demo.XXXXXX)
chmod 755 "$work"
pgport=$((20000 + RANDOM % 20000))
mport=$((40000 + RANDOM % 10000))
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	scripts/pg.sh stop "$work/pg" || true
	rm -rf "$work"
}
if [ "${KEEP:-0}" != 1 ]; then trap cleanup EXIT; fi

step() { printf '\n== %s\n' "$*"; }

step "throwaway PostgreSQL on port $pgport"
scripts/pg.sh start "$work/pg" "$pgport" >/dev/null
for db in hq site_a site_b; do scripts/pg.sh createdb "$work/pg" "$pgport" "$db"; done
psql_on() { psql -X -q -v ON_ERROR_STOP=1 -h "$work/pg" -p "$pgport" -U postgres -d "$1" "${@:2}"; }

write_conf() { # role name db extra
	mkdir -p "$work/$2"
	cat >"$work/$2/server.xml" <<XML
<?xml version="1.0"?>
<server role="$1" name="$2">
  <data-dir>$work/$2</data-dir>
  <log level="info"/>
  <database conninfo="host=$work/pg port=$pgport user=postgres dbname=$3"/>
  <admin socket="$work/$2/admin.sock"/>
$4
</server>
XML
}
write_conf master hq hq "  <sync-listen address=\"127.0.0.1\" port=\"$mport\" hosts=\"127.0.0.1,localhost\"/>"
pport=$((mport + 1))
for s in site-a site-b; do
	write_conf slave "$s" "${s/-/_}" "  <master host=\"127.0.0.1\" port=\"$mport\"/>
  <replication interval=\"1800\"/>
  <push address=\"127.0.0.1\" port=\"$pport\"/>"
	pport=$((pport + 1))
done

ctl() { local node=$1; shift; build/strata-ctl -s "$work/$node/admin.sock" "$@"; }
start() { # binary node
	"build/$1" -c "$work/$2/server.xml" >>"$work/$2/daemon.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do ctl "$2" status >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "demo: $2 did not start:"; tail -20 "$work/$2/daemon.log"; exit 1
}

step "configuration check (strata-master -T)"
build/strata-master -T -c "$work/hq/server.xml"
build/strata-slave -T -c "$work/site-a/server.xml"

step "starting master hq (sync port $mport) and slaves site-a, site-b"
start strata-master hq
start strata-slave site-a
start strata-slave site-b

step "seeding endpoints and events on the slaves"
seed() { # db count
	psql_on "$1" <<SQL
INSERT INTO groups (name, path) VALUES ('servers', '/servers'), ('laptops', '/laptops');
INSERT INTO endpoints (uid, hostname, group_id, os, address, status, last_seen)
SELECT 'uid-' || g, '$1-host-' || g, 1 + g % 2, 'Debian 12', '10.0.' || (g / 250) || '.' || (g % 250 + 1),
       (ARRAY['online','online','online','offline','unreachable'])[1 + g % 5], now()
FROM generate_series(1, $2) g;
INSERT INTO events (endpoint_id, kind, severity, details)
SELECT 1 + g % $2, (ARRAY['heartbeat-missed','detection','policy-applied'])[1 + g % 3],
       (ARRAY['info','low','high'])[1 + g % 3], jsonb_build_object('n', g)
FROM generate_series(1, $2 * 3) g;
SQL
}
seed site_a 1200
seed site_b 800

step "registering the slaves with the master"
for s in site-a site-b; do
	token=$(ctl hq --json slave add "$s" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
	echo "$s: token ${token:0:20}..."
	ctl "$s" register --master "127.0.0.1:$mport" --token "$token"
done

step "sync now on both slaves"
ctl site-a sync now
ctl site-b sync now

step "a master-owned policy, pushed down"
ctl hq policy create baseline --settings '{"heartbeat_interval": 60, "scan_on_access": true}'
ctl hq slave sync site-a
ctl site-b sync now
sleep 1
ctl site-a policy list
echo "(editing it on the slave is refused:)"
ctl site-a policy update baseline --settings '{"heartbeat_interval": 5}' || true

step "slaves as the master sees them"
ctl hq slave list

step "report across both slaves"
ctl hq report endpoints

if [ "${KEEP:-0}" = 1 ]; then
	echo; echo "daemons left running (pids ${pids[*]}); work dir $work"
fi
