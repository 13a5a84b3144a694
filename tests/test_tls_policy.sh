#!/usr/bin/env bash
# test_tls_policy.sh ATOLL_SERVE PROBE_PY - the TLS policy of docs/security.md,
# checked by asking a running atoll-serve what it accepts (openssl CLI and a
# hand-made ClientHello from PROBE_PY, tests/tls_probe.py):
#   - versions: SSLv3, TLS 1.0 and 1.1 refused; TLS 1.2 and 1.3 accepted;
#   - suites: every suite `openssl ciphers` knows is offered alone, with
#     TLS 1.2 and TLS 1.3 (TLS 1.0 and 1.1: all of them in one handshake);
#     every accepted one is AEAD (GCM, CCM or
#     ChaCha20-Poly1305) with forward secrecy (ECDHE or DHE key exchange in
#     TLS 1.2), and the accepted list is printed;
#   - groups: the key-exchange groups accepted are X25519, P-256 and P-384
#     (TLS 1.2: and P-521); no X448, secp256k1, brainpool or FFDHE;
#   - no compression: s_client says "Compression: NONE", and a ClientHello
#     offering DEFLATE first gets null compression (DEFLATE alone: refused);
#   - no renegotiation: the ServerHello carries renegotiation_info (RFC 5746,
#     so s_client says "Secure Renegotiation IS supported"), but a client
#     renegotiation (s_client's "R") gets a fatal alert and no second
#     ServerHello;
#   - the same with the user's other choice of key (--cert/--key with an RSA
#     certificate), and no command-line way to pick suites (--ciphers is an
#     unknown option, exit 2).
# Both wolfSSL builds (atoll's and Debian's system one) must give the same
# answers: the policy is set by atoll (runtime/base/tls_ctx.c), not by the
# build's defaults. Loopback only; every client runs under `timeout 5`.
# Last line: "N passed, N failed"; non-zero exit on any failure.
set -euo pipefail

# shellcheck source=tests/check.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/check.sh"

BIN=${1:?usage: $0 PATH/TO/atoll-serve PATH/TO/tls_probe.py}
PROBE=${2:?usage: $0 PATH/TO/atoll-serve PATH/TO/tls_probe.py}
work_dir TERM

# start NAME ARGS...: atoll-serve (one isolate) on a free loopback port;
# returns once it printed its listening line (read from a FIFO: no polling),
# sets PORT. Its later output goes to $WORK/NAME.out.
PORT=
start() {
    local name=$1 line fd
    shift
    mkfifo "$WORK/$name.fifo"
    timeout -k 5 600 "$BIN" --isolates 1 --port 0 "$@" >"$WORK/$name.fifo" 2>"$WORK/$name.err" &
    PIDS+=($!)
    exec {fd}<"$WORK/$name.fifo"
    if ! IFS= read -r -t 60 -u "$fd" line; then
        echo "atoll-serve $* did not start: $(cat "$WORK/$name.err")"
        exit 1
    fi
    cat <&"$fd" >"$WORK/$name.out" &
    exec {fd}<&-
    PORT=$(sed -nE 's/^listening on .*:([0-9]+) isolates=1$/\1/p' <<<"$line")
    [ -n "$PORT" ] || {
        echo "unexpected first line: $line"
        exit 1
    }
}

# stop: SIGTERM to the last server; it drains (nothing open) and exits 0.
stop() {
    local pid=${PIDS[-1]} rc=0
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    unset 'PIDS[-1]'
    [ "$rc" -eq 0 ] || fail "atoll-serve exited $rc after SIGTERM"
}

# client ARGS...: one openssl s_client handshake against the server, stdin
# closed (it leaves at once); prints everything it said.
client() {
    timeout 5 openssl s_client -connect "127.0.0.1:$PORT" -servername localhost "$@" </dev/null 2>&1 || true
}

# negotiated OUTPUT: "PROTOCOL SUITE" when the handshake completed, else "".
# "New, X, Cipher is Y" names the suite's own version in X (TLSv1.0 for
# ECDHE-ECDSA-AES128-SHA even in TLS 1.2): the protocol is the session
# block's, which TLS 1.3 prints only once a ticket came (then X, a TLS 1.3
# suite's version, is the protocol).
negotiated() {
    local line proto suite
    line=$(grep -E '^New, [A-Za-z0-9.]+, Cipher is [A-Za-z0-9_-]+$' <<<"$1" | head -n 1 || true)
    [ -n "$line" ] || return 0
    suite=${line##* }
    proto=$(sed -nE 's/^ *Protocol *: *([A-Za-z0-9.]+)$/\1/p' <<<"$1" | head -n 1)
    [ -n "$proto" ] || proto=$(sed -E 's/^New, ([A-Za-z0-9.]+), .*/\1/' <<<"$line")
    echo "$proto $suite"
}

# The TLS 1.2-and-older suites openssl knows (name, Kx=, Au=, Mac= columns)
# and the TLS 1.3 ones. @SECLEVEL=0 so that s_client offers even the weak.
openssl ciphers -V 'ALL:COMPLEMENTOFALL:@SECLEVEL=0' | awk '$4 != "TLSv1.3" { print $3, $5, $6, $8 }' >"$WORK/suites12"
TLS13_SUITES="TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256 TLS_AES_128_CCM_SHA256 TLS_AES_128_CCM_8_SHA256"
echo "openssl: $(openssl version); $(wc -l <"$WORK/suites12") TLS 1.2-and-older suites, 5 TLS 1.3 suites"

# scan LABEL: the per-version and per-suite scan of the running server.
scan() {
    local label=$1 out got name kx au mac s bad=0 accepted12=() accepted13=()

    # SSLv3: the openssl CLI cannot speak it any more; a hand-made
    # ClientHello (version 3.0, SSLv3 suites) must get an alert, not a
    # ServerHello.
    got=$(timeout 10 python3 "$PROBE" "$PORT" sslv3 2>&1 || true)
    case "$got" in
    alert\ 2\ *) pass "$label: SSLv3 ClientHello refused ($got)" ;;
    *) fail "$label: SSLv3 ClientHello answered: $got" ;;
    esac

    # TLS 1.0 and 1.1 with every suite openssl has offered at once: the
    # server picks from what is offered, so a version refused with all of
    # them is refused with any one.
    local v
    for v in tls1 tls1_1; do
        out=$(client "-$v" -cipher 'ALL:COMPLEMENTOFALL:@SECLEVEL=0')
        got=$(negotiated "$out")
        if [ -z "$got" ]; then
            pass "$label: -$v with every suite refused ($(grep -o 'alert [a-z ]*' <<<"$out" | head -n 1))"
        else
            fail "$label: -$v accepted: $got"
        fi
    done

    # TLS 1.2, one suite at a time.
    while read -r name kx au mac; do
        out=$(client -tls1_2 -cipher "$name:@SECLEVEL=0")
        got=$(negotiated "$out")
        [ -n "$got" ] || continue
        accepted12+=("$name")
        if [ "$got" != "TLSv1.2 $name" ]; then
            fail "$label: offered $name alone, got $got"
            bad=1
        fi
        if [ "$mac" != Mac=AEAD ] || { [ "$kx" != Kx=ECDH ] && [ "$kx" != Kx=DH ]; } ||
            [ "$au" = Au=None ] || [ "$au" = Au=PSK ]; then
            fail "$label: TLS 1.2 suite $name accepted: $kx $au $mac (not AEAD with forward secrecy)"
            bad=1
        fi
        if ! grep -q '^Compression: NONE$' <<<"$out"; then
            fail "$label: $name: $(grep '^Compression' <<<"$out" || echo 'no Compression line')"
            bad=1
        fi
    done <"$WORK/suites12"

    # TLS 1.3, one suite at a time (all five are AEAD; which are taken).
    for s in $TLS13_SUITES; do
        out=$(client -tls1_3 -ciphersuites "$s")
        got=$(negotiated "$out")
        [ -n "$got" ] || continue
        accepted13+=("$s")
        [ "$got" = "TLSv1.3 $s" ] || {
            fail "$label: offered $s alone, got $got"
            bad=1
        }
        grep -q '^Compression: NONE$' <<<"$out" || {
            fail "$label: $s: compression"
            bad=1
        }
    done

    echo "$label: TLS 1.2 suites accepted (${#accepted12[@]}): ${accepted12[*]:-none}"
    echo "$label: TLS 1.3 suites accepted (${#accepted13[@]}): ${accepted13[*]:-none}"
    if [ "${#accepted12[@]}" -gt 0 ]; then
        pass "$label: TLS 1.2 accepted"
    else
        fail "$label: TLS 1.2 not accepted"
    fi
    if [ "${#accepted13[@]}" -gt 0 ]; then
        pass "$label: TLS 1.3 accepted"
    else
        fail "$label: TLS 1.3 not accepted"
    fi
    if [ "$bad" -eq 0 ]; then
        pass "$label: every accepted suite is AEAD with forward secrecy, no compression"
    fi
    # What tls_ctx.c lists: the three TLS 1.3 suites, and GCM / ChaCha20
    # with the certificate's signature kind (AES-128, AES-256, ChaCha20).
    local want13="TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256"
    if [ "${accepted13[*]:-}" = "$want13" ]; then
        pass "$label: TLS 1.3 suites are the listed three"
    else
        fail "$label: TLS 1.3 suites: ${accepted13[*]:-none}, want $want13"
    fi
    if [ "${#accepted12[@]}" -eq 3 ]; then
        pass "$label: three TLS 1.2 suites for this certificate"
    else
        fail "$label: ${#accepted12[@]} TLS 1.2 suites, want 3"
    fi
}

# groups LABEL VERSION WANT...: key exchange with each group openssl has
# offered alone; the accepted ones must be WANT.
groups() {
    local label=$1 v=$2 g out accepted=()
    shift 2
    for g in X25519 P-256 P-384 P-521 X448 secp256k1 secp224r1 prime192v1 brainpoolP256r1 brainpoolP384r1 \
        brainpoolP512r1 ffdhe2048 ffdhe3072 ffdhe4096; do
        out=$(client "-$v" -groups "$g")
        [ -n "$(negotiated "$out")" ] && accepted+=("$g")
    done
    echo "$label: -$v groups accepted: ${accepted[*]:-none}"
    if [ "${accepted[*]:-}" = "$*" ]; then
        pass "$label: -$v groups are $*"
    else
        fail "$label: -$v groups ${accepted[*]:-none}, want $*"
    fi
}

# compression LABEL: a ClientHello offering DEFLATE before null.
compression() {
    local label=$1 got
    got=$(timeout 10 python3 "$PROBE" "$PORT" compress 2>&1 || true)
    # "hello VERSION SUITE COMPRESSION EXTENSIONS"
    if [[ "$got" =~ ^hello\ 0303\ [0-9a-f]{4}\ 0\  ]]; then
        pass "$label: DEFLATE offered first, null compression chosen ($got)"
    else
        fail "$label: DEFLATE offered first: $got"
    fi
    got=$(timeout 10 python3 "$PROBE" "$PORT" compress-only 2>&1 || true)
    case "$got" in
    alert\ 2\ *) pass "$label: DEFLATE alone refused ($got)" ;;
    *) fail "$label: DEFLATE alone: $got" ;;
    esac
}

# renegotiation LABEL: s_client's "R" once the TLS 1.2 handshake is done.
# A Python driver feeds the "R" after s_client printed the session (no
# sleep), then reads until s_client exits (timeout 5 s caps it).
renegotiation() {
    local label=$1 out
    out=$(timeout 20 python3 - "$PORT" <<'PY' 2>&1 || true
import os, select, subprocess, sys, time
p = subprocess.Popen(["timeout", "5", "openssl", "s_client", "-connect", "127.0.0.1:" + sys.argv[1],
                      "-servername", "localhost", "-tls1_2", "-msg"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
out, sent, deadline = b"", False, time.monotonic() + 10
while time.monotonic() < deadline:
    if not sent and b"Verify return code" in out.split(b"SSL-Session:")[-1] and b"SSL-Session:" in out:
        p.stdin.write(b"R\n")
        p.stdin.flush()
        sent = True
        out += b"\n=== R sent\n"
    r, _, _ = select.select([p.stdout], [], [], 1)
    if r:
        d = os.read(p.stdout.fileno(), 65536)
        if not d:
            break
        out += d
p.stdin.close()
p.wait()
sys.stdout.write(out.decode(errors="replace"))
PY
)
    local before after
    before=${out%%=== R sent*}
    if [ "$before" = "$out" ]; then
        fail "$label: renegotiation: the first handshake did not complete: $(tail -n 3 <<<"$out")"
        return
    fi
    after=${out#*=== R sent}
    if grep -q '^Secure Renegotiation IS supported$' <<<"$before"; then
        echo "$label: the ServerHello carries renegotiation_info: s_client says \"Secure Renegotiation IS supported\""
    else
        echo "$label: s_client says: $(grep 'Renegotiation' <<<"$before" || echo 'nothing about renegotiation')"
    fi
    local alert
    alert=$(grep -oE '<<< TLS 1.2, Alert \[length 0002\], fatal [a-z_]+' <<<"$after" | head -n 1 || true)
    if grep -q 'ServerHello' <<<"$after"; then
        fail "$label: renegotiation: a second ServerHello: the server renegotiated"
    elif [ -n "$alert" ] && grep -q '^RENEGOTIATING$' <<<"$after"; then
        pass "$label: client renegotiation refused: ${alert#<<< }, no second ServerHello"
    else
        fail "$label: renegotiation: no fatal alert after R: $(tail -n 5 <<<"$after")"
    fi
}

# --- defaults: the ephemeral ECDSA P-256 certificate ----------------------------
start default
scan default
groups default tls1_3 X25519 P-256 P-384
compression default
renegotiation default
stop

# --- an RSA certificate (the user's --cert/--key) -----------------------------
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/rsa_key.pem" -out "$WORK/rsa_cert.pem" -days 2 \
    -subj /CN=localhost >/dev/null 2>&1
start rsa --cert "$WORK/rsa_cert.pem" --key "$WORK/rsa_key.pem"
scan rsa
# TLS 1.2 group choice is seen with RSA: an ECDSA P-256 certificate would
# make the client insist on P-256 (RFC 4492 curves apply to it too).
# P-521 too in TLS 1.2: the curve list tls_ctx.c sets keeps it for P-521
# certificates.
groups rsa tls1_2 X25519 P-256 P-384 P-521
groups rsa tls1_3 X25519 P-256 P-384
renegotiation rsa
stop

# --- no command-line way to choose suites -------------------------------------
rc=0
err=$(timeout 10 "$BIN" --ciphers AES128-SHA 2>&1 >/dev/null) || rc=$?
if [ "$rc" -eq 2 ] && grep -q "unknown option '--ciphers'" <<<"$err"; then
    pass "--ciphers is refused (exit 2, unknown option): suites are not configurable"
else
    fail "--ciphers: exit $rc: $(head -n 1 <<<"$err")"
fi

summary
