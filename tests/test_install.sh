#!/usr/bin/env bash
# The installed package, used from outside the tree (issue 10): cmake
# --install into a temporary prefix, then tests/install/consumer.c built
# against it with find_package(atoll) and with pkg-config, both run: each
# must report the library's version and the wolfSSL build this tree was
# configured with (WOLFSSL_BUILD: optimized or system). find_package must
# refuse a version the package is not compatible with.
# Usage: tests/test_install.sh BUILD_DIR WOLFSSL_BUILD
set -euo pipefail
build=${1:?build dir}
want_wolfssl=${2:?optimized|system}
src=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)/install
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
fail() {
	echo "install: $*"
	status=1
}
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || {
	cat "$tmp/install.log"
	exit 1
}
version=$(sed -n 's/^#define ATOLL_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/atoll/version.h")
echo "install: $version into $prefix ($(find "$prefix" -type f | wc -l) files)"

check_run() { # NAME BINARY
	local out
	if ! out=$("$2"); then
		fail "$1: the consumer failed: $out"
		return
	fi
	grep -qx "version $version" <<<"$out" || fail "$1: version: $out"
	grep -qx "wolfssl_build $want_wolfssl" <<<"$out" || fail "$1: expected the $want_wolfssl wolfSSL: $out"
	echo "install: $1: $(tr '\n' ' ' <<<"$out")"
}

# find_package, asking for this major.minor.
mm=${version%.*}
if cmake -S "$src" -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DATOLL_WANT="$mm" >"$tmp/cmake.log" 2>&1 &&
	cmake --build "$tmp/cmake" >>"$tmp/cmake.log" 2>&1; then
	check_run find_package "$tmp/cmake/consumer"
else
	fail "find_package consumer did not build: $(tail -5 "$tmp/cmake.log")"
fi
# A later minor is refused before 1.0 (docs/abi.md).
next="${version%%.*}.$((${mm#*.} + 1))"
if cmake -S "$src" -B "$tmp/cmake-next" -DCMAKE_PREFIX_PATH="$prefix" -DATOLL_WANT="$next" >"$tmp/next.log" 2>&1; then
	fail "find_package(atoll $next) accepted version $version"
else
	echo "install: find_package(atoll $next) refused, as it must"
fi

# pkg-config.
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
# shellcheck disable=SC2086 # the flags are words
if flags=$(pkg-config --cflags --libs atoll) &&
	cc -std=c11 -Wall -Wextra -Werror "$src/consumer.c" -o "$tmp/pc-consumer" $flags -Wl,-rpath,"$prefix/lib"; then
	check_run pkg-config "$tmp/pc-consumer"
else
	fail "pkg-config consumer did not build"
fi
[[ $status -eq 0 ]] && echo "install: ok"
exit $status
