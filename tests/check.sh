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
