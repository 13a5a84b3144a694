#!/usr/bin/env bash
# tests/test_atoll_hsbench.sh: the command-line contract of tools/atoll-hsbench.
#
# Usage: test_atoll_hsbench.sh PATH/TO/atoll-hsbench
#
# Runs 20 handshakes with --json (bounded by `timeout`) and checks: exit 0,
# every contract line on stdout, TLS 1.3 cipher and X25519, rates above 0,
# a JSON object with every key and the same handshake count; then bad
# command lines -> exit 2 with the usage and nothing on stdout. No timing
# assertions. Last line: "N passed, N failed"; non-zero exit on any failure.
set -u

# shellcheck source=tests/check.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/check.sh"

BIN=${1:?usage: $0 PATH/TO/atoll-hsbench}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/atoll-hsbench-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

for tool in python3 timeout; do
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

# ---------------------------------------------------------------------------
# 1. A short run: the output lines and the JSON object.
OUT=$WORK/run.out
timeout 60 "$BIN" --handshakes 20 --json "$WORK/run.json" >"$OUT" 2>"$WORK/run.err"
RC=$?
check "--handshakes 20 --json exits 0 (rc $RC: $(head -1 "$WORK/run.err"))" [ "$RC" -eq 0 ]
cat "$OUT"

has_line() { grep -Eq "$1" "$OUT"; }
check "handshakes line" has_line '^handshakes 20$'
check "server cpu-s line" has_line '^server cpu-s [0-9]+\.[0-9]{3}$'
check "server rate line, > 0" has_line '^server handshakes per cpu-s ([1-9][0-9]*|0)\.[0-9]$'
check "total rate line" has_line '^total handshakes per cpu-s [0-9]+\.[0-9]$'
check "wolfssl line" has_line '^wolfssl [0-9][0-9.]* (optimized|system)$'
check "cipher line: a TLS 1.3 suite" has_line '^cipher TLS13-'
check "group line: X25519" has_line '^group X25519$'
rate=$(sed -n 's/^server handshakes per cpu-s //p' "$OUT")
check "server rate > 0 ($rate)" python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)' "${rate:-0}"
total=$(sed -n 's/^total handshakes per cpu-s //p' "$OUT")
check "total rate > 0 ($total)" python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)' "${total:-0}"

check "JSON has every key, the same count and rate, rates > 0" python3 - "$WORK/run.json" "${rate:-x}" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
keys = ["handshakes", "server_cpu_s", "server_handshakes_per_cpu_s", "total_handshakes_per_cpu_s",
        "wolfssl_version", "wolfssl_build", "cipher", "group"]
missing = [k for k in keys if k not in d]
if missing:
    sys.exit("missing keys: %s" % missing)
if d["handshakes"] != 20 or d["server_handshakes_per_cpu_s"] <= 0 or d["total_handshakes_per_cpu_s"] <= 0:
    sys.exit("bad numbers: %s" % d)
if "%.1f" % d["server_handshakes_per_cpu_s"] != sys.argv[2]:
    sys.exit("JSON rate %s, text %s" % (d["server_handshakes_per_cpu_s"], sys.argv[2]))
if d["group"] != "X25519" or not d["cipher"].startswith("TLS13-") or d["wolfssl_build"] not in ("optimized", "system"):
    sys.exit("bad strings: %s" % d)
EOF

# ---------------------------------------------------------------------------
# 2. Bad command lines: exit 2, a message and the usage on stderr.
for args in "--no-such-flag" "--handshakes 0" "--handshakes x" "--seconds 0" "--cert only.pem" \
    "--handshakes 5 --seconds 1" "--json"; do
    # shellcheck disable=SC2086
    timeout 10 "$BIN" $args >"$WORK/bad.out" 2>"$WORK/bad.err"
    RC=$?
    if [ "$RC" -eq 2 ] && grep -q '^atoll-hsbench \[--handshakes N' "$WORK/bad.err" && [ ! -s "$WORK/bad.out" ]; then
        pass "bad flag '$args' -> exit 2 with usage"
    else
        fail "bad flag '$args' -> exit $RC ($(head -1 "$WORK/bad.err"))"
    fi
done

# A missing certificate file is a run-time error: exit 1, and no JSON file.
timeout 10 "$BIN" --cert "$WORK/none.pem" --key "$WORK/none.pem" --json "$WORK/none.json" >"$WORK/nf.out" \
    2>"$WORK/nf.err"
RC=$?
check "missing --cert file -> exit 1 with a message (rc $RC: $(head -1 "$WORK/nf.err"))" \
    [ "$RC" -eq 1 -a -s "$WORK/nf.err" -a ! -e "$WORK/none.json" ]

summary
