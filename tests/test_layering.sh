#!/usr/bin/env bash
# The include rules between the library's folders (docs/architecture.md,
# "Layering"). Fails on any include that breaks them, naming the line.
#   runtime/base/  includes only runtime/base/ and atoll/ (the public API)
#   isolates/      includes runtime/base/; of the rest of runtime/ only the
#                  headers still listed below (the cycle not yet removed)
#   no .c file declares a prototype for another file's atoll function
set -u
cd "$(dirname "$0")/.."
status=0
fail() {
	echo "layering: $*"
	status=1
}

while IFS= read -r line; do
	fail "runtime/base reaches above itself: $line"
done < <(grep -Hn '#include "' runtime/base/*.[ch] | grep -v '#include "runtime/base/' | grep -v '#include "atoll/')

# The upward includes isolates/ still has, each a known part of the cycle.
allowed='runtime/runtime_private.h|runtime/task.h|runtime/resolver.h'
while IFS= read -r line; do
	fail "isolates/ includes a higher layer: $line"
done < <(grep -Hn '#include "runtime/' isolates/*.[ch] | grep -v '#include "runtime/base/' | grep -Ev "#include \"($allowed)\"")
echo "layering: isolates/ -> runtime/ (not base), still to remove:"
grep -Hn '#include "runtime/' isolates/*.[ch] | grep -v '#include "runtime/base/' | sed 's/^/  /'

while IFS= read -r line; do
	fail "prototype declared in a .c file: $line"
done < <(grep -HnE '^[a-z][a-z0-9_ *]*[ *]atoll_[a-z0-9_]+\([^;{]*\);' runtime/*.c runtime/base/*.c isolates/*.c | grep -v ':static ')

if ((status == 0)); then
	echo "1 passed, 0 failed"
else
	echo "0 passed, 1 failed"
fi
exit $status
