#!/usr/bin/env bash
# The include rules between the library's folders (docs/architecture.md,
# "Layering"). Fails on any include that breaks them, naming the line.
#   runtime/base/  includes only runtime/base/ and atoll/ (the public API)
#   isolates/      includes runtime/base/ and atoll/, never the rest of runtime/
#   runtime/       (above both) may include isolates/ and runtime/base/
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

# isolates/ sits below the rest of runtime/: it reaches only runtime/base/.
while IFS= read -r line; do
	fail "isolates/ includes a higher layer: $line"
done < <(grep -Hn '#include "runtime/' isolates/*.[ch] | grep -v '#include "runtime/base/')

while IFS= read -r line; do
	fail "prototype declared in a .c file: $line"
done < <(grep -HnE '^[a-z][a-z0-9_ *]*[ *]atoll_[a-z0-9_]+\([^;{]*\);' runtime/*.c runtime/base/*.c isolates/*.c | grep -v ':static ')

if ((status == 0)); then
	echo "1 passed, 0 failed"
else
	echo "0 passed, 1 failed"
fi
exit $status
