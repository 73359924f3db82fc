# Shared by the bench scripts (sourced).

. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

# bench_replace_section DOC TITLE FILE: puts FILE's text in place of the
# "## TITLE" section of DOC (up to the next level-2 heading), keeping the
# rest; appends it when DOC has no such section; creates DOC when missing.
# FILE is removed.
bench_replace_section() {
	local doc=$1 title=$2 section=$3
	if [ -f "$doc" ]; then
		awk -v f="$section" -v h="## $title" '
			/^## / { if (insec) insec = 0 }
			$0 == h { while ((getline l < f) > 0) print l; print ""; insec = 1; done = 1; next }
			!insec { print }
			END { if (!done) { print ""; while ((getline l < f) > 0) print l } }
		' "$doc" >"$doc.new"
		mv "$doc.new" "$doc"
	else
		{ printf '# Benchmarks\n\n'; cat "$section"; } >"$doc"
	fi
	rm -f "$section"
}

say() { printf '== %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
div() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { printf f, (b > 0 ? a / b : 0) }'; }
verdict() { awk -v v="$1" -v lim="$2" -v op="$3" 'BEGIN {
	ok = (op == "le") ? (v <= lim) : (v >= lim); print (ok ? "pass" : "fail") }'; }

# The push benches' slave: sql and ctl talk to it once bench_start_slave ran.
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$work/pg" -p "$pgport" -U postgres -d site "$@"; }
ctl() { "$builddir/strata-ctl" -s "$work/site/admin.sock" "$@"; }

# bench_start_slave: a throwaway cluster in $work/pg on $pgport with the
# database "site", and a standalone slave on it in $work/site (push port
# $pport, $workers workers, heartbeat $heartbeat, seats for $agents), run
# from $builddir; its pid in slavepid and in pids. Exits when it does not start.
bench_start_slave() {
	say "PostgreSQL cluster on port $pgport"
	scripts/pg.sh start "$work/pg" "$pgport" >/dev/null
	scripts/pg.sh createdb "$work/pg" "$pgport" site
	strata_write_conf "$work/site" slave site "host=$work/pg port=$pgport user=postgres dbname=site" notice \
		"  <push address=\"127.0.0.1\" port=\"$pport\" workers=\"$workers\" max-connections=\"20000\" heartbeat=\"$heartbeat\"/>
  <licence seats=\"$((agents + 1000))\"/>"
	"$builddir/strata-slave" -c "$work/site/server.xml" >>"$work/site/daemon.log" 2>&1 &
	slavepid=$!
	pids+=("$slavepid")
	for _ in $(seq 100); do ctl status >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "bench: the slave did not start:" >&2
	tail -20 "$work/site/daemon.log" >&2
	exit 1
}
