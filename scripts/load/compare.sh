#!/usr/bin/env bash
# compare.sh - the same load scenarios against atoll-serve and nginx, driven by
# atoll-load and by independent generators (h2load, wrk), every figure also
# per second of server CPU. Writes report.md + report.json and prints report.md.
#
# Usage: scripts/load/compare.sh [options] [SCENARIO...]
#   SCENARIO            handshake | rr | bulk | churn | idle (default: handshake rr bulk)
#   --duration S        seconds per run, an integer (default 5)
#   --workers N         atoll isolates = nginx worker_processes (default: online CPUs)
#   --connections N     client connections (default 16)
#   --size BYTES        bulk response size (default 16777216)
#   --generators LIST   comma-separated subset of atoll-load,h2load,wrk (default: all)
#   --out DIR           report directory (default build/load-compare/<timestamp>)
#   --bin DIR           where atoll-serve and atoll-load are (default build/release/tools)
#   -h, --help          this text
# Generators per scenario: handshake: atoll-load, wrk (Connection: close);
# rr: atoll-load, h2load --h1, wrk; bulk: atoll-load, wrk; churn: atoll-load,
# wrk (Connection: close); idle: atoll-load.
# Exit status: 0 every run passed; 3 report written, some run failed; 1 a
# server could not be set up or a tool is missing; 2 bad command line.
set -euo pipefail

prog=compare.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd "$load_repo"

usage() { sed -n '2,21s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
usage_error() {
	printf '%s: %s\n\n' "$prog" "$*" >&2
	usage >&2
	exit 2
}

duration=5
workers=$(online_cpus)
connections=16
size=16777216
generators=atoll-load,h2load,wrk
out=
bin=build/release/tools
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
	--duration | --workers | --connections | --size | --generators | --out | --bin)
		(($#)) || usage_error "$arg needs a value"
		val=$1
		shift
		;;
	esac
	case $arg in
	--duration) duration=$val ;;
	--workers) workers=$val ;;
	--connections) connections=$val ;;
	--size) size=$val ;;
	--generators) generators=$val ;;
	--out) out=$val ;;
	--bin) bin=$val ;;
	-h | --help)
		usage
		exit 0
		;;
	-*) usage_error "unknown option: $arg" ;;
	*)
		valid_scenario "$arg" || usage_error "unknown scenario: $arg"
		scenarios+=("$arg")
		;;
	esac
done
((${#scenarios[@]})) || scenarios=(handshake rr bulk)
if ! is_uint "$duration" || ((duration == 0)); then
	usage_error "--duration: '$duration' is not a positive integer number of seconds"
fi
if ! is_uint "$workers" || ((workers == 0)); then
	usage_error "--workers: '$workers' is not a positive integer"
fi
if ! is_uint "$connections" || ((connections == 0)); then
	usage_error "--connections: '$connections' is not a positive integer"
fi
if ! is_uint "$size" || ((size == 0)); then
	usage_error "--size: '$size' is not a positive byte count"
fi
IFS=, read -r -a gen_list <<<"$generators"
for g in "${gen_list[@]}"; do
	[[ $g =~ ^(atoll-load|h2load|wrk)$ ]] || usage_error "--generators: unknown generator '$g'"
done

serve=$bin/atoll-serve
load=$bin/atoll-load
[[ -x $serve ]] || die "$serve not found (build first: make build)"
command -v nginx >/dev/null || die "nginx not found (scripts/deps.sh installs nginx-light)"
command -v openssl >/dev/null || die "openssl not found"
command -v python3 >/dev/null || die "python3 is needed for the report"
command -v curl >/dev/null || die "curl is needed to probe nginx"
nginx_bin=$(command -v nginx)

# Which generators can run.
have_gen() {
	case $1 in
	atoll-load) [[ -x $load ]] ;;
	*) command -v "$1" >/dev/null ;;
	esac
}
wanted_gen() { [[ ,$generators, == *",$1,"* ]]; }
notes=()
for g in atoll-load h2load wrk; do
	if wanted_gen "$g" && ! have_gen "$g"; then
		warn "$g not found: its runs are skipped"
		notes+=("$g not found: its runs were skipped")
	fi
done

# gens_for SCENARIO: the generators that drive it (wanted and present).
gens_for() {
	local g
	local -a all
	case $1 in
	handshake | churn) all=(atoll-load wrk) ;;
	rr) all=(atoll-load h2load wrk) ;;
	bulk) all=(atoll-load wrk) ;;
	idle) all=(atoll-load) ;;
	esac
	for g in "${all[@]}"; do
		wanted_gen "$g" && have_gen "$g" && printf '%s\n' "$g"
	done
	return 0
}

out=${out:-build/load-compare/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd -- "$out" && pwd -P)
rm -rf "$out/runs"
mkdir -p "$out/runs"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/atoll-compare.XXXXXX")
# nginx workers run as nobody: they must reach the static files.
chmod 755 "$tmp"

srv_pid=
gen_pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [[ -n $gen_pid ]]; then
		kill -TERM "$gen_pid" 2>/dev/null || true
		wait "$gen_pid" 2>/dev/null || true
	fi
	if [[ -n $srv_pid ]]; then
		stop_pid "$srv_pid" 10 || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

ulimit -n 65536 2>/dev/null || ulimit -n 16384 2>/dev/null || true

make_cert "$tmp" || die "openssl could not make the certificate"
cp "$tmp/cert.pem" "$out/cert.pem"
mkdir -p "$tmp/www/bytes"
chmod 755 "$tmp/www" "$tmp/www/bytes"
if [[ " ${scenarios[*]} " == *" bulk "* ]]; then
	head -c "$size" /dev/urandom >"$tmp/www/bytes/$size"
	chmod 644 "$tmp/www/bytes/$size"
fi

tck=$(clk_tck)
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
run_budget=$((duration + 30))

# ------------------------------------------------------------------ servers
# start_atoll RESUMPTION(on|off): sets srv_pid, srv_port.
start_atoll() {
	local -a args=(--address 127.0.0.1 --port 0 --isolates "$workers" --cert "$tmp/cert.pem" --key "$tmp/key.pem")
	[[ $1 == on ]] || args+=(--no-resumption)
	"$serve" "${args[@]}" >"$tmp/atoll.stdout" 2>"$tmp/atoll.stderr" &
	srv_pid=$!
	printf '%s\n' "$serve ${args[*]}" >"$tmp/server.cmd"
	if ! srv_port=$(wait_listening "$srv_pid" "$tmp/atoll.stdout" 10); then
		warn "atoll-serve did not start: $(tr '\n' ' ' <"$tmp/atoll.stderr")"
		stop_pid "$srv_pid" 5 || true
		srv_pid=
		return 1
	fi
}

# start_nginx RESUMPTION(on|off): a private nginx in $tmp; sets srv_pid, srv_port.
start_nginx() {
	local resumption=$1 i
	srv_port=$(free_port)
	local sess
	if [[ $resumption == on ]]; then
		sess='ssl_session_tickets on; ssl_session_cache shared:SSL:10m;'
	else
		sess='ssl_session_tickets off; ssl_session_cache off;'
	fi
	rm -rf "$tmp/nginx"
	mkdir -p "$tmp/nginx"
	cat >"$tmp/nginx/nginx.conf" <<-EOF
		# generated by scripts/load/compare.sh
		worker_processes $workers;
		pid $tmp/nginx/nginx.pid;
		error_log $tmp/nginx/error.log warn;
		worker_rlimit_nofile 65536;
		events { worker_connections 16384; }
		http {
		    access_log off;
		    client_body_temp_path $tmp/nginx/body;
		    proxy_temp_path $tmp/nginx/proxy;
		    fastcgi_temp_path $tmp/nginx/fastcgi;
		    uwsgi_temp_path $tmp/nginx/uwsgi;
		    scgi_temp_path $tmp/nginx/scgi;
		    keepalive_requests 1000000000;
		    keepalive_timeout 75s;
		    ssl_certificate $tmp/cert.pem;
		    ssl_certificate_key $tmp/key.pem;
		    ssl_protocols TLSv1.2 TLSv1.3;
		    $sess
		    server {
		        listen 127.0.0.1:$srv_port ssl reuseport;
		        location = / { default_type text/plain; return 200 "hello\n"; }
		        location /bytes/ { root $tmp/www; default_type application/octet-stream; }
		    }
		}
	EOF
	"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" -g 'daemon off;' \
		>"$tmp/nginx/stdout" 2>&1 &
	srv_pid=$!
	printf '%s\n' "nginx -p $tmp/nginx -c nginx.conf -g 'daemon off;' (worker_processes $workers, resumption $resumption)" >"$tmp/server.cmd"
	for ((i = 0; i < 100; i++)); do
		if curl -fsS --max-time 2 --cacert "$tmp/cert.pem" -o /dev/null "https://127.0.0.1:$srv_port/" 2>/dev/null; then
			# All workers up (master + N children)?
			(($(proc_tree "$srv_pid" | wc -l) > workers)) && return 0
		fi
		if ! kill -0 "$srv_pid" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	warn "nginx did not start: $(tr '\n' ' ' <"$tmp/nginx/stdout" 2>/dev/null) $(tr '\n' ' ' <"$tmp/nginx/error.log" 2>/dev/null)"
	stop_pid "$srv_pid" 5 || true
	srv_pid=
	return 1
}

stop_server() {
	[[ -n $srv_pid ]] || return 0
	stop_pid "$srv_pid" 15 || true
	srv_pid=
}

# --------------------------------------------------------------------- runs
# gen_cmd SCENARIO GENERATOR DIR: fills the array `cmd`.
gen_cmd() {
	local scen=$1 gen=$2 dir=$3 url=https://127.0.0.1:$srv_port/
	local -a extra
	[[ $scen == bulk ]] && url=https://127.0.0.1:$srv_port/bytes/$size
	case $gen in
	atoll-load)
		mapfile -t extra < <(scenario_args "$scen" "$size")
		cmd=("$load" --target "127.0.0.1:$srv_port" --scenario "$scen" --connections "$connections"
			--duration "$duration" --cafile "$tmp/cert.pem" --json "$dir/load.json" "${extra[@]}")
		;;
	h2load)
		cmd=(h2load --h1 -t 1 -c "$connections" -m 1 -D "$duration" "$url")
		;;
	wrk)
		cmd=(wrk -t1 "-c$connections" "-d${duration}s" --timeout 10s --latency)
		[[ $scen == handshake || $scen == churn ]] && cmd+=(-H 'Connection: close')
		cmd+=("$url")
		;;
	esac
}

failed=0
server_failed=0
run_one() {
	local scen=$1 server=$2 gen=$3 dir rc=0 c0 c1 m0 m1 t0 t1 status
	dir=$out/runs/$scen-$server-$gen
	mkdir -p "$dir"
	local -a cmd
	gen_cmd "$scen" "$gen" "$dir"
	log "$scen / $server / $gen: ${cmd[*]}"
	c0=$(cpu_ticks "$srv_pid")
	m0=$(machine_busy_ticks)
	t0=$(date +%s.%N)
	times >"$dir/times.before" # this shell's children: CPU of the generator once reaped
	timeout -k 5 "$run_budget" "${cmd[@]}" >"$dir/stdout" 2>"$dir/stderr" &
	gen_pid=$!
	wait "$gen_pid" || rc=$?
	gen_pid=
	times >"$dir/times.after"
	t1=$(date +%s.%N)
	m1=$(machine_busy_ticks)
	c1=$(cpu_ticks "$srv_pid")
	status=ok
	if ((rc == 124 || rc == 137)); then
		status="timeout after ${run_budget}s"
	elif ((rc != 0)); then
		status="failed (exit $rc)"
	elif ! kill -0 "$srv_pid" 2>/dev/null; then
		status="server died"
	fi
	[[ $status == ok ]] || {
		failed=1
		warn "$scen / $server / $gen: $status (see $dir/stderr)"
	}
	{
		printf 'scenario=%s\nserver=%s\ngenerator=%s\nstatus=%s\nrc=%s\n' "$scen" "$server" "$gen" "$status" "$rc"
		printf 'cmd=%s\n' "${cmd[*]}"
		printf 'server_cmd=%s\n' "$(<"$tmp/server.cmd")"
		printf 'server_ticks=%s\nmachine_ticks=%s\nclk_tck=%s\n' "$((c1 - c0))" "$((m1 - m0))" "$tck"
		printf 'wall_start=%s\nwall_end=%s\n' "$t0" "$t1"
		printf 'client_times_before=%s\nclient_times_after=%s\n' "$(tail -n 1 "$dir/times.before")" "$(tail -n 1 "$dir/times.after")"
	} >"$dir/meta.txt"
}

# record_skip SCENARIO SERVER GENERATOR REASON
record_skip() {
	local dir=$out/runs/$1-$2-$3
	mkdir -p "$dir"
	printf 'scenario=%s\nserver=%s\ngenerator=%s\nstatus=%s\n' "$1" "$2" "$3" "$4" >"$dir/meta.txt"
}

for scen in "${scenarios[@]}"; do
	mapfile -t gens < <(gens_for "$scen")
	if ((${#gens[@]} == 0)); then
		notes+=("$scen: no generator available")
		continue
	fi
	resumption=on
	[[ $scen == handshake || $scen == churn ]] && resumption=off
	for server in atoll nginx; do
		started=0
		case $server in
		atoll) start_atoll "$resumption" && started=1 ;;
		nginx) start_nginx "$resumption" && started=1 ;;
		esac
		if ((started == 0)); then
			for g in "${gens[@]}"; do record_skip "$scen" "$server" "$g" "server did not start"; done
			notes+=("$scen: $server could not be started")
			server_failed=1
			continue
		fi
		log "$scen: $server pid $srv_pid on 127.0.0.1:$srv_port (resumption $resumption)"
		for g in "${gens[@]}"; do
			if [[ -z $srv_pid ]] || ! kill -0 "$srv_pid" 2>/dev/null; then
				record_skip "$scen" "$server" "$g" "server died"
				failed=1
				continue
			fi
			run_one "$scen" "$server" "$g"
		done
		[[ $server == nginx ]] && cp "$tmp/nginx/nginx.conf" "$out/nginx-$scen.conf"
		stop_server
	done
done

# ------------------------------------------------------------------- report
printf '%s\n' "${notes[@]}" >"$out/notes.txt"
printf '%s\n' "${scenarios[@]}" >"$out/scenarios.txt"
python3 - "$out" "$workers" "$connections" "$duration" "$size" "$(git_desc)" "$(nginx -v 2>&1)" "$loadavg" <<'PY'
import glob, json, math, os, platform, re, sys, time

out, workers, conns, duration, size, commit, nginx_version, loadavg = sys.argv[1:9]
notes = [l for l in open(os.path.join(out, "notes.txt")).read().splitlines() if l.strip()]

def meta(path):
    d = {}
    for line in open(path):
        k, _, v = line.rstrip("\n").partition("=")
        d[k] = v
    return d

def read(path):
    try:
        return open(path, errors="replace").read()
    except OSError:
        return ""

UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}

def to_bytes(num, unit):
    return float(num) * UNITS.get(unit.upper(), 1)

def secs(num, unit):
    return float(num) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}.get(unit, 1)

def parse_times(s):
    # "0m1.234s 0m0.567s" -> seconds user+sys
    tot = 0.0
    for m in re.finditer(r"(\d+)m([\d.]+)s", s or ""):
        tot += int(m.group(1)) * 60 + float(m.group(2))
    return tot

def parse_atoll(d):
    try:
        j = json.load(open(os.path.join(d, "load.json")))
    except (OSError, ValueError):
        return None
    errs = j.get("errors") or {}
    nerr = sum(v for v in errs.values() if isinstance(v, (int, float))) if isinstance(errs, dict) else 0
    dur = j.get("duration_s") or 0
    b = j.get("bytes")
    return {"ops": j.get("ops"), "duration_s": dur, "ops_per_s": j.get("ops_per_s"),
            "bytes": b, "mb_per_s": (b / dur / 1e6) if (b is not None and dur) else j.get("mb_per_s"),
            "errors": nerr, "error_kinds": errs, "latency_us": j.get("latency_us")}

def parse_wrk(d):
    s = read(os.path.join(d, "stdout"))
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)([KMGT]?B) read", s)
    if not m:
        return None
    ops, dur = int(m.group(1)), secs(m.group(2), m.group(3))
    b = to_bytes(m.group(4), m.group(5))
    r = {"ops": ops, "duration_s": dur, "ops_per_s": ops / dur if dur else None, "bytes": b,
         "mb_per_s": b / dur / 1e6 if dur else None, "errors": 0, "error_kinds": {}}
    m = re.search(r"Requests/sec:\s+([\d.]+)", s)
    if m:
        r["ops_per_s"] = float(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", s)
    if m:
        for k, v in zip(("connect", "read", "write", "timeout"), m.groups()):
            if int(v):
                r["error_kinds"][k] = int(v)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", s)
    if m:
        r["error_kinds"]["non_2xx"] = int(m.group(1))
    r["errors"] = sum(r["error_kinds"].values())
    lat = {}
    for q, key in (("50", "p50"), ("90", "p90"), ("99", "p99")):
        m = re.search(r"^\s+" + q + r"(?:\.000)?%\s+([\d.]+)(us|ms|s)", s, re.M)
        if m:
            lat[key] = round(secs(m.group(1), m.group(2)) * 1e6)
    m = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", s)
    if m:
        lat["max"] = round(secs(m.group(1), m.group(2)) * 1e6)
    if lat:
        r["latency_us"] = lat
    return r

def parse_h2load(d):
    s = read(os.path.join(d, "stdout"))
    m = re.search(r"finished in ([\d.]+)(us|ms|s|m|h), ([\d.]+) req/s", s)
    m2 = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", s)
    if not (m and m2):
        return None
    dur = secs(m.group(1), m.group(2))
    ok = int(m2.group(4))
    r = {"ops": ok, "duration_s": dur, "ops_per_s": ok / dur if dur else float(m.group(3)),
         "errors": int(m2.group(5)) + int(m2.group(7)), "error_kinds": {}}
    for k, v in zip(("failed", "errored", "timeout"), (m2.group(5), m2.group(6), m2.group(7))):
        if int(v):
            r["error_kinds"][k] = int(v)
    m = re.search(r"traffic: [\d.]+[KMGT]?B \((\d+)\) total", s)
    if m:
        r["bytes"] = int(m.group(1))
        r["mb_per_s"] = r["bytes"] / dur / 1e6 if dur else None
    m = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", s)
    if m:
        r["latency_us"] = {"min": round(secs(m.group(1), m.group(2)) * 1e6),
                           "max": round(secs(m.group(3), m.group(4)) * 1e6),
                           "mean": round(secs(m.group(5), m.group(6)) * 1e6)}
    return r

PARSERS = {"atoll-load": parse_atoll, "wrk": parse_wrk, "h2load": parse_h2load}
runs = []
for d in sorted(glob.glob(os.path.join(out, "runs", "*"))):
    try:
        m = meta(os.path.join(d, "meta.txt"))
    except OSError:
        continue
    rec = {"scenario": m.get("scenario"), "server": m.get("server"), "generator": m.get("generator"),
           "status": m.get("status"), "command": m.get("cmd"), "server_command": m.get("server_cmd"),
           "dir": os.path.relpath(d, out)}
    if "server_ticks" in m:
        rec["server_cpu_s"] = int(m["server_ticks"]) / int(m["clk_tck"])
        rec["wall_s"] = float(m["wall_end"]) - float(m["wall_start"])
        rec["client_cpu_s"] = round(parse_times(m.get("client_times_after")) - parse_times(m.get("client_times_before")), 3)
        if m.get("machine_ticks"):
            rec["machine_cpu_s"] = int(m["machine_ticks"]) / int(m["clk_tck"])
            rec["other_cpu_s"] = max(0.0, rec["machine_cpu_s"] - rec["server_cpu_s"] - rec["client_cpu_s"])
    res = PARSERS[rec["generator"]](d) if rec["status"] == "ok" or "server_ticks" in m else None
    rec["result"] = res
    if rec["status"] == "ok" and res is None:
        rec["status"] = "no parseable output"
    if res and rec.get("server_cpu_s"):
        cpu = rec["server_cpu_s"]
        rec["ops_per_cpu_s"] = res["ops"] / cpu if res.get("ops") is not None else None
        if res.get("bytes") is not None:
            rec["mb_per_cpu_s"] = res["bytes"] / 1e6 / cpu
    if res and res.get("ops") and res.get("errors", 0) > 0.01 * res["ops"]:
        notes.append(f"{rec['scenario']} / {rec['server']} / {rec['generator']}: {res['errors']} errors "
                     f"({res['error_kinds']}) for {res['ops']} ops")
    if rec["status"] != "ok":
        tail = [l for l in read(os.path.join(d, "stderr")).splitlines() if l.strip()][-1:]
        notes.append(f"**{rec['scenario']} / {rec['server']} / {rec['generator']}**: {rec['status']}"
                     + (f" — `{tail[0]}`" if tail else ""))
    runs.append(rec)

scen_order = open(os.path.join(out, "scenarios.txt")).read().split()
for r in runs:
    if r["scenario"] not in scen_order:
        scen_order.append(r["scenario"])
GEN_ORDER = {"atoll-load": 0, "h2load": 1, "wrk": 2}
runs.sort(key=lambda r: (scen_order.index(r["scenario"]), GEN_ORDER.get(r["generator"], 9), r["server"] != "atoll"))

def metric(r):
    """(throughput, per-CPU-s, unit) for the run: MB/s for bulk, ops/s otherwise."""
    res = r.get("result") or {}
    if r["scenario"] == "bulk":
        return res.get("mb_per_s"), r.get("mb_per_cpu_s"), "MB"
    return res.get("ops_per_s"), r.get("ops_per_cpu_s"), "ops"

def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b

comparisons = []
for s in scen_order:
    for g in sorted({r["generator"] for r in runs if r["scenario"] == s}, key=lambda g: GEN_ORDER.get(g, 9)):
        by = {r["server"]: r for r in runs if r["scenario"] == s and r["generator"] == g}
        a, n = by.get("atoll"), by.get("nginx")
        if not (a and n):
            continue
        (at, ac, unit), (nt, nc, _) = metric(a), metric(n)
        comparisons.append({"scenario": s, "generator": g, "unit": unit,
                            "throughput_ratio": ratio(at, nt), "per_cpu_ratio": ratio(ac, nc)})

report = {"generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit,
          "host": {"cpus": os.cpu_count(), "kernel": platform.release(), "machine": platform.machine()},
          "load_average_at_start": loadavg,
          "config": {"workers": int(workers), "connections": int(conns), "duration_s": int(duration),
                     "bulk_size": int(size), "nginx": nginx_version.strip(), "address": "127.0.0.1"},
          "runs": runs, "comparisons": comparisons, "notes": notes}
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump(report, f, indent=2)

def fmt(v, nd=1):
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}"

L = ["# atoll-serve vs nginx\n"]
L.append(f"- generated {report['generated']}, commit `{commit}`, {report['host']['cpus']} CPUs, Linux {report['host']['kernel']}")
L.append(f"- {workers} workers each (atoll isolates = nginx worker_processes), {conns} connections, "
         f"{duration} s per run, bulk {int(size):,} B, same ECDSA P-256 certificate, TLS 1.2/1.3, ALPN http/1.1, 127.0.0.1")
L.append(f"- {nginx_version.strip()}; handshake/churn runs: resumption off on both servers; others: tickets + session cache on both")
L.append("- server CPU = utime+stime of the server's processes (all threads) during the run, from /proc; "
         "client CPU = the generator's; other CPU = the rest of the machine's busy time during the run "
         "(other processes: high values mean a noisy run). The generator shares the same CPUs "
         "(see scripts/load/README.md)")
L.append(f"- load average at the start: {loadavg}\n")
L.append("## Runs\n")
L.append("| scenario | generator | server | status | ops/s | MB/s | server CPU s | ops per CPU-s | MB per CPU-s | client CPU s | other CPU s | errors |")
L.append("|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
for r in runs:
    res = r.get("result") or {}
    L.append(f"| {r['scenario']} | {r['generator']} | {r['server']} | {r['status']} | {fmt(res.get('ops_per_s'))} | "
             f"{fmt(res.get('mb_per_s'), 2)} | {fmt(r.get('server_cpu_s'), 2)} | {fmt(r.get('ops_per_cpu_s'))} | "
             f"{fmt(r.get('mb_per_cpu_s'), 1)} | {fmt(r.get('client_cpu_s'), 2)} | {fmt(r.get('other_cpu_s'), 2)} | "
             f"{fmt(res.get('errors')) if res else '–'} |")
L.append("")
L.append("## atoll / nginx\n")
L.append("Above 1.00 atoll does better. Throughput is ops/s (MB/s for bulk); efficiency is the same per server CPU-second.\n")
L.append("| scenario | generator | unit | throughput atoll/nginx | per server CPU-s atoll/nginx |")
L.append("|---|---|---|--:|--:|")
for c in comparisons:
    L.append(f"| {c['scenario']} | {c['generator']} | {c['unit']} | {fmt(c['throughput_ratio'], 2)} | {fmt(c['per_cpu_ratio'], 2)} |")
L.append("")
if notes:
    L.append("## Notes\n")
    L.extend(f"- {n}" for n in notes)
    L.append("")
L.append(f"Raw data: `report.json`, `runs/<scenario>-<server>-<generator>/` (generator output, meta.txt), `nginx-<scenario>.conf`.  \nDirectory: `{out}`")
with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(L) + "\n")
PY

cat "$out/report.md"
log "report: $out/report.md"
((server_failed == 0)) || exit 1
((failed == 0)) || exit 3
exit 0
