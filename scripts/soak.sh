#!/usr/bin/env bash
# Soak: a master and a slave under steady agent load for a long time, with
# one daemon killed every minute, then a check that nothing was lost and
# that the daemons' resident memory did not grow. Not run in CI.
#
#   scripts/soak.sh                      30 minutes, 10,000 agents
#   scripts/soak.sh --minutes 6 --agents 2000
#   EVENTS_PER_MIN=2 WORKERS=3 scripts/soak.sh
#   KILL_TARGETS="slave worker" scripts/soak.sh   kill only among these
#   KEEP=1 scripts/soak.sh               leave the work directory (logs, CSV)
#
# What runs: a throwaway PostgreSQL cluster with the databases "hq" and
# "site"; a master; a slave registered with it (<replication interval="10">,
# <push workers="$WORKERS" heartbeat="30">); N agents simulated by
# strata-agent --simulate, heartbeating every 30 s and each sending
# EVENTS_PER_MIN A_EVENTs a minute (default 1), numbered per agent; a master
# task (kind inventory) for every agent every 5 minutes from 30 s on, so
# run_task commands and results flow down and up too. Built without
# sanitizers in build-soak/.
#
# Kills: every 60 s one SIGKILL to a target picked at random among the
# master, the slave's main process and one of its push workers (picked at
# random). The script restarts a killed master or slave at once; the slave
# restarts its workers itself (and a killed slave's workers exit with it).
# The simulator is not killed.
#
# Memory: VmRSS of the master, the slave's main process and each push
# worker every 30 s into rss.csv (elapsed s, role, pid, process age s,
# KiB). Three rules, each at most 10 % growth:
#  - all daemons: the sum of VmRSS of every daemon process at the end of
#    the load against that sum at minute 5 of the run;
#  - per role (master, slave, push workers): the sum of its processes at
#    the end against the sum at minute 5;
#  - per process, for the master and the slave's main process: a restarted
#    daemon is a new process, so the one that lived longest during the
#    load is compared with itself, at its last sample against age 5
#    minutes (or half its age when it lived less than 10 minutes); when
#    none lived 2 minutes the role cannot be judged and fails.
# A push worker's memory follows its share of the agents: when its sibling
# is killed, the sibling's agents reconnect to it until the sibling is
# back, and the heap it grew for them is kept. So a single worker is not
# judged against itself (its growth is printed); the workers together are.
#
# Nothing lost: like a real agent, the simulator keeps each event it made
# until its acknowledgement arrives (the slave acknowledges after its
# INSERT commits) and sends the unacknowledged ones again, unchanged, after
# it reconnects; the slave stores a resent event once. So every event made
# is either acknowledged or, at the simulator's exit, still pending and
# reported as an unacked range (the slave may or may not have it). At the
# end the simulator is stopped, the script waits for a sync that leaves
# master and slave equal, and checks: on the slave every (agent, seq) at
# most once, the events outside the exit-time unacked ranges number
# exactly the acknowledged ones, and the distinct (agent, seq) number from
# acknowledged to made; on the master the slave's events, as (agent, seq),
# are the same set; per stream (groups, endpoints, events, task_results)
# count and checksum are equal on master and slave; made = acknowledged +
# unacked at exit, with no unexpected acknowledgement, and the unacked at
# exit at most one minute of events (EVENTS_PER_MIN per agent). The
# summary shows the resent events. Exits 0 when every check passes, 1
# otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/lib.sh

minutes=30 agents=10000
while [ $# -gt 0 ]; do
	case "$1" in
	--minutes) minutes=$2; shift ;;
	--agents) agents=$2; shift ;;
	-h | --help) sed -n '2,10p' "$0"; exit 0 ;;
	*) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
case "$minutes$agents" in *[!0-9]*) echo "soak.sh: --minutes and --agents take whole numbers" >&2; exit 2 ;; esac
[ "$minutes" -ge 1 ] && [ "$agents" -ge 1 ] && [ "$agents" -le 15000 ] ||
	{ echo "soak.sh: --minutes must be at least 1, --agents 1 to 15000" >&2; exit 2; }
workers=${WORKERS:-2}
kill_targets=${KILL_TARGETS:-master slave worker}
for t in $kill_targets; do
	case $t in master | slave | worker) ;; *) echo "soak.sh: KILL_TARGETS: $t is not master, slave or worker" >&2; exit 2 ;; esac
done
[ -n "$kill_targets" ] || { echo "soak.sh: KILL_TARGETS is empty" >&2; exit 2; }
events_per_min=${EVENTS_PER_MIN:-1}
heartbeat=30
sources=127.0.0.2-127.0.0.50

say() { printf '== %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

builddir=build-soak
say "building in $builddir"
cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE=OFF >/dev/null
cmake --build "$builddir" -j2 --target strata-master strata-slave strata-agent strata-ctl >/dev/null

work=$(mktemp -d /tmp/strata-soak.XXXXXX)
chmod 755 "$work"
base=$((29000 + RANDOM % 900))
pgport=$base pport=$((base + 1)) syncport=$((base + 2))
masterpid= slavepid= simpid=
cleanup() {
	local p
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null && wait "$simpid" 2>/dev/null || true
	for p in $slavepid $masterpid; do kill "$p" 2>/dev/null || true; done
	for p in $slavepid $masterpid; do wait "$p" 2>/dev/null || true; done
	"$root/scripts/pg.sh" stop "$work/pg" || true
	if [ "${KEEP:-0}" = 1 ]; then echo "soak: work directory left in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

sql() { local db=$1; shift; psql -X -q -At -v ON_ERROR_STOP=1 -h "$work/pg" -p "$pgport" -U postgres -d "$db" "$@"; }
ctl() { local node=$1; shift; "$builddir/strata-ctl" -s "$work/$node/admin.sock" "$@"; }

say "PostgreSQL cluster on port $pgport, work directory $work"
scripts/pg.sh start "$work/pg" "$pgport" >/dev/null
scripts/pg.sh createdb "$work/pg" "$pgport" hq
scripts/pg.sh createdb "$work/pg" "$pgport" site
strata_write_conf "$work/hq" master hq "host=$work/pg port=$pgport user=postgres dbname=hq" notice \
	"  <sync-listen address=\"127.0.0.1\" port=\"$syncport\" hosts=\"127.0.0.1,localhost\"/>"
strata_write_conf "$work/site" slave site "host=$work/pg port=$pgport user=postgres dbname=site" notice \
	"  <master host=\"127.0.0.1\" port=\"$syncport\"/>
  <replication interval=\"10\"/>
  <push address=\"127.0.0.1\" port=\"$pport\" workers=\"$workers\" max-connections=\"20000\" heartbeat=\"$heartbeat\"/>
  <licence seats=\"$((agents + 1000))\"/>"

# start NODE: starts the master (hq) or the slave (site), waits for its admin socket.
start() {
	local node=$1 bin=strata-slave pid
	[ "$node" = hq ] && bin=strata-master
	"$builddir/$bin" -c "$work/$node/server.xml" >>"$work/$node/daemon.log" 2>&1 &
	pid=$!
	if [ "$node" = hq ]; then masterpid=$pid; else slavepid=$pid; fi
	for _ in $(seq 300); do ctl "$node" status >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "soak: $node did not start:" >&2
	tail -20 "$work/$node/daemon.log" >&2
	exit 1
}
workers_of() { [ -n "$slavepid" ] && ps -o pid= --ppid "$slavepid" 2>/dev/null | tr -d ' ' || true; }

start hq
start site
say "registering the slave"
token=$(ctl hq --json slave add site | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
ctl site register --master "127.0.0.1:$syncport" --token "$token" >/dev/null
ctl site --timeout 600 sync now >/dev/null
sid=$(sql hq -c "SELECT id FROM slaves WHERE name = 'site'")

say "enrolling $agents simulated agents"
atoken=$(ctl site --json agent-token create | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
"$builddir/strata-agent" -s "$work/sim" --simulate "$agents" enrol --server "127.0.0.1:$pport" \
	--token "$atoken" --sources "$sources" >"$work/enrol.out" 2>"$work/enrol.log" ||
	{ echo "soak: enrolment failed:" >&2; tail -20 "$work/enrol.log" >&2; exit 1; }

say "running $agents agents ($events_per_min events a minute each, heartbeat $heartbeat s) for $minutes minutes"
"$builddir/strata-agent" -s "$work/sim" --simulate "$agents" run --sources "$sources" \
	--events-per-min "$events_per_min" >"$work/sim.out" 2>"$work/sim.log" &
simpid=$!
t0=$(date +%s)

# sample T: one rss.csv line per daemon process.
hz=$(getconf CLK_TCK)
echo "elapsed_s,role,pid,age_s,rss_kib" >"$work/rss.csv"
sample() {
	local t=$1 up role p rss start
	up=$(awk '{ print $1 }' /proc/uptime)
	for role in master slave worker; do
		case $role in
		master) set -- $masterpid ;;
		slave) set -- $slavepid ;;
		worker) set -- $(workers_of) ;;
		esac
		for p in "$@"; do
			rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
			start=$(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$p/stat" 2>/dev/null) || continue
			[ -n "$rss" ] && [ -n "$start" ] || continue
			echo "$t,$role,$p,$(awk -v u="$up" -v s="$start" -v h="$hz" 'BEGIN { printf "%d", u - s / h }'),$rss"
		done
	done >>"$work/rss.csv"
}

# kill_one: one SIGKILL at random; a killed master or slave is started again.
declare -A kills=([master]=0 [slave]=0 [worker]=0)
kill_one() {
	local target p w
	target=$(shuf -n1 -e $kill_targets)
	case $target in
	master)
		kill -KILL "$masterpid"
		wait "$masterpid" 2>/dev/null || true
		start hq
		;;
	slave)
		w=$(workers_of)
		kill -KILL "$slavepid"
		wait "$slavepid" 2>/dev/null || true
		# Its workers get SIGTERM when it dies; the push port is theirs until they exit.
		for _ in $(seq 100); do
			for p in $w; do [ -d "/proc/$p" ] && break; p=; done
			[ -z "${p:-}" ] && break
			sleep 0.1
		done
		for p in $w; do kill -KILL "$p" 2>/dev/null || true; done
		start site
		;;
	worker)
		p=$(workers_of | shuf -n1)
		if [ -z "$p" ]; then target="worker (none running)"; else kill -KILL "$p"; fi
		;;
	esac
	kills[${target%% *}]=$((kills[${target%% *}] + 1))
	echo "$(($(date +%s) - t0)) $target" >>"$work/kills.log"
	say "killed: $target"
}

end=$((t0 + minutes * 60))
next_sample=$t0 next_kill=$((t0 + 60)) next_task=$((t0 + 30)) ntask=0
while :; do
	now=$(date +%s)
	[ "$now" -ge "$end" ] && break
	if ! kill -0 "$simpid" 2>/dev/null; then echo "soak: the simulator exited early:" >&2; tail -20 "$work/sim.log" >&2; exit 1; fi
	if [ "$now" -ge "$next_sample" ]; then sample $((now - t0)); next_sample=$((next_sample + 30)); fi
	if [ "$now" -ge "$next_task" ]; then
		if ctl hq task create "soak-$((ntask + 1))" --kind inventory >/dev/null 2>&1; then
			ntask=$((ntask + 1)) next_task=$((next_task + 300))
		else
			next_task=$((now + 5)) # the master is restarting
		fi
	fi
	if [ "$now" -ge "$next_kill" ]; then kill_one; next_kill=$((next_kill + 60)); fi
	sleep 1
done
sample $(($(date +%s) - t0))

say "stopping the simulator"
kill -TERM "$simpid"
wait "$simpid" || { echo "soak: the simulator failed:" >&2; tail -20 "$work/sim.log" >&2; }
simpid=

# The simulator's figures: its processes' last stats lines, and the unacked ranges.
stat_sum() { awk -F"\"$1\":" 'NF > 1 { split($2, a, /[,}]/); s += a[1] } END { print s + 0 }' "$work/stats.jsonl"; }
grep '^{"proc"' "$work/sim.out" >"$work/stats.jsonl" || true
sent=$(stat_sum events_sent) acked=$(stat_sum events_acked) unacked=$(stat_sum events_unacked)
resent=$(stat_sum events_resent) window_full=$(stat_sum events_window_full)
bad_acks=$(stat_sum events_bad_acks) heartbeats=$(stat_sum heartbeats) reconnects=$(stat_sum failures)
commands=$(stat_sum commands_acked) results=$(stat_sum results_sent)
sed -n 's/^{"unacked":{"agent":"\([^"]*\)","from":\([0-9]*\),"to":\([0-9]*\)}}$/\1,\2,\3/p' "$work/sim.out" >"$work/unacked.csv"

say "waiting for a sync that leaves master and slave equal"
# Per stream: count and checksum over the replicated columns (as test_faults_crash).
streams="groups:id::text || '/' || path || '/' || version::text
endpoints:id::text || uid || hostname || status || version::text
events:id::text || kind || severity || details::text || version::text
task_results:task_id::text || '/' || endpoint_id::text || status || result::text || version::text"
sums() { # DB WHERE
	local line
	while IFS= read -r line; do
		sql "$1" -c "SELECT '${line%%:*} ' || count(*) || '/' || coalesce(sum(hashtext(${line#*:})), 0) FROM ${line%%:*} $2"
	done <<<"$streams"
}
same=0
for _ in $(seq 30); do
	ctl site --timeout 600 sync now >/dev/null 2>&1 || true
	if [ "$(sums site "")" = "$(sums hq "WHERE slave_id = $sid")" ]; then same=1; break; fi
	sleep 5
done
slave_sums=$(sums site "") master_sums=$(sums hq "WHERE slave_id = $sid")

# The ranges as one row per (agent, seq), analysed: the anti join is then a hash join.
sql site -c "CREATE TEMP TABLE ranges (agent text, lo bigint, hi bigint)" \
	-c "\\copy ranges FROM '$work/unacked.csv' WITH (FORMAT csv)" \
	-c "CREATE TEMP TABLE unacked AS SELECT agent, generate_series(lo, hi) AS seq FROM ranges" \
	-c "ANALYZE unacked" \
	-c "SELECT count(*), count(DISTINCT (details->>'agent', details->>'seq')),
		count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM unacked u WHERE u.agent = e.details->>'agent'
			AND u.seq = (e.details->>'seq')::bigint))
		FROM events e WHERE kind = 'sim'" | tr '|' ' ' >"$work/slave_events"
read -r s_rows s_distinct s_acked <"$work/slave_events"
evset="SELECT count(*) || '/' || count(DISTINCT (details->>'agent', details->>'seq')) || '/' ||
	coalesce(sum(DISTINCT hashtext((details->>'agent') || '/' || (details->>'seq'))::bigint), 0)
	FROM events WHERE kind = 'sim'"
s_set=$(sql site -c "$evset") m_set=$(sql hq -c "$evset AND slave_id = $sid")

# The memory rule over rss.csv.
mem_report=$(awk -F, -v five=300 '
	NR == 1 { next }
	{ k = $2 SUBSEP $3; n[k]++; age[k, n[k]] = $4; rss[k, n[k]] = $5; role[k] = $2; pid[k] = $3
	  if ($1 >= five && !($2 in t5)) t5[$2] = $1
	  sum[$2, $1] += $5; last[$2] = $1; total[$1] += $5; tlast = $1 }
	END {
		for (k in n) {
			r = role[k]; a = age[k, n[k]]
			if (!(r in best) || a > bestage[r]) { best[r] = k; bestage[r] = a }
		}
		fail = 0
		split("master slave worker", roles, " ")
		for (i = 1; i <= 3; i++) {
			r = roles[i]
			if (!(r in t5) || !(r in last)) { printf "%s: no sample at minute 5 or at the end: fail\n", r; fail = 1; continue }
			b5 = sum[r, t5[r]]; be = sum[r, last[r]]; ok = (be <= b5 * 1.10)
			printf "%s: sum of VmRSS %d KiB at minute 5, %d KiB at the end (%+.1f %%): %s; ", r,
				b5, be, (be - b5) * 100 / b5, ok ? "pass" : "fail"
			if (!ok) fail = 1
			if (!(r in best) || bestage[r] < 120) {
				if (r == "worker") { printf "no worker lived 2 minutes (not judged alone)\n"; continue }
				printf "not judged (no process lived 2 minutes): fail\n"; fail = 1; continue
			}
			k = best[r]; want = (bestage[r] >= 600) ? 300 : bestage[r] / 2
			for (j = 1; j <= n[k]; j++) if (age[k, j] >= want) break
			b = rss[k, j]; e = rss[k, n[k]]; ok = (e <= b * 1.10)
			printf "pid %s lived %d s, VmRSS %d KiB at age %d s, %d KiB at age %d s (%+.1f %%): %s\n",
				pid[k], bestage[r], b, age[k, j], e, age[k, n[k]], (e - b) * 100 / b,
				r == "worker" ? "follows its share of the agents, not judged alone" : ok ? "pass" : "fail"
			if (!ok && r != "worker") fail = 1
		}
		tfive = ""
		for (t in total) if (t >= five && (tfive == "" || t < tfive)) tfive = t
		if (tfive == "") { printf "all daemons: no sample at minute 5: fail\n"; fail = 1 }
		else {
			ok = (total[tlast] <= total[tfive] * 1.10)
			printf "all daemons: sum of VmRSS %d KiB at minute 5, %d KiB at the end (%+.1f %%): %s\n",
				total[tfive], total[tlast], (total[tlast] - total[tfive]) * 100 / total[tfive], ok ? "pass" : "fail"
			if (!ok) fail = 1
		}
		print (fail ? "MEMORY FAIL" : "MEMORY PASS")
	}' "$work/rss.csv")

failures=()
[ "$bad_acks" = 0 ] || failures+=("$bad_acks unexpected event acknowledgements")
[ "$sent" = $((acked + unacked)) ] || failures+=("events sent $sent != acknowledged $acked + unacked $unacked")
[ "$s_rows" = "$s_distinct" ] || failures+=("slave: $((s_rows - s_distinct)) duplicate (agent, seq) events")
[ "$s_acked" = "$acked" ] || failures+=("slave: $s_acked events outside the unacked ranges, $acked acknowledged")
[ "$s_distinct" -ge "$acked" ] && [ "$s_distinct" -le "$sent" ] ||
	failures+=("slave: $s_distinct distinct (agent, seq), not from acknowledged $acked to made $sent")
[ "$unacked" -le $((agents * events_per_min)) ] ||
	failures+=("$unacked events unacknowledged at exit, more than one minute of events ($((agents * events_per_min)))")
[ "$s_set" = "$m_set" ] || failures+=("master's events of the slave $m_set != slave's $s_set (count/distinct/hash)")
[ "$same" = 1 ] || failures+=("streams differ after the final syncs")
[ "$acked" -gt 0 ] || failures+=("no event was acknowledged")
case "$mem_report" in *"MEMORY FAIL"*) failures+=("memory rule") ;; esac

cat <<EOF

Soak: $minutes min, $agents agents, $workers push workers, $events_per_min events/min per agent, heartbeat $heartbeat s, sync every 10 s
Kills: master ${kills[master]}, slave ${kills[slave]}, worker ${kills[worker]} (see kills.log); master tasks: $ntask
Simulator: $heartbeats heartbeats, $reconnects reconnects, $commands commands acked, $results results sent
Events: made $sent, acknowledged $acked, resent $resent, unacked at exit $unacked ($(wc -l <"$work/unacked.csv") ranges), turns passed on a full window $window_full, unexpected acks $bad_acks
Slave: $s_rows sim events, $s_distinct distinct (agent, seq), $s_acked outside the unacked ranges, $((s_rows - s_distinct)) duplicates
Sets (count/distinct/hash): slave $s_set, master $m_set
Streams, slave:  $(echo $slave_sums)
Streams, master: $(echo $master_sums)
$mem_report
EOF
if [ ${#failures[@]} -gt 0 ]; then
	printf 'RESULT: FAIL\n'
	printf '  - %s\n' "${failures[@]}"
	KEEP=1
	exit 1
fi
printf 'RESULT: PASS\n'
