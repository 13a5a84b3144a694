#!/usr/bin/env bash
# compare.sh - the same load scenarios against atoll-serve and nginx, driven by
# atoll-load and by independent generators (h2load, wrk), every figure also
# per second of server CPU. Writes report.md + report.json and prints report.md.
#
# Usage: scripts/load/compare.sh [options] [SCENARIO...]
#   SCENARIO            handshake | rr | bulk | churn | idle | plain-rr | plain-conn
#                       (default: handshake rr bulk)
#   --duration S        seconds per run, an integer (default 5)
#   --workers N         atoll isolates = nginx worker_processes (default: online CPUs)
#   --connections N     client connections (default 16)
#   --size BYTES        bulk response size (default 16777216)
#   --idle-low N        idle: the smaller count of idle TLS 1.3 connections (default 1000)
#   --idle-high N       idle: the larger count, RSS read at both (default 8000)
#   --generators LIST   comma-separated subset of atoll-load,h2load,wrk (default: all)
#   --out DIR           report directory (default build/load-compare/<timestamp>)
#   --bin DIR           where atoll-serve and atoll-load are (default build/release/tools)
#   -h, --help          this text
# Generators per scenario: handshake: atoll-load, wrk (Connection: close);
# rr: atoll-load, h2load --h1, wrk; bulk: atoll-load, wrk; churn: atoll-load,
# wrk (Connection: close); idle: atoll-load, then each server's RSS with
# --idle-low and --idle-high idle connections; plain-rr (cleartext rr):
# atoll-load --plain, h2load --h1, wrk; plain-conn (cleartext, a connection
# per request): atoll-load --plain --scenario churn, wrk (Connection: close).
# With handshake, atoll-hsbench (in --bin) measures wolfSSL's in-process
# server handshake rate, and the report gives atoll's fraction of it.
# Exit status: 0 every run passed; 3 report written, some run failed; 1 a
# server could not be set up or a tool is missing; 2 bad command line.
set -euo pipefail

prog=compare.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
cd "$load_repo"

usage() { sed -n '2,29s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
usage_error() {
	printf '%s: %s\n\n' "$prog" "$*" >&2
	usage >&2
	exit 2
}

duration=5
workers=$(online_cpus)
connections=16
size=16777216
idle_low=1000
idle_high=8000
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
	--duration | --workers | --connections | --size | --idle-low | --idle-high | --generators | --out | --bin)
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
	--idle-low) idle_low=$val ;;
	--idle-high) idle_high=$val ;;
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
if ! is_uint "$idle_low" || ((idle_low == 0)); then
	usage_error "--idle-low: '$idle_low' is not a positive integer"
fi
idle_low=$((10#$idle_low))
if ! is_uint "$idle_high" || ((10#$idle_high <= idle_low)); then
	usage_error "--idle-high: '$idle_high' is not an integer above --idle-low ($idle_low)"
fi
idle_high=$((10#$idle_high))
IFS=, read -r -a gen_list <<<"$generators"
for g in "${gen_list[@]}"; do
	[[ $g =~ ^(atoll-load|h2load|wrk)$ ]] || usage_error "--generators: unknown generator '$g'"
done

serve=$bin/atoll-serve
load=$bin/atoll-load
hsbench=$bin/atoll-hsbench
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
	handshake | churn | plain-conn) all=(atoll-load wrk) ;;
	rr | plain-rr) all=(atoll-load h2load wrk) ;;
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
rm -rf "$out/runs" "$out/idle-memory"
mkdir -p "$out/runs"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/atoll-compare.XXXXXX")
# nginx workers run as nobody: they must reach the static files.
chmod 755 "$tmp"

srv_pid=
gen_pid=
idle_pids=() # the atoll-load processes holding idle connections (memory)
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	local p
	for p in "$gen_pid" "${idle_pids[@]}"; do
		[[ -n $p ]] || continue
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [[ -n $srv_pid ]]; then
		stop_pid "$srv_pid" 10 || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

ulimit -n 65536 2>/dev/null || ulimit -n 16384 2>/dev/null || true
# The idle memory runs hold --idle-high connections in one server process (and
# up to that many in atoll-load's): each needs a descriptor per connection.
if [[ " ${scenarios[*]} " == *" idle "* ]] && (($(ulimit -n) < idle_high + 64)); then
	die "--idle-high $idle_high needs at least $((idle_high + 64)) open files; ulimit -n is $(ulimit -n) (hard limit $(ulimit -Hn))"
fi

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
# start_atoll RESUMPTION(on|off|plain): sets srv_pid, srv_port. plain:
# cleartext (--plain, no certificate).
start_atoll() {
	# --idle-timeout as nginx's keepalive_timeout in the idle-memory run (10
	# min): no run here lasts that long, so neither server closes for idleness.
	local -a args=(--address 127.0.0.1 --port 0 --isolates "$workers" --idle-timeout 600000)
	case $1 in
	plain) args+=(--plain) ;;
	on) args+=(--cert "$tmp/cert.pem" --key "$tmp/key.pem") ;;
	*) args+=(--cert "$tmp/cert.pem" --key "$tmp/key.pem" --no-resumption) ;;
	esac
	printf '%s\n' "$serve ${args[*]}" >"$tmp/server.cmd"
	atoll_start "${args[@]}"
}

# start_nginx RESUMPTION(on|off|plain) [idle-memory]: a private nginx in $tmp;
# sets srv_pid, srv_port. plain: a cleartext listener (no ssl). idle-memory:
# TLSv1.3 only, listen backlog 4096 (atoll-serve's: SOMAXCONN) so that
# thousands of simultaneous connects are not dropped, and keep-alive
# connections kept for 10 min (atoll-serve closes none) while they are counted.
start_nginx() {
	local resumption=$1 protocols='TLSv1.2 TLSv1.3' listen_opts='' keepalive=75s
	if [[ ${2:-} == idle-memory ]]; then
		protocols=TLSv1.3 listen_opts=' backlog=4096' keepalive=600s
	fi
	srv_port=$(free_port)
	local sess ssl=' ssl' what="resumption $resumption"
	if [[ $resumption == on ]]; then
		sess='ssl_session_tickets on; ssl_session_cache shared:SSL:10m;'
	else
		sess='ssl_session_tickets off; ssl_session_cache off;'
	fi
	if [[ $resumption == plain ]]; then
		ssl='' what=cleartext
	else
		[[ ${2:-} == idle-memory ]] && what+=", ssl_protocols $protocols, backlog 4096, keepalive_timeout $keepalive"
	fi
	nginx_start "$ssl" "$protocols" "$sess" "$listen_opts" "$keepalive" || return 1
	printf '%s\n' "nginx -p $tmp/nginx -c nginx.conf -g 'daemon off;' (worker_processes $workers, $what)" >"$tmp/server.cmd"
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
	plain_scenario "$scen" && url=http://127.0.0.1:$srv_port/
	case $gen in
	atoll-load)
		mapfile -t extra < <(scenario_args "$scen" "$size")
		if plain_scenario "$scen"; then
			cmd=("$load" --plain --target "127.0.0.1:$srv_port" --scenario "$(load_scenario "$scen")"
				--connections "$connections" --duration "$duration" --json "$dir/load.json" "${extra[@]}")
		else
			cmd=("$load" --target "127.0.0.1:$srv_port" --scenario "$scen" --connections "$connections"
				--duration "$duration" --cafile "$tmp/cert.pem" --json "$dir/load.json" "${extra[@]}")
		fi
		;;
	h2load)
		cmd=(h2load --h1 -t 1 -c "$connections" -m 1 -D "$duration" "$url")
		;;
	wrk)
		cmd=(wrk -t1 "-c$connections" "-d${duration}s" --timeout 10s --latency)
		[[ $scen == handshake || $scen == churn || $scen == plain-conn ]] && cmd+=(-H 'Connection: close')
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

# ------------------------------------------------------------- idle memory
# The resident memory of a server holding idle TLS connections: Rss from
# /proc/PID/smaps_rollup (exact: the kernel walks the page tables; VmRSS in
# /proc/PID/status is a per-thread cached counter), VmRSS where smaps_rollup
# does not exist. The same source for both servers, said in the report.
rss_source=smaps_rollup
[[ -r /proc/self/smaps_rollup ]] || rss_source=status

# rss_bytes PID: "BYTES PROCESSES", the RSS summed over PID and its direct
# children (nginx: master + workers; atoll-serve: its one process).
rss_bytes() {
	local pid kb total=0 n=0
	while read -r pid; do
		if [[ $rss_source == smaps_rollup ]]; then
			kb=$(awk '$1 == "Rss:" { print $2; exit }' "/proc/$pid/smaps_rollup" 2>/dev/null) || kb=
		else
			kb=$(awk '$1 == "VmRSS:" { print $2; exit }' "/proc/$pid/status" 2>/dev/null) || kb=
		fi
		[[ -n $kb ]] || continue
		total=$((total + kb * 1024))
		n=$((n + 1))
	done < <(proc_tree "$1")
	printf '%d %d\n' "$total" "$n"
}

# rss_settled PID: rss_bytes once two readings 0.25 s apart differ by at most
# 256 KiB (or 0.1 %): the server may still be releasing what the handshakes
# and the exchange used. At most 5 s.
rss_settled() {
	local a b nb i d
	read -r a _ < <(rss_bytes "$1")
	for ((i = 0; i < 20; i++)); do
		sleep 0.25
		read -r b nb < <(rss_bytes "$1")
		d=$((b > a ? b - a : a - b))
		((d <= 262144 || d * 1000 <= a)) && break
		a=$b
	done
	printf '%d %d\n' "$b" "$nb"
}

# established PORT: the server's established TCP connections on PORT (the
# client ends have PORT as their destination, not their source).
established() {
	ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l
}

# load_progress FILE: "OPS ERRORS OPEN" from the last of atoll-load's
# --progress lines in FILE ("[   1.0s] ops N  R ops/s  errors E  open O ...").
load_progress() {
	local line
	line=$(grep -a '^\[' "$1" 2>/dev/null | tail -n 1) || true
	[[ $line =~ \]\ +ops\ +([0-9]+)\ .*\ errors\ +([0-9]+)\ +open\ +([0-9]+) ]] || return 1
	printf '%s %s %s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
}

# idle_wait SECS: wait until every atoll-load in idle_pids holds all its
# connections with their one exchange done (its last progress line: open =
# its count in idle_counts, ops >= it), and the server has their sum
# established on srv_port. Fails, saying why in idle_why, when an atoll-load
# or the server exits, or after SECS.
idle_wait() {
	local secs=$1 i k ok total=0 ops nopen est=0 progress
	for k in "${!idle_counts[@]}"; do total=$((total + idle_counts[k])); done
	for ((i = 0; i < secs * 5; i++)); do
		ok=1
		for k in "${!idle_pids[@]}"; do
			if ! kill -0 "${idle_pids[k]}" 2>/dev/null; then
				idle_why="atoll-load with ${idle_counts[k]} connections exited early (see ${idle_logs[k]})"
				return 1
			fi
			if ! progress=$(load_progress "${idle_logs[k]}"); then
				ok=0
				continue
			fi
			read -r ops _ nopen <<<"$progress"
			((nopen == idle_counts[k] && ops >= idle_counts[k])) || ok=0
		done
		if ((ok)); then
			est=$(established "$srv_port")
			((est == total)) && return 0
		fi
		if ! kill -0 "$srv_pid" 2>/dev/null; then
			idle_why="the server died"
			return 1
		fi
		sleep 0.2
	done
	idle_why="not all $total connections established and idle after ${secs}s (server side: $est; see ${idle_logs[*]})"
	return 1
}

# idle_hold COUNT NAME: one more atoll-load holding COUNT idle TLS connections
# (handshake + one GET /, then held until it is stopped).
idle_hold() {
	local n=$1 name=$2 dir=$out/idle-memory/$server
	local -a c=("$load" --target "127.0.0.1:$srv_port" --scenario idle --connections "$n"
		--duration "$idle_hold_s" --cafile "$tmp/cert.pem" --http --progress --json "$dir/$name.json")
	log "idle memory / $server: ${c[*]}"
	printf '%s\n' "${c[*]}" >"$dir/$name.cmd"
	timeout -k 5 "$((idle_hold_s + 30))" "${c[@]}" >"$dir/$name.stdout" 2>"$dir/$name.stderr" &
	idle_pids+=("$!")
	idle_counts+=("$n")
	idle_logs+=("$dir/$name.stderr")
}

# idle_ramp COUNT NAME: COUNT more idle connections, from atoll-loads of at
# most idle_batch connections each (NAME-1, NAME-2, ...), each started once
# the ones before hold all theirs: thousands of handshakes at once on a busy
# machine outlast atoll-load's 10 s connect timeout, and the retries pile up.
idle_ramp() {
	local left=$1 name=$2 i=0 n
	while ((left > 0)); do
		n=$((left < idle_batch ? left : idle_batch))
		i=$((i + 1))
		idle_hold "$n" "$name-$i"
		idle_wait "$idle_wait_s" || return 1
		left=$((left - n))
	done
}

# idle_stop: stop the holding atoll-loads (SIGTERM: they close their
# connections and write their JSON) and wait for them.
idle_stop() {
	local p
	for p in "${idle_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${idle_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	idle_pids=()
	idle_counts=()
	idle_logs=()
}

# measure_idle_memory SERVER: a fresh SERVER (resumption on, as in the idle
# runs; nginx: start_nginx's idle-memory setup), idle_low idle connections,
# RSS; then idle_high - idle_low more while the first ones are held, RSS
# again. Writes idle-memory/SERVER/result.txt.
idle_counts=()
idle_logs=()
idle_batch=1000
idle_wait_s=$((30 + idle_batch / 100))
# The atoll-loads hold their connections until idle_stop, at most for as long
# as every batch could take to be established.
idle_hold_s=$(((idle_low / idle_batch + (idle_high - idle_low) / idle_batch + 2) * idle_wait_s + 60))
measure_idle_memory() {
	local server=$1 dir=$out/idle-memory/$1 status=ok rss_low='' rss_high='' procs='' est_low='' est_high=''
	local idle_why=
	mkdir -p "$dir"
	case $server in
	atoll) start_atoll on || status="server did not start" ;;
	nginx) start_nginx on idle-memory || status="server did not start" ;;
	esac
	if [[ $status == ok ]]; then
		cp "$tmp/server.cmd" "$dir/server.cmd"
		[[ $server == nginx ]] && cp "$tmp/nginx/nginx.conf" "$out/nginx-idle-memory.conf"
		log "idle memory / $server: pid $srv_pid on 127.0.0.1:$srv_port"
		if idle_ramp "$idle_low" low; then
			est_low=$(established "$srv_port")
			read -r rss_low procs < <(rss_settled "$srv_pid")
			log "idle memory / $server: $est_low established, RSS $rss_low B ($procs processes)"
			if idle_ramp "$((idle_high - idle_low))" high; then
				est_high=$(established "$srv_port")
				read -r rss_high procs < <(rss_settled "$srv_pid")
				log "idle memory / $server: $est_high established, RSS $rss_high B ($procs processes)"
			else
				status="at $idle_high: $idle_why"
			fi
		else
			status="at $idle_low: $idle_why"
		fi
		idle_stop
		kill -0 "$srv_pid" 2>/dev/null || status="server died"
		stop_server
	fi
	if [[ $status != ok ]]; then
		failed=1
		warn "idle memory / $server: $status"
	fi
	{
		printf 'server=%s\nstatus=%s\nsource=%s\n' "$server" "$status" "$rss_source"
		printf 'low=%s\nhigh=%s\nrss_low=%s\nrss_high=%s\n' "$idle_low" "$idle_high" "$rss_low" "$rss_high"
		printf 'established_low=%s\nestablished_high=%s\nprocesses=%s\n' "$est_low" "$est_high" "$procs"
		printf 'server_cmd=%s\n' "$(cat "$dir/server.cmd" 2>/dev/null)"
	} >"$dir/result.txt"
}

for scen in "${scenarios[@]}"; do
	mapfile -t gens < <(gens_for "$scen")
	if ((${#gens[@]} == 0)); then
		notes+=("$scen: no generator available")
		continue
	fi
	resumption=on
	[[ $scen == handshake || $scen == churn ]] && resumption=off
	plain_scenario "$scen" && resumption=plain
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
		if [[ $resumption == plain ]]; then
			log "$scen: $server pid $srv_pid on 127.0.0.1:$srv_port (cleartext)"
		else
			log "$scen: $server pid $srv_pid on 127.0.0.1:$srv_port (resumption $resumption)"
		fi
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
		# atoll-serve's counters at exit (its last JSON line): the spread of
		# accepted connections over the isolates.
		[[ $server == atoll ]] && cp "$tmp/atoll.stdout" "$out/atoll-$scen.stdout"
		if [[ $scen == idle ]]; then
			measure_idle_memory "$server"
		fi
	done
done

# The handshake scenario's ceiling: wolfSSL's own server handshake rate in
# process (atoll-hsbench: same build, certificate kind, settings, TLS 1.3
# X25519), measured with no server running, for the report's fraction.
if [[ " ${scenarios[*]} " == *" handshake "* ]]; then
	if [[ -x $hsbench ]]; then
		log "handshake: wolfSSL in-process limit: $hsbench --seconds $duration"
		if ! timeout -k 5 "$run_budget" "$hsbench" --seconds "$duration" --json "$out/hsbench.json" \
			>"$out/hsbench.stdout" 2>"$out/hsbench.stderr"; then
			rm -f "$out/hsbench.json"
			notes+=("atoll-hsbench failed: $(tail -n 1 "$out/hsbench.stderr")")
			failed=1
		fi
	else
		notes+=("$hsbench not found: no in-process handshake limit")
	fi
fi

# ------------------------------------------------------------------- report
printf '%s\n' "${notes[@]}" >"$out/notes.txt"
printf '%s\n' "${scenarios[@]}" >"$out/scenarios.txt"
python3 - "$out" "$workers" "$connections" "$duration" "$size" "$(git_desc)" "$(nginx -v 2>&1)" "$loadavg" \
	"$idle_low" "$idle_high" <<'PY'
import glob, json, math, os, platform, re, sys, time

out, workers, conns, duration, size, commit, nginx_version, loadavg, idle_low, idle_high = sys.argv[1:11]
idle_low, idle_high = int(idle_low), int(idle_high)
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

def idle_mem(server):
    """The RSS of SERVER at idle_low and idle_high idle TLS connections."""
    d = os.path.join(out, "idle-memory", server)
    try:
        m = meta(os.path.join(d, "result.txt"))
    except OSError:
        return None
    num = lambda k: int(m[k]) if m.get(k, "").isdigit() else None
    lo, hi = num("rss_low"), num("rss_high")
    rec = {f"rss_{idle_low}": lo, f"rss_{idle_high}": hi, "rss_low": lo, "rss_high": hi,
           "slope_bytes_per_conn": round((hi - lo) / (idle_high - idle_low)) if lo is not None and hi is not None else None,
           "status": m.get("status"), "established": [num("established_low"), num("established_high")],
           "processes": num("processes"), "server_command": m.get("server_cmd")}
    for path in sorted(glob.glob(os.path.join(d, "*.json"))):
        try:
            j = json.load(open(path))
        except (OSError, ValueError):
            continue
        errs = j.get("errors") or {}
        n = sum(v for v in errs.values() if isinstance(v, (int, float))) if isinstance(errs, dict) else 0
        if n:
            name = os.path.basename(path)[:-5]
            notes.append(f"idle memory / {server}: the atoll-load holding idle connections ({name}) counted "
                         f"{n} errors ({errs}) (see idle-memory/{server}/{name}.stderr)")
    if rec["status"] != "ok":
        notes.append(f"**idle memory / {server}**: {rec['status']}")
    return rec

idle_memory = None
if "idle" in scen_order:
    src = "/proc/PID/smaps_rollup Rss"
    try:
        if meta(os.path.join(out, "idle-memory", "atoll", "result.txt")).get("source") == "status":
            src = "/proc/PID/status VmRSS"
    except OSError:
        pass
    a, n = idle_mem("atoll"), idle_mem("nginx")
    idle_memory = {"atoll": a, "nginx": n, "connections": [idle_low, idle_high], "rss_source": src, "tls": "TLSv1.3"}
    sa, sn = (a or {}).get("slope_bytes_per_conn"), (n or {}).get("slope_bytes_per_conn")
    idle_memory["ratio"] = round(sa / sn, 4) if sa is not None and sn and sn > 0 else None
    if sn is not None and sn <= 0:
        notes.append(f"idle memory: nginx's slope is {sn} B/conn: no ratio (a noisy run?)")

def spread_of(scen):
    """accepted connections per isolate in atoll-serve's exit counters for SCEN."""
    last = None
    for line in read(os.path.join(out, f"atoll-{scen}.stdout")).splitlines():
        if line.startswith("{") and '"isolates"' in line:
            last = line
    try:
        isos = json.loads(last)["isolates"] if last else None
    except ValueError:
        isos = None
    if not isos:
        return None
    acc = [int(i.get("accepted", 0)) for i in isos]
    return {"accepted": acc, "total": sum(acc),
            "max_min": round(max(acc) / min(acc), 4) if min(acc) > 0 else None}

spread = {s: sp for s in scen_order if (sp := spread_of(s))}

handshake_limit = None
try:
    hs = json.load(open(os.path.join(out, "hsbench.json")))
except (OSError, ValueError):
    hs = None
if hs and hs.get("server_handshakes_per_cpu_s"):
    limit = float(hs["server_handshakes_per_cpu_s"])
    fractions = {}
    for r in runs:
        if r["scenario"] == "handshake" and r["server"] == "atoll" and r.get("ops_per_cpu_s"):
            fractions[r["generator"]] = round(r["ops_per_cpu_s"] / limit, 4)
    handshake_limit = {"in_process_server_handshakes_per_cpu_s": limit, "wolfssl_version": hs.get("wolfssl_version"),
                       "wolfssl_build": hs.get("wolfssl_build"), "cipher": hs.get("cipher"), "group": hs.get("group"),
                       "handshakes": hs.get("handshakes"), "fractions": fractions}

report = {"generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit,
          "host": {"cpus": os.cpu_count(), "kernel": platform.release(), "machine": platform.machine()},
          "load_average_at_start": loadavg,
          "config": {"workers": int(workers), "connections": int(conns), "duration_s": int(duration),
                     "bulk_size": int(size), "nginx": nginx_version.strip(), "address": "127.0.0.1"},
          "runs": runs, "comparisons": comparisons, "idle_memory": idle_memory,
          "handshake_limit": handshake_limit, "spread": spread, "notes": notes}
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
if any(s.startswith("plain-") for s in scen_order):
    L.append("- plain-rr/plain-conn: cleartext HTTP/1.1 (atoll-serve --plain, an nginx listener without ssl, "
             "atoll-load --plain, http:// for h2load/wrk); plain-conn opens a connection per request")
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
if handshake_limit is not None:
    hl = handshake_limit
    L.append("## Handshakes against wolfSSL's in-process limit\n")
    L.append(f"atoll-hsbench: {fmt(hl['in_process_server_handshakes_per_cpu_s'])} full TLS 1.3 handshakes per CPU-second "
             f"of server-side wolfSSL calls, no sockets (wolfSSL {hl['wolfssl_version']} {hl['wolfssl_build']}, "
             f"{hl['cipher']}, {hl['group']}, {hl['handshakes']:,} handshakes). The fraction is atoll's handshakes per "
             f"server CPU-second in the handshake runs over that limit (see docs/performance.md).\n")
    L.append("| generator | atoll handshakes per server CPU-s | in-process limit | fraction |")
    L.append("|---|--:|--:|--:|")
    for r in runs:
        if r["scenario"] == "handshake" and r["server"] == "atoll" and r["generator"] in hl["fractions"]:
            L.append(f"| {r['generator']} | {fmt(r.get('ops_per_cpu_s'))} | {fmt(hl['in_process_server_handshakes_per_cpu_s'])} | "
                     f"{fmt(hl['fractions'][r['generator']], 2)} |")
    L.append("")
if spread:
    L.append("## Spread over atoll's isolates\n")
    L.append("Connections each isolate accepted during the scenario (atoll-serve's counters at exit, every generator "
             "of the scenario together); max/min 1.00 is an even spread.\n")
    L.append("| scenario | connections accepted | per isolate | max/min |")
    L.append("|---|--:|---|--:|")
    for s, sp in spread.items():
        L.append(f"| {s} | {sp['total']:,} | {', '.join(f'{a:,}' for a in sp['accepted'])} | {fmt(sp['max_min'], 2)} |")
    L.append("")
if idle_memory is not None:
    L.append("## Memory per idle TLS connection\n")
    L.append(f"RSS of the server ({idle_memory['rss_source']}; nginx: master + workers summed, atoll-serve: its one process), "
             f"read once {idle_low:,} and then {idle_high:,} idle TLS 1.3 connections from atoll-load were all established "
             f"(handshake + one GET / each, all counted by atoll-load and by `ss` on the server port; opened by "
             f"atoll-loads of at most 1,000 connections, one after the other, the first ones held throughout). "
             f"Each server started afresh, resumption on; nginx with `ssl_protocols TLSv1.3`, `backlog=4096`, `keepalive_timeout 600s`. "
             f"slope = (RSS@{idle_high:,} - RSS@{idle_low:,}) / {idle_high - idle_low:,}. Below 1.00 atoll uses less memory.\n")
    L.append(f"| server | RSS at {idle_low:,} | RSS at {idle_high:,} | slope B/conn |")
    L.append("|---|--:|--:|--:|")
    for srv in ("atoll", "nginx"):
        m = idle_memory.get(srv) or {}
        L.append(f"| {srv} | {fmt(m.get(f'rss_{idle_low}'))} | {fmt(m.get(f'rss_{idle_high}'))} | {fmt(m.get('slope_bytes_per_conn'))} |")
    L.append("")
    r = idle_memory.get("ratio")
    L.append(f"idle memory slope atoll/nginx: {'n/a' if r is None else f'{r:.2f}'}")
    L.append("")
if notes:
    L.append("## Notes\n")
    L.extend(f"- {n}" for n in notes)
    L.append("")
L.append(f"Raw data: `report.json`, `runs/<scenario>-<server>-<generator>/` (generator output, meta.txt), `nginx-<scenario>.conf`"
         + (", `idle-memory/<server>/` (result.txt, the holding atoll-loads' output), `nginx-idle-memory.conf`" if idle_memory is not None else "")
         + f".  \nDirectory: `{out}`")
with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(L) + "\n")
PY

cat "$out/report.md"
log "report: $out/report.md"
((server_failed == 0)) || exit 1
((failed == 0)) || exit 3
exit 0
