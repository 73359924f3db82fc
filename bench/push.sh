#!/usr/bin/env bash
# Push benchmark: one slave's push server against AGENTS simulated agents
# (strata-agent --simulate), each with its own identity and TLS 1.3
# connection, from several 127.x source addresses.
#
#   bench/push.sh                 50,000 agents, 3 push workers
#   AGENTS=5000 bench/push.sh     fewer agents
#   WORKERS=4 bench/push.sh       <push workers="4">
#   IDLE_S=30 FAST_S=20           idle phase and fast-heartbeat phase, seconds
#   NO_DOC=1 bench/push.sh        do not rewrite docs/BENCHMARKS.md
#   KEEP=1 bench/push.sh          leave the cluster, slave and agents running
#
# Measures the connection set-up rate, resident memory and server CPU per
# connection, idle CPU, sustained heartbeats with their flush to PostgreSQL
# and the time until every agent acknowledged one pushed command. Prints
# one JSON object on its last line and writes the "Push" section of
# docs/BENCHMARKS.md. Stops everything it started and removes its files.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
root=$(pwd)

workers=${WORKERS:-3}
agents=${AGENTS:-50000}
idle_s=${IDLE_S:-30}
fast_s=${FAST_S:-20}
# 2 s gives 25,000 heartbeats/s from 50,000 agents; fewer agents beat every second.
if [ "$agents" -ge 40000 ]; then fast_hb=${FAST_HEARTBEAT:-2}; else fast_hb=${FAST_HEARTBEAT:-1}; fi
sources=127.0.0.2-127.0.0.50
heartbeat=60
simprocs=$(((agents + 14999) / 15000))

builddir=build-bench
cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE=OFF >/dev/null
cmake --build "$builddir" -j"$(nproc)" >/dev/null

work=$(mktemp -d /tmp/strata-bench.XXXXXX)
chmod 755 "$work"
base=$((28000 + RANDOM % 900))
pgport=$base pport=$((base + 1))
pids=()
simpid=
pollpid=
cleanup() {
	local p
	[ -n "$pollpid" ] && kill "$pollpid" 2>/dev/null || true
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
	[ -n "$simpid" ] && wait "$simpid" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	"$root/scripts/pg.sh" stop "$work/pg" || true
	rm -rf "$work"
}
if [ "${KEEP:-0}" = 1 ]; then trap 'echo "bench: left running: pids ${pids[*]} $simpid, work dir $work" >&2' EXIT; else trap cleanup EXIT; fi


bench_start_slave

# The push server's processes: the slave and, with workers, its children.
server_pids() { echo "$slavepid"; ps -o pid= --ppid "$slavepid" 2>/dev/null | tr -d ' ' || true; }
rss_kib() { local p t=0; for p in $(server_pids); do
	t=$((t + $(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo "$t"; }
cpu_ticks() { local p t=0; for p in $(server_pids); do
	t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
hz=$(getconf CLK_TCK)
# PostgreSQL's processes, the backends that exited included (the postmaster reaps them).
pg_cpu_ticks() { local pm p t; pm=$(head -1 "$work/pg/data/postmaster.pid")
	t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
	for p in $(ps -o pid= --ppid "$pm" | tr -d ' '); do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
db_counters() { sql -c "SELECT xact_commit || ' ' || tup_updated FROM pg_stat_database WHERE datname = 'site'"; }
# The waits poll through one psql session: a psql process and a backend
# started per poll would take CPU from the server being measured.
poll_open() {
	coproc POLL { psql -X -q -At -v ON_ERROR_STOP=1 -h "$work/pg" -p "$pgport" -U postgres -d site; }
	pollpid=$POLL_PID
}
poll() { local ans; echo "$1" >&"${POLL[1]}"; read -r ans <&"${POLL[0]}"; echo "$ans"; }
online() { poll "SELECT count(*) FROM endpoints WHERE status = 'online';"; }

say "enrolling $agents simulated agents"
token=$(ctl --json agent-token create | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
enrol=$("$builddir/strata-agent" -s "$work/sim" --simulate "$agents" enrol --server "127.0.0.1:$pport" \
	--token "$token" --procs "$simprocs" --sources "$sources" 2>"$work/enrol.log" | tail -1) ||
	{ echo "bench: enrolment failed:" >&2; tail -20 "$work/enrol.log" >&2; exit 1; }
enrol_s=$(echo "$enrol" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')
enrol_rate=$(rate "$agents" "$enrol_s")
say "enrolled in $enrol_s s ($enrol_rate/s)"

poll_open
sleep 1
rss0=$(rss_kib)
cpu0=$(cpu_ticks)
pgcpu0=$(pg_cpu_ticks)
say "connecting $agents agents ($simprocs simulator processes, sources $sources)"
run_limit=$((120 + idle_s + 60 + fast_s + 60))
t0=$(now)
"$builddir/strata-agent" -s "$work/sim" --simulate "$agents" run --procs "$simprocs" --sources "$sources" \
	--duration "$run_limit" --fast-heartbeat "$fast_hb" >>"$work/sim.out" 2>"$work/sim.log" &
simpid=$!
deadline=$(($(date +%s) + 120))
while [ "$(online)" -lt "$agents" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
connect_s=$(elapsed "$t0" "$(now)")
cpu1=$(cpu_ticks)
pgcpu1=$(pg_cpu_ticks)
connected=$(online)
conn_rate=$(rate "$connected" "$connect_s")
cpu_per_conn_us=$(div "$(((cpu1 - cpu0) * 1000000 / hz))" "$connected" "%.0f")
db_cpu_per_conn_us=$(div "$(((pgcpu1 - pgcpu0) * 1000000 / hz))" "$connected" "%.0f")
say "$connected online after $connect_s s ($conn_rate/s), server CPU $cpu_per_conn_us µs per set-up (PostgreSQL $db_cpu_per_conn_us µs)"
sleep 3
rss1=$(rss_kib)
mem_per_conn=$(div "$(((rss1 - rss0) * 1024))" "$connected" "%.0f")
mem_per_conn_kib=$(div "$mem_per_conn" 1024 "%.1f")
say "server RSS $rss0 KiB -> $rss1 KiB: $mem_per_conn_kib KiB per connection"

say "idle for $idle_s s (heartbeat every $heartbeat s)"
cpu2=$(cpu_ticks)
read -r x0 u0 <<<"$(db_counters)"
sleep "$idle_s"
cpu3=$(cpu_ticks)
read -r x1 u1 <<<"$(db_counters)"
idle_cpu=$(div "$(((cpu3 - cpu2) * 100))" "$((hz * idle_s))" "%.1f")
idle_rows=$(div "$((u1 - u0))" "$idle_s" "%.0f")
say "idle: server CPU $idle_cpu %, $idle_rows rows/s updated"

say "one sync_now command for each endpoint"
sql -c "INSERT INTO agent_commands (endpoint_id, kind) SELECT id, 'sync_now' FROM endpoints"
t0=$(now)
deadline=$(($(date +%s) + 60))
while [ "$(poll "SELECT count(*) FROM agent_commands WHERE acked_at IS NULL;")" != 0 ] &&
	[ "$(date +%s)" -lt "$deadline" ]; do sleep 0.02; done
cmd_s=$(elapsed "$t0" "$(now)")
unacked=$(sql -c "SELECT count(*) FROM agent_commands WHERE acked_at IS NULL")
[ "$unacked" = 0 ] || say "$unacked commands still unacknowledged after 60 s"
say "all acknowledged after $cmd_s s"

# One command for one agent among all the connected ones, five times (the
# slowest counts): the time from its INSERT to its acknowledgement.
say "one command for one agent, 5 times"
one_s=0
one_unacked=0
for _ in 1 2 3 4 5; do
	t0=$(now)
	id=$(poll "INSERT INTO agent_commands (endpoint_id, kind) SELECT id, 'sync_now' FROM endpoints ORDER BY random() LIMIT 1 RETURNING id;")
	deadline=$(($(date +%s) + 10))
	while [ "$(poll "SELECT count(*) FROM agent_commands WHERE id = $id AND acked_at IS NULL;")" != 0 ] &&
		[ "$(date +%s)" -lt "$deadline" ]; do sleep 0.005; done
	[ "$(poll "SELECT count(*) FROM agent_commands WHERE id = $id AND acked_at IS NULL;")" = 0 ] ||
		one_unacked=$((one_unacked + 1))
	t=$(elapsed "$t0" "$(now)")
	one_s=$(awk -v a="$one_s" -v b="$t" 'BEGIN { print (b > a ? b : a) }')
done
say "one command acknowledged after at most $one_s s ($one_unacked not within 10 s)"

say "heartbeat every $fast_hb s for $fast_s s"
sim_children=$(ps -o pid= --ppid "$simpid" | tr -d ' ')
kill -USR2 $sim_children
sleep "$fast_hb"
kill -USR1 $sim_children
sleep 0.5
hb0=$(awk -F'"heartbeats":' 'NF > 1 { split($2, a, ","); s += a[1] } END { print s + 0 }' "$work/sim.out")
: >"$work/sim.out"
cpu4=$(cpu_ticks)
read -r x2 u2 <<<"$(db_counters)"
t0=$(now)
sleep "$fast_s"
kill -USR1 $sim_children
cpu5=$(cpu_ticks)
read -r x3 u3 <<<"$(db_counters)"
fast_wall=$(elapsed "$t0" "$(now)")
sleep 0.5
hb1=$(awk -F'"heartbeats":' 'NF > 1 { split($2, a, ","); s += a[1] } END { print s + 0 }' "$work/sim.out")
hb_rate=$(div "$((hb1 - hb0))" "$fast_wall" "%.0f")
hb_rows=$(div "$((u3 - u2))" "$fast_wall" "%.0f")
hb_xacts=$(div "$((x3 - x2))" "$fast_wall" "%.0f")
hb_cpu=$(div "$(((cpu5 - cpu4) * 100))" "$(awk -v w="$fast_wall" -v h="$hz" 'BEGIN { print w * h }')" "%.1f")
still=$(online)
say "heartbeats: $hb_rate/s sent, flush updated $hb_rows rows/s in $hb_xacts transactions/s, server CPU $hb_cpu %, $still online"

kill "$simpid" 2>/dev/null || true
wait "$simpid" 2>/dev/null || true
simpid=
exec {POLL[1]}>&-
wait "$pollpid" 2>/dev/null || true
pollpid=
failures=$(awk -F'"failures":' 'NF > 1 { split($2, a, ","); s += a[1] } END { print s + 0 }' "$work/sim.out")

pass_conn=$(verdict "$connected" 50000 ge)
pass_mem=$(verdict "$mem_per_conn" 16384 le)
pass_cpu=$(verdict "$cpu_per_conn_us" 300 le)
pass_cmd=$( [ "$unacked" = 0 ] && verdict "$cmd_s" 2 le || echo fail)
pass_one=$( [ "$one_unacked" = 0 ] && verdict "$one_s" 1 le || echo fail)
# Heartbeats received with every agent still online; the coalescing flush writes each
# endpoint at most once a second, so its rows/s cannot exceed the number of agents.
pass_hb=$( [ "$still" -ge "$connected" ] && verdict "$hb_rate" 20000 ge || echo fail)
cores=$(nproc)
mem=$(free -g | awk '/^Mem:/ { print $2 " GiB" }')
date=$(date -u +%Y-%m-%d)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
pgver=$(sql -c "SHOW server_version")

if [ "${NO_DOC:-0}" != 1 ]; then
	doc=docs/BENCHMARKS.md
	section=$(mktemp)
	cat >"$section" <<MD
## Push

What is measured: one slave (\`<push workers="$workers" max-connections="20000"
heartbeat="$heartbeat">\`) on a throwaway PostgreSQL $pgver cluster, and
$agents agents simulated by \`strata-agent --simulate $agents\` in $simprocs
processes on the same machine, each agent with its own Ed25519 identity and
its own TLS 1.3 connection (A_AUTH signs the session's exported keying
material), bound round-robin to the source addresses $sources.
Enrolment runs first, through the push server (A_ENROL per identity).
The set-up rate counts from the simulator's start until
\`SELECT count(*) FROM endpoints WHERE status = 'online'\` shows all agents.
Memory is the sum of VmRSS of the slave's processes before the agents
connect and after, divided by the connections; CPU is utime + stime of the
same processes from /proc. PostgreSQL's CPU over the same window (all its
processes, exited backends included) is shown beside it: the key lookups
and status writes of the set-ups run there, not in the push server.
The command fan-out inserts one \`sync_now\` per endpoint in one statement
and polls, from one open psql session every 20 ms, until no command is
unacknowledged. One command for one agent: a \`sync_now\` for one endpoint
picked at random, timed from before its INSERT until it is acknowledged
(polled every 5 ms), five times while all agents are connected; the
slowest counts.
Heartbeats: every agent switches to one heartbeat every $fast_hb s for
$fast_s s; the figure is the rows the push server's 1 s flush updated per
second (\`tup_updated\` of pg_stat_database), beside the heartbeats sent.
The flush writes an endpoint at most once per second whatever its number
of heartbeats, so its rows/s is bounded by the number of agents.

Run it with \`bench/push.sh\` (a few minutes; \`AGENTS=N\` for fewer agents).
It prints a JSON object on its last line and rewrites this section.

Last run: $date, commit $commit, $cores cores, $mem RAM, PostgreSQL $pgver,
$workers push worker(s), $agents agents.

| | Strata | target | result | peers |
|---|---:|---:|---|---|
| connected | $connected | 50,000 | $pass_conn | Mosquitto: 15,000 idle TLS 1.3 connections |
| enrolment | $enrol_s s, $enrol_rate/s | | | |
| connection set-up | $connect_s s, $conn_rate/s | | | |
| server CPU per set-up | $cpu_per_conn_us µs (PostgreSQL: $db_cpu_per_conn_us µs more) | ≤ 300 µs | $pass_cpu | libevent + OpenSSL floor ≈ 200 µs per full handshake |
| resident memory per idle connection | $mem_per_conn_kib KiB | ≤ 16 KiB (goal 14) | $pass_mem | Mosquitto 14.6 KiB; libevent + OpenSSL floor ≈ 13.4 KiB |
| idle server CPU (heartbeat $heartbeat s) | $idle_cpu % | | | |
| one command acknowledged by all | $cmd_s s | ≤ 2 s (goal 1 s) | $pass_cmd | Mosquitto: 256 B to 15,000 in 0.2 s |
| one command to one agent, acknowledged (slowest of 5) | $one_s s | ≤ 1 s | $pass_one | |
| heartbeats sustained | $hb_rate/s (flush: $hb_rows rows/s in $hb_xacts commits/s; server CPU $hb_cpu %) | ≥ 20,000/s | $pass_hb | |

Reconnects seen by the simulators during the run: $failures.
MD
	bench_replace_section "$doc" Push "$section"
fi

printf '{"agents":%d,"workers":%d,"connected":%d,"enrol_s":%s,"enrol_per_s":%s,' \
	"$agents" "$workers" "$connected" "$enrol_s" "$enrol_rate"
printf '"connect_s":%s,"connect_per_s":%s,"cpu_us_per_setup":%s,"db_cpu_us_per_setup":%s,"rss_bytes_per_conn":%s,' \
	"$connect_s" "$conn_rate" "$cpu_per_conn_us" "$db_cpu_per_conn_us" "$mem_per_conn"
printf '"idle_cpu_pct":%s,"command_all_acked_s":%s,"unacked":%s,"command_one_acked_s":%s,' \
	"$idle_cpu" "$cmd_s" "$unacked" "$one_s"
printf '"heartbeats_sent_per_s":%s,"heartbeat_rows_per_s":%s,"heartbeat_commits_per_s":%s,"heartbeat_cpu_pct":%s,' \
	"$hb_rate" "$hb_rows" "$hb_xacts" "$hb_cpu"
printf '"reconnects":%s,"pass":{"connected":"%s","memory":"%s","cpu":"%s","command":"%s","command_one":"%s","heartbeats":"%s"}}\n' \
	"$failures" "$pass_conn" "$pass_mem" "$pass_cpu" "$pass_cmd" "$pass_one" "$pass_hb"
