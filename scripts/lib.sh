# Shared by scripts/demo.sh and the bench scripts (sourced).

# strata_write_conf DIR ROLE NAME CONNINFO LOG_LEVEL EXTRA_XML: writes
# DIR/server.xml for a daemon whose data dir and admin socket are in DIR.
strata_write_conf() {
	local dir=$1 role=$2 name=$3 conninfo=$4 level=$5 extra=$6
	mkdir -p "$dir"
	cat >"$dir/server.xml" <<XML
<?xml version="1.0"?>
<server role="$role" name="$name">
  <data-dir>$dir</data-dir>
  <log level="$level"/>
  <database conninfo="$conninfo"/>
  <admin socket="$dir/admin.sock"/>
$extra
</server>
XML
}
