#!/usr/bin/env bash
# replay.sh BINARY DIR... - runs every file under the DIRs (missing ones are
# skipped) once through a libFuzzer binary: the regression test of the fuzz
# targets (tests/fuzz/regressions/<target>/ and the seed corpus). Fails on
# the first input that crashes, leaks or trips UBSan, naming it.
set -euo pipefail
bin=${1:?usage: replay.sh BINARY DIR...}
shift
files=()
for dir in "$@"; do
	[[ -d $dir ]] || continue
	while IFS= read -r -d '' f; do
		files+=("$f")
	done < <(find "$dir" -type f ! -name '.*' ! -name '*.md' -print0 | sort -z)
done
if ((${#files[@]} == 0)); then
	echo "replay: no inputs"
	exit 0
fi
# One process for all: libFuzzer runs each file given by name once.
rc=0
"$bin" -runs=1 "${files[@]}" || rc=$?
echo "replay: ${#files[@]} inputs through $(basename -- "$bin"): rc $rc"
exit "$rc"
