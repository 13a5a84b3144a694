#!/usr/bin/env bash
# run.sh - run load scenarios with atoll-load against one atoll-serve and
# write a report (Markdown, JSON, gnuplot PNGs).
#
# Usage: scripts/load/run.sh [options] SCENARIO...
#   SCENARIO            handshake | rr | bulk | idle | churn (in the order given)
#   --isolates N        server isolates (default: online CPUs)   env LOAD_ISOLATES
#   --duration S        seconds per scenario (default 5)         env LOAD_DURATION
#   --connections N     client connections (default 16)          env LOAD_CONNECTIONS
#   --size BYTES        bulk response size (default 16777216)    env LOAD_SIZE
#   --client-isolates N atoll-load --isolates (default: its own) env LOAD_CLIENT_ISOLATES
#   --out DIR           report directory                         env LOAD_OUT
#                       (default build/load-report/<timestamp>)
#   --bin DIR           where atoll-serve and atoll-load are     env LOAD_BIN
#                       (default build/release/tools)
#   -h, --help          this text
# Exit status: 0 all scenarios passed; 3 the report is written but a scenario
# failed (or the server died); 1 the server could not start or a tool is
# missing; 2 bad command line.
set -euo pipefail

prog=run.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd "$load_repo"

usage() { sed -n '2,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
usage_error() {
	printf '%s: %s\n\n' "$prog" "$*" >&2
	usage >&2
	exit 2
}

isolates=${LOAD_ISOLATES:-$(online_cpus)}
duration=${LOAD_DURATION:-5}
connections=${LOAD_CONNECTIONS:-16}
size=${LOAD_SIZE:-16777216}
client_isolates=${LOAD_CLIENT_ISOLATES:-}
out=${LOAD_OUT:-}
bin=${LOAD_BIN:-build/release/tools}
scenarios=()

while (($#)); do
	arg=$1
	shift
	val=
	case $arg in
	--*=*)
		val=${arg#*=}
		arg=${arg%%=*}
		;;
	--isolates | --duration | --connections | --size | --client-isolates | --out | --bin)
		(($#)) || usage_error "$arg needs a value"
		val=$1
		shift
		;;
	esac
	case $arg in
	--isolates) isolates=$val ;;
	--duration) duration=$val ;;
	--connections) connections=$val ;;
	--size) size=$val ;;
	--client-isolates) client_isolates=$val ;;
	--out) out=$val ;;
	--bin) bin=$val ;;
	-h | --help)
		usage
		exit 0
		;;
	-*) usage_error "unknown option: $arg" ;;
	*)
		valid_scenario "$arg" || usage_error "unknown scenario: $arg"
		plain_scenario "$arg" && usage_error "$arg: cleartext scenarios are compare.sh's only"
		scenarios+=("$arg")
		;;
	esac
done
((${#scenarios[@]})) || usage_error "no scenario given"
if ! is_uint "$isolates" || ((isolates == 0)); then
	usage_error "--isolates: '$isolates' is not a positive integer"
fi
if ! is_uint "$connections" || ((connections == 0)); then
	usage_error "--connections: '$connections' is not a positive integer"
fi
is_uint "$size" || usage_error "--size: '$size' is not a byte count"
is_pos_number "$duration" || usage_error "--duration: '$duration' is not a positive number of seconds"
if [[ -n $client_isolates ]] && { ! is_uint "$client_isolates" || ((client_isolates == 0)); }; then
	usage_error "--client-isolates: '$client_isolates' is not a positive integer"
fi

serve=$bin/atoll-serve
load=$bin/atoll-load
[[ -x $serve ]] || die "$serve not found (build first: make build)"
[[ -x $load ]] || die "$load not found (build first: make build)"
command -v python3 >/dev/null || die "python3 is needed for the report"

out=${out:-build/load-report/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd -- "$out" && pwd -P)

server_pid=
load_pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [[ -n $load_pid ]]; then
		kill -TERM "$load_pid" 2>/dev/null || true
		wait "$load_pid" 2>/dev/null || true
	fi
	if [[ -n $server_pid ]]; then
		stop_pid "$server_pid" 10 || true
	fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Budget for one atoll-load run: its duration plus room for connecting and
# draining; after that it is stopped (timeout sends TERM, then KILL).
run_budget=$(($(ceil_int "$duration") + 30))

# ---------------------------------------------------------------- server
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
cert=$out/server-cert.pem
log "starting $serve --isolates $isolates (report: $out)"
"$serve" --address 127.0.0.1 --port 0 --isolates "$isolates" --write-cert "$cert" \
	>"$out/server.stdout" 2>"$out/server.stderr" &
server_pid=$!
if ! port=$(wait_listening "$server_pid" "$out/server.stdout" 10); then
	if kill -0 "$server_pid" 2>/dev/null; then
		why='no "listening on" line within 10 s'
	else
		server_rc=0
		wait "$server_pid" 2>/dev/null || server_rc=$?
		why="it exited with status $server_rc before listening"
	fi
	warn "atoll-serve could not start: $why; its stderr:"
	sed 's/^/  /' "$out/server.stderr" >&2 || true
	{
		printf '# atoll load report\n\nThe server could not start: %s.\n\n' "$why"
		printf '```\n'
		cat "$out/server.stderr" 2>/dev/null || true
		printf '```\n'
	} >"$out/report.md"
	exit 1
fi
log "atoll-serve pid $server_pid listening on 127.0.0.1:$port"
grep -m1 '^listening on ' "$out/server.stdout" >"$out/server-listening.txt"

# -------------------------------------------------------------- scenarios
failed=0
for scen in "${scenarios[@]}"; do
	dir=$out/$scen
	mkdir -p "$dir"
	rm -f "$dir"/*
	if ! kill -0 "$server_pid" 2>/dev/null; then
		printf 'status=server-gone\nrc=\ncmd=\nelapsed=0\n' >"$dir/meta.txt"
		failed=1
		continue
	fi
	snapshot "$server_pid" "$out/server.stdout" "$dir/server-before.json" ||
		warn "$scen: no counters from the server before the run"

	mapfile -t extra < <(scenario_args "$scen" "$size")
	cmd=("$load" --target "127.0.0.1:$port" --scenario "$scen" --connections "$connections"
		--duration "$duration" --cafile "$cert" --json "$dir/load.json" --progress "${extra[@]}")
	[[ -z $client_isolates ]] || cmd+=(--isolates "$client_isolates")
	log "$scen: ${cmd[*]}"
	c0=$(cpu_ticks "$server_pid")
	m0=$(machine_busy_ticks)
	t0=$(date +%s.%N)
	timeout -k 5 "$run_budget" "${cmd[@]}" >"$dir/load.stdout" 2>"$dir/load.stderr" &
	load_pid=$!
	rc=0
	wait "$load_pid" || rc=$?
	load_pid=
	t1=$(date +%s.%N)
	m1=$(machine_busy_ticks)
	c1=$(cpu_ticks "$server_pid")

	snapshot "$server_pid" "$out/server.stdout" "$dir/server-after.json" ||
		warn "$scen: no counters from the server after the run"
	status=ok
	if ((rc == 124 || rc == 137)); then
		status="timeout after ${run_budget}s"
	elif ((rc != 0)); then
		status="failed (exit $rc)"
	elif [[ ! -s $dir/load.json ]]; then
		status="failed (no --json output)"
	fi
	[[ $status == ok ]] || {
		failed=1
		warn "$scen: $status; see $dir/load.stderr"
	}
	{
		printf 'status=%s\nrc=%s\n' "$status" "$rc"
		printf 'cmd=%s\n' "${cmd[*]}"
		printf 'elapsed=%s\n' "$(python3 -c "print(round($t1 - $t0, 3))")"
		printf 'server_ticks=%s\nmachine_ticks=%s\nclk_tck=%s\n' "$((c1 - c0))" "$((m1 - m0))" "$(clk_tck)"
	} >"$dir/meta.txt"
	samples=$(progress_series "$dir/load.stderr" "$dir/timeseries.dat") || samples=0
	log "$scen: $status, $samples progress samples"
done

# ------------------------------------------------------------------ stop
server_rc=
if kill -0 "$server_pid" 2>/dev/null; then
	before_final=$(json_lines "$out/server.stdout")
	stop_pid "$server_pid" 15 || true
	server_rc=0
	wait "$server_pid" 2>/dev/null || server_rc=$?
	if (($(json_lines "$out/server.stdout") > before_final)); then
		grep '^{' "$out/server.stdout" | tail -n 1 >"$out/server-final.json"
	else
		warn "the server printed no final counters"
		failed=1
	fi
else
	server_rc=0
	wait "$server_pid" 2>/dev/null || server_rc=$?
	warn "the server exited before the end (exit $server_rc)"
	failed=1
fi
server_pid=

# ---------------------------------------------------------------- report
printf '%s\n' "${scenarios[@]}" >"$out/scenarios.txt"
python3 - "$out" "$isolates" "$connections" "$duration" "$size" "$(git_desc)" "$server_rc" \
	"${client_isolates:-default}" "$loadavg" <<'PY'
import json, math, os, platform, sys, time

out, isolates, conns, duration, size, commit, server_rc, client_isolates, loadavg = sys.argv[1:10]
scenarios = open(os.path.join(out, "scenarios.txt")).read().split()

def load_json(path):
    try:
        with open(path) as f:
            return json.loads(f.read().strip() or "null")
    except (OSError, ValueError):
        return None

def meta(path):
    d = {}
    try:
        for line in open(path):
            k, _, v = line.rstrip("\n").partition("=")
            d[k] = v
    except OSError:
        pass
    return d

def isolates_of(snap):
    return {i["id"]: i for i in (snap or {}).get("isolates", [])} if snap else {}

KEYS = ("accepted", "handshakes", "handshake_errors", "bytes_in", "bytes_out")

def delta(before, after):
    b, a = isolates_of(before), isolates_of(after)
    if not a:
        return None
    return [dict(id=i, **{k: a[i].get(k, 0) - b.get(i, {}).get(k, 0) for k in KEYS}) for i in sorted(a)]

def spread(rows, key):
    vals = [r[key] for r in rows]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    return {"min": lo, "max": hi, "ratio": (hi / lo) if lo > 0 else (None if hi > 0 else 1.0)}

def fmt(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isinf(v) or math.isnan(v):
            return "–"
        return f"{v:,.{nd}f}"
    return f"{v:,}"

def series(path):
    rows = []
    try:
        for line in open(path):
            if line.startswith("#") or not line.strip():
                continue
            t, r = line.split()[:2]
            rows.append([float(t), float(r)])
    except (OSError, ValueError):
        pass
    return rows

report = {
    "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "host": {"cpus": os.cpu_count(), "kernel": platform.release(), "machine": platform.machine()},
    "commit": commit,
    "load_average_at_start": loadavg,
    "config": {"isolates": int(isolates), "connections": int(conns), "duration_s": float(duration),
               "bulk_size": int(size), "client_isolates": client_isolates, "address": "127.0.0.1"},
    "server": {"listening": (open(os.path.join(out, "server-listening.txt")).read().strip()
                             if os.path.exists(os.path.join(out, "server-listening.txt")) else None),
               "exit": int(server_rc) if server_rc not in ("", None) else None,
               "final": load_json(os.path.join(out, "server-final.json"))},
    "scenarios": [],
}
notes = []
for s in scenarios:
    d = os.path.join(out, s)
    m = meta(os.path.join(d, "meta.txt"))
    before = load_json(os.path.join(d, "server-before.json"))
    after = load_json(os.path.join(d, "server-after.json"))
    per_iso = delta(before, after)
    ts = series(os.path.join(d, "timeseries.dat"))
    rec = {"name": s, "status": m.get("status", "not run"), "exit": m.get("rc"), "command": m.get("cmd"),
           "elapsed_s": float(m["elapsed"]) if m.get("elapsed") else None,
           "server_cpu_s": int(m["server_ticks"]) / int(m["clk_tck"]) if m.get("server_ticks") else None,
           "machine_cpu_s": int(m["machine_ticks"]) / int(m["clk_tck"]) if m.get("machine_ticks") else None,
           "load": load_json(os.path.join(d, "load.json")),
           "server_before": before, "server_after": after, "server_delta": per_iso,
           "spread": {k: spread(per_iso, k) for k in ("accepted", "handshakes")} if per_iso else None,
           "timeseries": ts}
    try:
        tail = open(os.path.join(d, "load.stderr"), errors="replace").read().splitlines()
    except OSError:
        tail = []
    rec["stderr_tail"] = [l for l in tail if l.strip()][-5:]
    if rec["status"] != "ok":
        notes.append(f"**{s}**: {rec['status']}" + (f" — last stderr: `{rec['stderr_tail'][-1]}`" if rec["stderr_tail"] else ""))
    if s == "idle" and rec["load"] and "connections_held" in rec["load"]:
        notes.append(f"idle: {rec['load']['connections_held']:,} of {rec['load'].get('connections', conns)} connections held at the end.")
    if not ts and rec["status"] == "ok":
        notes.append(f"{s}: no parseable --progress lines in {s}/load.stderr; no ops/s-over-time plot.")
    report["scenarios"].append(rec)

with open(os.path.join(out, "report.json"), "w") as f:
    json.dump(report, f, indent=2)

# Data for gnuplot: latency percentiles per scenario (µs).
with open(os.path.join(out, "latency.dat"), "w") as f:
    f.write("# scenario p50 p90 p99 p999 max (us)\n")
    for r in report["scenarios"]:
        lat = (r["load"] or {}).get("latency_us") or {}
        if all(isinstance(lat.get(k), (int, float)) for k in ("p50", "p90", "p99", "p999", "max")) and lat["max"] > 0:
            f.write(f'{r["name"]} ' + " ".join(str(max(lat[k], 1)) for k in ("p50", "p90", "p99", "p999", "max")) + "\n")

L = []
c = report["config"]
L.append("# atoll load report\n")
L.append(f"- generated {report['generated']}, commit `{commit}`, {report['host']['cpus']} CPUs, "
         f"Linux {report['host']['kernel']} ({report['host']['machine']})")
L.append(f"- server: `{report['server']['listening'] or '?'}`; client: atoll-load, {c['connections']} connections, "
         f"{c['duration_s']:g} s per scenario, client isolates: {client_isolates}, bulk size {c['bulk_size']:,} B")
L.append(f"- load generator and server share the machine's CPUs (loopback only); load average at the start: {loadavg}\n")
L.append("## Results (client side, atoll-load)\n")
L.append("| scenario | status | ops | ops/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | MB/s | errors | server CPU s | machine CPU s |")
L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|")
for r in report["scenarios"]:
    j = r["load"] or {}
    lat = j.get("latency_us") or {}
    errs = j.get("errors") or {}
    etxt = ", ".join(f"{k}: {v}" for k, v in sorted(errs.items()) if v) if isinstance(errs, dict) else str(errs)
    mbs = j.get("mb_per_s")
    if mbs is None and isinstance(j.get("bytes"), (int, float)) and j.get("duration_s"):
        mbs = j["bytes"] / j["duration_s"] / 1e6
    L.append(f"| {r['name']} | {r['status']} | {fmt(j.get('ops'))} | {fmt(j.get('ops_per_s'))} | "
             + " | ".join(fmt(lat.get(k)) for k in ("p50", "p90", "p99", "p999", "max"))
             + f" | {fmt(mbs, 2)} | {etxt or ('0' if j else '–')} | {fmt(r['server_cpu_s'], 2)} | {fmt(r['machine_cpu_s'], 2)} |")
L.append("")
L.append(f"Server CPU s: the server process (all threads) during the scenario; machine CPU s: busy time of "
         f"all {report['host']['cpus']} CPUs, load generator and everything else included.\n")
L.append("## Server counters per isolate (change during each scenario)\n")
L.append("Spread = max/min over isolates (1.00 is perfectly even; – when an isolate got none).\n")
for r in report["scenarios"]:
    rows = r["server_delta"]
    L.append(f"### {r['name']}\n")
    if not rows:
        L.append("No counters (the SIGUSR1 snapshots are missing).\n")
        continue
    L.append("| isolate | accepted | handshakes | handshake errors | bytes in | bytes out |")
    L.append("|--:|--:|--:|--:|--:|--:|")
    for x in rows:
        L.append(f"| {x['id']} | " + " | ".join(fmt(x[k]) for k in KEYS) + " |")
    tot = {k: sum(x[k] for x in rows) for k in KEYS}
    L.append("| **total** | " + " | ".join(fmt(tot[k]) for k in KEYS) + " |")
    sp = r["spread"]
    parts = []
    for k in ("accepted", "handshakes"):
        v = sp[k]
        ratio = "–" if v["ratio"] is None else f"{v['ratio']:.2f}"
        parts.append(f"{k} max/min = {ratio} (min {v['min']:,}, max {v['max']:,})")
    L.append("\nSpread: " + "; ".join(parts) + "\n")
final = report["server"]["final"]
if final:
    rows = [dict(id=i["id"], **{k: i.get(k, 0) for k in KEYS}) for i in final.get("isolates", [])]
    L.append("## Server totals at exit\n")
    L.append("| isolate | accepted | handshakes | handshake errors | bytes in | bytes out |")
    L.append("|--:|--:|--:|--:|--:|--:|")
    for x in rows:
        L.append(f"| {x['id']} | " + " | ".join(fmt(x[k]) for k in KEYS) + " |")
    sa, sh = spread(rows, "accepted"), spread(rows, "handshakes")
    if sa and sh:
        f2 = lambda v: "–" if v["ratio"] is None else f"{v['ratio']:.2f}"
        L.append(f"\nSpread over the whole run: accepted max/min = {f2(sa)}, handshakes max/min = {f2(sh)}\n")
else:
    notes.append("The server printed no final counters (it died or was killed).")
if report["server"]["exit"] not in (0, None):
    notes.append(f"atoll-serve exited with status {report['server']['exit']}.")
L.append("## Plots\n")
plots = []
for r in report["scenarios"]:
    if r["timeseries"]:
        plots.append(f"- ops/s over time, {r['name']}: `{r['name']}-ops.png`")
if os.path.getsize(os.path.join(out, "latency.dat")) > 60:
    plots.append("- latency percentiles per scenario: `latency.png`")
L.append("\n".join(plots) if plots else "None (no data).")
L.append("")
if notes:
    L.append("## Notes\n")
    L.extend(f"- {n}" for n in notes)
    L.append("")
L.append(f"Raw data: `report.json`; per scenario: `<scenario>/load.json`, `load.stderr`, SIGUSR1 snapshots.  \nDirectory: `{out}`")
with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(L) + "\n")
PY

# ----------------------------------------------------------------- plots
if command -v gnuplot >/dev/null; then
	gp_dir=$load_repo/scripts/load
	for scen in "${scenarios[@]}"; do
		dat=$out/$scen/timeseries.dat
		if [[ -s $dat ]] && (($(grep -vc '^#' "$dat" || true) > 0)); then
			y2=
			case $scen in
			bulk) y2="; y2col=3; y2label='MB/s'" ;;
			idle) y2="; y2col=4; y2label='open connections'" ;;
			esac
			gnuplot -e "datafile='$dat'; outfile='$out/$scen-ops.png'; plottitle='$scen: ops/s over time ($isolates isolates, $connections connections)'; xmax=$duration$y2" \
				"$gp_dir/timeseries.gp" 2>>"$out/gnuplot.log" || warn "gnuplot failed for $scen (see gnuplot.log)"
		fi
	done
	if (($(grep -vc '^#' "$out/latency.dat" || true) > 0)); then
		gnuplot -e "datafile='$out/latency.dat'; outfile='$out/latency.png'; plottitle='atoll-load latency percentiles ($isolates isolates, $connections connections)'" \
			"$gp_dir/latency.gp" 2>>"$out/gnuplot.log" || warn "gnuplot failed for the latency chart (see gnuplot.log)"
	fi
else
	warn "gnuplot not found: no plots"
fi

cat "$out/report.md"
log "report: $out/report.md"
((failed == 0)) || exit 3
exit 0
