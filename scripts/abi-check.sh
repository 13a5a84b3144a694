#!/usr/bin/env bash
# abi-check.sh - the library's ABI against the last release's record
# (docs/abi.md): the SONAME, the exported symbols, and the layout (size,
# alignment, field offsets) of every public struct, as clang computes them
# from include/atoll (-fdump-record-layouts-simple).
#
# Usage: scripts/abi-check.sh [--record] LIBATOLL_SO [RECORD]
#   RECORD      default: the newest scripts/abi/atoll-*.abi
#   --record    write the current ABI to RECORD (at a release) instead
# Verdict (exit 1 on a break): a symbol gone or a layout changed while the
# SONAME is the record's is a break; with a new SONAME (a declared break)
# the differences are listed and accepted. New symbols are listed (an
# addition, allowed in a minor release).
set -euo pipefail
prog=abi-check.sh
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
record_mode=0
if [[ ${1:-} == --record ]]; then
	record_mode=1
	shift
fi
lib=${1:?usage: abi-check.sh [--record] LIBATOLL_SO [RECORD]}
records=("$repo"/scripts/abi/atoll-*.abi)
record=${2:-$(printf '%s\n' "${records[@]}" | grep -v '\*' | sort -V | tail -1 || true)}
[[ -n $record ]] || {
	echo "$prog: no record under scripts/abi/" >&2
	exit 2
}
command -v clang >/dev/null || {
	echo "$prog: clang is needed (scripts/deps.sh installs it)" >&2
	exit 2
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The current ABI, one line per fact, sorted.
{
	printf 'soname %s\n' "$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')"
	nm -D --defined-only "$lib" | awk 'NF == 3 { print "symbol " $3 }'
	structs=$(cat "$repo"/include/atoll/*.h | grep -o 'typedef struct atoll_[a-z0-9_]* {' | awk '{ print $3 }' | sort -u)
	{
		echo '#include <atoll/atoll.h>'
		for s in $structs; do echo "int size_of_$s = (int)sizeof(struct $s);"; done
	} >"$tmp/layouts.c"
	clang -I"$repo/include" -fsyntax-only -Xclang -fdump-record-layouts-simple "$tmp/layouts.c" |
		awk '/^Type: struct atoll_/ { name = $3 }
		     name && $1 ~ /^Size:/ { size = $1 }
		     name && $1 ~ /^Alignment:/ { align = $1 }
		     name && /FieldOffsets:/ { sub(/.*FieldOffsets: /, ""); sub(/>$/, "");
		         print "struct " name " " size " " align " offsets " $0; name = "" }'
} | sort >"$tmp/current"

if ((record_mode)); then
	cp "$tmp/current" "$record"
	echo "$prog: recorded $(grep -c '^symbol' "$record") symbols and $(grep -c '^struct' "$record") structs in $record"
	exit 0
fi

old_soname=$(sed -n 's/^soname //p' "$record")
new_soname=$(sed -n 's/^soname //p' "$tmp/current")
gone=$(comm -23 <(grep -v '^soname' "$record") <(grep -v '^soname' "$tmp/current") | grep -v '^struct' || true)
changed=$(comm -23 <(grep '^struct' "$record") <(grep '^struct' "$tmp/current") | awk '{ print $2 }' || true)
added=$(comm -13 <(grep '^symbol' "$record") <(grep '^symbol' "$tmp/current") || true)
echo "$prog: against $(basename "$record") (SONAME $old_soname; now $new_soname)"
[[ -n $added ]] && echo "$prog: added: $(echo "$added" | awk '{ print $2 }' | tr '\n' ' ')"
[[ -n $gone ]] && echo "$prog: gone: $(echo "$gone" | awk '{ print $2 }' | tr '\n' ' ')"
[[ -n $changed ]] && echo "$prog: layout changed: $(echo "$changed" | tr '\n' ' ')"
if [[ -z $gone && -z $changed ]]; then
	echo "$prog: compatible"
	exit 0
fi
if [[ $new_soname != "$old_soname" ]]; then
	echo "$prog: a declared break (new SONAME): accepted"
	exit 0
fi
echo "$prog: ABI break under the same SONAME: bump the version (docs/abi.md)" >&2
exit 1
