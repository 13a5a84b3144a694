#!/usr/bin/env bash
# fuzz.sh - build atoll's libFuzzer targets (tests/fuzz/, clang with ASan and
# UBSan), replay the regressions and seeds, then fuzz each target for a
# bounded time. Fails on any crash, leak, UBSan report or hang.
#
# Usage: scripts/fuzz.sh [--seconds N] [--jobs N] [--keep-corpus] [target...]
#   --seconds N      fuzzing time per target (default 60; make fuzz: FUZZ_SECONDS)
#   --jobs N         build parallelism (default: nproc)
#   --keep-corpus    keep growing build/fuzz/corpus/<target> from earlier
#                    runs (seeds merged in) instead of a fresh copy of the seeds
#   target           tls_ingest tls_alpn tls_session http_parse material (default: all)
# Env: ATOLL_FUZZ_BUILD (default build/fuzz), FUZZ_ARGS (extra libFuzzer flags).
# See docs/fuzzing.md.
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
all_targets=(tls_ingest tls_alpn tls_session http_parse material proxy_header)

usage() {
	sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

seconds=60
jobs=$(nproc)
keep=0
targets=()
while (($#)); do
	case $1 in
	--seconds)
		seconds=${2:?--seconds needs a value}
		shift
		;;
	--jobs)
		jobs=${2:?--jobs needs a value}
		shift
		;;
	--keep-corpus) keep=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	-*)
		printf 'fuzz: unknown option: %s\n' "$1" >&2
		usage >&2
		exit 2
		;;
	*)
		if [[ " ${all_targets[*]} " != *" $1 "* ]]; then
			printf 'fuzz: unknown target: %s (have: %s)\n' "$1" "${all_targets[*]}" >&2
			exit 2
		fi
		targets+=("$1")
		;;
	esac
	shift
done
((${#targets[@]})) || targets=("${all_targets[@]}")
[[ $seconds =~ ^[0-9]+$ ]] || {
	echo "fuzz: --seconds wants a whole number" >&2
	exit 2
}

if ! command -v clang >/dev/null || ! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; then
	echo "fuzz: clang with libFuzzer not found: run scripts/deps.sh (packages clang, libclang-rt-14-dev)" >&2
	exit 1
fi

build=${ATOLL_FUZZ_BUILD:-$root/build/fuzz}
start=$SECONDS
cmake -S "$root/tests/fuzz" -B "$build" -DCMAKE_C_COMPILER=clang >/dev/null
cmake --build "$build" -j "$jobs"

# What was found once stays fixed: regressions and seeds, each run once.
ctest --test-dir "$build" --output-on-failure

# Sanitizer reports end the run (UBSan aborts: -fno-sanitize-recover), with
# symbolized stacks when llvm-symbolizer is there (package llvm).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Per target: the longest input worth trying. http_parse goes past the
# 8 KiB head limit of atoll-serve; a TLS first flight fits in 4 KiB.
max_len() {
	case $1 in
	http_parse) echo 20000 ;;
	*) echo 4096 ;;
	esac
}

failed=()
summary=()
for t in "${targets[@]}"; do
	corpus=$build/corpus/$t
	artifacts=$build/artifacts/$t
	log=$build/logs/$t.log
	((keep)) || rm -rf "$corpus"
	rm -rf "$artifacts" # only this run's findings are reported
	mkdir -p "$corpus" "$artifacts" "$(dirname -- "$log")"
	cp -f "$root/tests/fuzz/corpus/$t/"* "$corpus/"
	echo "fuzz: $t for ${seconds}s (corpus $corpus, log $log)"
	rc=0
	# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
	"$build/fuzz_$t" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1 || rc=$?
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' <<<"$done_line" || true)
	if ((rc != 0)); then
		failed+=("$t")
		summary+=("$(printf '%-11s FAILED (exit %d) after %s runs; see %s' "$t" "$rc" "${execs:-?}" "$log")")
		echo "fuzz: $t FAILED (exit $rc). The report:" >&2
		grep -nE 'ERROR: |runtime error:|SUMMARY:|Test unit written' "$log" | head -n 10 >&2 || true
		tail -n 60 "$log" >&2
		for a in "$artifacts"/*; do
			[[ -f $a ]] || continue
			echo "fuzz: reproduce: $build/fuzz_$t $a" >&2
			echo "fuzz: once fixed, keep it: cp $a $root/tests/fuzz/regressions/$t/<what-it-was>" >&2
		done
	else
		summary+=("$(printf '%-11s ok: %s runs, %s exec/s, %s, corpus %s files' "$t" "${execs:-?}" "${rate:-?}" \
			"${cov:-cov: ?}" "$(find "$corpus" -type f | wc -l)")")
	fi
done

echo "fuzz: summary ($((SECONDS - start)) s in all)"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
	echo "fuzz: failed: ${failed[*]}" >&2
	exit 1
fi
