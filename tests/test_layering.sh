#!/usr/bin/env bash
# The include rules between the library's folders (docs/architecture.md,
# "Layering"). Fails on any include that breaks them, naming the line.
#   runtime/base/  includes only runtime/base/ and atoll/ (the public API)
#   isolates/      includes runtime/base/ and atoll/, never the rest of runtime/
#   runtime/       (above both) may include isolates/ and runtime/base/
#   no .c file declares a prototype for another file's atoll function
# With OBJDIR (the library's object files, CMakeFiles/atoll_static.dir), the
# same direction is checked on symbols: no object of runtime/base/ or
# isolates/ references a symbol defined by an object of a folder above it.
# Usage: tests/test_layering.sh [OBJDIR]
set -u
objdir=${1:-}
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

# objects DIR: the object files of DIR's current sources (a build tree can
# hold stale objects of files since moved or removed).
objects() {
	local src
	for src in "$1"/*.c; do
		[[ -f $objdir/$src.o ]] && printf '%s\n' "$objdir/$src.o"
	done
}
# defined_in DIR: the global symbols the objects of DIR define.
defined_in() { objects "$1" | xargs -r nm --defined-only -g | awk 'NF == 3 { print $3 }' | sort -u; }
# undefined_in DIR: the symbols the objects of DIR use from elsewhere.
undefined_in() { objects "$1" | xargs -r nm -u | awk 'NF == 2 { print $2 }' | sort -u; }
if [[ -n $objdir ]]; then
	if [[ -z $(objects isolates) || -z $(objects runtime) || -z $(objects runtime/base) ]]; then
		fail "no object files under $objdir"
	else
		while IFS= read -r sym; do
			fail "isolates/ calls up into runtime/: $sym"
		done < <(comm -12 <(undefined_in isolates) <(defined_in runtime))
		while IFS= read -r sym; do
			fail "runtime/base/ calls up into runtime/ or isolates/: $sym"
		done < <(comm -12 <(undefined_in runtime/base) <(sort -u <(defined_in runtime) <(defined_in isolates)))
	fi
fi

if ((status == 0)); then
	echo "1 passed, 0 failed"
else
	echo "0 passed, 1 failed"
fi
exit $status
