#!/usr/bin/env bash
# Distribution point benchmark: one standalone slave, two distribution
# points (strata-dp) serving one group, and AGENTS simulated agents of that
# group that connect to the slave, are redirected (A_REDIRECT) to the
# least-loaded point and stay there, from several 127.x source addresses.
#
#   bench/dp.sh                   10,000 agents
#   AGENTS=2000 bench/dp.sh       fewer agents
#   WORKERS=2                     <push workers> of the slave
#   NO_DOC=1 bench/dp.sh          do not rewrite docs/BENCHMARKS.md
#   KEEP=1 bench/dp.sh            leave the cluster, slave, points and agents running
#
# Measures how the agents spread over the two points, the resident memory
# of a point per relayed connection, the time until every agent received
# and acknowledged one pushed command through the points, and the failover:
# one point is killed (SIGKILL) and the time until all its agents are
# connected through the other is taken. Prints one JSON object on its last
# line and writes the "Distribution points" section of docs/BENCHMARKS.md.
# Stops everything it started and removes its files, also on failure.
#
# The machine may be shared with bench/push.sh: before each heavy phase the
# script waits (up to QUIET_WAIT_S, 900 s) while simulators it did not
# start are running, so the two benchmarks do not measure each other.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
root=$(pwd)

agents=${AGENTS:-10000}
workers=${WORKERS:-2}
quiet_wait_s=${QUIET_WAIT_S:-900}
sources=127.0.0.2-127.0.0.50
heartbeat=60
group=/bench
simprocs=$(((agents + 9999) / 10000))
[ "$simprocs" -ge 2 ] || simprocs=2

builddir=build-bench
cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE=OFF >/dev/null
cmake --build "$builddir" -j"$(nproc)" >/dev/null

work=$(mktemp -d /tmp/strata-bench-dp.XXXXXX)
chmod 755 "$work"
base=$((29000 + RANDOM % 900))
pgport=$base pport=$((base + 1))
dp_names=(dp-a dp-b)
dp_ports=($((base + 2)) $((base + 3)))
dp_pids=("" "")
pids=()
simpid=
cleanup() {
	local p
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
	[ -n "$simpid" ] && wait "$simpid" 2>/dev/null || true
	for p in "${dp_pids[@]}" "${pids[@]}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	for p in "${dp_pids[@]}" "${pids[@]}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
	"$root/scripts/pg.sh" stop "$work/pg" >/dev/null 2>&1 || true
	rm -rf "$work"
}
if [ "${KEEP:-0}" = 1 ]; then
	trap 'echo "bench: left running: pids ${pids[*]} ${dp_pids[*]} $simpid, work dir $work" >&2' EXIT
else
	trap cleanup EXIT
fi
trap 'exit 130' INT TERM

die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# wait_for WHAT SECONDS CMD...: runs CMD every 0.1 s until it succeeds; after
# SECONDS says what it waited for and returns 1.
wait_for() {
	local what=$1 limit=$2
	shift 2
	local deadline
	deadline=$(($(date +%s) + limit))
	until "$@"; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			say "timed out after $limit s waiting for $what"
			return 1
		fi
		sleep 0.1
	done
}

# Simulators (strata-agent --simulate) that this script did not start: a
# process is ours when this shell is among its ancestors.
foreign_sims() {
	local p q n=0
	for p in $(pgrep -f 'strata-agent.*--simulate' || true); do
		q=$p
		while [ -n "$q" ] && [ "$q" -gt 1 ] && [ "$q" != $$ ]; do
			q=$(awk '{ print $4 }' "/proc/$q/stat" 2>/dev/null || true)
		done
		[ "$q" = $$ ] || n=$((n + 1))
	done
	echo "$n"
}
no_foreign_sims() { [ "$(foreign_sims)" = 0 ]; }
waited_quiet=0
wait_quiet() {
	local t0 n
	n=$(foreign_sims)
	[ "$n" = 0 ] && return 0
	say "$n simulator process(es) of another benchmark running: waiting before $1 (up to $quiet_wait_s s)"
	t0=$(date +%s)
	wait_for "the other benchmark's simulators to end (before $1)" "$quiet_wait_s" no_foreign_sims ||
		die "another benchmark kept running simulators for $quiet_wait_s s; try again later"
	waited_quiet=$((waited_quiet + $(date +%s) - t0))
	sleep 2 # its servers stop after its simulators
}
# phase_end NAME: notes a phase during which another benchmark's simulators
# started, so its figures are marked as measured on a shared machine.
disturbed=()
phase_end() { [ "$(foreign_sims)" = 0 ] || { disturbed+=("$1"); say "another benchmark started during $1"; }; }

bench_start_slave

q_dps_online() { [ "$(sql -c "SELECT count(*) FROM push_servers WHERE online")" = "$1" ]; }
for i in 0 1; do
	name=${dp_names[$i]}
	dir=$work/$name
	mkdir -p "$dir"
	tok=$(ctl --json dp-token create --group "$group" | jq -r '.fields.token // .token // empty')
	[ -n "$tok" ] || die "no token from dp-token create"
	cat >"$dir/dp.xml" <<XML
<?xml version="1.0"?>
<server role="dp" name="$name">
  <data-dir>$dir</data-dir>
  <log level="notice"/>
  <push address="127.0.0.1" port="${dp_ports[$i]}" hosts="127.0.0.1" max-connections="20000"/>
  <slave host="127.0.0.1" port="$pport" token="$tok"/>
</server>
XML
	"$builddir/strata-dp" -c "$dir/dp.xml" >>"$dir/dp.log" 2>&1 &
	dp_pids[$i]=$!
	wait_for "distribution point $name to link" 20 q_dps_online $((i + 1)) ||
		{ tail -20 "$dir/dp.log" >&2; exit 1; }
done
say "distribution points ${dp_names[*]} linked, ports ${dp_ports[*]}, group $group"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
online() { sql -c "SELECT count(*) FROM endpoints WHERE status = 'online'"; }
# dp_field NAME FIELD: from "strata-ctl --json dp list".
dp_list() { ctl --json dp list; }
dp_field() { dp_list | jq -r --arg n "$1" --arg f "$2" \
	'(if type == "array" then . else (.rows // []) end)
	 | map(select(.name == $n)) | .[0][$f] // 0'; }
# The simulators' own view (SIGUSR1 prints a line per process).
sim_children() { ps -o pid= --ppid "$simpid" 2>/dev/null | tr -d ' ' || true; }
sim_poke() { local c; c=$(sim_children); [ -z "$c" ] || kill -USR1 $c 2>/dev/null || true; }
sim_sum() { awk -v k="\"$1\":" -F'[,{}]' '{ for (i = 1; i <= NF; i++) {
	if (index($i, "\"proc\":") == 1) p = substr($i, 8)
	if (index($i, k) == 1) v = substr($i, length(k) + 1) } last[p] = v }
	END { for (p in last) s += last[p]; print s + 0 }' "$work/sim.out"; }
sim_max() { awk -v k="\"$1\":" -F'[,{}]' '{ for (i = 1; i <= NF; i++)
	if (index($i, k) == 1 && substr($i, length(k) + 1) + 0 > m) m = substr($i, length(k) + 1) + 0 }
	END { printf "%.3f", m + 0 }' "$work/sim.out"; }

wait_quiet "enrolment"
say "enrolling $agents simulated agents into $group"
token=$(ctl --json agent-token create --group "$group" | jq -r '.fields.token // .token // empty')
[ -n "$token" ] || die "no token from agent-token create"
enrol=$("$builddir/strata-agent" -s "$work/sim" --simulate "$agents" enrol --server "127.0.0.1:$pport" \
	--token "$token" --procs "$simprocs" --sources "$sources" 2>"$work/enrol.log" | tail -1) ||
	{ tail -20 "$work/enrol.log" >&2; die "enrolment failed"; }
enrol_s=$(echo "$enrol" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')
say "enrolled in $enrol_s s ($(rate "$agents" "$enrol_s")/s)"

sleep 1
rss0=("$(rss_kib "${dp_pids[0]}")" "$(rss_kib "${dp_pids[1]}")")
wait_quiet "the connection phase"
say "connecting $agents agents ($simprocs simulator processes) to the slave, redirected to the points"
t0=$(now)
"$builddir/strata-agent" -s "$work/sim" --simulate "$agents" run --procs "$simprocs" --sources "$sources" \
	--duration 3600 >>"$work/sim.out" 2>"$work/sim.log" &
simpid=$!
all_online() { [ "$(online)" -ge "$agents" ]; }
connect_ok=1
wait_for "all $agents agents online" 180 all_online || connect_ok=0
connect_s=$(elapsed "$t0" "$(now)")
connected=$(online)
phase_end connection
say "$connected online after $connect_s s ($(rate "$connected" "$connect_s")/s)"
# The points report their connections every 5 s.
q_relayed() { [ "$(sql -c "SELECT coalesce(sum(connections), 0) FROM push_servers WHERE online")" -ge "$agents" ]; }
wait_for "the points to report $agents relayed connections" 30 q_relayed || connect_ok=0
sleep 3
conns=("$(dp_field dp-a connections)" "$(dp_field dp-b connections)")
assigned=("$(dp_field dp-a assigned)" "$(dp_field dp-b assigned)")
on_slave=$(sql -c "SELECT count(*) FROM endpoints e WHERE NOT EXISTS (SELECT 1 FROM push_assignments a WHERE a.endpoint_id = e.id)")
rss1=("$(rss_kib "${dp_pids[0]}")" "$(rss_kib "${dp_pids[1]}")")
mem_per_conn=()
for i in 0 1; do mem_per_conn[$i]=$(div "$(((rss1[i] - rss0[i]) * 1024))" "${conns[$i]}" "%.0f"); done
mem_avg=$(div "$(((rss1[0] - rss0[0] + rss1[1] - rss0[1]) * 1024))" "$((conns[0] + conns[1]))" "%.0f")
mem_avg_kib=$(div "$mem_avg" 1024 "%.1f")
imbalance=$(( conns[0] > conns[1] ? conns[0] - conns[1] : conns[1] - conns[0] ))
sim_poke
sleep 0.5
redirects=$(sim_sum redirects)
say "spread: dp-a ${conns[0]} connections (${assigned[0]} assigned), dp-b ${conns[1]} (${assigned[1]}), on the slave itself $on_slave; $redirects redirects"
say "point RSS dp-a ${rss0[0]} -> ${rss1[0]} KiB, dp-b ${rss0[1]} -> ${rss1[1]} KiB: $mem_avg_kib KiB per relayed connection"

wait_quiet "the command fan-out"
say "one sync_now command for each endpoint, through the points"
: >"$work/sim.out"
t0=$(now)
sql -c "INSERT INTO agent_commands (endpoint_id, kind) SELECT id, 'sync_now' FROM endpoints"
insert_s=$(elapsed "$t0" "$(now)")
delivered_s= acked_s=
deadline=$(($(date +%s) + 60))
while :; do
	read -r undelivered unacked <<<"$(sql -F ' ' -c "SELECT count(*) FILTER (WHERE delivered_at IS NULL), count(*) FILTER (WHERE acked_at IS NULL) FROM agent_commands")"
	t=$(now)
	[ -z "$delivered_s" ] && [ "$undelivered" = 0 ] && delivered_s=$(elapsed "$t0" "$t")
	[ "$unacked" = 0 ] && { acked_s=$(elapsed "$t0" "$t"); break; }
	if [ "$(date +%s)" -ge "$deadline" ]; then
		say "timed out after 60 s waiting for every command to be acknowledged: $undelivered undelivered, $unacked unacknowledged"
		break
	fi
	sleep 0.02
done
[ -n "$delivered_s" ] || delivered_s=-1
[ -n "$acked_s" ] || acked_s=-1
phase_end command
# The same from the database's clocks: the INSERT's transaction start to the
# last delivered_at (commands taken for sending) and the last acked_at.
read -r db_delivered_s db_acked_s <<<"$(sql -F ' ' -c "SELECT round(extract(epoch FROM max(delivered_at) - min(created_at))::numeric, 3), round(extract(epoch FROM max(acked_at) - min(created_at))::numeric, 3) FROM agent_commands")"
sim_poke
sleep 0.5
received=$(sim_sum commands)
last_rx=$(sim_max last_command_at)
t0_epoch=$(awk -v t="$t0" 'BEGIN { printf "%.3f", t }')
received_s=$(awk -v a="$t0_epoch" -v b="$last_rx" 'BEGIN { printf "%.3f", (b > 0 ? b - a : -1) }')
say "insert $insert_s s; all delivered after $delivered_s s (database: $db_delivered_s s), received by the last agent after $received_s s, all acknowledged after $acked_s s (database: $db_acked_s s); $received commands received"

wait_quiet "the failover"
victim=0 survivor=1
say "kill -9 ${dp_names[$victim]} (${conns[$victim]} agents); waiting for all $agents on ${dp_names[$survivor]}"
sim_poke
sleep 0.3
fail0=$(sim_sum failures)
: >"$work/sim.out"
t0=$(now)
kill -9 "${dp_pids[$victim]}"
wait "${dp_pids[$victim]}" 2>/dev/null || true
dp_pids[$victim]=
min_connected=$agents
q_assigned_survivor() { sql -c "SELECT count(*) FROM push_assignments a JOIN push_servers p ON p.id = a.server_id WHERE p.name = '${dp_names[$survivor]}'"; }
failed_over() {
	sim_poke
	sleep 0.1
	local c
	c=$(sim_sum connected)
	[ "$c" -lt "$min_connected" ] && min_connected=$c
	[ "$min_connected" -lt "$agents" ] && [ "$c" -ge "$agents" ] && [ "$(q_assigned_survivor)" -ge "$agents" ]
}
failover_ok=1
wait_for "all $agents agents connected through ${dp_names[$survivor]} after the kill" 90 failed_over || failover_ok=0
failover_s=$(elapsed "$t0" "$(now)")
phase_end failover
victim_offline=$(sql -c "SELECT count(*) FROM push_servers WHERE name = '${dp_names[$victim]}' AND NOT online")
fail1=$(sim_sum failures)
lost=$((agents - min_connected))
say "failover: $lost agents lost their point; all $agents connected through ${dp_names[$survivor]} after $failover_s s; ${dp_names[$victim]} offline: $victim_offline"
q_survivor_all() { [ "$(dp_field "${dp_names[$survivor]}" connections)" -ge "$agents" ]; }
wait_for "${dp_names[$survivor]} to report $agents connections" 30 q_survivor_all || failover_ok=0
reported_s=$(elapsed "$t0" "$(now)")
survivor_conns=$(dp_field "${dp_names[$survivor]}" connections)
rss2=$(rss_kib "${dp_pids[$survivor]}")
mem_after=$(div "$(((rss2 - rss0[survivor]) * 1024))" "$survivor_conns" "%.0f")
mem_after_kib=$(div "$mem_after" 1024 "%.1f")
say "${dp_names[$survivor]} reports $survivor_conns connections after $reported_s s; RSS $rss2 KiB, $mem_after_kib KiB per relayed connection"

kill "$simpid" 2>/dev/null || true
wait "$simpid" 2>/dev/null || true
simpid=

pass_connect=$( [ "$connect_ok" = 1 ] && echo pass || echo fail)
pass_cmd=$( [ "$acked_s" != -1 ] && verdict "$acked_s" 1 le || echo fail)
pass_failover=$( [ "$failover_ok" = 1 ] && verdict "$failover_s" 30 le || echo fail)
pass_spread=$(verdict "$imbalance" "$(( agents / 10 > 2 ? agents / 10 : 2 ))" le)
cores=$(nproc)
mem=$(free -g | awk '/^Mem:/ { print $2 " GiB" }')
date=$(date -u +%Y-%m-%d)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
pgver=$(sql -c "SHOW server_version")
mem_kib=("$(div "${mem_per_conn[0]}" 1024 "%.1f")" "$(div "${mem_per_conn[1]}" 1024 "%.1f")")

if [ "${NO_DOC:-0}" != 1 ]; then
	doc=docs/BENCHMARKS.md
	section=$(mktemp)
	cat >"$section" <<MD
## Distribution points

What is measured: one standalone slave (\`<push workers="$workers"
heartbeat="$heartbeat">\`) on a throwaway PostgreSQL $pgver cluster, two
distribution points (\`strata-dp\`, each enrolled with its own
\`dp-token create --group $group\`) on the same machine, and $agents agents
simulated by \`strata-agent --simulate $agents\` in $simprocs processes,
enrolled with an agent token of $group, from the source addresses $sources.
Every agent connects to the slave's push port first, is answered
A_REDIRECT to the least-loaded point of its group and keeps that point.
The spread is \`connections\` and \`assigned\` of \`strata-ctl --json dp
list\`. Memory is VmRSS of each point before the agents connect and after,
divided by its connections. The command fan-out inserts one \`sync_now\`
per endpoint in one statement and polls \`agent_commands\` until none is
undelivered (\`delivered_at\`: taken for sending) and none unacknowledged
(\`acked_at\`), timed from just before the INSERT; the database's own
figures are max(delivered_at or acked_at) − created_at, and "received" is
the simulators' time of the last command received. Failover: one point
is killed with SIGKILL, and the time runs until the simulators count all
agents connected again (A_AUTH_OK) and every assignment names the other
point; that point's own report of its connections (every 5 s) follows.

Run it with \`bench/dp.sh\` (a few minutes; \`AGENTS=N\` for another
number). It waits while another benchmark's simulators run, prints a JSON
object on its last line and rewrites this section.

Last run: $date, commit $commit, $cores cores, $mem RAM, PostgreSQL $pgver,
$workers push worker(s) on the slave, $agents agents.

| | Strata | target | result |
|---|---:|---:|---|
| agents online through the points | $connected in $connect_s s | $agents | $pass_connect |
| spread (connections / assigned) | ${dp_names[0]}: ${conns[0]} / ${assigned[0]}, ${dp_names[1]}: ${conns[1]} / ${assigned[1]}, slave itself: $on_slave | difference ≤ 10 % | $pass_spread |
| point resident memory per relayed connection | ${dp_names[0]}: ${mem_kib[0]} KiB, ${dp_names[1]}: ${mem_kib[1]} KiB (after failover, $survivor_conns on one: $mem_after_kib KiB) | | |
| one command: all delivered (delivered_at) | $delivered_s s (database: $db_delivered_s s) | | |
| one command: received by the last agent | $received_s s | | |
| one command: acknowledged by all | $acked_s s (database: $db_acked_s s; INSERT of $agents rows: $insert_s s) | ≤ 1 s | $pass_cmd |
| failover after kill -9 of a point ($lost agents) | $failover_s s (reported by the other point after $reported_s s) | ≤ 30 s | $pass_failover |
MD
	[ "${#disturbed[@]}" = 0 ] || printf '\nAnother benchmark'"'"'s simulators started during these phases of the run, whose figures are therefore pessimistic: %s.\n' "${disturbed[*]}" >>"$section"
	bench_replace_section "$doc" "Distribution points" "$section"
fi

printf '{"agents":%d,"workers":%d,"connected":%d,"connect_s":%s,"enrol_s":%s,' \
	"$agents" "$workers" "$connected" "$connect_s" "${enrol_s:-0}"
printf '"spread":{"%s":{"connections":%s,"assigned":%s},"%s":{"connections":%s,"assigned":%s},"slave":%s},"redirects":%s,' \
	"${dp_names[0]}" "${conns[0]}" "${assigned[0]}" "${dp_names[1]}" "${conns[1]}" "${assigned[1]}" "$on_slave" "$redirects"
printf '"rss_bytes_per_relayed_conn":{"%s":%s,"%s":%s,"mean":%s,"after_failover":%s},' \
	"${dp_names[0]}" "${mem_per_conn[0]}" "${dp_names[1]}" "${mem_per_conn[1]}" "$mem_avg" "$mem_after"
printf '"command_insert_s":%s,"command_all_delivered_s":%s,"command_all_delivered_db_s":%s,"command_last_received_s":%s,' \
	"$insert_s" "$delivered_s" "${db_delivered_s:-null}" "$received_s"
printf '"command_all_acked_s":%s,"command_all_acked_db_s":%s,"unacked":%s,' "$acked_s" "${db_acked_s:-null}" "$unacked"
printf '"failover_agents":%d,"failover_s":%s,"failover_reported_s":%s,"failed_attempts_during_failover":%s,"waited_for_other_bench_s":%d,"disturbed":[%s],' \
	"$lost" "$failover_s" "$reported_s" "$((fail1 - fail0))" "$waited_quiet" \
	"$(printf '"%s",' "${disturbed[@]+"${disturbed[@]}"}" | sed 's/,$//; s/^""$//')"
printf '"pass":{"connected":"%s","spread":"%s","command":"%s","failover":"%s"}}\n' \
	"$pass_connect" "$pass_spread" "$pass_cmd" "$pass_failover"
