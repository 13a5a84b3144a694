#!/usr/bin/env bash
# The installed package, used from outside the tree (issue 10): cmake
# --install into a temporary prefix, then tests/install/consumer.c built
# against it with find_package(atoll) and with pkg-config, both run: each
# must report the library's version and the wolfSSL build this tree was
# configured with (WOLFSSL_BUILD: optimized or system). find_package must
# refuse a version the package is not compatible with; atoll::atoll_static
# and pkg-config --static link libatoll.a. Then examples/ is
# built out of tree against the same prefix and each example runs a short
# scenario on loopback (every step under `timeout`; servers are waited for
# through their "listening on" line, read from a FIFO): hello-https answers
# curl and the client example, pool counts right, chat carries a line from
# one client to another, and the servers exit 0 on SIGTERM.
# Usage: tests/test_install.sh BUILD_DIR WOLFSSL_BUILD
#        tests/test_install.sh --installed PREFIX WOLFSSL_BUILD
# (--installed: the package is already installed in PREFIX, e.g. /usr by
# tests/test_deb.sh; nothing is installed here.)
set -euo pipefail
installed=""
if [[ ${1:-} == --installed ]]; then
	installed=${2:?prefix}
	shift 2
	set -- "" "$@"
fi
build=${1}
want_wolfssl=${2:?optimized|system}
src=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)/install
examples=$(cd -- "$src/../../examples" && pwd -P)
tmp=$(mktemp -d)
server_pid=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	if [[ -n $server_pid ]]; then
		kill -KILL "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
status=0
failures=0
fail() {
	echo "install: $*"
	status=1
	failures=$((failures + 1))
}
if [[ -n $installed ]]; then
	prefix=$installed
else
	prefix=$tmp/prefix
	cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || {
		cat "$tmp/install.log"
		exit 1
	}
fi
version=$(sed -n 's/^#define ATOLL_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/atoll/version.h")
if [[ -n $installed ]]; then
	echo "install: $version installed in $prefix"
else
	echo "install: $version into $prefix ($(find "$prefix" -type f | wc -l) files)"
fi

# With atoll's own wolfSSL, libatoll.so carries it inside, hidden: the
# installed library must neither need a libwolfssl nor look into this tree
# for one (docs/operations.md, "Linking").
dyn=$(readelf -d "$prefix/lib/libatoll.so")
if [[ $want_wolfssl == optimized ]]; then
	grep -q 'NEEDED.*libwolfssl' <<<"$dyn" && fail "the installed libatoll.so needs a libwolfssl"
	grep -qE 'RPATH|RUNPATH' <<<"$dyn" && fail "the installed libatoll.so has a run path: $(grep -E 'RPATH|RUNPATH' <<<"$dyn")"
	echo "install: libatoll.so carries its wolfSSL: needs $(grep NEEDED <<<"$dyn" | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"
fi

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
# find_package, the static library (atoll::atoll_static): no libatoll.so.
if cmake -S "$src" -B "$tmp/cmake-static" -DCMAKE_PREFIX_PATH="$prefix" -DATOLL_WANT="$mm" -DATOLL_STATIC=ON \
	>"$tmp/cmake-static.log" 2>&1 && cmake --build "$tmp/cmake-static" >>"$tmp/cmake-static.log" 2>&1; then
	if readelf -d "$tmp/cmake-static/consumer" | grep -q 'NEEDED.*libatoll'; then
		fail "the atoll::atoll_static consumer needs libatoll.so"
	else
		check_run "find_package static" "$tmp/cmake-static/consumer"
	fi
else
	fail "atoll::atoll_static consumer did not build: $(tail -5 "$tmp/cmake-static.log")"
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
# pkg-config --static: libatoll.a and what it needs, no libatoll.so at all.
# shellcheck disable=SC2086 # the flags are words
if flags=$(pkg-config --static --cflags --libs-only-other --libs-only-L atoll) &&
	libs=$(pkg-config --static --libs-only-l atoll | sed 's/-latoll\b//') &&
	private=$(pkg-config --static --libs atoll | tr ' ' '\n' | grep '\.a$' || true) &&
	cc -std=c11 -Wall -Wextra -Werror "$src/consumer.c" -o "$tmp/static-consumer" $flags \
		"$prefix/lib/libatoll.a" $private $libs; then
	if readelf -d "$tmp/static-consumer" | grep -q 'NEEDED.*libatoll'; then
		fail "the static consumer needs libatoll.so"
	else
		check_run "pkg-config --static" "$tmp/static-consumer"
	fi
else
	fail "pkg-config --static consumer did not build"
fi

# The examples, out of tree against the prefix, as a user builds them.
ex=$tmp/examples
# start_server NAME ARGS...: runs an example server under timeout with its
# stdout through a FIFO and reads its first line; sets server_pid (the
# timeout, which passes SIGTERM on), server_fd and port. 1 when no
# "listening on 127.0.0.1:PORT" line came within 10 s.
start_server() {
	local name=$1 line=""
	shift
	mkfifo "$tmp/$name.fifo"
	timeout -k 5 60 "$ex/$name" "$@" >"$tmp/$name.fifo" 2>"$tmp/$name.err" &
	server_pid=$!
	exec {server_fd}<"$tmp/$name.fifo"
	read -r -t 10 -u "$server_fd" line || true
	[[ $line =~ ^listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]] || {
		fail "example $name: no listening line: '$line' $(head -3 "$tmp/$name.err")"
		kill -KILL "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=""
		exec {server_fd}<&-
		return 1
	}
	port=${BASH_REMATCH[1]}
}
# stop_server NAME: SIGTERM, then its exit status (0 wanted) and the rest of
# its output in $rest.
stop_server() {
	local rc=0
	kill -TERM "$server_pid"
	wait "$server_pid" || rc=$?
	server_pid=""
	rest=$(cat <&"$server_fd")
	exec {server_fd}<&-
	[[ $rc -eq 0 ]] || fail "example $1: exit $rc after SIGTERM: $rest $(head -3 "$tmp/$1.err")"
	return "$rc"
}

example_pool() {
	local out rc=0
	out=$(timeout 60 "$ex/pool" 200000 16) || rc=$?
	# pi(200000) = 17984
	if [[ $rc -ne 0 ]] || ! grep -qx "total 17984 primes below 200000: ok" <<<"$out"; then
		fail "example pool: exit $rc: $out"
		return 0
	fi
	echo "install: example pool: 17984 primes below 200000 in 16 tasks," \
		"$(grep -c '^isolate [0-9]* ran [1-9]' <<<"$out") isolates ran tasks"
}

example_https() { # hello-https, curl and the client example against it
	local body out before=$failures
	start_server hello-https --cert "$tmp/cert.pem" --key "$tmp/key.pem" 127.0.0.1 0 || return 0
	body=$(curl -sS --max-time 10 --cacert "$tmp/cert.pem" --resolve "localhost:$port:127.0.0.1" \
		"https://localhost:$port/" 2>&1) || true
	[[ $body =~ ^hello\ from\ isolate\ [0-9]+$ ]] || fail "example hello-https: curl got: $body"
	out=$(timeout 20 "$ex/client" --ca "$tmp/cert.pem" --name localhost --alpn h2,http/1.1 127.0.0.1 "$port" 2>&1) ||
		fail "example client: failed: $out"
	grep -qx "alpn: http/1.1" <<<"$out" || fail "example client: no alpn line: $out"
	grep -qx "subject: /CN=localhost" <<<"$out" || fail "example client: no subject line: $out"
	grep -q "^hello from isolate" <<<"$out" || fail "example client: no response: $out"
	stop_server hello-https || return 0
	grep -q "drained" <<<"$rest" || fail "example hello-https: no drain line: $rest"
	[[ $failures -eq $before ]] || return 0
	echo "install: example hello-https: curl got \"$body\", SIGTERM -> exit 0"
	echo "install: example client: $(grep -E '^(alpn|subject):' <<<"$out" | tr '\n' ' ')"
}

example_chat() { # two clients; the server's SIGTERM comes from the script
	local out rc=0
	start_server chat 127.0.0.1 0 || return 0
	out=$(timeout 20 python3 - "$port" "$server_pid" <<-'EOF' 2>&1
		import os, signal, socket, sys
		port, server = int(sys.argv[1]), int(sys.argv[2])
		def join():
		    f = socket.create_connection(("127.0.0.1", port), timeout=10).makefile("rwb", buffering=0)
		    welcome = f.readline().decode().strip()  # read: the server holds the client now
		    assert welcome.startswith("welcome ["), welcome
		    return f
		a, b = join(), join()
		a.write(b"hello over the ports\n")
		got = b.readline().decode().strip()
		assert got.endswith("] hello over the ports"), got
		os.kill(server, signal.SIGTERM)  # drain: b hears it, then EOF
		bye = b.readline().decode().strip()
		assert bye == "server shutting down", bye
		assert b.readline() == b"", "no EOF after the goodbye"
		print(got)
	EOF
	) || rc=$?
	stop_server chat || return 0
	[[ $rc -eq 0 ]] || {
		fail "example chat: the clients failed: $(tail -1 <<<"$out")"
		return 0
	}
	echo "install: example chat: a line from one client reached the other ($out), SIGTERM -> exit 0"
}

tools=1
for tool in openssl curl python3 timeout; do
	command -v "$tool" >/dev/null || {
		fail "examples need $tool"
		tools=0
	}
done
if [[ $tools -eq 0 ]]; then
	:
elif ! cmake -S "$examples" -B "$ex" -DCMAKE_PREFIX_PATH="$prefix" -DATOLL_WERROR=ON >"$tmp/examples.log" 2>&1 ||
	! cmake --build "$ex" >>"$tmp/examples.log" 2>&1; then
	fail "examples did not build out of tree: $(tail -5 "$tmp/examples.log")"
elif ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
	>"$tmp/openssl.log" 2>&1; then
	fail "openssl could not make a certificate: $(tail -3 "$tmp/openssl.log")"
else
	echo "install: examples built out of tree against $prefix"
	example_pool
	example_https
	example_chat
fi

[[ $status -eq 0 ]] && echo "install: ok"
exit $status
