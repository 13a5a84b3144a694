#!/usr/bin/env bash
# tests/fleet/test_fleet.sh - atoll past one machine, on one machine: two
# atoll-serve hosts behind Debian's HAProxy (TCP mode, PROXY protocol v2,
# health checks on the admin port's /ready), all on loopback ports, started
# here with private files in a temporary directory.
#
# Checks, one PASS/FAIL line each:
#   1. the hosts see the client's own address (GET /whoami from 127.0.0.2
#      through HAProxy answers 127.0.0.2 and the client's port);
#   2. the hosts share session-ticket keys (--ticket-key-file): a session
#      made on one host resumes on the other (both count resumptions);
#   3. a rolling restart under load: atoll-load makes continuous TLS
#      connections through HAProxy (one verified request each) for
#      --seconds; host a, then host b, is stopped with SIGTERM (/ready
#      answers 503, the listener closes --drain-delay later, connections
#      finish), waits for its exit (status 0) and is started again on the
#      same ports; at least --min-conns connections and not one failed,
#      reset or unfinished;
#   4. refusals, straight to a host: a PROXY header from a source outside
#      --proxy-allow, a malformed header, a TLS client without a header
#      (each closed at once and counted under its kind), and a client that
#      sends nothing (closed at --handshake-timeout).
# Usage: tests/fleet/test_fleet.sh BINDIR [--seconds S] [--min-conns N]
#   BINDIR: where atoll-serve and atoll-load are. Default 12 s, 5000.
# Exit status: 0 all passed, 1 a check failed, 2 bad usage.
set -uo pipefail

prog=fleet
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source-path=SCRIPTDIR source=../check.sh
source "$here/../check.sh"
# shellcheck source-path=SCRIPTDIR source=../../scripts/load/lib.sh
source "$here/../../scripts/load/lib.sh"

[[ $# -ge 1 ]] || { echo "usage: $0 BINDIR [--seconds S] [--min-conns N]" >&2; exit 2; }
bin=$1
shift
seconds=12
min_conns=5000
while [[ $# -gt 0 ]]; do
	case $1 in
	--seconds) seconds=$2; shift 2 ;;
	--min-conns) min_conns=$2; shift 2 ;;
	*) echo "$0: unknown argument $1" >&2; exit 2 ;;
	esac
done
client=(python3 "$here/fleet_client.py")

command -v haproxy >/dev/null || { fail "haproxy is installed (scripts/deps.sh installs it)"; summary; exit 1; }

work_dir KILL

make_cert "$WORK"
head -c 80 /dev/urandom >"$WORK/ticket.key"
chmod 600 "$WORK/ticket.key"

# start_host NAME PORT ADMIN_PORT: one atoll-serve; sets HOST_PID[NAME].
declare -A HOST_PID HOST_PORT HOST_ADMIN
start_host() {
	local name=$1 port=$2 admin=$3
	ATOLL_SERVE_DEBUG=1 "$bin/atoll-serve" --isolates 2 --port "$port" --admin "127.0.0.1:$admin" \
		--cert "$WORK/cert.pem" --key "$WORK/key.pem" --ticket-key-file "$WORK/ticket.key" \
		--proxy-protocol --proxy-allow 127.0.0.1/32,::1/128 --handshake-timeout 1000 \
		--drain-delay 600 --drain-timeout 5000 >"$WORK/$name.out" 2>>"$WORK/$name.err" &
	HOST_PID[$name]=$!
	PIDS+=("$!")
	HOST_PORT[$name]=$(wait_listening "$!" "$WORK/$name.out" 10) || return 1
	HOST_ADMIN[$name]=$(wait_admin "$!" "$WORK/$name.out" 5) || return 1
}

# metric NAME KIND_OR_EMPTY METRIC: the sum over isolates of a host's metric.
metric() {
	curl -s -m 5 "http://127.0.0.1:${HOST_ADMIN[$1]}/metrics" | awk -v m="$3" -v k="$2" '
		$1 ~ "^" m "[{]" && (k == "" || index($1, "kind=\"" k "\"")) { s += $2 } END { print s + 0 }'
}

start_host a 0 0 || { fail "host a starts: $(cat "$WORK/a.err")"; summary; exit 1; }
start_host b 0 0 || { fail "host b starts: $(cat "$WORK/b.err")"; summary; exit 1; }
front=$(free_port)
cat >"$WORK/haproxy.cfg" <<CFG
global
    stats socket $WORK/haproxy.sock mode 600 level admin
    maxconn 2000
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
frontend https
    bind 127.0.0.1:$front
    default_backend atoll
backend atoll
    balance roundrobin
    option httpchk GET /ready
    default-server inter 100ms fall 2 rise 1 send-proxy-v2
    server a 127.0.0.1:${HOST_PORT[a]} check port ${HOST_ADMIN[a]}
    server b 127.0.0.1:${HOST_PORT[b]} check port ${HOST_ADMIN[b]}
CFG
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=("$!")
haproxy_pid=$!
if ! "${client[@]}" haproxy-up "$WORK/haproxy.sock" atoll 2; then
	fail "haproxy sees both hosts up: $(tail -n 5 "$WORK/haproxy.log")"
	summary
	exit 1
fi

# 1. The client's address, through the balancer (two connections: both hosts).
check "hosts see the client's address (127.0.0.2), not the balancer's" \
	"${client[@]}" whoami "$front" "$WORK/cert.pem" 127.0.0.2 2

# 2. Shared ticket keys: sessions resume across hosts.
ra0=$(metric a "" atoll_resumptions_total)
rb0=$(metric b "" atoll_resumptions_total)
check "a session resumes through the balancer, 4 of 4" "${client[@]}" resume "$front" "$WORK/cert.pem" 4
ra=$(($(metric a "" atoll_resumptions_total) - ra0))
rb=$(($(metric b "" atoll_resumptions_total) - rb0))
echo "fleet: resumptions on host a $ra, on host b $rb"
check "both hosts resumed sessions (a: $ra, b: $rb): one host's ticket opens on the other" \
	test "$ra" -ge 1 -a "$rb" -ge 1

# 3. Rolling restart under continuous connections.
# restart NAME: SIGTERM, wait for the exit, start again on the same ports,
# wait until HAProxy has it up again.
restart() {
	local name=$1 pid=${HOST_PID[$1]} rc t0 t1
	t0=$(date +%s.%N)
	kill -TERM "$pid"
	"${client[@]}" haproxy-down "$WORK/haproxy.sock" atoll "$name" >>"$WORK/events" || return 1
	wait "$pid"
	rc=$?
	t1=$(date +%s.%N)
	echo "host $name: exit status $rc, $(python3 -c "print(round($t1 - $t0, 2))") s after SIGTERM" >>"$WORK/events"
	[[ $rc -eq 0 ]] || return 1
	start_host "$name" "${HOST_PORT[$name]}" "${HOST_ADMIN[$name]}" || return 1
	"${client[@]}" haproxy-up "$WORK/haproxy.sock" atoll 2 >>"$WORK/events"
}
"$bin/atoll-load" --target "127.0.0.1:$front" --cafile "$WORK/cert.pem" --scenario churn --http \
	--connections 8 --duration "$seconds" --json "$WORK/load.json" >"$WORK/load.out" 2>"$WORK/load.err" &
load_pid=$!
PIDS+=("$load_pid")
sleep 2 # the load reaches both hosts before the first one goes
restarts_ok=true
restart a || restarts_ok=false
sleep 1
restart b || restarts_ok=false
wait "$load_pid"
load_rc=$?
cat "$WORK/events"
check "hosts a and b drained, exited 0 and came back up during the load" $restarts_ok
if [[ -s $WORK/load.json ]]; then
	read -r ops dur errs unfinished < <(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
errs = sum((j.get("errors") or {}).values())
print(j["ops"], round(j["duration_s"], 1), errs, j.get("unfinished", 0))' "$WORK/load.json")
	echo "fleet: rolling restart: $ops connections over $dur s through haproxy, errors $errs, unfinished $unfinished (atoll-load exit $load_rc)"
	check "at least $min_conns connections over at least 10 s ($ops over $dur s)" \
		python3 -c "import sys; sys.exit(0 if $ops >= $min_conns and $dur >= 10 else 1)"
	check "not one connection failed, was reset or left unfinished ($errs errors, $unfinished unfinished)" \
		test "$errs" -eq 0 -a "$unfinished" -eq 0 -a "$load_rc" -eq 0
else
	fail "atoll-load wrote its results: $(tail -n 3 "$WORK/load.err")"
fi

# 4. Refusals, straight to host b (the balancer is not in the way).
port=${HOST_PORT[b]}
d0=$(metric b proxy_denied atoll_handshake_errors_total)
p0=$(metric b proxy atoll_handshake_errors_total)
t0=$(metric b timeout atoll_handshake_errors_total)
check "a PROXY header from 127.0.0.9 (outside --proxy-allow) is refused" \
	"${client[@]}" refuse "$port" denied 127.0.0.9
check "a malformed PROXY header is refused" "${client[@]}" refuse "$port" malformed
check "a TLS client without a PROXY header is refused" "${client[@]}" refuse "$port" missing
check "a client that sends nothing is closed at the handshake timeout" "${client[@]}" refuse "$port" silent
d=$(($(metric b proxy_denied atoll_handshake_errors_total) - d0))
p=$(($(metric b proxy atoll_handshake_errors_total) - p0))
t=$(($(metric b timeout atoll_handshake_errors_total) - t0))
echo "fleet: host b counted proxy_denied $d, proxy $p, timeout $t"
check "counted: 1 denied, 2 bad headers, 1 timeout" test "$d" -eq 1 -a "$p" -eq 2 -a "$t" -eq 1
check "the malformed header's error names it" \
	grep -q 'ATOLL_E_PROXY_HEADER: PROXY header: v1 line does not have 5 fields' "$WORK/b.err"
check "the denied source's error names the real source" grep -q '127.0.0.9 port [0-9]* failed: ATOLL_E_PROXY_DENIED' "$WORK/b.err"

kill -TERM "${HOST_PID[a]}" "${HOST_PID[b]}" "$haproxy_pid" 2>/dev/null
summary
