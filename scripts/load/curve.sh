#!/usr/bin/env bash
# curve.sh - latency against offered load: atoll-serve and nginx, each driven
# open loop by `atoll-load --scenario rr --http --rate R` at every rate of a
# list (latency from each request's intended start: a server that falls
# behind shows in the percentiles). Writes curve.dat, curve.png (p50, p99,
# p99.9 vs offered req/s, both servers) and curve.md, and prints where.
#
# Usage: scripts/load/curve.sh [options]
#   --rates LIST        offered rates, req/s, comma-separated (default
#                       5000,10000,20000,40000,80000)
#   --duration S        seconds per run, fractions allowed (default 5)
#   --connections N     atoll-load connections (default 16)
#   --workers N         atoll-serve isolates = nginx worker_processes
#                       (default: online CPUs)
#   --out DIR           output directory (default build/load-curve/<timestamp>)
#   --bin DIR           where atoll-serve and atoll-load are (default
#                       build/release/tools)
#   -h, --help          this text
# Both servers get the same certificate and answer GET / with "hello\n" over
# TLS on keep-alive connections; nginx runs from a private config in a temp
# directory (as compare.sh starts it). Every process started here is stopped
# on exit, Ctrl-C or SIGTERM. Exit status: 0 every run passed; 3 files
# written, some run failed; 1 a server could not be set up or a tool is
# missing; 2 bad command line.
set -euo pipefail

prog=curve.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd "$load_repo"

usage() { sed -n '2,24s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
usage_error() {
	printf '%s: %s\n\n' "$prog" "$*" >&2
	usage >&2
	exit 2
}

rates=5000,10000,20000,40000,80000
duration=5
connections=16
workers=$(online_cpus)
out=
bin=build/release/tools

while (($#)); do
	arg=$1
	shift
	val=
	case $arg in
	--*=*)
		val=${arg#*=}
		arg=${arg%%=*}
		;;
	--rates | --duration | --connections | --workers | --out | --bin)
		(($#)) || usage_error "$arg needs a value"
		val=$1
		shift
		;;
	esac
	case $arg in
	--rates) rates=$val ;;
	--duration) duration=$val ;;
	--connections) connections=$val ;;
	--workers) workers=$val ;;
	--out) out=$val ;;
	--bin) bin=$val ;;
	-h | --help)
		usage
		exit 0
		;;
	*) usage_error "unknown argument: $arg" ;;
	esac
done
is_pos_number "$duration" || usage_error "--duration: '$duration' is not a positive number of seconds"
if ! is_uint "$connections" || ((10#$connections == 0)); then
	usage_error "--connections: '$connections' is not a positive integer"
fi
if ! is_uint "$workers" || ((10#$workers == 0)); then
	usage_error "--workers: '$workers' is not a positive integer"
fi
IFS=, read -r -a rate_list <<<"$rates"
((${#rate_list[@]})) || usage_error "--rates: empty list"
for r in "${rate_list[@]}"; do
	is_pos_number "$r" || usage_error "--rates: '$r' is not a positive number of requests per second"
done

serve=$bin/atoll-serve
load=$bin/atoll-load
[[ -x $serve ]] || die "$serve not found (build first: make build)"
[[ -x $load ]] || die "$load not found (build first: make build)"
command -v nginx >/dev/null || die "nginx not found (scripts/deps.sh installs nginx-light)"
command -v openssl >/dev/null || die "openssl not found"
command -v python3 >/dev/null || die "python3 is needed to read the results"
command -v curl >/dev/null || die "curl is needed to probe nginx"
command -v gnuplot >/dev/null || die "gnuplot not found (scripts/deps.sh installs gnuplot-nox)"
nginx_bin=$(command -v nginx)

out=${out:-build/load-curve/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd -- "$out" && pwd -P)
rm -rf "$out/runs"
mkdir -p "$out/runs"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/atoll-curve.XXXXXX")
# nginx workers run as nobody: they must reach the files they serve.
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

# ------------------------------------------------------------------ servers
# start_atoll: atoll-serve over TLS with the shared certificate; sets
# srv_pid, srv_port.
start_atoll() {
	atoll_start --address 127.0.0.1 --port 0 --isolates "$workers" --idle-timeout 600000 --cert "$tmp/cert.pem" --key "$tmp/key.pem"
}

# start_nginx: a private nginx in $tmp/nginx as compare.sh's start_nginx
# starts it for rr (TLS 1.2/1.3, no resumption: rr keeps its connections),
# same certificate, GET / -> "hello\n"; sets srv_pid, srv_port once it
# answers and all its workers are up.
start_nginx() {
	srv_port=$(free_port)
	nginx_start ' ssl' 'TLSv1.2 TLSv1.3' 'ssl_session_tickets off; ssl_session_cache off;' '' 75s
}

stop_server() {
	[[ -n $srv_pid ]] || return 0
	stop_pid "$srv_pid" 15 || true
	srv_pid=
}

# --------------------------------------------------------------------- runs
run_budget=$(($(ceil_int "$duration") + 30))
failed=0

# run_rate SERVER RATE: one open-loop rr run; its JSON in runs/SERVER-RATE.json.
run_rate() {
	local server=$1 rate=$2 base rc
	base=$out/runs/$server-$rate
	log "$server: rr at $rate req/s for ${duration}s"
	timeout "$run_budget" "$load" --target "127.0.0.1:$srv_port" --scenario rr --http --rate "$rate" \
		--duration "$duration" --connections "$connections" --cafile "$tmp/cert.pem" --json "$base.json" \
		>"$base.txt" 2>"$base.err" &
	gen_pid=$!
	rc=0
	wait "$gen_pid" || rc=$?
	gen_pid=
	if ((rc != 0)) || [[ ! -s $base.json ]]; then
		warn "$server at $rate req/s: atoll-load exit $rc: $(tail -n 2 "$base.err" | tr '\n' ' ')"
		rm -f "$base.json"
		failed=1
	fi
}

for server in atoll nginx; do
	case $server in
	atoll) start_atoll || die "atoll-serve could not be started" ;;
	nginx) start_nginx || die "nginx could not be started" ;;
	esac
	for rate in "${rate_list[@]}"; do
		run_rate "$server" "$rate"
	done
	stop_server
done

# ------------------------------------------------------------------ results
# curve.dat: one row per offered rate, both servers ("?" where a run failed);
# curve.md: the same as a table with what was achieved and the errors.
python3 - "$out" "$duration" "$connections" "$workers" "${rate_list[@]}" <<'PY'
import json, os, sys

out, duration, connections, workers, rates = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
servers = ["atoll", "nginx"]


def load(server, rate):
    try:
        with open(os.path.join(out, "runs", f"{server}-{rate}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


rows = []
with open(os.path.join(out, "curve.dat"), "w") as dat:
    dat.write("# offered_req_s  atoll: p50_us p99_us p999_us achieved_req_s  nginx: p50_us p99_us p999_us achieved_req_s\n")
    for rate in rates:
        cols = [rate]
        for s in servers:
            d = load(s, rate)
            if d is None:
                cols += ["?"] * 4
            else:
                lat = d["latency_us"]
                cols += [str(lat["p50"]), str(lat["p99"]), str(lat["p999"]), "%.1f" % d["ops_per_s"]]
            rows.append((rate, s, d))
        dat.write(" ".join(cols) + "\n")

with open(os.path.join(out, "curve.md"), "w") as md:
    md.write("# Latency vs offered load (rr, open loop)\n\n")
    md.write(f"atoll-load --scenario rr --http --rate R, {duration} s per run, {connections} connections; "
             f"atoll-serve isolates = nginx workers = {workers}. Latency from each request's intended start "
             "(queueing included), in microseconds.\n\n")
    md.write("| offered req/s | server | achieved req/s | p50 | p99 | p99.9 | intended | issued | max queue delay us | errors |\n")
    md.write("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
    for rate, s, d in rows:
        if d is None:
            md.write(f"| {rate} | {s} | run failed | | | | | | | |\n")
            continue
        iva, lat = d["intended_vs_actual"], d["latency_us"]
        errs = ", ".join(f"{k} {v}" for k, v in d["errors"].items()) or "0"
        md.write(f"| {rate} | {s} | {d['ops_per_s']:.0f} | {lat['p50']} | {lat['p99']} | {lat['p999']} | "
                 f"{iva['intended']} | {iva['issued']} | {iva['max_queue_delay_us']} | {errs} |\n")
PY

gnuplot -e "datafile='$out/curve.dat'; outfile='$out/curve.png'" - <<'GP' || die "gnuplot failed"
set terminal pngcairo size 1000,560 font ",10"
set output outfile
set title "rr latency vs offered load (open loop, atoll-load --rate)"
set xlabel "offered load (req/s)"
set ylabel "latency (µs, log scale)"
set logscale y
set format y "10^{%L}"
set grid xtics ytics
set key top left
set datafile missing "?"
plot datafile using 1:2 with linespoints lc rgb "#1f77b4" pt 7 dt 1 title "atoll p50", \
     '' using 1:3 with linespoints lc rgb "#1f77b4" pt 5 dt 2 title "atoll p99", \
     '' using 1:4 with linespoints lc rgb "#1f77b4" pt 9 dt 3 title "atoll p99.9", \
     '' using 1:6 with linespoints lc rgb "#d62728" pt 7 dt 1 title "nginx p50", \
     '' using 1:7 with linespoints lc rgb "#d62728" pt 5 dt 2 title "nginx p99", \
     '' using 1:8 with linespoints lc rgb "#d62728" pt 9 dt 3 title "nginx p99.9"
GP

cat "$out/curve.md"
printf '\n%s: data %s\n%s: plot %s\n%s: table %s\n' "$prog" "$out/curve.dat" "$prog" "$out/curve.png" \
	"$prog" "$out/curve.md"
((failed == 0)) || exit 3
