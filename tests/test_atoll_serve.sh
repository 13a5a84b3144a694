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
# --plain: HTTP over http:// and echo over cleartext TCP (bash's /dev/tcp),
# with the same output lines and handshakes 0, a bad flag (and --plain with
# each TLS-only flag) -> exit 2, --ticket-key-file shared by two servers
# (a session from one resumes on the other; SIGHUP reloads; a bad file is
# refused). Last line: "N passed, N failed"; non-zero exit on any failure.
set -u

# shellcheck source=tests/check.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/check.sh"

BIN=${1:?usage: $0 PATH/TO/atoll-serve}
ISOLATES=2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/atoll-serve-test.XXXXXX")
TPID="" # the `timeout` wrapping the running server
SPID="" # the server itself
TPID2="" # a second server, running beside the first (section 11)
SPID2=""

cleanup() {
    local p
    for p in "$SPID" "$SPID2"; do
        if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
            kill -KILL "$p" 2>/dev/null
        fi
    done
    for p in "$TPID" "$TPID2"; do
        if [ -n "$p" ]; then
            wait "$p" 2>/dev/null
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

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
    local _
    for _ in $(seq 1 100); do
        if [ -z "$SPID" ]; then
            SPID=$(pgrep -P "$TPID" 2>/dev/null | head -1)
        fi
        if grep -q '^listening on ' "$out" 2>/dev/null; then
            # The server printed, so it exists: find it if the first
            # look came before timeout had started it.
            for _ in $(seq 1 50); do
                [ -n "$SPID" ] && return 0
                SPID=$(pgrep -P "$TPID" 2>/dev/null | head -1)
                sleep 0.1
            done
            return 1
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
OBJ='\{"id":[0-9]+,"accepted":[0-9]+,"handshakes":[0-9]+,"handshake_errors":[0-9]+,"bytes_in":[0-9]+,"bytes_out":[0-9]+,"drain_closed":[0-9]+,"idle_closed":[0-9]+,"header_timeouts":[0-9]+,"loop_turns":[0-9]+\}'
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

# usr1_wait OUT: SIGUSR1 to the server, then waits (at most 5 s) for one
# more counters line in OUT.
usr1_wait() {
    local out=$1 before
    before=$(json_lines "$out" | wc -l)
    [ -n "$SPID" ] && kill -USR1 "$SPID"
    for _ in $(seq 1 50); do
        [ "$(json_lines "$out" | wc -l)" -gt "$before" ] && return 0
        sleep 0.1
    done
    return 1
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
usr1_wait "$OUT"
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
# 3. --plain, HTTP mode: the same server over cleartext TCP (http://), the
# same output lines; no TLS handshake ever, so handshakes stays 0. It also
# runs with CPU-local steering (pinned isolates), which must serve the same.
OUT=$WORK/out3
if start_server "$OUT" --plain --isolates "$ISOLATES" --steering cpu; then
    pass "--plain --steering cpu server starts"
else
    fail "--plain server starts (stdout: $(cat "$OUT"); stderr: $(cat "$OUT.err"))"
fi
LINE=$(head -1 "$OUT")
check "--plain listening line format: '$LINE'" \
    grep -qE "^listening on 127\.0\.0\.1:[1-9][0-9]* isolates=$ISOLATES\$" <(echo "$LINE")
PORT=$(sed -nE 's/^listening on .*:([0-9]+) isolates=[0-9]+$/\1/p' <<<"$LINE")
[ -n "$PORT" ] || PORT=1

OK_REQUESTS=0
BODY=$(timeout 10 curl -s "http://127.0.0.1:$PORT/")
if [ "$BODY" = "hello" ]; then
    OK_REQUESTS=$((OK_REQUESTS + 1))
    pass "--plain: GET http:// / -> hello"
else
    fail "--plain: GET http:// / -> '$BODY'"
fi
NBYTES=$(timeout 20 curl -s "http://127.0.0.1:$PORT/bytes/1000000" | wc -c)
if [ "$NBYTES" -eq 1000000 ]; then
    OK_REQUESTS=$((OK_REQUESTS + 1))
    pass "--plain: GET /bytes/1000000 -> 1000000 bytes"
else
    fail "--plain: GET /bytes/1000000 -> $NBYTES bytes"
fi
CODE=$(timeout 10 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/no/such/path")
if [ "$CODE" = "404" ]; then
    OK_REQUESTS=$((OK_REQUESTS + 1))
    pass "--plain: unknown path -> 404"
else
    fail "--plain: unknown path -> '$CODE'"
fi
# A TLS ClientHello gets no handshake: curl over https:// fails.
if timeout 10 curl -sk -o /dev/null "https://127.0.0.1:$PORT/"; then
    fail "--plain: https:// succeeded"
else
    pass "--plain: https:// fails (no TLS)"
fi
# Raw bytes straight on the socket: a malformed request -> 400 and close.
# shellcheck disable=SC2016 # $1 is the inner shell's: the port
RESP=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GARBAGE\r\n\r\n" >&3 && head -1 <&3' _ "$PORT")
if [[ "$RESP" == "HTTP/1.1 400"* ]]; then
    OK_REQUESTS=$((OK_REQUESTS + 1))
    pass "--plain: malformed request -> 400"
else
    fail "--plain: malformed request -> '$RESP'"
fi

usr1_wait "$OUT"
USR1_JSON=$(json_lines "$OUT" | tail -1)
check "--plain: SIGUSR1 JSON has every field for each of $ISOLATES isolates: $USR1_JSON" \
    valid_json "$USR1_JSON" "$ISOLATES"
check "--plain: SIGUSR1 handshakes 0" [ "$(sum_field "$USR1_JSON" handshakes)" -eq 0 ]
[ -n "$SPID" ] && kill -TERM "$SPID"
wait_server
check "--plain: SIGTERM -> exit 0 (got $RC)" [ "$RC" -eq 0 ]
FINAL=$(json_lines "$OUT" | tail -1)
check "--plain: final JSON has every field for each isolate: $FINAL" valid_json "$FINAL" "$ISOLATES"
ACC=$(sum_field "$FINAL" accepted)
HS=$(sum_field "$FINAL" handshakes)
BIN_OUT=$(sum_field "$FINAL" bytes_out)
check "--plain: handshakes ($HS) = 0, accepted ($ACC) >= successful requests ($OK_REQUESTS)" \
    [ "$HS" -eq 0 -a "$ACC" -ge "$OK_REQUESTS" ]
check "--plain: bytes_out ($BIN_OUT) >= 1000000" [ "$BIN_OUT" -ge 1000000 ]
check "--plain: the listening line came first, once" \
    [ "$(grep -c '^listening on ' "$OUT")" -eq 1 -a "$(head -1 "$OUT")" = "$LINE" ]

# ---------------------------------------------------------------------------
# 4. --plain, echo mode: bytes sent on a cleartext TCP connection come back.
OUT=$WORK/out4
if start_server "$OUT" --plain --mode echo --isolates 1; then
    # Two lines, the second 4 KiB of random base64, read back through bash's
    # /dev/tcp and compared; the read timeouts bound a server that does not
    # answer.
    LONG=$(head -c 3072 /dev/urandom | base64 -w0)
    # shellcheck disable=SC2016 # $1, $2 are the inner shell's: port, payload
    ECHOED=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "ping\n%s\n" "$2" >&3
        read -r -t 5 a <&3 && read -r -t 5 b <&3 && [ "$b" = "$2" ] && printf "%s|%s" "$a" "${#b}"' _ \
        "$(sed -nE 's/^listening on .*:([0-9]+) isolates=[0-9]+$/\1/p' "$OUT")" "$LONG")
    check "--plain --mode echo: echoed 'ping' and the same ${#LONG} bytes (got '$ECHOED')" [ "$ECHOED" = "ping|${#LONG}" ]
    [ -n "$SPID" ] && kill -TERM "$SPID"
    wait_server
    FINAL=$(json_lines "$OUT" | tail -1)
    check "--plain --mode echo: exit 0 (got $RC), handshakes 0: $FINAL" \
        [ "$RC" -eq 0 -a "$(sum_field "$FINAL" handshakes)" -eq 0 -a "$(sum_field "$FINAL" accepted)" -ge 1 ]
else
    fail "--plain --mode echo server starts: $(cat "$OUT.err")"
fi

# ---------------------------------------------------------------------------
# 5. Bad command lines: exit 2, a message and the usage on stderr.
for args in "--no-such-flag" "--port 65536" "--port x" "--isolates 0" "--mode ftp" "--cert only.pem" \
    "--request-client-cert --require-client-cert" "--alpn a,,b" "--duration 0" "--backlog" "--steering rr" "--admin x" "--admin 127.0.0.1:70000" "--admin ::1:80" \
    "--drain-timeout -1" "--alpn h2,http/1.1" "--alpn http/1.1,spdy/3" "--ticket-key-file k --no-resumption" \
    "--ticket-key-file"; do
    # shellcheck disable=SC2086
    timeout 10 "$BIN" $args >"$WORK/bad.out" 2>"$WORK/bad.err"
    RC=$?
    if [ "$RC" -eq 2 ] && grep -q '^atoll-serve \[--address ADDR\] \[--port N\]' "$WORK/bad.err" && [ ! -s "$WORK/bad.out" ]; then
        pass "bad flag '$args' -> exit 2 with usage"
    else
        fail "bad flag '$args' -> exit $RC ($(head -1 "$WORK/bad.err"))"
    fi
done

# --plain with each TLS-only flag (either order): exit 2, the flag named, and
# nothing written (--write-cert).
for args in "--plain --cert c.pem --key k.pem" "--plain --key k.pem" "--plain --key-password pw" \
    "--plain --write-cert $WORK/plain-cert.pem" "--plain --alpn h2" "--plain --alpn=" "--plain --request-client-cert" \
    "--plain --require-client-cert" "--plain --client-ca ca.pem" "--plain --handshake-timeout 5000" \
    "--plain --no-resumption" "--no-resumption --plain" "--plain --alpn-strict" "--plain --ticket-key-file k"; do
    # shellcheck disable=SC2086
    timeout 10 "$BIN" $args >"$WORK/bad.out" 2>"$WORK/bad.err"
    RC=$?
    FLAG=$(grep -oE -- '--[a-z-]+' <<<"${args/--plain/}" | head -1)
    if [ "$RC" -eq 2 ] && head -1 "$WORK/bad.err" | grep -qF -- "$FLAG is a TLS option: --plain" &&
        grep -q '^atoll-serve \[--address ADDR\] \[--port N\]' "$WORK/bad.err" && [ ! -s "$WORK/bad.out" ] &&
        [ ! -e "$WORK/plain-cert.pem" ]; then
        pass "'$args' -> exit 2: $(head -1 "$WORK/bad.err")"
    else
        fail "'$args' -> exit $RC ($(head -1 "$WORK/bad.err"))"
    fi
done

# ---------------------------------------------------------------------------
# 6. The admin port: "admin on" after the listening line; add, pause,
# resume and retire isolates, /stats, errors, then POST /drain ends the
# server with exit 0 and the final counters (the added isolate included).
OUT=$WORK/out6
if start_server "$OUT" --isolates 2 --admin 127.0.0.1:0 --write-cert "$WORK/cert6.pem"; then
    for _ in $(seq 1 50); do grep -q '^admin on ' "$OUT" && break; sleep 0.1; done
    ALINE=$(sed -n 2p "$OUT")
    check "admin line right after the listening line: '$ALINE'" \
        grep -qE '^admin on 127\.0\.0\.1:[1-9][0-9]*$' <(echo "$ALINE")
    AP=$(sed -nE 's/^admin on .*:([0-9]+)$/\1/p' <<<"$ALINE")
    P6=$(sed -nE 's/^listening on .*:([0-9]+) isolates=[0-9]+$/\1/p' "$OUT")
    admin() { curl -s -o "$WORK/admin.body" -w '%{http_code}' -X "$1" "http://127.0.0.1:$AP$2"; }
    check "GET /stats: the counters line" \
        [ "$(admin GET /stats)" = 200 -a "$(valid_json "$(cat "$WORK/admin.body")" 2 && echo ok)" = ok ]
    check "POST /isolates -> {\"id\":2}" [ "$(admin POST /isolates)" = 200 -a "$(cat "$WORK/admin.body")" = '{"id":2}' ]
    check "three isolates in /stats" [ "$(admin GET /stats)" = 200 -a "$(valid_json "$(cat "$WORK/admin.body")" 3 && echo ok)" = ok ]
    check "POST /isolates/0/pause" [ "$(admin POST /isolates/0/pause)" = 200 ]
    check "pausing twice is harmless" [ "$(admin POST /isolates/0/pause)" = 200 ]
    check "POST /isolates/0/resume" [ "$(admin POST /isolates/0/resume)" = 200 ]
    check "DELETE /isolates/0 answers once drained" \
        [ "$(admin DELETE /isolates/0)" = 200 -a "$(cat "$WORK/admin.body")" = '{"id":0,"retired":true}' ]
    check "DELETE /isolates/0 again: 409" [ "$(admin DELETE /isolates/0)" = 409 ]
    check "DELETE /isolates/99: 404" [ "$(admin DELETE /isolates/99)" = 404 ]
    check "GET /isolates: 405" [ "$(admin GET /isolates)" = 405 ]
    check "GET /nothing: 404" [ "$(admin GET /nothing)" = 404 ]
    OK6=0
    for _ in $(seq 1 20); do
        [ "$(curl -s --cacert "$WORK/cert6.pem" "https://localhost:$P6/")" = hello ] && OK6=$((OK6 + 1))
    done
    check "served by the remaining isolates: $OK6 of 20" [ "$OK6" -eq 20 ]
    check "GET /live: 200 live" [ "$(admin GET /live)" = 200 -a "$(cat "$WORK/admin.body")" = live ]
    check "GET /ready while serving: 200 ready" [ "$(admin GET /ready)" = 200 -a "$(cat "$WORK/admin.body")" = ready ]
    check "POST /ready: 405" [ "$(admin POST /ready)" = 405 ]
    MT=$(curl -s -o "$WORK/metrics" -w '%{http_code} %{content_type}' "http://127.0.0.1:$AP/metrics")
    check "GET /metrics: 200, Prometheus text ($MT)" [ "$MT" = "200 text/plain; version=0.0.4" ]
    check "/metrics: every counter typed, per isolate" \
        grep -qx '# TYPE atoll_handshakes_total counter' "$WORK/metrics"
    check "/metrics: the 20 handshakes, over the isolates" \
        [ "$(awk '/^atoll_handshakes_total\{/ { s += $2 } END { print s }' "$WORK/metrics")" -eq 20 ]
    check "/metrics: errors by kind and isolate" \
        grep -qE '^atoll_handshake_errors_total\{isolate="1",kind="timeout"\} 0$' "$WORK/metrics"
    check "/metrics: gauges and loop counters" \
        grep -qE '^atoll_connections_open\{isolate="0"\} [0-9]+$|^atoll_loop_turns_total\{isolate="2"\} [1-9]' "$WORK/metrics"
    # A connection still in its handshake holds the drain open, so /ready
    # is asked while the drain runs; closing it lets the drain end.
    exec 7<>"/dev/tcp/127.0.0.1/$P6"
    check "POST /drain: 202" [ "$(admin POST /drain)" = 202 ]
    check "GET /ready once the drain began: 503 draining" \
        [ "$(admin GET /ready)" = 503 -a "$(cat "$WORK/admin.body")" = draining ]
    check "GET /live during the drain: 200" [ "$(admin GET /live)" = 200 ]
    exec 7>&-
    wait_server
    FINAL=$(json_lines "$OUT" | tail -1)
    check "after /drain: exit 0 (rc $RC) and the final counters of 3 isolates" \
        [ "$RC" -eq 0 -a "$(valid_json "$FINAL" 3 && echo ok)" = ok ]
    check "the 20 connections were served: $(sum_field "$FINAL" handshakes)" [ "$(sum_field "$FINAL" handshakes)" -eq 20 ]
else
    fail "server with --admin starts: $(cat "$OUT.err")"
fi

# ---------------------------------------------------------------------------
# 7. HTTP/1.1 details (RFC 9112/9110), cleartext so raw requests are easy:
# Host required once in HTTP/1.1, absolute-form accepted, NUL in a field
# value refused, Date on every response.
OUT=$WORK/out8
if start_server "$OUT" --plain --isolates 1; then
    P8=$(sed -nE 's/^listening on .*:([0-9]+) isolates=[0-9]+$/\1/p' "$OUT")
    first_line() {
        python3 - "$P8" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
data = b""
while b"\r\n\r\n" not in data:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
head = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
print(head[0] + ("|date" if any(h.lower().startswith("date: ") for h in head) else "|nodate"))
PY
    }
    check "HTTP/1.1 without Host -> 400" [ "$(first_line 'GET / HTTP/1.1\r\n\r\n')" = "HTTP/1.1 400 Bad Request|date" ]
    check "two Host fields -> 400" \
        [ "$(first_line 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n')" = "HTTP/1.1 400 Bad Request|date" ]
    check "HTTP/1.0 without Host -> 200" [ "$(first_line 'GET / HTTP/1.0\r\n\r\n')" = "HTTP/1.1 200 OK|date" ]
    check "absolute-form target -> 200" \
        [ "$(first_line 'GET http://localhost/ HTTP/1.1\r\nHost: localhost\r\n\r\n')" = "HTTP/1.1 200 OK|date" ]
    check "absolute-form /bytes/3 -> 200" \
        [ "$(first_line 'GET https://x:1/bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n')" = "HTTP/1.1 200 OK|date" ]
    check "NUL in a field value -> 400" \
        [ "$(first_line 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n')" = "HTTP/1.1 400 Bad Request|date" ]
    check "Date on a 200" [ "$(first_line 'GET / HTTP/1.1\r\nHost: a\r\n\r\n')" = "HTTP/1.1 200 OK|date" ]
    kill -TERM "$SPID"
    wait_server
else
    fail "server for the HTTP checks starts: $(cat "$OUT.err")"
fi

# 8. --alpn-strict: a client offering only a protocol the server lacks
# fails with the no_application_protocol alert (120); without it, the
# handshake goes on with no protocol.
OUT=$WORK/out9
if start_server "$OUT" --isolates 1 --alpn-strict; then
    P9=$(sed -nE 's/^listening on .*:([0-9]+) isolates=[0-9]+$/\1/p' "$OUT")
    STRICT=$(timeout 10 openssl s_client -connect "127.0.0.1:$P9" -alpn foo </dev/null 2>&1 | grep -o 'alert number [0-9]*' | head -1)
    check "--alpn-strict, no common protocol: '$STRICT'" [ "$STRICT" = "alert number 120" ]
    OKALPN=$(timeout 10 openssl s_client -connect "127.0.0.1:$P9" -alpn foo,http/1.1 </dev/null 2>&1 | grep -c 'ALPN protocol: http/1.1')
    check "--alpn-strict, http/1.1 offered too: selected" [ "$OKALPN" -ge 1 ]
    kill -TERM "$SPID"
    wait_server
else
    fail "server with --alpn-strict starts: $(cat "$OUT.err")"
fi

# 9. A drain bounds every connection, in the handshake too: with the
# handshake timeout off, a client stalled mid-ClientHello does not keep
# the server from exiting after SIGTERM (--drain-timeout 500).
OUT=$WORK/out10
if start_server "$OUT" --isolates 1 --handshake-timeout 0 --drain-timeout 500; then
    P10=$(sed -nE 's/^listening on .*:([0-9]+) isolates=[0-9]+$/\1/p' "$OUT")
    python3 - "$P10" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(bytes.fromhex("16030102000100"))  # a record header and two bytes of a ClientHello
time.sleep(8)
PY
    STALL=$!
    for _ in $(seq 1 50); do # until the server has accepted it
        usr1_wait "$OUT" && [ "$(sum_field "$(json_lines "$OUT" | tail -1)" accepted)" -ge 1 ] && break
    done
    kill -TERM "$SPID"
    wait_server
    FINAL=$(json_lines "$OUT" | tail -1)
    check "SIGTERM with a connection stalled in the handshake: exit 0 (rc $RC), handshake_errors 1" \
        [ "$RC" -eq 0 -a "$(sum_field "$FINAL" handshake_errors)" -eq 1 ]
    kill "$STALL" 2>/dev/null
    wait "$STALL" 2>/dev/null
else
    fail "server with --handshake-timeout 0 starts: $(cat "$OUT.err")"
fi

# ---------------------------------------------------------------------------
# 10. Slow and idle clients (cleartext, so a raw socket can play them): a
# request head that stalls gets 408 after --header-timeout; a connection
# that sends nothing is closed after --idle-timeout; both are counted.
OUT=$WORK/out7
if start_server "$OUT" --plain --isolates 1 --header-timeout 300 --idle-timeout 600; then
    P7=$(sed -nE 's/^listening on .*:([0-9]+) isolates=[0-9]+$/\1/p' "$OUT")
    SLOW=$(python3 - "$P7" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # no empty line: the head never ends
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n")[0].decode(), "then closed")
PY
)
    check "stalled request head: '$SLOW'" [ "$SLOW" = "HTTP/1.1 408 Request Timeout then closed" ]
    IDLE=$(python3 - "$P7" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
print("closed" if s.recv(1) == b"" else "data")
PY
)
    check "connection sending nothing: $IDLE by the idle timeout" [ "$IDLE" = closed ]
    kill -TERM "$SPID"
    wait_server
    FINAL=$(json_lines "$OUT" | tail -1)
    check "counted: header_timeouts 1, idle_closed 1: $FINAL" \
        [ "$(sum_field "$FINAL" header_timeouts)" -eq 1 -a "$(sum_field "$FINAL" idle_closed)" -eq 1 ]
else
    fail "server with timeouts starts: $(cat "$OUT.err")"
fi

# ---------------------------------------------------------------------------
# 11. --ticket-key-file: two servers (two processes, each with its own
# ephemeral certificate) given the same 80-byte key: a session begun on A
# resumes on B. SIGHUP re-reads the file (B's changed: A's sessions no
# longer resume there; [new, old]: they do again); a bad file on reload
# keeps the previous keys; a bad file at start-up is refused.
# resume_on PORT_A PORT_B: "reused" when a TLS 1.3 session from A resumes on
# B, "full" when B makes a full handshake, else the error. The ticket comes
# after the handshake: a request and its response first.
resume_on() {
    timeout 20 python3 "$(dirname -- "${BASH_SOURCE[0]}")/fleet/fleet_client.py" resume-on "$1" "$2" 2>&1 | tail -1
}
# hup_wait ERRFILE PATTERN: SIGHUP to the server in SPID2, then waits (at
# most 5 s) for a line matching PATTERN in ERRFILE.
hup_wait() {
    local before
    before=$(grep -c -- "$2" "$1")
    [ -n "$SPID2" ] && kill -HUP "$SPID2"
    for _ in $(seq 1 50); do
        [ "$(grep -c -- "$2" "$1")" -gt "$before" ] && return 0
        sleep 0.1
    done
    return 1
}
if command -v python3 >/dev/null 2>&1; then
    head -c 80 /dev/urandom >"$WORK/tk-old"
    head -c 80 /dev/urandom >"$WORK/tk-new"
    cp "$WORK/tk-old" "$WORK/tkA"
    cp "$WORK/tk-old" "$WORK/tkB"
    OUT=$WORK/out11
    OUTB=$WORK/out11b
    if start_server "$OUT" --isolates 1 --ticket-key-file "$WORK/tkA" && PA=$(sed -nE 's/^listening on .*:([0-9]+) isolates=[0-9]+$/\1/p' "$OUT") &&
        TPIDA=$TPID && SPIDA=$SPID && start_server "$OUTB" --isolates 2 --ticket-key-file "$WORK/tkB"; then
        # The second server's pids in TPID2/SPID2, the first's back in TPID/SPID.
        TPID2=$TPID SPID2=$SPID TPID=$TPIDA SPID=$SPIDA
        PB=$(sed -nE 's/^listening on .*:([0-9]+) isolates=[0-9]+$/\1/p' "$OUTB")
        check "same --ticket-key-file: a session from A resumes on B ($(resume_on "$PA" "$PB"))" \
            [ "$(resume_on "$PA" "$PB")" = reused ]
        check "and one from B on A" [ "$(resume_on "$PB" "$PA")" = reused ]
        cp "$WORK/tk-new" "$WORK/tkB"
        check "SIGHUP, B's file changed: 'ticket keys reloaded: 1 key(s) from 1 file(s)'" \
            hup_wait "$OUTB.err" '^ticket keys reloaded: 1 key(s) from 1 file(s)$'
        check "after the reload A's sessions no longer resume on B ($(resume_on "$PA" "$PB"))" \
            [ "$(resume_on "$PA" "$PB")" = full ]
        cat "$WORK/tk-new" "$WORK/tk-old" >"$WORK/tkB"
        check "SIGHUP, B's file [new, old]: 2 key(s)" \
            hup_wait "$OUTB.err" '^ticket keys reloaded: 2 key(s) from 1 file(s)$'
        check "A's sessions (old key) resume on B again ($(resume_on "$PA" "$PB"))" [ "$(resume_on "$PA" "$PB")" = reused ]
        head -c 79 /dev/urandom >"$WORK/tkB"
        check "SIGHUP, a 79-byte file: reload failed, keeping the previous keys" \
            hup_wait "$OUTB.err" "^atoll-serve: --ticket-key-file: reload failed: $WORK/tkB: 79 bytes.*; keeping the previous keys\$"
        check "B still serves with the previous keys [new, old] ($(resume_on "$PA" "$PB"))" \
            [ "$(resume_on "$PA" "$PB")" = reused ]
        check "B's stderr: just the three reload lines (no key bytes)" [ "$(wc -l <"$OUTB.err")" -eq 3 ]
        kill -TERM "$SPID" "$SPID2"
        wait_server
        check "A exits 0 (rc $RC)" [ "$RC" -eq 0 ]
        wait "$TPID2"
        RC=$?
        TPID2="" SPID2=""
        check "B exits 0 after its SIGHUPs (rc $RC)" [ "$RC" -eq 0 ]
    else
        fail "two servers with --ticket-key-file start: $(cat "$OUT.err" "$OUTB.err" 2>/dev/null)"
    fi
    # SIGHUP without --ticket-key-file: said, and the server goes on.
    OUT=$WORK/out11c
    if start_server "$OUT" --isolates 1; then
        TPID2=$TPID SPID2=$SPID
        check "SIGHUP without --ticket-key-file: nothing to reload" hup_wait "$OUT.err" 'nothing to reload'
        check "and the server keeps running" kill -0 "${SPID:-999999}"
        kill -TERM "$SPID"
        wait_server
        TPID2="" SPID2=""
        check "then exits 0 on SIGTERM (rc $RC)" [ "$RC" -eq 0 ]
    else
        fail "server for SIGHUP without key files starts: $(cat "$OUT.err")"
    fi
else
    fail "python3 is required for the --ticket-key-file checks"
fi
head -c 79 /dev/urandom >"$WORK/tk79"
timeout 10 "$BIN" --isolates 1 --duration 5 --ticket-key-file "$WORK/tk-old" --ticket-key-file "$WORK/tk79" \
    >"$WORK/tk79.out" 2>"$WORK/tk79.err"
RC=$?
check "a 79-byte --ticket-key-file at start-up: exit 1, the file named (rc $RC: $(head -1 "$WORK/tk79.err"))" \
    [ "$RC" -eq 1 -a "$(grep -cF -- "$WORK/tk79: 79 bytes" "$WORK/tk79.err")" -eq 1 -a ! -s "$WORK/tk79.out" ]

timeout 10 "$BIN" --help >"$WORK/help.out" 2>&1
RC=$?
check "--help exits 0 and documents the output lines" \
    [ "$RC" -eq 0 -a "$(grep -c -e 'listening on ADDR:PORT isolates=N' -e '"handshake_errors"' "$WORK/help.out")" -ge 2 ]
check "--help documents --plain" grep -q -- '^  --plain ' "$WORK/help.out"
check "--help documents --ticket-key-file and SIGHUP" \
    [ "$(grep -c -e '^  --ticket-key-file FILE ' -e 'SIGHUP re-reads' "$WORK/help.out")" -eq 2 ]

# A bind error is a runtime error: exit 1.
timeout 10 "$BIN" --address 192.0.2.1 --port 1 --isolates 1 >"$WORK/bind.out" 2>"$WORK/bind.err"
RC=$?
check "bind error -> exit 1 with a message (rc $RC: $(head -1 "$WORK/bind.err"))" \
    [ "$RC" -eq 1 -a -s "$WORK/bind.err" ]

summary
