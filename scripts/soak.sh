#!/usr/bin/env bash
# soak.sh - atoll-serve under mixed load for a while, with isolates paused,
# retired and added, watched for growth: RSS, open descriptors and loop
# turns per second are sampled every --interval seconds into a data file
# and a PNG, and the run fails if RSS or descriptors grow without bound or
# a client sees an error.
#
# Usage: scripts/soak.sh [options]
#   --minutes M       how long (default 10; fractions allowed: CI runs 1)
#   --interval S      seconds between samples (default 10)
#   --isolates N      server isolates at start (default 2)
#   --bin DIR         atoll-serve and atoll-load (default build/release/tools)
#   --no-scaling      pause and resume only; no isolate added or retired
#   --out DIR         where the samples, the PNG and the logs go
#                     (default build/soak/<timestamp>)
#   -h, --help        this text
# Load: five atoll-load processes at once against one atoll-serve: handshake
# (2 slots), rr (4 connections), bulk (2 connections, 1 MiB responses),
# churn (2 slots) and idle (200 connections held), every one --http. Events
# through the admin port: isolate 0's member pauses and resumes every
# second; every 10 s an isolate is added and the oldest retired (never
# isolate 0, which keeps pausing).
# Growth: after the first third of the samples (warm-up), a least-squares
# line through RSS and through the descriptor count; the run fails when
# the line rises by more than 10% of the mean RSS (or 4 MiB, whichever is
# larger) over the measured span, or by more than 16 descriptors.
# Errors: any atoll-load error fails the run, except "closed" on the idle
# connections: a retired isolate's drain closes the idle connections it
# holds, by design (docs/reliability.md).
# Exit status: 0 steady and no error; 1 growth, a client error, an admin
# call that failed, or the server not exiting 0 after its drain; 2 bad
# command line.
set -euo pipefail

prog=soak.sh
# shellcheck source-path=SCRIPTDIR source=load/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/load/lib.sh"
cd "$load_repo"

usage() { sed -n '2,34s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
usage_error() {
	printf '%s: %s\n\n' "$prog" "$*" >&2
	usage >&2
	exit 2
}

minutes=10
interval=10
isolates=2
bin=build/release/tools
out=
scaling=1
while (($#)); do
	case $1 in
	--no-scaling)
		scaling=0
		shift
		;;
	--minutes | --interval | --isolates | --bin | --out)
		(($# >= 2)) || usage_error "$1 needs a value"
		case $1 in
		--minutes) minutes=$2 ;;
		--interval) interval=$2 ;;
		--isolates) isolates=$2 ;;
		--bin) bin=$2 ;;
		--out) out=$2 ;;
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
is_pos_number "$minutes" || usage_error "--minutes: '$minutes' is not a positive number"
is_pos_int "$interval" || usage_error "--interval: '$interval' is not a positive count"
is_pos_int "$isolates" || usage_error "--isolates: '$isolates' is not a positive count"
for t in atoll-serve atoll-load; do
	[[ -x $bin/$t ]] || die "$bin/$t not found (make build, or --bin DIR)"
done
out=${out:-build/soak/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
seconds=$(python3 -c "print(max(1, round($minutes * 60)))")

pids=()
srv_pid=
cleanup() {
	touch "$out/.stop" 2>/dev/null
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	[[ -n $srv_pid ]] && kill -KILL "$srv_pid" 2>/dev/null
	wait 2>/dev/null
	rm -f "$out/.stop"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# No idle timeout: the idle connections are held for the whole run.
"$bin/atoll-serve" --isolates "$isolates" --idle-timeout 0 --drain-timeout 10000 --admin 127.0.0.1:0 \
	--write-cert "$out/cert.pem" >"$out/serve.out" 2>"$out/serve.err" &
srv_pid=$!
port=$(wait_listening "$srv_pid" "$out/serve.out" 10) || die "atoll-serve did not start: $(cat "$out/serve.err")"
admin_port=$(wait_admin "$srv_pid" "$out/serve.out" 5) || die "atoll-serve printed no admin line"
# The event loop and the sampler call it at once: each has its own body file.
admin() { admin_call "$admin_port" "$@"; }

log "server pid $srv_pid, port $port, admin $admin_port; $seconds s of load; samples every $interval s into $out"
load() {
	local name=$1
	shift
	"$bin/atoll-load" --target "127.0.0.1:$port" --cafile "$out/cert.pem" --http --duration "$seconds" \
		--json "$out/load-$name.json" "$@" >"$out/load-$name.out" 2>"$out/load-$name.err" &
	pids+=($!)
}
load handshake --scenario handshake --connections 2
load rr --scenario rr --connections 4
load bulk --scenario bulk --connections 2 --size 1048576
load churn --scenario churn --connections 2
load idle --scenario idle --connections 200

events() {
	local t=0 failed=0 oldest=$isolates first=1
	while [[ ! -e $out/.stop ]]; do
		admin POST /isolates/0/pause || failed=$((failed + 1))
		sleep 0.5
		admin POST /isolates/0/resume || failed=$((failed + 1))
		sleep 0.5
		t=$((t + 1))
		if ((scaling && t % 10 == 0)); then
			if admin POST /isolates; then
				# The first retire takes isolate 1 (isolate 0 keeps pausing),
				# then each added one in turn.
				if ((first)); then
					admin DELETE /isolates/1 || failed=$((failed + 1))
					first=0
				else
					admin DELETE "/isolates/$oldest" || failed=$((failed + 1))
					oldest=$((oldest + 1))
				fi
			else
				failed=$((failed + 1))
			fi
		fi
	done
	echo "$failed" >"$out/admin-failures"
}
events &
event_pid=$!

# Samples: seconds since start, RSS bytes, open descriptors, loop turns per
# second over the interval (all isolates).
printf '# t_s rss_bytes fds turns_per_s\n' >"$out/samples.dat"
turns_of() { admin GET /stats "$out/stats.json" && python3 -c "import json,sys; print(sum(i['loop_turns'] for i in json.load(open(sys.argv[1]))['isolates']))" "$out/stats.json"; }
t0=$(date +%s)
prev_turns=$(turns_of || echo 0)
prev_t=$t0
while :; do
	now=$(date +%s)
	((now - t0 >= seconds)) && break
	sleep "$interval"
	now=$(date +%s)
	rss=$(awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$srv_pid/status")
	fds=$(find "/proc/$srv_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
	turns=$(turns_of || echo "$prev_turns")
	tps=$(((turns - prev_turns) / (now - prev_t > 0 ? now - prev_t : 1)))
	printf '%d %s %s %s\n' $((now - t0)) "$rss" "$fds" "$tps" >>"$out/samples.dat"
	prev_turns=$turns
	prev_t=$now
done
touch "$out/.stop"
wait "$event_pid" || true
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()
srv_rc=0
kill -TERM "$srv_pid"
wait "$srv_pid" || srv_rc=$?
srv_pid=

if command -v gnuplot >/dev/null; then
	gnuplot <<EOF || warn "gnuplot failed; no PNG"
set terminal png size 900,600
set output "$out/soak.png"
set multiplot layout 3,1 title "atoll-serve soak: $seconds s, samples every $interval s"
set xlabel "s"
set ylabel "RSS MiB"
plot "$out/samples.dat" using 1:(\$2/1048576) with linespoints title "RSS"
set ylabel "open fds"
plot "$out/samples.dat" using 1:3 with linespoints title "descriptors"
set ylabel "turns/s"
plot "$out/samples.dat" using 1:4 with linespoints title "loop turns per second"
unset multiplot
EOF
fi

python3 - "$out" "$srv_rc" <<'PY'
import json, sys, os
out, srv_rc = sys.argv[1], int(sys.argv[2])
rows = [l.split() for l in open(os.path.join(out, "samples.dat")) if not l.startswith("#")]
rows = [(float(t), float(r), float(f), float(p)) for t, r, f, p in rows]
def slope(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den
ok = True
measured = rows[len(rows) // 3:] if len(rows) >= 3 else rows
if len(measured) >= 2:
    ts = [r[0] for r in measured]
    span = ts[-1] - ts[0]
    rss_rise = slope(ts, [r[1] for r in measured]) * span
    fd_rise = slope(ts, [r[2] for r in measured]) * span
    mean_rss = sum(r[1] for r in measured) / len(measured)
    rss_limit = max(0.10 * mean_rss, 4 * 1048576)
    print(f"soak: samples {len(rows)} (measured {len(measured)} after warm-up), RSS {rows[0][1]/1048576:.1f} -> "
          f"{rows[-1][1]/1048576:.1f} MiB, fitted rise {rss_rise/1048576:.2f} MiB (limit {rss_limit/1048576:.1f}), "
          f"fds {int(rows[0][2])} -> {int(rows[-1][2])}, fitted rise {fd_rise:.1f} (limit 16), "
          f"turns/s {min(r[3] for r in rows):.0f}..{max(r[3] for r in rows):.0f}")
    if rss_rise > rss_limit:
        print("soak: RSS grows"); ok = False
    if fd_rise > 16:
        print("soak: descriptors grow"); ok = False
else:
    print("soak: too few samples to fit (run longer than two intervals)"); ok = False
for name in ("handshake", "rr", "bulk", "churn", "idle"):
    j = json.load(open(os.path.join(out, f"load-{name}.json")))
    errs = dict(j.get("errors") or {})
    if name == "idle":
        errs.pop("closed", None)  # a retired isolate's drain closes its idle connections
    print(f"soak: {name}: ops {j['ops']}, errors {j.get('errors') or {}}")
    if any(errs.values()):
        ok = False
failures = int(open(os.path.join(out, "admin-failures")).read().strip() or 0)
print(f"soak: admin calls failed: {failures}; server exit {srv_rc}")
ok = ok and failures == 0 and srv_rc == 0
print("soak: " + ("steady" if ok else "FAILED") + f" ({out})")
sys.exit(0 if ok else 1)
PY
