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
