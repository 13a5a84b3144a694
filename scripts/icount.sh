#!/usr/bin/env bash
# icount.sh - instruction counts (callgrind) per TLS handshake and per
# keep-alive HTTPS request of atoll-serve, against a recorded baseline.
#
# Usage: scripts/icount.sh [--check [--tolerance PCT] | --record] [options]
#   (no mode)           measure and print the figures
#   --check             measure and compare with the baseline (below)
#   --record            measure and write the figures into the baseline
#   --tolerance PCT     --check: allowed drift either way, in percent (default 5)
#   --bin DIR           atoll-serve, atoll-load, atoll-hsbench (default build/release/tools)
#   --baseline FILE     default scripts/load/icount-baseline.json
#   --handshakes N      the handshake workload runs N and 3N handshakes (default 100)
#   --requests N        the request workload runs N and 3N requests (default 2000)
#   --keep DIR          keep the callgrind outputs and logs in DIR
#   -h, --help          this text
# Only the server runs under valgrind (callgrind, --isolates 1); atoll-load
# runs natively. Each workload runs at N and 3N ops, each in a fresh server;
# a figure is (Ir(3N) - Ir(N)) / 2N, so start-up and shutdown cancel out.
# The baseline is keyed by the wolfSSL build ("optimized" or "system", as
# atoll-hsbench reports it). 20 to 45 s with the defaults.
# Exit status: 0 measured (--check: every figure within the tolerance;
# --record: baseline written); 1 --check: a figure is above baseline*(1+tol)
# or below baseline*(1-tol) (then re-record with --record); 2 bad command
# line; 3 the measurement failed (server did not start or exit, load errors,
# no callgrind totals); 77 cannot measure here: valgrind, cc or
# liburing's headers missing, or --check with no baseline for this build.
set -euo pipefail

prog=icount.sh
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

usage() { sed -n '2,27s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
usage_error() {
	printf '%s: %s\n\n' "$prog" "$*" >&2
	usage >&2
	exit 2
}
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
fail() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 3
}
skip() {
	printf '%s: skipped: %s\n' "$prog" "$*" >&2
	exit 77
}

mode=measure
tolerance=5
bin=$repo/build/release/tools
baseline=$repo/scripts/load/icount-baseline.json
handshakes=100
requests=2000
keep=

while (($#)); do
	arg=$1
	shift
	val=
	case $arg in
	--*=*)
		val=${arg#*=}
		arg=${arg%%=*}
		;;
	--tolerance | --bin | --baseline | --handshakes | --requests | --keep)
		(($#)) || usage_error "$arg needs a value"
		val=$1
		shift
		;;
	esac
	case $arg in
	--check) mode=check ;;
	--record) mode=record ;;
	--tolerance) tolerance=$val ;;
	--bin) bin=$val ;;
	--baseline) baseline=$val ;;
	--handshakes) handshakes=$val ;;
	--requests) requests=$val ;;
	--keep) keep=$val ;;
	-h | --help)
		usage
		exit 0
		;;
	*) usage_error "unknown argument: $arg" ;;
	esac
done

if [[ ! $tolerance =~ ^[0-9]+(\.[0-9]+)?$ || $tolerance =~ ^0+(\.0+)?$ ]]; then
	usage_error "--tolerance wants a positive number of percent, not '$tolerance'"
fi
[[ $handshakes =~ ^[1-9][0-9]*$ ]] || usage_error "--handshakes wants a positive integer, not '$handshakes'"
[[ $requests =~ ^[1-9][0-9]*$ ]] || usage_error "--requests wants a positive integer, not '$requests'"

for t in atoll-serve atoll-load atoll-hsbench; do
	[[ -x $bin/$t ]] || fail "$bin/$t not found (make build, or --bin DIR)"
done
command -v python3 >/dev/null || fail "python3 not found (scripts/deps.sh)"
command -v valgrind >/dev/null || skip "valgrind not found (scripts/deps.sh installs it)"
command -v cc >/dev/null || skip "cc not found (scripts/deps.sh installs build-essential)"
valgrind_version=$(valgrind --version)

# The wolfSSL build the binaries link (they share one build tree): the key
# of the baseline.
read -r _ wolfssl_version wolfssl_build < <("$bin/atoll-hsbench" --handshakes 1 | grep -m1 '^wolfssl ') ||
	fail "atoll-hsbench did not report its wolfSSL build"
[[ $wolfssl_build =~ ^(optimized|system)$ ]] || fail "unknown wolfSSL build '$wolfssl_build'"

if [[ $mode == check ]]; then
	[[ -f $baseline ]] || skip "no baseline file $baseline (record one with --record)"
	rc=0
	python3 - "$baseline" "$wolfssl_build" <<-'EOF' || rc=$?
		import json, sys
		try:
		    with open(sys.argv[1]) as f:
		        entry = json.load(f)["builds"].get(sys.argv[2])
		    if entry is not None:
		        entry["figures"]["ir_per_handshake"], entry["figures"]["ir_per_request"]
		except (OSError, ValueError, KeyError, TypeError) as e:
		    print(f"icount.sh: error: cannot read {sys.argv[1]}: {e!r}", file=sys.stderr)
		    sys.exit(3)
		sys.exit(0 if entry is not None else 1)
	EOF
	((rc != 1)) || skip "no baseline for wolfSSL build '$wolfssl_build' in $baseline (record one with --record)"
	((rc == 0)) || exit 3
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/atoll-icount.XXXXXX")
server_pid=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill -KILL "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [[ -n $keep ]]; then
		{ mkdir -p "$keep" && cp -r "$work"/. "$keep"/; } || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# valgrind 3.19 does not know that io_uring_enter can block (its wrapper
# lacks SfMayBlock): an isolate waiting in it keeps valgrind's big lock, and
# the process's other threads (atoll-serve's main thread: the listening
# line, the signals) never run again. This preload library, for the server
# under valgrind only, turns each blocking wait of
# io_uring_submit_and_wait_timeout into a non-blocking one plus poll(2),
# which valgrind knows blocks: poll on an eventfd registered with the ring
# (signalled when completions or task work arrive) and on the eventfd the
# isolate made for cross-thread wakeups (the last one its thread created).
# The instructions it adds are the same few per wait.
cat >"$work/wait-shim.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef int (*wait_fn)(struct io_uring *, struct io_uring_cqe **, unsigned, struct __kernel_timespec *,
		       sigset_t *);

static __thread struct io_uring *shim_ring;
static __thread int shim_ring_efd = -1;
static __thread int shim_wake_fd = -1;

int eventfd(unsigned int initval, int flags)
{
	static int (*real_eventfd)(unsigned int, int);
	if (!real_eventfd)
		real_eventfd = (int (*)(unsigned int, int))dlsym(RTLD_NEXT, "eventfd");
	int fd = real_eventfd(initval, flags);
	shim_wake_fd = fd;
	return fd;
}

int io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, unsigned wait_nr,
				     struct __kernel_timespec *ts, sigset_t *sigmask)
{
	static wait_fn real;
	if (!real)
		real = (wait_fn)dlsym(RTLD_NEXT, "io_uring_submit_and_wait_timeout");
	struct __kernel_timespec zero = {0, 0};
	if (wait_nr == 0 || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0))
		return real(ring, cqe_ptr, wait_nr, ts, sigmask);
	if (shim_ring != ring) {
		int wake = shim_wake_fd;
		if (shim_ring_efd >= 0)
			close(shim_ring_efd);
		shim_ring_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		shim_wake_fd = wake;
		shim_ring = ring;
		if (shim_ring_efd < 0 || io_uring_register_eventfd(ring, shim_ring_efd) < 0) {
			shim_ring = NULL;
			return real(ring, cqe_ptr, wait_nr, ts, sigmask);
		}
	}
	uint64_t v;
	(void)!read(shim_ring_efd, &v, sizeof(v));
	int ret = real(ring, cqe_ptr, wait_nr, &zero, sigmask);
	if (ret != -ETIME)
		return ret;
	int ms = -1;
	if (ts) {
		long long t = (long long)ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000;
		ms = t > INT_MAX ? INT_MAX : (int)t;
	}
	struct pollfd pfd[2] = {{.fd = shim_ring_efd, .events = POLLIN}, {.fd = shim_wake_fd, .events = POLLIN}};
	poll(pfd, shim_wake_fd >= 0 ? 2 : 1, ms);
	return real(ring, cqe_ptr, wait_nr, &zero, sigmask);
}
EOF
cc -O2 -shared -fPIC -o "$work/wait-shim.so" "$work/wait-shim.c" -ldl -luring 2>"$work/wait-shim.log" ||
	skip "cannot build the io_uring wait shim (liburing-dev and build-essential, scripts/deps.sh): $(head -c 400 "$work/wait-shim.log")"

# wait_listening PID FILE SECONDS: print the port of the "listening on" line.
wait_listening() {
	local pid=$1 file=$2 secs=$3 line i
	for ((i = 0; i < secs * 10; i++)); do
		line=$(grep -m1 '^listening on ' "$file" 2>/dev/null) || true
		if [[ $line =~ :([0-9]+)\ isolates=([0-9]+)$ ]]; then
			printf '%s\n' "${BASH_REMATCH[1]}"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# measure NAME OPS LOAD_ARGS...: one server under callgrind, atoll-load
# with OPS ops, SIGTERM (the server drains and exits 0, callgrind writes its
# totals); sets `ir` to the total Ir. Not in a subshell: the EXIT trap must
# see server_pid.
measure() {
	local name=$1 ops=$2 dir port i rc=0
	shift 2
	dir=$work/$name-$ops
	mkdir -p "$dir"
	LD_PRELOAD=$work/wait-shim.so valgrind --tool=callgrind --dump-instr=no --collect-atstart=yes \
		--callgrind-out-file="$dir/callgrind.out" \
		"$bin/atoll-serve" --isolates 1 --mode http --no-resumption --write-cert "$dir/cert.pem" \
		>"$dir/server.stdout" 2>"$dir/server.stderr" &
	server_pid=$!
	port=$(wait_listening "$server_pid" "$dir/server.stdout" 60) ||
		fail "$name: atoll-serve under valgrind did not print its listening line within 60 s (see $dir/server.stderr, kept with --keep DIR; a blocking io_uring wait the preload shim above does not cover hangs it)"
	timeout 120 "$bin/atoll-load" --target "127.0.0.1:$port" --cafile "$dir/cert.pem" --http \
		--requests "$ops" --isolates 1 --json "$dir/load.json" "$@" \
		>"$dir/load.stdout" 2>"$dir/load.stderr" || rc=$?
	((rc == 0)) || fail "$name: atoll-load exited $rc (see $dir/load.stderr)"
	python3 - "$dir/load.json" "$ops" <<-'EOF' || fail "$name: atoll-load did not complete $ops ops without errors (see $dir/load.json)"
		import json, sys
		r = json.load(open(sys.argv[1]))
		errors = sum((r.get("errors") or {}).values())
		sys.exit(0 if r.get("ops") == int(sys.argv[2]) and errors == 0 else 1)
	EOF
	kill -TERM "$server_pid"
	for ((i = 0; i < 600; i++)); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$server_pid" 2>/dev/null; then
		fail "$name: atoll-serve under valgrind did not exit within 60 s of SIGTERM (a blocking io_uring wait the preload shim does not cover?)"
	fi
	rc=0
	wait "$server_pid" || rc=$?
	server_pid=
	((rc == 0)) || fail "$name: atoll-serve exited $rc (see $dir/server.stderr)"
	local total
	total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$dir/callgrind.out" | head -n 1)
	[[ -n $total ]] || total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$dir/callgrind.out" | head -n 1)
	[[ $total =~ ^[0-9]+$ ]] || fail "$name: no totals line in $dir/callgrind.out"
	ir=$total
}

start=$SECONDS
log "wolfSSL $wolfssl_version $wolfssl_build, $valgrind_version; workloads ${handshakes}/$((3 * handshakes)) handshakes, ${requests}/$((3 * requests)) requests"
ir=
measure handshake "$handshakes" --scenario handshake --connections 1
hs1=$ir
measure handshake $((3 * handshakes)) --scenario handshake --connections 1
hs3=$ir
measure rr "$requests" --scenario rr --connections 1
rr1=$ir
measure rr $((3 * requests)) --scenario rr --connections 1
rr3=$ir
log "measured in $((SECONDS - start)) s"

# The figures, the comparison and the baseline file (python3: JSON).
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
	commit+=+dirty
fi
rc=0
python3 - "$mode" "$baseline" "$tolerance" "$wolfssl_build" "$wolfssl_version" "$valgrind_version" "$commit" \
	"$handshakes" "$hs1" "$hs3" "$requests" "$rr1" "$rr3" <<-'EOF' || rc=$?
	import datetime, json, os, platform, sys
	(mode, path, tol, build, wolfssl_version, valgrind_version, commit,
	 nh, hs1, hs3, nr, rr1, rr3) = sys.argv[1:]
	tol = float(tol) / 100
	nh, hs1, hs3, nr, rr1, rr3 = map(int, (nh, hs1, hs3, nr, rr1, rr3))
	figures = {
	    "ir_per_handshake": round((hs3 - hs1) / (2 * nh)),
	    "ir_per_request": round((rr3 - rr1) / (2 * nr)),
	}
	raw = {"handshake": {str(nh): hs1, str(3 * nh): hs3}, "request": {str(nr): rr1, str(3 * nr): rr3}}
	if mode == "measure":
	    for k, v in figures.items():
	        print(f"{k:<18} {v:>12}")
	    sys.exit(0)
	if mode == "record":
	    doc = {}
	    if os.path.exists(path):
	        with open(path) as f:
	            doc = json.load(f)
	    doc.setdefault("about", "scripts/icount.sh: instructions (callgrind Ir) of atoll-serve --isolates 1 per "
	                   "full TLS 1.3 handshake (+ GET / + close) and per keep-alive GET /, keyed by wolfSSL build; "
	                   "re-record with scripts/icount.sh --record")
	    cpu = "unknown"
	    try:
	        with open("/proc/cpuinfo") as f:
	            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
	    except (OSError, StopIteration):
	        pass
	    doc.setdefault("builds", {})[build] = {
	        "figures": figures,
	        "wolfssl_version": wolfssl_version,
	        "valgrind": valgrind_version,
	        "commit": commit,
	        "recorded": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
	        "machine": f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}",
	        "raw_ir": raw,
	    }
	    tmp = path + ".tmp"
	    with open(tmp, "w") as f:
	        json.dump(doc, f, indent=2)
	        f.write("\n")
	    os.replace(tmp, path)
	    for k, v in figures.items():
	        print(f"{k:<18} {v:>12}  recorded")
	    print(f"baseline for wolfSSL build '{build}' written to {path}")
	    sys.exit(0)
	# check
	with open(path) as f:
	    entry = json.load(f)["builds"][build]
	if entry.get("wolfssl_version") != wolfssl_version:
	    print(f"warning: baseline recorded with wolfSSL {entry.get('wolfssl_version')}, this build has {wolfssl_version}")
	if entry.get("valgrind") != valgrind_version:
	    print(f"warning: baseline recorded with {entry.get('valgrind')}, this is {valgrind_version}")
	print(f"{'figure':<18} {'baseline':>12} {'current':>12} {'ratio':>7}  (tolerance {tol * 100:g}%, baseline {entry.get('commit')})")
	bad = False
	for k, v in figures.items():
	    b = entry["figures"][k]
	    ratio = v / b
	    verdict = "ok"
	    if ratio > 1 + tol:
	        verdict, bad = "ABOVE baseline: more instructions than recorded", True
	    elif ratio < 1 - tol:
	        verdict, bad = "BELOW baseline: re-record it with scripts/icount.sh --record", True
	    print(f"{k:<18} {b:>12} {v:>12} {ratio:>7.3f}  {verdict}")
	sys.exit(1 if bad else 0)
EOF
exit "$rc"
