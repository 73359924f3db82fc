#!/bin/sh
# The Debian package: builds it with cpack from this build directory into a
# temporary directory and checks its files and modes, its control fields,
# its maintainer scripts, that the packaged configurations load, and (when
# systemd-analyze is there) that the units verify.
#
#   test_deb.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # description, command...
	what=$1
	shift
	if "$@" >/dev/null 2>&1; then ok; else bad "$what"; fi
}

for tool in cpack dpkg-deb; do
	command -v $tool >/dev/null 2>&1 || { echo "test_deb: $tool is missing"; exit 1; }
done
tmp=$(mktemp -d /tmp/strata-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if ! (cd "$build" && cpack -G DEB -B "$tmp/out" --config "$build/CPackConfig.cmake") >"$tmp/cpack.log" 2>&1; then
	cat "$tmp/cpack.log"
	echo "test_deb: cpack failed"
	exit 1
fi
deb=$(ls "$tmp"/out/strata_*.deb)
echo "package: $(basename "$deb")"

# Control fields.
field() { dpkg-deb -f "$deb" "$1"; }
check "Package is strata" test "$(field Package)" = strata
check "Version is the project's" test -n "$(field Version)"
check "Maintainer is set" test -n "$(field Maintainer)"
check "Description is set" test -n "$(field Description)"
depends=$(field Depends)
echo "Depends: $depends"
for dep in adduser libc6 libpq5 libssl3 libxml2 libjansson4 libevent-openssl-2.1-7; do
	case ", $depends," in
	*", $dep "* | *", $dep,"*) ok ;;
	*) bad "Depends lacks $dep" ;;
	esac
done

# Files and modes: "MODE PATH" per line.
dpkg-deb -c "$deb" | awk '{ print $1, $2, $NF }' >"$tmp/list"
want() { # mode owner path
	if grep -qxF -e "$1 $2 $3" "$tmp/list"; then ok; else bad "$3: want $1 $2, have: $(grep " $3\$" "$tmp/list" || echo missing)"; fi
}
for d in master slave dp; do
	want -rwxr-xr-x root/root ./usr/sbin/strata-$d
	want -rw-r----- root/root ./etc/strata/$d.xml
	want -rw-r--r-- root/root ./lib/systemd/system/strata-$d.service
	want -rw-r--r-- root/root ./usr/share/doc/strata/examples/$d.xml
done
want -rwxr-xr-x root/root ./usr/bin/strata-ctl
want -rwxr-xr-x root/root ./usr/bin/strata-agent
want -rw-r--r-- root/root ./usr/share/strata/server.xsd
want -rw-r--r-- root/root ./usr/share/doc/strata/OPERATIONS.md
for f in "$src"/schema/master/*.sql "$src"/schema/slave/*.sql; do
	want -rw-r--r-- root/root "./usr/share/strata/schema/$(basename "$(dirname "$f")")/$(basename "$f")"
done

# Maintainer scripts.
dpkg-deb -e "$deb" "$tmp/ctl"
for s in postinst prerm postrm; do
	check "$s is executable" test -x "$tmp/ctl/$s"
	check "$s is valid sh" sh -n "$tmp/ctl/$s"
done
check "postinst makes the strata system user" grep -q 'adduser --system' "$tmp/ctl/postinst"
check "postinst makes the data directories 0700" grep -q 'install -d -o strata -g strata -m 0700' "$tmp/ctl/postinst"
check "prerm stops the units" grep -q 'systemctl stop' "$tmp/ctl/prerm"
check "postrm reloads systemd" grep -q 'systemctl daemon-reload' "$tmp/ctl/postrm"
for d in master slave dp; do
	check "conffiles lists $d.xml" grep -qx "/etc/strata/$d.xml" "$tmp/ctl/conffiles"
done

# The packaged files themselves: configurations that load, with the
# units' data directories, and units that reference them.
dpkg-deb -x "$deb" "$tmp/root"
r=$tmp/root
for d in master slave dp; do
	if out=$("$r/usr/sbin/strata-$d" -T -c "$r/etc/strata/$d.xml" 2>&1); then ok; else bad "strata-$d -T on the packaged $d.xml: $out"; fi
	check "$d.xml keeps its data in /var/lib/strata/$d" grep -q "<data-dir>/var/lib/strata/$d</data-dir>" "$r/etc/strata/$d.xml"
	unit=$r/lib/systemd/system/strata-$d.service
	check "strata-$d.service: StateDirectory=strata/$d" grep -qx "StateDirectory=strata/$d" "$unit"
	check "strata-$d.service: ExecStart" grep -qx "ExecStart=/usr/sbin/strata-$d -c /etc/strata/$d.xml" "$unit"
	check "strata-$d.service: Type=notify" grep -qx "Type=notify" "$unit"
done

if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir "$tmp/units"
	for d in master slave dp; do
		# verify wants the binary at ExecStart: point it at the extracted one.
		sed "s#/usr/sbin/strata-$d#$r/usr/sbin/strata-$d#" "$r/lib/systemd/system/strata-$d.service" \
			>"$tmp/units/strata-$d.service"
	done
	# Unknown or misspelt settings are only warnings: any output fails too.
	if out=$(cd "$tmp/units" && systemd-analyze verify --man=no ./strata-master.service \
		./strata-slave.service ./strata-dp.service 2>&1) && [ -z "$out" ]; then
		ok
	else
		bad "systemd-analyze verify: $out"
	fi
else
	echo "systemd-analyze not found: the units' verification is skipped"
fi

echo "pkg: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
