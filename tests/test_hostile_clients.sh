#!/usr/bin/env bash
# test_hostile_clients.sh ATOLL_SERVE CERTS_DIR - malformed and hostile TLS
# clients from outside (issue 9): each case gets exactly one clear
# per-connection error from atoll-serve (its ATOLL_SERVE_DEBUG log line,
# with the expected code) and the server keeps serving (curl after every
# case). Cases: garbage, a truncated ClientHello, an oversized record
# length, an SSLv2-style hello, HTTP on the TLS port, a TLS 1.1-only
# client, a TLS 1.2 renegotiation attempt, a client certificate from an
# untrusted CA, an expired client certificate, and a ClientHello with 1,000
# ALPN entries (valid per RFC 7301: served, no error).
# Last line: "N passed, N failed"; non-zero exit on any failure.
set -uo pipefail

# shellcheck source=tests/check.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/check.sh"

BIN=${1:?usage: $0 PATH/TO/atoll-serve CERTS_DIR}
CERTS=${2:?usage: $0 PATH/TO/atoll-serve CERTS_DIR}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# start NAME ARGS...: atoll-serve with the debug log; sets PORT_<NAME>.
start() {
    local name=$1 i port=
    shift
    ATOLL_SERVE_DEBUG=1 timeout -k 5 120 "$BIN" --isolates 1 --cert "$CERTS/server_chain.pem" \
        --key "$CERTS/server_key.pem" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=($!)
    for i in $(seq 1 100); do
        port=$(sed -nE 's/^listening on .*:([0-9]+) isolates=1$/\1/p' "$WORK/$name.out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "atoll-serve did not start: $(cat "$WORK/$name.err")"; exit 1; }
    printf -v "PORT_$name" '%s' "$port"
}

# raw PORT HEX [close]: sends the bytes, then reads until the server closes
# (or, with "close", closes at once after sending).
raw() {
    python3 - "$@" <<'PY'
import socket, sys
port, data = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(data)
if len(sys.argv) > 3:
    s.close()
    sys.exit(0)
try:
    while s.recv(4096):
        pass
except OSError:
    pass
PY
}

# expect_one NAME CASE CODE: exactly one new log line, naming CODE (or no
# new line when CODE is "none"), then a good client is served.
declare -A SEEN
expect_one() {
    local name=$1 what=$2 code=$3 n before i
    before=${SEEN[$name]:-0}
    for i in $(seq 1 100); do
        n=$(grep -c 'failed:\|ended:' "$WORK/$name.err" || true)
        [ "$code" = none ] && break
        [ "$n" -gt "$before" ] && break
        sleep 0.05
    done
    sleep 0.2 # a second line would come right after the first
    n=$(grep -c 'failed:\|ended:' "$WORK/$name.err" || true)
    local line
    line=$(grep 'failed:\|ended:' "$WORK/$name.err" | tail -n 1)
    if [ "$code" = none ]; then
        [ "$n" -eq "$before" ] && pass "$what: no error" || fail "$what: unexpected error: $line"
    elif [ "$n" -eq $((before + 1)) ] && grep -q ": $code: " <<<"$line"; then
        pass "$what: one error: ${line#*: isolate 0: }"
    else
        fail "$what: $((n - before)) new errors, want one $code; last: $line"
    fi
    SEEN[$name]=$n
    local port_var="PORT_$name" extra=()
    [ "$name" = certs ] && extra=(--cert "$CERTS/client1.pem" --key "$CERTS/client1_key.pem")
    if [ "$(curl -s --max-time 10 --cacert "$CERTS/trusted_certs.pem" "${extra[@]}" "https://localhost:${!port_var}/")" = hello ]; then
        pass "$what: the server keeps serving"
    else
        fail "$what: the next client was not served"
    fi
}

start tls
start certs --require-client-cert --client-ca "$CERTS/client_authority.pem"

raw "$PORT_tls" 000102030405060767617262616765
expect_one tls "garbage" ATOLL_E_HANDSHAKE

# A ClientHello's record header and its first 16 bytes, then the client goes.
raw "$PORT_tls" 16030100c8010000c40303000102030405060708090a close
expect_one tls "truncated ClientHello" ATOLL_E_PEER_CLOSED

# A handshake record announcing 18,433 bytes (the limit is 2^14 + 256 for TLS 1.3).
raw "$PORT_tls" 1603034801$(printf '00%.0s' $(seq 1 64))
expect_one tls "oversized record length" ATOLL_E_HANDSHAKE

# SSLv2-compatible CLIENT-HELLO: 2-byte length with the high bit, type 1.
raw "$PORT_tls" 802e0100020015000000100000040000050000ff0102030405060708090a0b0c0d0e0f
expect_one tls "SSLv2-style hello" ATOLL_E_HANDSHAKE

raw "$PORT_tls" "$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n' | od -An -tx1 | tr -d ' \n')"
expect_one tls "HTTP on the TLS port" ATOLL_E_HANDSHAKE

timeout 10 openssl s_client -connect "127.0.0.1:$PORT_tls" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' </dev/null >/dev/null 2>&1
expect_one tls "TLS 1.1-only client" ATOLL_E_HANDSHAKE

# "R" asks s_client to renegotiate once the TLS 1.2 handshake is done.
(printf 'R\n'; sleep 1) | timeout 10 openssl s_client -connect "127.0.0.1:$PORT_tls" -tls1_2 \
    -CAfile "$CERTS/trusted_certs.pem" >/dev/null 2>&1
expect_one tls "TLS 1.2 renegotiation attempt" EPROTO

python3 - "$PORT_tls" "$CERTS/trusted_certs.pem" >"$WORK/alpn.out" 2>&1 <<'PY'
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.set_alpn_protocols(["p%04d" % i for i in range(1000)])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
print("alpn", s.selected_alpn_protocol(), data.split(b"\r\n")[0].decode())
PY
if grep -q '^alpn None HTTP/1.1 200 OK$' "$WORK/alpn.out"; then
    pass "1,000 ALPN entries: handshake without a protocol, request served"
else
    fail "1,000 ALPN entries: $(tail -n 2 "$WORK/alpn.out")"
fi
expect_one tls "1,000 ALPN entries" none

timeout 10 openssl s_client -connect "127.0.0.1:$PORT_certs" -cert "$CERTS/untrusted_chain.pem" \
    -key "$CERTS/untrusted_key.pem" -CAfile "$CERTS/trusted_certs.pem" </dev/null >/dev/null 2>&1
expect_one certs "client certificate from an untrusted CA" ATOLL_E_CERTIFICATE

# An expired client certificate from the trusted client authority: valid
# 2020-01-01 to 2020-01-02 (openssl ca sets the dates; x509 -req cannot).
mkdir -p "$WORK/ca/new"
: >"$WORK/ca/index.txt"
echo 1000 >"$WORK/ca/serial"
cat >"$WORK/ca/ca.cnf" <<EOF
[ca]
default_ca = d
[d]
dir = $WORK/ca
database = \$dir/index.txt
new_certs_dir = \$dir/new
serial = \$dir/serial
default_md = sha256
policy = p
[p]
commonName = supplied
EOF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/expired_key.pem" \
    -subj /CN=expired -out "$WORK/expired.csr" >/dev/null 2>&1
openssl ca -batch -config "$WORK/ca/ca.cnf" -cert "$CERTS/client_authority.pem" -keyfile "$CERTS/client_authority_key.pem" \
    -startdate 20200101000000Z -enddate 20200102000000Z -in "$WORK/expired.csr" -out "$WORK/expired.pem" >/dev/null 2>&1
if [ -s "$WORK/expired.pem" ]; then
    timeout 10 openssl s_client -connect "127.0.0.1:$PORT_certs" -cert "$WORK/expired.pem" \
        -key "$WORK/expired_key.pem" -CAfile "$CERTS/trusted_certs.pem" </dev/null >/dev/null 2>&1
    expect_one certs "expired client certificate" ATOLL_E_CERTIFICATE
else
    fail "could not make the expired client certificate"
fi

summary
