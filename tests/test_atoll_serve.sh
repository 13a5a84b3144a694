#!/usr/bin/env bash
# tests/test_atoll_serve.sh: the command-line contract of tools/atoll-serve.
#
# Usage: test_atoll_serve.sh PATH/TO/atoll-serve
#
# Starts the server (each run bounded by `timeout`), talks to it with curl
# and openssl s_client, and checks: the "listening on" line, GET / ->
# hello, a malformed request -> 400, SIGUSR1 -> one JSON line with every
# counter for every isolate, SIGTERM -> the JSON line and exit 0 with
# accepted >= handshakes >= successful requests, --duration exits by itself,
# a bad flag -> exit 2. Last line: "N passed, N failed"; non-zero exit on
# any failure.
set -u

BIN=${1:?usage: $0 PATH/TO/atoll-serve}
ISOLATES=2
PASSED=0
FAILED=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/atoll-serve-test.XXXXXX")
TPID="" # the `timeout` wrapping the running server
SPID="" # the server itself

cleanup() {
    if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
        kill -KILL "$SPID" 2>/dev/null
    fi
    if [ -n "$TPID" ]; then
        wait "$TPID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

pass() {
    PASSED=$((PASSED + 1))
    echo "PASS: $*"
}
fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL: $*"
}
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

for tool in curl openssl timeout; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "FAIL: $tool is required"
        echo "0 passed, 1 failed"
        exit 1
    fi
done
if [ ! -x "$BIN" ]; then
    echo "FAIL: $BIN is not executable"
    echo "0 passed, 1 failed"
    exit 1
fi

# start_server OUT ARGS...: runs the server under timeout with stdout to OUT,
# sets TPID and SPID, waits for the listening line (or the end of the server).
start_server() {
    local out=$1
    shift
    : >"$out"
    timeout -k 5 60 "$BIN" "$@" >"$out" 2>"$out.err" &
    TPID=$!
    SPID=""
    local i
    for i in $(seq 1 100); do
        if [ -z "$SPID" ]; then
            SPID=$(pgrep -P "$TPID" 2>/dev/null | head -1)
        fi
        if grep -q '^listening on ' "$out" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$TPID" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# wait_server: waits for the server to end (bounded by its timeout) and
# sets RC to its exit status (not in a subshell: only this shell can wait).
wait_server() {
    wait "$TPID"
    RC=$?
    TPID=""
    SPID=""
}

# json_lines FILE: the counter lines of the output.
json_lines() { grep '^{"isolates":\[' "$1"; }

# valid_json LINE N: LINE holds exactly N isolate objects with every field.
OBJ='\{"id":[0-9]+,"accepted":[0-9]+,"handshakes":[0-9]+,"handshake_errors":[0-9]+,"bytes_in":[0-9]+,"bytes_out":[0-9]+\}'
valid_json() {
    local line=$1 n=$2
    [[ "$line" =~ ^\{\"isolates\":\[${OBJ}(,${OBJ})*\]\}$ ]] || return 1
    local count ids
    count=$(grep -oE "$OBJ" <<<"$line" | wc -l)
    [ "$count" -eq "$n" ] || return 1
    ids=$(grep -oE '"id":[0-9]+' <<<"$line" | cut -d: -f2 | tr '\n' ' ')
    [ "$ids" = "$(seq 0 $((n - 1)) | tr '\n' ' ')" ]
}

# sum_field LINE FIELD: the field summed over the isolates.
sum_field() {
    grep -oE "\"$2\":[0-9]+" <<<"$1" | cut -d: -f2 | awk '{s += $1} END {print s + 0}'
}

# ---------------------------------------------------------------------------
# 1. A server with the default (ephemeral) certificate, on isolates.
OUT=$WORK/out1
CERT=$WORK/cert.pem
if start_server "$OUT" --isolates "$ISOLATES" --write-cert "$CERT"; then
    pass "server starts"
else
    fail "server starts (stdout: $(cat "$OUT"); stderr: $(cat "$OUT.err"))"
fi
LINE=$(head -1 "$OUT")
check "listening line format: '$LINE'" \
    grep -qE "^listening on 127\.0\.0\.1:[1-9][0-9]* isolates=$ISOLATES\$" <(echo "$LINE")
PORT=$(sed -nE 's/^listening on .*:([0-9]+) isolates=[0-9]+$/\1/p' <<<"$LINE")
[ -n "$PORT" ] || PORT=1

OK_REQUESTS=0
BODY=$(timeout 10 curl -sk "https://127.0.0.1:$PORT/")
if [ "$BODY" = "hello" ]; then
    OK_REQUESTS=$((OK_REQUESTS + 1))
    pass "GET / -> hello"
else
    fail "GET / -> '$BODY'"
fi

BODY=$(timeout 10 curl -s --cacert "$CERT" --resolve "localhost:$PORT:127.0.0.1" "https://localhost:$PORT/")
if [ "$BODY" = "hello" ]; then
    OK_REQUESTS=$((OK_REQUESTS + 1))
    pass "GET / verified against --write-cert"
else
    fail "GET / verified against --write-cert -> '$BODY'"
fi

NBYTES=$(timeout 20 curl -sk "https://127.0.0.1:$PORT/bytes/1000000" | wc -c)
if [ "$NBYTES" -eq 1000000 ]; then
    OK_REQUESTS=$((OK_REQUESTS + 1))
    pass "GET /bytes/1000000 -> 1000000 bytes"
else
    fail "GET /bytes/1000000 -> $NBYTES bytes"
fi

CODE=$(timeout 10 curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/no/such/path")
if [ "$CODE" = "404" ]; then
    OK_REQUESTS=$((OK_REQUESTS + 1))
    pass "unknown path -> 404"
else
    fail "unknown path -> '$CODE'"
fi

RESP=$(printf 'GARBAGE\r\n\r\n' | timeout 10 openssl s_client -quiet -connect "127.0.0.1:$PORT" 2>/dev/null | head -1)
if [[ "$RESP" == "HTTP/1.1 400"* ]]; then
    OK_REQUESTS=$((OK_REQUESTS + 1))
    pass "malformed request -> 400"
else
    fail "malformed request -> '$RESP'"
fi

# SIGUSR1: one more JSON line, the server keeps running.
BEFORE=$(json_lines "$OUT" | wc -l)
[ -n "$SPID" ] && kill -USR1 "$SPID"
for _ in $(seq 1 50); do
    [ "$(json_lines "$OUT" | wc -l)" -gt "$BEFORE" ] && break
    sleep 0.1
done
USR1_JSON=$(json_lines "$OUT" | tail -1)
check "SIGUSR1 prints one JSON line" [ "$(json_lines "$OUT" | wc -l)" -eq $((BEFORE + 1)) ]
check "SIGUSR1 JSON has every field for each of $ISOLATES isolates: $USR1_JSON" valid_json "$USR1_JSON" "$ISOLATES"
check "server still running after SIGUSR1" kill -0 "${SPID:-999999}"
BODY=$(timeout 10 curl -sk "https://127.0.0.1:$PORT/")
if [ "$BODY" = "hello" ]; then
    OK_REQUESTS=$((OK_REQUESTS + 1))
    pass "GET / after SIGUSR1"
else
    fail "GET / after SIGUSR1 -> '$BODY'"
fi

# SIGTERM: the final JSON line, exit 0, consistent counters.
[ -n "$SPID" ] && kill -TERM "$SPID"
wait_server
check "SIGTERM -> exit 0 (got $RC)" [ "$RC" -eq 0 ]
FINAL=$(json_lines "$OUT" | tail -1)
check "final JSON line printed" [ "$(json_lines "$OUT" | wc -l)" -eq $((BEFORE + 2)) ]
check "final JSON has every field for each isolate: $FINAL" valid_json "$FINAL" "$ISOLATES"
ACC=$(sum_field "$FINAL" accepted)
HS=$(sum_field "$FINAL" handshakes)
BIN_IN=$(sum_field "$FINAL" bytes_in)
BIN_OUT=$(sum_field "$FINAL" bytes_out)
check "accepted ($ACC) >= handshakes ($HS) >= successful requests ($OK_REQUESTS)" \
    [ "$ACC" -ge "$HS" -a "$HS" -ge "$OK_REQUESTS" ]
check "bytes_out ($BIN_OUT) >= 1000000, bytes_in ($BIN_IN) > 0" [ "$BIN_OUT" -ge 1000000 -a "$BIN_IN" -gt 0 ]
check "the listening line came first, once" [ "$(grep -c '^listening on ' "$OUT")" -eq 1 -a "$(head -1 "$OUT")" = "$LINE" ]

# ---------------------------------------------------------------------------
# 2. --duration: exits by itself, with the JSON line.
OUT=$WORK/out2
START=$(date +%s%N)
if start_server "$OUT" --isolates 1 --duration 1; then
    wait_server
    ELAPSED_MS=$((($(date +%s%N) - START) / 1000000))
    check "--duration 1 exits 0 by itself (rc $RC, ${ELAPSED_MS} ms)" [ "$RC" -eq 0 -a "$ELAPSED_MS" -lt 10000 ]
    check "--duration JSON line" valid_json "$(json_lines "$OUT" | tail -1)" 1
else
    fail "--duration server starts: $(cat "$OUT.err")"
fi

# ---------------------------------------------------------------------------
# 3. Bad command lines: exit 2, a message and the usage on stderr.
for args in "--no-such-flag" "--port 65536" "--port x" "--isolates 0" "--mode ftp" "--cert only.pem" \
    "--request-client-cert --require-client-cert" "--alpn a,,b" "--duration 0" "--backlog"; do
    # shellcheck disable=SC2086
    timeout 10 "$BIN" $args >"$WORK/bad.out" 2>"$WORK/bad.err"
    RC=$?
    if [ "$RC" -eq 2 ] && grep -q '^atoll-serve \[--address ADDR\] \[--port N\]' "$WORK/bad.err" && [ ! -s "$WORK/bad.out" ]; then
        pass "bad flag '$args' -> exit 2 with usage"
    else
        fail "bad flag '$args' -> exit $RC ($(head -1 "$WORK/bad.err"))"
    fi
done

timeout 10 "$BIN" --help >"$WORK/help.out" 2>&1
RC=$?
check "--help exits 0 and documents the output lines" \
    [ "$RC" -eq 0 -a "$(grep -c -e 'listening on ADDR:PORT isolates=N' -e '"handshake_errors"' "$WORK/help.out")" -ge 2 ]

# A bind error is a runtime error: exit 1.
timeout 10 "$BIN" --address 192.0.2.1 --port 1 --isolates 1 >"$WORK/bind.out" 2>"$WORK/bind.err"
RC=$?
check "bind error -> exit 1 with a message (rc $RC: $(head -1 "$WORK/bind.err"))" \
    [ "$RC" -eq 1 -a -s "$WORK/bind.err" ]

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
