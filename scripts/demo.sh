#!/usr/bin/env bash
# The main job on a fresh machine: a master and two slaves on a throwaway
# PostgreSQL cluster, a distribution point for site-b's branch, and real
# agents enrolled with each slave (site-b's reach it through the point).
# Licenses each slave, registers both with the master, runs tasks on the
# agents (one sent down from the master to a group on every slave),
# pushes a policy down, syncs, and prints reports across both slaves:
# endpoints, task results, events, sync health and licence usage. Stops
# everything it started.
#
#   scripts/demo.sh            run and clean up
#   KEEP=1 scripts/demo.sh     leave the daemons running (prints how to stop)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
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
	strata_write_conf "$work/$2" "$1" "$2" "host=$work/pg port=$pgport user=postgres dbname=$3" info "$4"
}
write_conf master hq hq "  <sync-listen address=\"127.0.0.1\" port=\"$mport\" hosts=\"127.0.0.1,localhost\"/>"
pport=$((mport + 1))
for s in site-a site-b; do
	write_conf slave "$s" "${s/-/_}" "  <master host=\"127.0.0.1\" port=\"$mport\"/>
  <replication interval=\"1800\"/>
  <push address=\"127.0.0.1\" port=\"$pport\"/>
  <licence public-key=\"$work/licensing/licence.pub\"/>"
	pport=$((pport + 1))
done

ctl() { local node=$1; shift; build/strata-ctl -s "$work/$node/admin.sock" "$@"; }
agent_port() { sed -n 's/.*<push address="127.0.0.1" port="\([0-9]*\)".*/\1/p' "$work/$1/server.xml"; }
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

step "a licence for each slave, signed with the vendor's key (strata-ctl license)"
mkdir -p "$work/licensing"
build/strata-ctl license keygen --out "$work/licensing"
seats_a=5 seats_b=3
for s in site-a site-b; do
	seats=$seats_a; [ "$s" = site-b ] && seats=$seats_b
	build/strata-ctl license sign --key "$work/licensing/licence.key" --id "LIC-$s" \
		--holder "Example Corp, $s" --seats "$seats" --valid-from "$(date -u +%Y-%m-%d)" \
		--valid-until "$(date -u -d '+1 year' +%Y-%m-%d)" --features push,scan \
		--out "$work/licensing/$s.lic"
	ctl "$s" license install "$work/licensing/$s.lic"
done
echo "(a tampered licence is refused, the installed one stays:)"
sed -E 's/("signature": *")f/\1e/; t; s/("signature": *")[0-9a-e]/\1f/' "$work/licensing/site-a.lic" \
	>"$work/licensing/tampered.lic"
ctl site-a license install "$work/licensing/tampered.lic" || true
ctl site-a license show

step "registering the slaves with the master"
for s in site-a site-b; do
	token=$(ctl hq --json slave add "$s" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
	echo "$s: token ${token:0:20}..."
	ctl "$s" register --master "127.0.0.1:$mport" --token "$token"
done

step "distribution point dp-b1 for site-b's /branch (its own push port, no database)"
dport=$((mport + 10))
mkdir -p "$work/dp-b1"
chmod 700 "$work/dp-b1"
dptoken=$(ctl site-b --json dp-token create --group /branch | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
cat >"$work/dp-b1/server.xml" <<EOF
<?xml version="1.0"?>
<server role="dp" name="dp-b1">
  <data-dir>$work/dp-b1</data-dir>
  <log level="info"/>
  <push address="127.0.0.1" port="$dport" hosts="127.0.0.1"/>
  <slave host="127.0.0.1" port="$(agent_port site-b)" token="$dptoken"/>
</server>
EOF
build/strata-dp -T -c "$work/dp-b1/server.xml"
build/strata-dp -c "$work/dp-b1/server.xml" >>"$work/dp-b1/daemon.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	ctl site-b --json dp list | grep -q '"online"' && break
	sleep 0.1
done
ctl site-b dp list

step "agents: 4 on site-a, 3 on site-b (through dp-b1), enrolled with per-slave tokens"
mkdir -p "$work/scan"
printf 'EICAR-like test payload\n' >"$work/scan/suspicious.bin"
printf 'harmless\n' >"$work/scan/notes.txt"
n=0
for s in site-a site-b; do
	count=4; [ "$s" = site-b ] && count=3
	token=$(ctl "$s" --json agent-token create --group /branch/desks |
		sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
	for i in $(seq "$count"); do
		n=$((n + 1))
		dir="$work/agents/$s-$i"
		mkdir -p "$work/agents"
		build/strata-agent -s "$dir" enrol --server "127.0.0.1:$(agent_port "$s")" \
			--token "$token" --hostname "$s-desk-$i" >>"$work/agents/$s-$i.log" 2>&1
		build/strata-agent -s "$dir" run --scan-root "$work/scan" >>"$work/agents/$s-$i.log" 2>&1 &
		pids+=($!)
	done
done
online() { ctl "$1" --json endpoint list --status online | grep -c '"uid"' || true; }
for _ in $(seq 100); do
	[ "$(online site-a)" -ge 4 ] && [ "$(online site-b)" -ge 3 ] && break
	sleep 0.2
done
ctl site-a endpoint list
# The point reports its connections every 5 s.
for _ in $(seq 60); do
	ctl site-b --json dp list | grep -q '"connections": *3' && break
	sleep 0.2
done
ctl site-b dp list

step "a block list and a scan on every site-a agent"
sha=$(sha256sum "$work/scan/suspicious.bin" | cut -d' ' -f1)
ctl site-a policy create blocklist --settings "{\"block_sha256\": [\"$sha\"]}"
ctl site-a task create scan-downloads --kind scan --params "{\"path\": \"$work/scan\"}"
# The new policy already queued an apply_policy for every agent it covers;
# each agent runs the scan after it has fetched the block list.
for uid in $(ctl site-a --json endpoint list | sed -n 's/.*"uid": *"\([^"]*\)".*/\1/p'); do
	ctl site-a endpoint command "$uid" run_task --args '{"task": "scan-downloads"}' >/dev/null
done
for _ in $(seq 100); do
	d=$(psql_on site_a -tAc "SELECT count(*) FROM events WHERE kind = 'detection'")
	[ "$d" -ge 4 ] && break
	sleep 0.2
done
echo "detections reported on site-a: $d"

step "sync now on both slaves"
ctl site-a sync now
ctl site-b sync now

step "a master-owned policy, pushed down"
ctl hq policy create baseline --settings '{"heartbeat": 60}'
ctl hq slave sync site-a
ctl site-b sync now
sleep 1
ctl site-a policy list
echo "(editing it on the slave is refused:)"
ctl site-a policy update baseline --settings '{"heartbeat": 5}' || true

step "a master task for /branch on every slave: inventory on the agents there"
ctl hq task create inventory-branch --kind inventory --group /branch
ctl site-a sync now
ctl site-b sync now
for _ in $(seq 100); do
	a=$(psql_on site_a -tAc "SELECT count(*) FROM task_results r JOIN tasks t ON t.id = r.task_id
		WHERE t.name = 'inventory-branch' AND r.status = 'succeeded'")
	b=$(psql_on site_b -tAc "SELECT count(*) FROM task_results r JOIN tasks t ON t.id = r.task_id
		WHERE t.name = 'inventory-branch' AND r.status = 'succeeded'")
	[ "$a" -ge 4 ] && [ "$b" -ge 3 ] && break
	sleep 0.2
done
ctl site-a sync now
ctl site-b sync now
ctl hq task status inventory-branch

step "slaves as the master sees them"
ctl hq slave list

step "reports across both slaves"
ctl hq report endpoints
echo
ctl hq report compliance
echo
ctl hq report tasks
echo
ctl hq report events --days 1
echo
ctl hq report sync
echo
ctl hq license list

if [ "${KEEP:-0}" = 1 ]; then
	echo; echo "daemons left running (pids ${pids[*]}); work dir $work"
fi
