#!/usr/bin/env bash
# test_atoll_load.sh SERVE LOAD: the CLI contract of tools/atoll-load, run
# against tools/atoll-serve on loopback. A 2-second smoke per scenario checks
# the JSON fields, ops > 0 and no errors; the handshake scenario's ops must
# agree with the server's handshake counter (SIGUSR1) within the slots in
# flight. Then the same over cleartext (--plain on both tools): rr, churn and
# handshake (whose ops must agree with the server's accepted counter), and
# --plain with each TLS-only flag refused. Open loop (--rate): a 1-second rr
# run at 2000 req/s reports rate 2000 and intended_vs_actual counts with
# completed <= issued <= intended (no slack: issued counts schedule points
# taken, intended counts them plus those still due at the bound), another
# bounded by --requests; bad --rate values and refused combinations exit 2
# with a message. No timing is asserted. Prints "N passed, N failed" last;
# exits non-zero on a failure.
set -u

SERVE=${1:?usage: test_atoll_load.sh ATOLL_SERVE ATOLL_LOAD}
LOAD=${2:?usage: test_atoll_load.sh ATOLL_SERVE ATOLL_LOAD}
PASS=0
FAIL=0
WORK=$(mktemp -d /tmp/test_atoll_load.XXXXXX)
SERVER_PID=

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        sleep 0.5
        kill -KILL "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok   $*"; }
ko() { FAIL=$((FAIL + 1)); echo "FAIL $*"; }

# Sum of one counter over the isolates in the server's last JSON line.
server_counter() { # FIELD
    python3 - "$1" "$SERVE_OUT" <<'EOF'
import json, sys
field, path = sys.argv[1], sys.argv[2]
last = None
for line in open(path):
    line = line.strip()
    if line.startswith('{"isolates"'):
        last = line
print(sum(i[field] for i in json.loads(last)["isolates"]) if last else -1)
EOF
}

# Asks the server for its counters and waits until a new JSON line appears.
snapshot() { # FIELD
    local before after i
    before=$(grep -c '^{"isolates"' "$SERVE_OUT")
    kill -USR1 "$SERVER_PID"
    for i in $(seq 1 50); do
        after=$(grep -c '^{"isolates"' "$SERVE_OUT")
        [ "$after" -gt "$before" ] && break
        sleep 0.1
    done
    server_counter "$1"
}

# Checks a result JSON: every field, ops > 0, errors {} (plus extra checks).
check_json() { # FILE SCENARIO [python-expression on d]
    python3 - "$@" <<'EOF'
import json, sys
path, scenario = sys.argv[1], sys.argv[2]
extra = sys.argv[3] if len(sys.argv) > 3 else None
d = json.load(open(path))
need = ["scenario", "ops", "ops_per_s", "duration_s", "errors", "latency_us", "bytes", "mb_per_s"]
missing = [k for k in need if k not in d]
missing += ["latency_us." + k for k in ["p50", "p90", "p99", "p999", "max"] if k not in d.get("latency_us", {})]
if missing:
    sys.exit("missing fields: %s" % missing)
if d["scenario"] != scenario:
    sys.exit("scenario %r" % d["scenario"])
if not isinstance(d["errors"], dict) or d["errors"]:
    sys.exit("errors: %r" % d["errors"])
if not d["ops"] > 0:
    sys.exit("ops %r" % d["ops"])
if not d["latency_us"]["p50"] <= d["latency_us"]["p99"] <= d["latency_us"]["max"]:
    sys.exit("latency not ordered: %r" % d["latency_us"])
if extra and not eval(extra, {"d": d}):
    sys.exit("check failed: %s on %r" % (extra, d))
print("ops=%d ops/s=%.0f p50=%dus p99=%dus MB/s=%.1f" % (d["ops"], d["ops_per_s"], d["latency_us"]["p50"],
      d["latency_us"]["p99"], d["mb_per_s"]))
EOF
}

# ---- server ---------------------------------------------------------------
# start_server NAME ARGS...: atoll-serve with ARGS, output in $WORK/NAME.out;
# waits for its listening line and sets SERVER_PID, TIMEOUT_PID, PORT,
# TARGET and SERVE_OUT, or exits the test. Bounded twice: by timeout and by
# the server's own --duration. Signals go to the server itself (timeout's
# child), not to timeout.
start_server() {
    local name=$1
    shift
    SERVE_OUT="$WORK/$name.out"
    timeout 175 "$SERVE" --duration 170 "$@" >"$SERVE_OUT" 2>"$WORK/$name.err" &
    TIMEOUT_PID=$!
    SERVER_PID=
    PORT=
    for _ in $(seq 1 100); do
        if [ -z "$SERVER_PID" ]; then
            SERVER_PID=$(cat "/proc/$TIMEOUT_PID/task/$TIMEOUT_PID/children" 2>/dev/null | awk '{print $1}')
        fi
        PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\) isolates=.*/\1/p' "$SERVE_OUT" | head -1)
        [ -n "$PORT" ] && [ -n "$SERVER_PID" ] && break
        sleep 0.1
    done
    if [ -z "$PORT" ] || [ -z "$SERVER_PID" ]; then
        ko "atoll-serve $* did not start: $(cat "$WORK/$name.err")"
        echo "$PASS passed, $FAIL failed"
        exit 1
    fi
    ok "atoll-serve $* listening on port $PORT"
    TARGET="127.0.0.1:$PORT"
}

# stop_server NAME: SIGTERM, then waits (at most 10 s) for exit 0.
stop_server() {
    local rc
    kill -TERM "$SERVER_PID"
    for _ in $(seq 1 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        ko "$1 still running 10 s after SIGTERM"
    else
        wait "$TIMEOUT_PID"
        rc=$?
        if [ $rc -eq 0 ]; then ok "$1 stopped by SIGTERM"; else ko "$1 exit $rc after SIGTERM"; fi
        SERVER_PID=
    fi
}

start_server serve --isolates 2 --write-cert "$WORK/cert.pem"

# The client's security flags: verified TLS first, then --plain.
SECURITY=(--cafile "$WORK/cert.pem")

run() { # NAME SCENARIO [python check] -- ARGS...
    local name=$1 scenario=$2 extra=$3
    shift 4
    local out="$WORK/$name.json" rc msg
    timeout 30 "$LOAD" --target "$TARGET" --scenario "$scenario" --duration 2 "${SECURITY[@]}" \
        --json "$out" "$@" >"$WORK/$name.txt" 2>"$WORK/$name.err"
    rc=$?
    if [ $rc -ne 0 ]; then
        ko "$name: exit $rc: $(tail -3 "$WORK/$name.err")"
        return 1
    fi
    if msg=$(check_json "$out" "$scenario" "$extra" 2>&1); then
        ok "$name: $msg"
    else
        ko "$name: $msg"
        return 1
    fi
}

# ---- handshake: ops agree with the server's handshake counter ---------------
CONNS=2
before=$(snapshot handshakes)
if run handshake handshake "" -- --http --connections $CONNS; then
    after=$(snapshot handshakes)
    ops=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ops"])' "$WORK/handshake.json")
    delta=$((after - before))
    diff=$((delta - ops))
    [ $diff -lt 0 ] && diff=$((-diff))
    if [ "$before" -ge 0 ] && [ $diff -le $CONNS ]; then
        ok "handshake ops $ops vs server handshakes +$delta (within $CONNS in flight)"
    else
        ko "handshake ops $ops vs server handshakes +$delta (before $before, after $after)"
    fi
fi

# ---- the other scenarios ----------------------------------------------------
run rr_http rr "(d['ops'] > 100 and d.get('tls') is True and d['rate'] is None and
    d['intended_vs_actual']['completed'] == d['ops'])" -- --http
run bulk_http bulk "d['bytes'] >= 1048576 * d['ops'] and d['mb_per_s'] > 0" -- --http --size 1048576
run idle idle "d.get('connections_held') == 20 and d['ops'] >= 20" -- --http --connections 20
run churn churn "" -- --http

# ---- open loop (--rate) ---------------------------------------------------------
# Logically guaranteed only: completed <= issued <= intended (each completed
# request was issued, each issued one was a schedule point due); with
# --requests N, intended <= N. Counts near R * duration are not asserted.
# (Parenthesised: the check is one Python expression over several lines.)
RATE_OK="(d['rate'] == 2000 and d['arrivals'] == 'uniform' and
    all(type(d['intended_vs_actual'][k]) is int for k in ('intended', 'issued', 'completed', 'max_queue_delay_us'))
    and d['intended_vs_actual']['completed'] <= d['intended_vs_actual']['issued'] <= d['intended_vs_actual']['intended']
    and d['intended_vs_actual']['completed'] == d['ops'] and d['intended_vs_actual']['max_queue_delay_us'] >= 0)"
if run rate_rr rr "$RATE_OK" -- --http --rate 2000 --duration 1; then
    if grep -q '^rate  *2000 req/s' "$WORK/rate_rr.txt" && grep -q '^intended  *[0-9]*  issued [0-9]*' "$WORK/rate_rr.txt"; then
        ok "--rate summary prints the rate and intended/issued"
    else
        ko "--rate summary: $(grep -E '^(rate|intended)' "$WORK/rate_rr.txt")"
    fi
fi
run rate_poisson rr "(d['rate'] == 500 and d['arrivals'] == 'poisson' and d['seed'] == 7 and
    d['intended_vs_actual']['issued'] <= d['intended_vs_actual']['intended'])" -- --http --rate 500 --arrivals poisson \
    --seed 7 --duration 1
run rate_requests rr "(d['rate'] == 1000 and d['ops'] <= 200 and
    d['intended_vs_actual']['issued'] <= d['intended_vs_actual']['intended'] <= 200)" -- --http --rate 1000 --requests 200

# Bad --rate values and the combinations --rate refuses: exit 2, the reason on
# stderr, nothing on stdout.
while IFS='|' read -r what args want; do
    # shellcheck disable=SC2086
    "$LOAD" --target "$TARGET" "${SECURITY[@]}" $args >"$WORK/ratebad.out" 2>"$WORK/ratebad.err"
    rc=$?
    if [ $rc -eq 2 ] && grep -qF -- "$want" "$WORK/ratebad.err" && [ ! -s "$WORK/ratebad.out" ]; then
        ok "$what: refused (exit 2): $(head -1 "$WORK/ratebad.err")"
    else
        ko "$what: exit $rc: $(head -1 "$WORK/ratebad.err")"
    fi
done <<'EOF'
--rate 0|--scenario rr --rate 0|bad --rate '0'
--rate -5|--scenario rr --rate -5|bad --rate '-5'
--rate abc|--scenario rr --rate abc|bad --rate 'abc'
--rate (empty)|--scenario rr --rate=|bad --rate ''
--rate with handshake|--scenario handshake --rate 100|--rate is for --scenario rr only
--rate with bulk|--scenario bulk --rate 100|--rate is for --scenario rr only
--rate with idle|--scenario idle --rate 100|--rate is for --scenario rr only
--rate with churn|--scenario churn --rate 100|--rate is for --scenario rr only
--arrivals without --rate|--scenario rr --arrivals poisson|--arrivals needs --rate
--seed without --rate|--scenario rr --seed 3|--seed needs --rate
--arrivals bad|--scenario rr --rate 100 --arrivals burst|bad --arrivals 'burst'
EOF

# ---- contract checks that need no server run ---------------------------------
"$LOAD" --target "$TARGET" --scenario rr >/dev/null 2>"$WORK/noverify.err"
rc=$?
if [ $rc -eq 2 ] && grep -qi "cafile" "$WORK/noverify.err"; then
    ok "no --cafile/--insecure: refused (exit 2)"
else
    ko "no --cafile/--insecure: exit $rc"
fi
"$LOAD" --target 192.0.2.1:443 --scenario rr --insecure >/dev/null 2>&1
rc=$?
[ $rc -eq 1 ] && ok "non-loopback target refused (exit 1)" || ko "non-loopback target: exit $rc"
"$LOAD" --target "$TARGET" --scenario nope --insecure >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] && ok "bad scenario: exit 2" || ko "bad scenario: exit $rc"

stop_server atoll-serve

# ---- cleartext: atoll-load --plain against atoll-serve --plain -----------------
start_server serve-plain --isolates 2 --plain
SECURITY=(--plain)
# handshake in plain mode = TCP connect + one exchange + close: its ops agree
# with the server's accepted counter (the server counts no handshakes).
before=$(snapshot accepted)
if run plain_handshake handshake "d.get('tls') is False" -- --http --connections $CONNS; then
    after=$(snapshot accepted)
    ops=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ops"])' "$WORK/plain_handshake.json")
    delta=$((after - before))
    diff=$((delta - ops))
    [ $diff -lt 0 ] && diff=$((-diff))
    if [ "$before" -ge 0 ] && [ $diff -le $CONNS ] && [ "$(server_counter handshakes)" -eq 0 ]; then
        ok "plain handshake ops $ops vs server accepted +$delta (within $CONNS in flight), server handshakes 0"
    else
        ko "plain handshake ops $ops vs server accepted +$delta (before $before, after $after)," \
            "server handshakes $(server_counter handshakes)"
    fi
fi
run plain_rr rr "d['ops'] > 100 and d.get('tls') is False and d['handshakes'] == 8" -- --http
run plain_churn churn "d['handshakes'] >= d['ops'] and d.get('tls') is False" -- --http
stop_server "atoll-serve --plain"

# --plain with a TLS-only flag: exit 2 before any connect (the target is not
# even resolved), the flag named.
for flag in "--cafile $WORK/cert.pem" --insecure --resume "--alpn http/1.1"; do
    # shellcheck disable=SC2086
    "$LOAD" --target 127.0.0.1:1 --scenario rr --plain $flag >"$WORK/plainbad.out" 2>"$WORK/plainbad.err"
    rc=$?
    if [ $rc -eq 2 ] && grep -qF -- "${flag%% *} is a TLS option: --plain" "$WORK/plainbad.err" &&
        [ ! -s "$WORK/plainbad.out" ]; then
        ok "--plain $flag: refused (exit 2): $(head -1 "$WORK/plainbad.err")"
    else
        ko "--plain $flag: exit $rc: $(head -1 "$WORK/plainbad.err")"
    fi
done
"$LOAD" --help >"$WORK/help.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q -- '--plain  *cleartext TCP' "$WORK/help.out"; then
    ok "--help documents --plain"
else
    ko "--help: exit $rc, --plain not documented"
fi
if [ $rc -eq 0 ] && grep -q -- '--rate R  *open loop (rr only' "$WORK/help.out" &&
    grep -q -- '--arrivals KIND' "$WORK/help.out" && grep -q -- '--seed N' "$WORK/help.out"; then
    ok "--help documents --rate, --arrivals, --seed"
else
    ko "--help: exit $rc, --rate/--arrivals/--seed not documented"
fi

echo "$PASS passed, $FAIL failed"
[ $FAIL -eq 0 ]
