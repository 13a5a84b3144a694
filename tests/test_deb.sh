#!/usr/bin/env bash
# The Debian packages (issue 10): cpack -G DEB builds libatoll and
# libatoll-dev from BUILD_DIR; their names, dependencies and contents are
# checked; then, as root with apt, both are installed with
# `apt-get install ./...deb`, tests/test_install.sh runs against /usr (the
# consumers with find_package, pkg-config and pkg-config --static, every
# example built and run), and the packages are removed again (unless they
# were installed before the test). Not root: the packages are built and
# checked, the install is skipped, and the test says so (exit 77: skipped).
# Usage: tests/test_deb.sh BUILD_DIR WOLFSSL_BUILD
set -euo pipefail
build=${1:?build dir}
want_wolfssl=${2:?optimized|system}
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
tmp=$(mktemp -d)
installed_by_us=0
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	if ((installed_by_us)); then
		DEBIAN_FRONTEND=noninteractive apt-get remove -y --purge libatoll-dev libatoll >"$tmp/remove.log" 2>&1 ||
			echo "deb: removing the packages failed: $(tail -3 "$tmp/remove.log")"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
status=0
fail() {
	echo "deb: $*"
	status=1
}

cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1 || {
	cat "$tmp/cpack.log"
	exit 1
}
runtime=$(find "$tmp/pkg" -maxdepth 1 -name 'libatoll_*.deb')
dev=$(find "$tmp/pkg" -maxdepth 1 -name 'libatoll-dev_*.deb')
[[ -f $runtime && -f $dev ]] || {
	echo "deb: cpack made no libatoll and libatoll-dev packages: $(ls "$tmp/pkg")"
	exit 1
}
rdeps=$(dpkg-deb -f "$runtime" Depends)
ddeps=$(dpkg-deb -f "$dev" Depends)
echo "deb: $(basename "$runtime"): Depends: $rdeps"
echo "deb: $(basename "$dev"): Depends: $ddeps"
grep -q 'liburing2' <<<"$rdeps" || fail "libatoll does not depend on liburing2"
if [[ $want_wolfssl == optimized ]]; then
	grep -q 'wolfssl' <<<"$rdeps" && fail "libatoll depends on a wolfSSL package, though it carries its own"
else
	grep -q 'libwolfssl' <<<"$rdeps" || fail "libatoll (system wolfSSL) does not depend on libwolfssl"
fi
grep -q 'libatoll (= ' <<<"$ddeps" || fail "libatoll-dev does not depend on its libatoll"
# Listed into files first: grep -q on a pipe would cut dpkg-deb short.
dpkg-deb -c "$runtime" >"$tmp/runtime.list"
dpkg-deb -c "$dev" >"$tmp/dev.list"
grep -q 'usr/lib/libatoll.so.0.1.0' "$tmp/runtime.list" || fail "libatoll has no usr/lib/libatoll.so.0.1.0"
for f in usr/include/atoll/atoll.h usr/lib/pkgconfig/atoll.pc usr/lib/cmake/atoll/atollConfig.cmake usr/lib/libatoll.so; do
	grep -q "$f" "$tmp/dev.list" || fail "libatoll-dev has no $f"
done
echo "deb: libatoll: $(grep -c . "$tmp/runtime.list") entries; libatoll-dev: $(grep -c . "$tmp/dev.list") entries"

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
	echo "deb: not root (or no apt-get): packages built and checked; apt install skipped"
	[[ $status -ne 0 ]] && exit 1
	exit 77
fi
dpkg -s libatoll >/dev/null 2>&1 && echo "deb: libatoll was installed before this test: it is replaced and left installed" ||
	installed_by_us=1
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$runtime" "$dev" >"$tmp/apt.log" 2>&1; then
	fail "apt-get install of the packages failed: $(tail -5 "$tmp/apt.log")"
	exit 1
fi
echo "deb: installed with apt-get install ./$(basename "$runtime") ./$(basename "$dev")"
bash "$here/test_install.sh" --installed /usr "$want_wolfssl" | sed 's/^install:/deb: installed:/' || status=1
[[ $status -eq 0 ]] && echo "deb: ok"
exit $status
