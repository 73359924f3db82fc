#!/usr/bin/env bash
# Throwaway PostgreSQL clusters for tests, the demo and benchmarks.
#
#   scripts/pg.sh start DIR PORT   initdb (as postgres) into DIR and start it,
#                                  socket in DIR, TCP on 127.0.0.1:PORT,
#                                  trust auth for the postgres role
#   scripts/pg.sh stop DIR         fast shutdown (immediate if that hangs)
#   scripts/pg.sh createdb DIR PORT NAME
#
# Never touches the system cluster. Prints the conninfo prefix on start.
set -euo pipefail

pgbin() {
	local v
	for v in 17 16 15; do
		if [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ]; then
			echo "/usr/lib/postgresql/$v/bin"
			return
		fi
	done
	echo "pg.sh: no PostgreSQL server binaries under /usr/lib/postgresql" >&2
	exit 1
}

as_pg() { runuser -u postgres -- "$@"; }

cmd=${1:-}
case "$cmd" in
start)
	dir=$2 port=$3
	bin=$(pgbin)
	mkdir -p "$dir"
	chown postgres:postgres "$dir"
	chmod 700 "$dir"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
		cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
max_connections = 200
shared_buffers = 256MB
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
max_wal_size = 4GB
logging_collector = off
CONF
	fi
	as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
		{ tail -20 "$dir/server.log" >&2; exit 1; }
	echo "host=$dir port=$port user=postgres"
	;;
stop)
	dir=$2
	bin=$(pgbin)
	[ -f "$dir/data/postmaster.pid" ] || exit 0
	as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
		as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
	;;
createdb)
	dir=$2 port=$3 name=$4
	bin=$(pgbin)
	"$bin/createdb" -h "$dir" -p "$port" -U postgres "$name"
	;;
*)
	echo "usage: $0 start DIR PORT | stop DIR | createdb DIR PORT NAME" >&2
	exit 2
	;;
esac
