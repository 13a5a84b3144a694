#!/usr/bin/env bash
# tests/test_seccomp_profile.sh: docs/seccomp/atoll.json allows every system
# call atoll-serve makes.
#
# Usage: test_seccomp_profile.sh PATH/TO/atoll-serve PATH/TO/docs/seccomp/atoll.json
#
# Checks the profile's structure (valid JSON, default action SCMP_ACT_ERRNO
# with errno 1, an allow-list naming io_uring_setup, io_uring_enter and
# io_uring_register), then runs atoll-serve under `strace -f -qq -o` with an
# ephemeral certificate, two isolates and the admin port, sends it a few
# TLS requests with curl, a SIGUSR1, the admin calls (stats, add an isolate,
# pause, resume, retire it) and SIGTERM (drain, exit 0), and fails naming
# any system call of the trace the profile does not allow. The server's
# "listening on" line is read from a FIFO: no sleeps. The work io_uring does
# in the kernel (accept, recv, send, close, ...) makes no system call and
# is not in the trace: only io_uring_enter is.
set -euo pipefail

BIN=${1:?usage: $0 PATH/TO/atoll-serve PATH/TO/atoll.json}
PROFILE=${2:?usage: $0 PATH/TO/atoll-serve PATH/TO/atoll.json}

for tool in strace curl python3 timeout; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "FAIL: $tool is required (scripts/deps.sh installs it)"
		exit 1
	fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/atoll-seccomp-test.XXXXXX")
TPID="" # the `timeout` wrapping strace and the server
cleanup() {
	if [[ -n $TPID ]]; then
		kill -KILL "$TPID" 2>/dev/null || true
		wait "$TPID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# 1. The profile: JSON of the expected shape.
python3 - "$PROFILE" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    p = json.load(f)
errors = []
if p.get("defaultAction") != "SCMP_ACT_ERRNO":
    errors.append("defaultAction is not SCMP_ACT_ERRNO")
if p.get("defaultErrnoRet") != 1:
    errors.append("defaultErrnoRet is not 1 (EPERM)")
if "SCMP_ARCH_X86_64" not in p.get("architectures", []):
    errors.append("architectures does not name SCMP_ARCH_X86_64")
rules = p.get("syscalls")
if not isinstance(rules, list) or not rules:
    errors.append("no syscalls list")
    rules = []
names = []
for r in rules:
    if not isinstance(r, dict) or r.get("action") != "SCMP_ACT_ALLOW" or not isinstance(r.get("names"), list):
        errors.append("a rule that is not {names: [...], action: SCMP_ACT_ALLOW}: %r" % (r,))
        continue
    if set(r) - {"names", "action", "comment"}:
        errors.append("a rule with conditions or unknown keys: %r" % (r,))
    names += r["names"]
dups = sorted({n for n in names if names.count(n) > 1})
if dups:
    errors.append("names listed twice: " + " ".join(dups))
for n in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
    if n not in names:
        errors.append(n + " is not allowed")
if errors:
    print("FAIL: " + path + ": " + "; ".join(errors))
    sys.exit(1)
print("PASS: %s: valid, %d system calls allowed, the rest EPERM" % (path, len(names)))
PY

# 2. atoll-serve under strace.
mkfifo "$WORK/out.fifo"
timeout -k 5 60 strace -f -qq -o "$WORK/trace" "$BIN" --isolates 2 --port 0 --admin 0 \
	--write-cert "$WORK/cert.pem" >"$WORK/out.fifo" 2>"$WORK/err" &
TPID=$!
exec {fd}<"$WORK/out.fifo"
line="" admin=""
IFS= read -r -t 30 -u "$fd" line || true
IFS= read -r -t 30 -u "$fd" admin || true
port=$(sed -nE 's/^listening on 127\.0\.0\.1:([0-9]+) isolates=2$/\1/p' <<<"$line")
admin=$(sed -nE 's/^admin on 127\.0\.0\.1:([0-9]+)$/\1/p' <<<"$admin")
if [[ -z $port || -z $admin ]]; then
	echo "FAIL: atoll-serve under strace did not start: '$line' $(head -3 "$WORK/err")"
	exit 1
fi
cat <&"$fd" >"$WORK/out" &
CAT=$!
exec {fd}<&-
# The server: the traced process (strace's child), found by its name.
spid=$(pgrep -x atoll-serve -P "$(pgrep -x strace -P "$TPID" || true)" || true)
if [[ -z $spid ]]; then
	echo "FAIL: atoll-serve printed its listening line but its process was not found under strace"
	exit 1
fi

fail=0
for path in / /bytes/100000 /missing; do
	curl -sS --max-time 10 --cacert "$WORK/cert.pem" "https://localhost:$port$path" -o /dev/null || fail=1
done
kill -USR1 "$spid"
for req in "GET /stats" "POST /isolates" "POST /isolates/0/pause" "POST /isolates/0/resume" "DELETE /isolates/2"; do
	curl -sS --max-time 10 -X "${req% *}" "http://127.0.0.1:$admin${req#* }" -o /dev/null || fail=1
done
curl -sS --max-time 10 --cacert "$WORK/cert.pem" "https://localhost:$port/" -o /dev/null || fail=1
kill -TERM "$spid"
rc=0
wait "$TPID" || rc=$?
TPID=""
wait "$CAT" || true
if [[ $fail -ne 0 || $rc -ne 0 ]]; then
	echo "FAIL: a request failed or atoll-serve exited $rc: $(head -3 "$WORK/err")"
	exit 1
fi
echo "PASS: atoll-serve served TLS and admin requests under strace and exited 0 on SIGTERM" \
	"($(grep -c '^{"isolates"' "$WORK/out") counter lines)"

# 3. Every system call of the trace, against the profile. strace -f writes
# "PID name(args) = ret", "PID name(args <unfinished ...>" and
# "PID <... name resumed>...": the name is the first word either way.
python3 - "$PROFILE" "$WORK/trace" <<'PY'
import collections, json, re, sys
profile, trace = sys.argv[1], sys.argv[2]
with open(profile) as f:
    allowed = {n for r in json.load(f)["syscalls"] for n in r["names"]}
call = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z_][a-z0-9_]*)(?:\(| resumed>)")
seen = collections.Counter()
with open(trace) as f:
    for line in f:
        m = call.match(line)
        if m:
            seen[m.group(1)] += 1
if "io_uring_enter" not in seen or "execve" not in seen:
    print("FAIL: the trace holds no io_uring_enter or no execve: not a trace of atoll-serve?")
    sys.exit(1)
missing = sorted(n for n in seen if n not in allowed)
if missing:
    print("FAIL: system calls atoll-serve made that %s does not allow: %s"
          % (profile, " ".join("%s (%d)" % (n, seen[n]) for n in missing)))
    sys.exit(1)
print("PASS: all %d system calls atoll-serve made (%d calls) are allowed: %s"
      % (len(seen), sum(seen.values()), " ".join(sorted(seen))))
PY
