#!/usr/bin/env bash
# zero-loss.sh - the "nothing lost" proof: a separate load process makes
# continuous TLS connections to atoll-serve (atoll-load --scenario churn
# --http: connect, full handshake, GET /, verified response, close, on every
# slot at once) while the server is drained, and the client-visible
# failures are counted.
#
# Usage: scripts/load/zero-loss.sh [options]
#   --case NAME         what happens under load:
#                       drain: once the load has run --seconds, SIGTERM to
#                         atoll-serve: it drains (--drain-timeout 10000) and
#                         exits; the load goes on 4 s more against the closed
#                         port, where connecting may only be refused
#                       pause: isolate 0's listener member pauses and
#                         resumes every 100 ms (admin port) during the load
#                       scale: every second an isolate is added and the
#                         oldest retired (admin port) during the load
#                       (default drain)
#   --seconds S         load before the drain, or under the events, at
#                       least (default 10)
#   --min-ops N         exchanges in that time, at least (default 10000;
#                       waited for up to 60 s past --seconds)
#   --connections N     client slots (default 8)
#   --isolates N        server isolates at start (default 2)
#   --bin DIR           where atoll-serve and atoll-load are
#                       (default build/release/tools)
#   --json FILE         also write the counts as one JSON object
#   -h, --help          this text
# Output: one line per count, "zero-loss CASE: NAME VALUE", and a verdict
# line. Loss is any reset, failed handshake, truncated or wrong response,
# or other error; only in the drain case may a connection started after
# the drain began be refused (connection refused on connect).
# Exit status: 0 nothing lost and at least --min-ops exchanges; 1 loss, too
# few exchanges, an admin call that failed, or a server that did not drain
# and exit 0; 2 bad command line.
set -euo pipefail

prog=zero-loss.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd "$load_repo"

usage() { sed -n '2,35s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
usage_error() {
	printf '%s: %s\n\n' "$prog" "$*" >&2
	usage >&2
	exit 2
}

case_name=drain
seconds=10
min_ops=10000
connections=8
isolates=2
bin=build/release/tools
json_out=
while (($#)); do
	case $1 in
	--case | --seconds | --min-ops | --connections | --isolates | --bin | --json)
		(($# >= 2)) || usage_error "$1 needs a value"
		case $1 in
		--case) case_name=$2 ;;
		--seconds) seconds=$2 ;;
		--min-ops) min_ops=$2 ;;
		--connections) connections=$2 ;;
		--isolates) isolates=$2 ;;
		--bin) bin=$2 ;;
		--json) json_out=$2 ;;
		esac
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) usage_error "unknown argument '$1'" ;;
	esac
done
[[ $case_name =~ ^(drain|pause|scale)$ ]] || usage_error "--case: '$case_name' is not drain, pause or scale"
is_pos_number "$seconds" || usage_error "--seconds: '$seconds' is not a positive number"
is_uint "$min_ops" || usage_error "--min-ops: '$min_ops' is not a count"
is_pos_int "$connections" || usage_error "--connections: '$connections' is not a positive count"
is_pos_int "$isolates" || usage_error "--isolates: '$isolates' is not a positive count"
for t in atoll-serve atoll-load; do
	[[ -x $bin/$t ]] || die "$bin/$t not found (make build, or --bin DIR)"
done

tmp=$(mktemp -d)
srv_pid=
load_pid=
cleanup() {
	touch "$tmp/stop-events" 2>/dev/null
	[[ -n $load_pid ]] && kill -KILL "$load_pid" 2>/dev/null
	[[ -n $srv_pid ]] && kill -KILL "$srv_pid" 2>/dev/null
	wait 2>/dev/null
	rm -rf -- "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$bin/atoll-serve" --isolates "$isolates" --drain-timeout 10000 --admin 127.0.0.1:0 --write-cert "$tmp/cert.pem" \
	>"$tmp/serve.out" 2>"$tmp/serve.err" &
srv_pid=$!
port=$(wait_listening "$srv_pid" "$tmp/serve.out" 10) || die "atoll-serve did not start: $(cat "$tmp/serve.err")"
admin_port=$(wait_admin "$srv_pid" "$tmp/serve.out" 5) || die "atoll-serve printed no admin line"
admin() { admin_call "$admin_port" "$@"; }

bound=$(python3 -c "print(int($seconds) + 120)")
"$bin/atoll-load" --target "127.0.0.1:$port" --cafile "$tmp/cert.pem" --scenario churn --http \
	--connections "$connections" --duration "$bound" --progress --json "$tmp/load.json" \
	>"$tmp/load.out" 2>"$tmp/load.err" &
load_pid=$!

# The events of the pause and scale cases run in the background until the
# load has done its part; each admin call must succeed.
events=0
admin_failures=0
event_loop() {
	local n=0 failed=0 oldest=0
	while [[ ! -e $tmp/stop-events ]]; do
		case $case_name in
		pause)
			admin POST /isolates/0/pause || failed=$((failed + 1))
			sleep 0.1
			admin POST /isolates/0/resume || failed=$((failed + 1))
			sleep 0.1
			n=$((n + 2))
			;;
		scale)
			if admin POST /isolates; then
				admin DELETE "/isolates/$oldest" || failed=$((failed + 1))
				oldest=$((oldest + 1))
			else
				failed=$((failed + 1))
			fi
			n=$((n + 2))
			sleep 1
			;;
		esac
	done
	echo "$n $failed" >"$tmp/events"
}
event_pid=
if [[ $case_name != drain ]]; then
	event_loop &
	event_pid=$!
fi

# The load's part: --seconds and --min-ops (atoll-load's progress line each
# second), within 60 s more.
ready=
before_s=0
before_ops=0
for ((i = 0; i < (${seconds%.*} + 60) * 20; i++)); do
	kill -0 "$load_pid" 2>/dev/null || die "atoll-load ended early: $(tail -n 3 "$tmp/load.err")"
	line=$(grep '^\[' "$tmp/load.err" | tail -n 1) || true
	if [[ $line =~ ^\[\ *([0-9.]+)s\]\ ops\ +([0-9]+) ]]; then
		before_s=${BASH_REMATCH[1]}
		before_ops=${BASH_REMATCH[2]}
		if python3 -c "import sys; sys.exit(0 if $before_s >= $seconds and $before_ops >= $min_ops else 1)"; then
			ready=1
			break
		fi
	fi
	sleep 0.05
done
[[ -n $ready ]] || warn "fewer than $min_ops exchanges $((${seconds%.*} + 60)) s into the load"
if [[ -n $event_pid ]]; then
	touch "$tmp/stop-events"
	wait "$event_pid" || true
	event_pid=
	read -r events admin_failures <"$tmp/events" || true
	[[ $case_name == pause ]] && { admin POST /isolates/0/resume || true; }
	# The load stops before the server: nothing may be refused in these cases.
	kill -INT "$load_pid" 2>/dev/null || true
fi

t0=$(date +%s.%N)
kill -TERM "$srv_pid"
srv_rc=0
# Bounded: the drain deadline (10 s) plus the runtime's grace.
for ((i = 0; i < 300; i++)); do
	kill -0 "$srv_pid" 2>/dev/null || break
	sleep 0.05
done
if kill -0 "$srv_pid" 2>/dev/null; then
	warn "atoll-serve still runs 15 s after SIGTERM; killing it"
	kill -KILL "$srv_pid"
	srv_rc=137
fi
wait "$srv_pid" || srv_rc=$?
srv_pid=
t1=$(date +%s.%N)
if [[ $case_name == drain ]]; then
	sleep 4 # the load goes on: dropped SYNs are retransmitted after 1 s, then refused
	kill -INT "$load_pid" 2>/dev/null || true
fi
load_rc=0
wait "$load_pid" || load_rc=$?
load_pid=
[[ -s $tmp/load.json ]] || die "atoll-load wrote no results (exit $load_rc): $(tail -n 3 "$tmp/load.err")"

python3 - "$tmp/load.json" "$tmp/load.out" "$tmp/serve.out" "$t0" "$t1" "$srv_rc" "$min_ops" "$case_name" \
	"$before_s" "$before_ops" "$events" "$admin_failures" "${json_out:-}" <<'EOF'
import json, re, sys
(load_file, load_text, serve_out, t0, t1, srv_rc, min_ops, case, before_s, before_ops, events,
 admin_failures, json_out) = sys.argv[1:14]
load = json.load(open(load_file))
errors = load.get("errors") or {}
count = lambda kind: errors.get(kind, 0)
# The JSON has counts per kind; the text report names each kind's first code.
m = re.search(r"^\s+connect\s+\d+\s+first: (\S+)", open(load_text).read(), re.M)
connect_first = m.group(1) if m else None
final = [l for l in open(serve_out) if l.startswith('{"isolates"')]
isos = json.loads(final[-1])["isolates"] if final else []
# After the drain began a connect may only be refused: connect errors count
# as refusals when the first one was ECONNREFUSED.
refused = count("connect") if case == "drain" and connect_first in (None, "ECONNREFUSED") else 0
lost = {
    "resets": count("reset"),
    "failed_handshakes": count("handshake") + count("certificate") + count("timeout"),
    "truncated_responses": count("closed") + count("short_read") + count("http_parse"),
    "wrong_responses": count("http_status") + count("mismatch"),
    "other_errors": count("other") + count("connect") - refused,
}
out = {
    "case": case,
    "load_seconds": float(before_s),
    "exchanges_in_time": int(before_ops),
    "exchanges_verified": load["ops"],
    "served_by_server": sum(i["handshakes"] for i in isos) if isos else None,
    "server_handshake_errors": sum(i["handshake_errors"] for i in isos) if isos else None,
    "refused_after_drain": refused,
    "admin_events": int(events),
    "admin_failures": int(admin_failures),
    "first_connect_error": connect_first,
    **lost,
    "unfinished": load.get("unfinished", 0),
    "drain_closed": sum(i["drain_closed"] for i in isos) if isos else None,
    "server_exit": int(srv_rc),
    "drain_seconds": round(float(t1) - float(t0), 3),
}
for k, v in out.items():
    print(f"zero-loss {case}: {k} {v}")
ok = (sum(lost.values()) == 0 and int(before_ops) >= int(min_ops) and int(srv_rc) == 0 and out["unfinished"] == 0
      and int(admin_failures) == 0 and (case == "drain" or int(events) > 0))
out["ok"] = ok
print(f"zero-loss {case}: {'nothing lost' if ok else 'FAILED'}")
if json_out:
    with open(json_out, "w") as f:
        json.dump(out, f)
sys.exit(0 if ok else 1)
EOF
