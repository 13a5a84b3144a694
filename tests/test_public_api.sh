#!/usr/bin/env bash
# The library's public surface (issue 10, "Install and link"):
# 1. every symbol libatoll.so exports begins with atoll_ (the rest is hidden);
# 2. the exported functions are exactly those the public headers declare
#    with ATOLL_API;
# 3. a C++ translation unit including atoll/atoll.h compiles with warnings
#    as errors, links against libatoll.so, and atoll_version() at run time
#    equals the headers' ATOLL_VERSION_STRING.
# Usage: tests/test_public_api.sh LIBATOLL_SO INCLUDE_DIR
set -euo pipefail
lib=${1:?libatoll.so}
inc=${2:?include dir}
status=0
fail() {
	echo "public api: $*"
	status=1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$lib" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/exported"
[[ -s $tmp/exported ]] || fail "no exported symbol in $lib"
while IFS= read -r sym; do
	fail "exported but not atoll_: $sym"
done < <(grep -v '^atoll_' "$tmp/exported")

# Declarations: "ATOLL_API <type> [*]name(" possibly across lines; the name
# is the identifier right before the first '(' after ATOLL_API (common.h,
# which defines the macro, declares nothing).
headers=()
for h in "$inc"/atoll/*.h; do
	[[ $h == */common.h ]] || headers+=("$h")
done
cat "${headers[@]}" | tr '\n' ' ' | grep -o 'ATOLL_API[^;(]*(' |
	sed -E 's/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\($/\1/' | sort -u >"$tmp/declared"
echo "public api: $(wc -l <"$tmp/exported") symbols exported, $(wc -l <"$tmp/declared") functions declared"
while IFS= read -r sym; do
	fail "declared ATOLL_API but not exported: $sym"
done < <(comm -13 "$tmp/exported" "$tmp/declared")
while IFS= read -r sym; do
	fail "exported but not declared ATOLL_API in the headers: $sym"
done < <(comm -23 "$tmp/exported" "$tmp/declared")

cxx=$(command -v c++ || command -v g++ || true)
if [[ -z $cxx ]]; then
	fail "no C++ compiler (build-essential provides g++)"
else
	cat >"$tmp/use.cpp" <<'CPP'
#include <atoll/atoll.h>

#include <cstdio>
#include <cstring>

int main()
{
    atoll_runtime_options o;
    atoll_runtime_options_init(&o);
    if (std::strcmp(atoll_version(), ATOLL_VERSION_STRING) != 0 || atoll_version_number() != ATOLL_VERSION_NUMBER) {
        std::printf("headers %s, library %s\n", ATOLL_VERSION_STRING, atoll_version());
        return 1;
    }
    std::printf("%s\n", atoll_version());
    return o.isolates > 0 ? 0 : 1;
}
CPP
	for std in c++11 c++17; do
		if ! "$cxx" -std=$std -Wall -Wextra -Wpedantic -Werror -I"$inc" "$tmp/use.cpp" -o "$tmp/use" \
			-L"$(dirname "$lib")" -latoll -Wl,-rpath,"$(dirname "$lib")" 2>"$tmp/cxx.err"; then
			fail "C++ ($std) including atoll/atoll.h: $(head -5 "$tmp/cxx.err")"
			continue
		fi
		if ! out=$("$tmp/use"); then
			fail "C++ ($std) program: $out"
		else
			echo "public api: C++ $std compiles, links and runs: atoll_version() = $out"
		fi
	done
fi
[[ $status -eq 0 ]] && echo "public api: ok"
exit $status
