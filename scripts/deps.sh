#!/usr/bin/env bash
# deps.sh - install the Debian (bookworm) packages atoll needs, then build the
# optimized wolfSSL (scripts/build-wolfssl.sh).
#
# Idempotent: packages already installed are never reinstalled, `apt-get
# update` only runs when something is actually missing, and the wolfSSL build
# is reused when its stamp exists. Re-running it is cheap.
#
# Usage: scripts/deps.sh [--no-wolfssl]
#   --no-wolfssl        do not build the optimized wolfSSL
#   ATOLL_WOLFSSL=system  (env) same effect: use the distribution libwolfssl
set -euo pipefail

# Why each package is needed.
packages=(
	build-essential  # gcc, make, libc headers
	cmake            # atoll's build system
	pkg-config       # locating liburing / wolfssl flags
	liburing-dev     # io_uring
	libwolfssl-dev   # TLS (also fixes the version build-wolfssl.sh rebuilds)
	libcriterion-dev # unit tests
	openssl          # generating test certificates/keys
	curl             # HTTP/1.1 + TLS client for tests
	nghttp2-client   # h2load / nghttp: HTTP/2 testing and load
	wrk              # HTTP/1.1 load generator
	nginx-light      # reference server for benchmarks. On hosts with systemd
	                 # its postinst starts a system nginx on :80; benchmarks
	                 # should run their own instance with a private config.
	gnuplot-nox      # plotting benchmark results without X11
	dpkg-dev         # dpkg-source, dpkg-buildflags (wolfSSL source build)
	autoconf         # wolfSSL's Debian source ships no ./configure,
	automake         # so autogen.sh needs the autotools ...
	libtool          # ... and libtoolize
	clang            # libFuzzer targets (make fuzz, tests/fuzz/) ...
	libclang-rt-14-dev # ... whose runtime (libclang_rt.fuzzer) is only Recommended by clang
	llvm             # llvm-symbolizer: readable stacks in fuzzer reports
	valgrind         # callgrind: the instruction-count guard (scripts/icount.sh)
	sslscan          # the TLS scanner of tests/test_tls_conformance.sh: what it reports of atoll-serve
	doxygen          # API reference from the public headers (make docs)
	testssl.sh       # the outside TLS scan of docs/reliability.md ("TLS conformance"), run by hand
	strace           # tests/test_seccomp_profile.sh: the syscalls atoll-serve makes, against docs/seccomp/atoll.json
	haproxy          # the L4 balancer of tests/fleet/ (PROXY protocol v2, health checks on /ready);
	                 # the test starts its own with a private config
)

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)

usage() {
	sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

build_wolfssl=1
for arg in "$@"; do
	case $arg in
	--no-wolfssl) build_wolfssl=0 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		printf 'deps: unknown argument: %s\n' "$arg" >&2
		usage >&2
		exit 2
		;;
	esac
done

# A package counts as present only when dpkg says its state is "installed"
# (Status is "<want> <flag> <state>", e.g. "install ok installed" or
# "hold ok installed"); "config-files", "half-installed" etc. are missing.
missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [[ $status != *' ok installed' ]]; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "deps: all ${#packages[@]} packages present"
else
	if ((EUID != 0)); then
		# Do not let apt fail with a lock/permission error: tell the user
		# exactly what to run instead.
		{
			echo "deps: missing: ${missing[*]}"
			echo "deps: error: ${#missing[@]} package(s) missing and not running as root."
			echo "deps: run this, then re-run $0:"
			echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
		} >&2
		exit 1
	fi
	echo "deps: installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ((build_wolfssl == 0)); then
	echo "deps: skipping optimized wolfSSL build (--no-wolfssl)"
elif [[ ${ATOLL_WOLFSSL:-} == system ]]; then
	echo "deps: skipping optimized wolfSSL build (ATOLL_WOLFSSL=system)"
else
	"$script_dir/build-wolfssl.sh"
fi
