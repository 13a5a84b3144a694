# tests/check.sh: the PASS/FAIL bookkeeping of the shell tests, sourced by
# each of them: every check prints one "PASS: ..." or "FAIL: ..." line, and
# `summary` prints "N passed, N failed" and returns non-zero on a failure
# (the script's last command, so its exit status).
# shellcheck shell=bash
PASSED=0
FAILED=0
pass() {
	PASSED=$((PASSED + 1))
	echo "PASS: $*"
}
fail() {
	FAILED=$((FAILED + 1))
	echo "FAIL: $*"
}
# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
summary() {
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}
# work_dir [SIGNAL]: a temporary directory in WORK and an empty PIDS list;
# at exit every process the test appended to PIDS gets SIGNAL (default
# TERM) and is waited for, then WORK is removed.
work_dir() {
	WORK=$(mktemp -d)
	PIDS=()
	WORK_SIGNAL=${1:-TERM}
	trap work_dir_cleanup EXIT
}
work_dir_cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -"$WORK_SIGNAL" "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
