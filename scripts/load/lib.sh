# shellcheck shell=bash
# lib.sh - helpers shared by scripts/load/run.sh and scripts/load/compare.sh.
#
# Sourced, never run. Expects the caller to have set `prog` (a short name for
# messages). Everything here talks to 127.0.0.1 only and every wait is
# bounded.

load_repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)

log() { printf '%s: %s\n' "${prog:-load}" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "${prog:-load}" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "${prog:-load}" "$*" >&2
	exit 1
}

# is_uint VALUE: a non-negative decimal integer.
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
# is_pos_int VALUE: a positive decimal integer.
is_pos_int() { [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0)); }
# is_pos_number VALUE: a positive number (integer or decimal).
is_pos_number() { [[ $1 =~ ^[0-9]*\.?[0-9]+$ && ! $1 =~ ^0*\.?0*$ ]]; }

# online_cpus: what atoll-serve uses as its default isolate count.
online_cpus() { getconf _NPROCESSORS_ONLN 2>/dev/null || nproc; }

# ceil_int NUMBER: smallest integer >= NUMBER (for timeout budgets).
ceil_int() {
	local n=$1
	if [[ $n == *.* ]]; then
		local i=${n%%.*}
		printf '%d\n' $((${i:-0} + 1))
	else
		printf '%d\n' "$n"
	fi
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# json_lines FILE: how many lines of FILE start with '{'.
json_lines() {
	local n
	n=$(grep -c '^{' "$1" 2>/dev/null) || true
	printf '%d\n' "${n:-0}"
}

# wait_listening PID STDOUT_FILE SECONDS: wait for atoll-serve's
# "listening on ADDR:PORT isolates=N" line and print PORT. Fails when the
# process exits first or the time is up.
wait_listening() {
	local pid=$1 file=$2 secs=$3 line i
	for ((i = 0; i < secs * 20; i++)); do
		line=$(grep -m1 '^listening on ' "$file" 2>/dev/null) || true
		if [[ $line =~ :([0-9]+)\ isolates=([0-9]+)$ ]]; then
			printf '%s\n' "${BASH_REMATCH[1]}"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# wait_admin PID STDOUT_FILE SECONDS: wait for atoll-serve's
# "admin on 127.0.0.1:PORT" line (--admin 127.0.0.1:0) and print PORT.
wait_admin() {
	local pid=$1 file=$2 secs=$3 port i
	for ((i = 0; i < secs * 20; i++)); do
		port=$(sed -nE 's/^admin on 127\.0\.0\.1:([0-9]+)$/\1/p' "$file" 2>/dev/null) || true
		[[ -n $port ]] && { printf '%s\n' "$port"; return 0; }
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# admin_call PORT METHOD PATH [BODY_FILE]: one request to atoll-serve's admin
# port (30 s at most), the body into BODY_FILE; fails unless the answer is 200.
admin_call() {
	local code
	code=$(curl -s -m 30 -o "${4:-/dev/null}" -w '%{http_code}' -X "$2" "http://127.0.0.1:$1$3") || code=000
	[[ $code == 200 ]]
}

# snapshot PID STDOUT_FILE DEST: SIGUSR1 atoll-serve and copy the counters
# line it prints to DEST (bounded: 5 s). Returns 1 when no line came.
snapshot() {
	local pid=$1 file=$2 dest=$3 before i
	before=$(json_lines "$file")
	kill -USR1 "$pid" 2>/dev/null || return 1
	for ((i = 0; i < 100; i++)); do
		if (($(json_lines "$file") > before)); then
			# The line may still be being written: wait for its newline.
			sleep 0.02
			grep '^{' "$file" | tail -n 1 >"$dest"
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# stop_pid PID SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL. Returns 0
# when the process ended by itself after SIGTERM.
stop_pid() {
	local pid=$1 secs=$2 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < secs * 20; i++)); do
		kill -0 "$pid" 2>/dev/null || {
			wait "$pid" 2>/dev/null || true
			return 0
		}
		sleep 0.05
	done
	warn "pid $pid did not stop within ${secs}s after SIGTERM; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	return 1
}

# proc_tree PID: PID and its direct children (nginx master + workers).
proc_tree() {
	local root=$1 f stat rest
	printf '%s\n' "$root"
	for f in /proc/[0-9]*/stat; do
		{ read -r stat <"$f"; } 2>/dev/null || continue
		rest=${stat##*) }
		# rest: state ppid ...
		read -r _ ppid _ <<<"$rest"
		[[ $ppid == "$root" ]] && { f=${f#/proc/}; printf '%s\n' "${f%/stat}"; }
	done
}

# cpu_ticks PID: clock ticks of CPU used by PID and its direct children:
# utime+stime of each live process (all threads included) plus the root's
# cutime+cstime (children that already exited and were reaped). Divide by
# `getconf CLK_TCK` for seconds.
cpu_ticks() {
	local root=$1 pid stat rest total=0
	local -a f
	while read -r pid; do
		{ read -r stat <"/proc/$pid/stat"; } 2>/dev/null || continue
		rest=${stat##*) }
		read -r -a f <<<"$rest"
		# f[0] is field 3 (state): utime=14 stime=15 cutime=16 cstime=17.
		total=$((total + f[11] + f[12]))
		[[ $pid == "$root" ]] && total=$((total + f[13] + f[14]))
	done < <(proc_tree "$root")
	printf '%d\n' "$total"
}

# machine_busy_ticks: CPU ticks spent busy by the whole machine so far (all
# CPUs: user nice system irq softirq steal from /proc/stat), to tell how much
# of a run's CPU went to neither the server nor the load generator.
machine_busy_ticks() {
	local _cpu user nice system _idle _iowait irq softirq steal _rest
	read -r _cpu user nice system _idle _iowait irq softirq steal _rest </proc/stat
	printf '%d\n' $((user + nice + system + irq + softirq + steal))
}

clk_tck() { getconf CLK_TCK 2>/dev/null || echo 100; }

# git_desc: short commit of the work tree, "+dirty" when modified.
git_desc() {
	local c
	c=$(git -C "$load_repo" rev-parse --short HEAD 2>/dev/null) || {
		echo unknown
		return
	}
	if [[ -n $(git -C "$load_repo" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
		c+="+dirty"
	fi
	printf '%s\n' "$c"
}

# make_cert DIR: an ECDSA P-256 certificate for localhost/127.0.0.1/::1
# (DIR/cert.pem, DIR/key.pem), valid 2 days.
make_cert() {
	local dir=$1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/key.pem" -out "$dir/cert.pem" -days 2 -subj '/CN=localhost' \
		-addext 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1' >/dev/null 2>&1
}

# The atoll-load arguments of each scenario besides --target/--scenario/
# --connections/--duration/--cafile (or --plain)/--json. Always --http:
# atoll-serve runs in http mode, and without --http atoll-load's single
# exchange (handshake, idle, churn) or its requests (rr) would be echo
# payloads that an HTTP server never answers.
scenario_args() {
	local scen=$1 size=$2
	case $scen in
	handshake | idle | rr | churn | plain-rr | plain-conn) printf '%s\n' --http ;;
	bulk) printf '%s\n' --http --size "$size" ;;
	*) return 1 ;;
	esac
}

# The scenarios: atoll-load's five over TLS, and compare.sh's cleartext ones
# (plain-rr: rr, plain-conn: churn, over plain TCP; run.sh refuses them).
valid_scenario() { [[ $1 =~ ^(handshake|rr|bulk|idle|churn|plain-rr|plain-conn)$ ]]; }
# plain_scenario NAME: a cleartext scenario (atoll-load/atoll-serve --plain).
plain_scenario() { [[ $1 == plain-* ]]; }
# load_scenario NAME: atoll-load's --scenario for NAME.
load_scenario() {
	case $1 in
	plain-rr) printf '%s\n' rr ;;
	plain-conn) printf '%s\n' churn ;;
	*) printf '%s\n' "$1" ;;
	esac
}

# progress_series STDERR_FILE DAT_FILE: turn atoll-load's once-a-second
# --progress lines on stderr, e.g.
#   [   1.0s] ops      12345      12345 ops/s  errors 0  open 16  1.2 MB/s
# into rows "t_s ops_per_s mb_per_s open" (mb_per_s/open are "?" when the line
# has none) and print how many samples there were. Lenient: also takes JSON
# lines or "t=1 ops/s=..." text, and cumulative ops without a rate.
progress_series() {
	python3 - "$1" "$2" <<'PY'
import json, re, sys

src, dst = sys.argv[1], sys.argv[2]
NUM = r"([0-9]+(?:\.[0-9]+)?)\s*([kKmM]?)"
MULT = {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}
RATE_RES = [
    re.compile(r"\bops[_/ ]?(?:per[_ ]?)?s(?:ec)?\b\s*[=:]\s*" + NUM),
    re.compile(NUM + r"\s*(?:ops|req|requests|handshakes|conns?|connections)\s*/\s*s\b"),
    re.compile(r"\brate\s*[=:]\s*" + NUM),
]
OPS_RES = [re.compile(r"\bops\s*[=:]?\s*([0-9]+)\b(?!\s*ops)"), re.compile(r"\b([0-9]+)\s+ops\b(?!\s*/)")]
TIME_RES = [
    re.compile(r"\[\s*\+?([0-9]+(?:\.[0-9]+)?)\s*s\s*\]"),
    re.compile(r"\bt\s*[=:]\s*([0-9]+(?:\.[0-9]+)?)\s*s?\b"),
    re.compile(r"^\s*\+?([0-9]+(?:\.[0-9]+)?)\s*s\b"),
    re.compile(r"\b(?:elapsed|time)\s*[=:]\s*([0-9]+(?:\.[0-9]+)?)"),
]
MB_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*MB/s")
OPEN_RE = re.compile(r"\bopen\s*[=:]?\s*([0-9]+)\b")

rows, last_ops, last_t = [], None, 0.0
try:
    lines = open(src, errors="replace").read().splitlines()
except OSError:
    lines = []
for line in lines:
    t = rate = ops = mb = nopen = None
    s = line.strip()
    if s.startswith("atoll-load:"):  # banner and messages, not samples
        continue
    if s.startswith("{"):
        try:
            o = json.loads(s)
        except ValueError:
            o = None
        if isinstance(o, dict):
            for k in ("t", "elapsed_s", "elapsed", "time_s", "second", "t_s"):
                if isinstance(o.get(k), (int, float)):
                    t = float(o[k]); break
            for k in ("ops_per_s", "ops_s", "rate", "ops/s"):
                if isinstance(o.get(k), (int, float)):
                    rate = float(o[k]); break
            if rate is None and isinstance(o.get("ops"), (int, float)):
                ops = float(o["ops"])
            if isinstance(o.get("mb_per_s"), (int, float)):
                mb = float(o["mb_per_s"])
            if isinstance(o.get("open"), (int, float)):
                nopen = int(o["open"])
    else:
        for r in RATE_RES:
            m = r.search(s)
            if m:
                rate = float(m.group(1)) * MULT[m.group(2)]; break
        if rate is None:
            for r in OPS_RES:
                m = r.search(s)
                if m:
                    ops = float(m.group(1)); break
        if rate is not None or ops is not None:
            for r in TIME_RES:
                m = r.search(s)
                if m:
                    t = float(m.group(1)); break
            m = MB_RE.search(s)
            if m:
                mb = float(m.group(1))
            m = OPEN_RE.search(s)
            if m:
                nopen = int(m.group(1))
    if rate is None and ops is None:
        continue
    if t is None:
        t = float(len(rows) + 1)
    if rate is None:  # cumulative ops: the rate is the difference per interval
        if last_ops is not None and t > last_t:
            rate = (ops - last_ops) / (t - last_t)
        elif t > 0:
            rate = ops / t
        last_ops, last_t = ops, t
        if rate is None:
            continue
    rows.append((t, rate, mb, nopen))
with open(dst, "w") as f:
    f.write("# t_s ops_per_s mb_per_s open\n")
    for t, r, mb, n in rows:
        f.write(f"{t:g} {r:.3f} {'?' if mb is None else f'{mb:.3f}'} {'?' if n is None else n}\n")
print(len(rows))
PY
}

# nginx_start SSL PROTOCOLS SESSION LISTEN_OPTS KEEPALIVE: a private nginx
# in $tmp/nginx (Debian's nginx-light, $nginx_bin) with $workers workers on
# 127.0.0.1:$srv_port, the certificate $tmp/cert.pem and key $tmp/key.pem,
# "GET /" -> "hello\n" and /bytes/ from $tmp/www. SSL is " ssl" or "" (a
# cleartext listener); PROTOCOLS the ssl_protocols value; SESSION the
# ticket/cache directives; LISTEN_OPTS extra listen parameters (" backlog=N"
# or ""); KEEPALIVE the keepalive_timeout. Sets srv_pid once it answers and
# all its workers are up; 1 (srv_pid empty, the reason warned) if it does
# not start. Used by compare.sh and curve.sh.
# shellcheck disable=SC2154 # tmp, workers, srv_port and nginx_bin are the caller's
nginx_start() {
	local ssl=$1 protocols=$2 sess=$3 listen_opts=$4 keepalive=$5 scheme=https i
	[[ -n $ssl ]] || scheme=http
	rm -rf "$tmp/nginx"
	mkdir -p "$tmp/nginx"
	cat >"$tmp/nginx/nginx.conf" <<-EOF
		# generated by scripts/load/${prog:-lib.sh}
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
		    keepalive_timeout $keepalive;
		    ssl_certificate $tmp/cert.pem;
		    ssl_certificate_key $tmp/key.pem;
		    ssl_protocols $protocols;
		    $sess
		    server {
		        listen 127.0.0.1:$srv_port$ssl reuseport$listen_opts;
		        location = / { default_type text/plain; return 200 "hello\n"; }
		        location /bytes/ { root $tmp/www; default_type application/octet-stream; }
		    }
		}
	EOF
	"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" -g 'daemon off;' \
		>"$tmp/nginx/stdout" 2>&1 &
	srv_pid=$!
	for ((i = 0; i < 100; i++)); do
		if curl -fsS --max-time 2 --cacert "$tmp/cert.pem" -o /dev/null "$scheme://127.0.0.1:$srv_port/" 2>/dev/null; then
			# All workers up (master + N children)?
			(($(proc_tree "$srv_pid" | wc -l) > workers)) && return 0
		fi
		kill -0 "$srv_pid" 2>/dev/null || break
		sleep 0.1
	done
	warn "nginx did not start: $(tr '\n' ' ' <"$tmp/nginx/stdout" 2>/dev/null) $(tr '\n' ' ' <"$tmp/nginx/error.log" 2>/dev/null)"
	stop_pid "$srv_pid" 5 || true
	srv_pid=
	return 1
}

# atoll_start ARG...: atoll-serve ($serve) with ARGs, its output in
# $tmp/atoll.stdout and $tmp/atoll.stderr. Sets srv_pid, and srv_port from
# its listening line; 1 (srv_pid empty, the reason warned) if it does not
# start within 10 s. Used by compare.sh and curve.sh.
# shellcheck disable=SC2154 # tmp and serve are the caller's
atoll_start() {
	"$serve" "$@" >"$tmp/atoll.stdout" 2>"$tmp/atoll.stderr" &
	srv_pid=$!
	if ! srv_port=$(wait_listening "$srv_pid" "$tmp/atoll.stdout" 10); then
		warn "atoll-serve did not start: $(tr '\n' ' ' <"$tmp/atoll.stderr")"
		stop_pid "$srv_pid" 5 || true
		srv_pid=
		return 1
	fi
}
