#!/usr/bin/env bash
# test_compare.sh COMPARE_SH TOOLS_DIR: a short run of scripts/load/compare.sh
# (atoll-serve and atoll-load from TOOLS_DIR against a private nginx): the
# cleartext scenario plain-rr and the idle memory measurement with 50 and 200
# connections. Checks the exit status, report.json's runs, comparisons and
# idle_memory fields, report.md's memory section, that no server is left
# behind, and a bad --idle-high. About 20 s. Prints "N passed, N failed"
# last; exits 77 (skipped) without nginx, curl, openssl, ss or python3.
set -u

COMPARE=${1:?usage: test_compare.sh COMPARE_SH TOOLS_DIR}
TOOLS=${2:?usage: test_compare.sh COMPARE_SH TOOLS_DIR}
PASS=0
FAIL=0

for t in nginx curl openssl ss python3; do
    if ! command -v "$t" >/dev/null && ! [ -x "/usr/sbin/$t" ]; then
        echo "skip: $t not found"
        exit 77
    fi
done
case :$PATH: in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac

WORK=$(mktemp -d /tmp/test_compare.XXXXXX)
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok   $*"; }
ko() { FAIL=$((FAIL + 1)); echo "FAIL $*"; }

# compare.sh's temporary directory (nginx's prefix, the certificate) goes
# under $WORK, so that a server left behind can be found by its command line.
mkdir -p "$WORK/tmp"
rc=0
TMPDIR=$WORK/tmp "$COMPARE" --duration 1 --generators atoll-load --bin "$TOOLS" --out "$WORK/out" \
    --idle-low 50 --idle-high 200 handshake plain-rr idle >"$WORK/stdout" 2>"$WORK/stderr" || rc=$?
if [ "$rc" -eq 0 ]; then
    ok "compare.sh handshake plain-rr idle: exit 0"
else
    ko "compare.sh handshake plain-rr idle: exit $rc"
    tail -n 20 "$WORK/stderr"
fi

# What compare.sh started: atoll-serve and atoll-load inherit TMPDIR, nginx's
# master has the prefix under $WORK in its command line.
left=
for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] && continue
    if tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "TMPDIR=$WORK/tmp" ||
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF "$WORK/"; then
        left="$left $pid"
    fi
done
left=${left# }
if [ -z "$left" ]; then
    ok "no process left behind"
else
    ko "processes left behind: $left"
    ps -o pid,args -p "$(echo "$left" | tr ' ' ',')"
fi

python3 - "$WORK/out" <<'EOF'
import json, os, re, sys

out = sys.argv[1]
fails = 0

def check(cond, what):
    global fails
    print(("ok   " if cond else "FAIL ") + what)
    fails += 0 if cond else 1

num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
try:
    rep = json.load(open(os.path.join(out, "report.json")))
except (OSError, ValueError) as e:
    check(False, f"report.json: {e}")
    sys.exit(1)
runs = {(r["scenario"], r["server"], r["generator"]): r for r in rep.get("runs", [])}
for server in ("atoll", "nginx"):
    r = runs.get(("plain-rr", server, "atoll-load"))
    check(r is not None and r["status"] == "ok", f"plain-rr / {server}: status ok")
    res = (r or {}).get("result") or {}
    check(num(res.get("ops")) and res["ops"] > 0 and res.get("errors") == 0, f"plain-rr / {server}: ops > 0, no errors")
    check(num((r or {}).get("server_cpu_s")), f"plain-rr / {server}: server_cpu_s")
    check("--plain" in (r or {}).get("command", ""), f"plain-rr / {server}: atoll-load --plain")
    r = runs.get(("idle", server, "atoll-load"))
    check(r is not None and r["status"] == "ok", f"idle / {server}: status ok")
check(any(c["scenario"] == "plain-rr" and num(c.get("throughput_ratio")) for c in rep.get("comparisons", [])),
      "plain-rr: a throughput ratio")

im = rep.get("idle_memory")
check(isinstance(im, dict), "idle_memory is an object")
im = im or {}
for server in ("atoll", "nginx"):
    m = im.get(server) or {}
    for k in ("rss_50", "rss_200", "rss_low", "rss_high", "slope_bytes_per_conn"):
        check(num(m.get(k)), f"idle_memory.{server}.{k} is a number ({m.get(k)!r})")
    check(num(m.get("rss_50")) and m["rss_50"] > 0, f"idle_memory.{server}.rss_50 > 0")
    check(m.get("status") == "ok", f"idle_memory.{server}.status ok ({m.get('status')!r})")
    check(m.get("established") == [50, 200], f"idle_memory.{server}: 50 then 200 established")
check(num(im.get("ratio")), f"idle_memory.ratio is a number ({im.get('ratio')!r})")

hl = rep.get("handshake_limit") or {}
check(num(hl.get("in_process_server_handshakes_per_cpu_s")) and hl["in_process_server_handshakes_per_cpu_s"] > 0,
      "handshake_limit: the in-process rate")
check(num((hl.get("fractions") or {}).get("atoll-load")), "handshake_limit.fractions.atoll-load is a number")
check(hl.get("group") == "X25519", "handshake_limit: X25519")

sp = (rep.get("spread") or {}).get("handshake") or {}
check(num(sp.get("total")) and sp["total"] > 0 and len(sp.get("accepted") or []) >= 1,
      f"spread.handshake: accepted per isolate ({sp.get('accepted')!r})")

md = open(os.path.join(out, "report.md")).read()
check("## Spread over atoll's isolates" in md, "report.md: spread section")
check("## Handshakes against wolfSSL's in-process limit" in md, "report.md: handshake limit section")
check(re.search(r"^\| atoll-load \| [\d,.]+ \| [\d,.]+ \| \d+\.\d\d \|$", md, re.M) is not None,
      "report.md: handshake fraction row")
check("## Memory per idle TLS connection" in md, "report.md: memory section")
check(re.search(r"^\| server \| RSS at 50 \| RSS at 200 \| slope B/conn \|$", md, re.M) is not None, "report.md: memory table")
check(re.search(r"^idle memory slope atoll/nginx: \d+\.\d\d$", md, re.M) is not None, "report.md: ratio line")
check(re.search(r"^\| plain-rr \| atoll-load \| ops \| [\d.]+ \| [\d.]+ \|$", md, re.M) is not None, "report.md: plain-rr ratios")
sys.exit(1 if fails else 0)
EOF
n=$?
if [ "$n" -eq 0 ]; then ok "report fields"; else ko "report fields"; fi

rc=0
"$COMPARE" --idle-low 20 --idle-high 10 idle >/dev/null 2>"$WORK/bad" || rc=$?
if [ "$rc" -eq 2 ] && grep -q -- '--idle-high' "$WORK/bad"; then
    ok "--idle-high below --idle-low: exit 2"
else
    ko "--idle-high below --idle-low: exit $rc"
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
