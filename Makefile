# Thin wrapper over scripts/ and CMake presets. The two commands of the README:
#   make run    install what is missing, build, run the main job
#   make test   install what is missing, build, pass the whole suite
# Other targets: deps, build, demo, compare, test-release, test-asan, test-tsan, fuzz, docs, icount, bench, format, clean.

JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DATOLL_WERROR=ON

.PHONY: all deps build run demo test test-release test-asan test-tsan fuzz docs icount bench compare format clean

all: build

deps:
	bash scripts/deps.sh

build: deps
	cmake --preset release $(CMAKE_FLAGS)
	cmake --build --preset release -j $(JOBS)

# The main job: atoll-serve on every CPU, driven by atoll-load through full
# handshakes, keep-alive request/response and 16 MiB bulk responses (6 s
# each), then the report (results, latency, per-isolate spread) printed and
# kept in build/load-report/<timestamp>/. Exit 3 from run.sh means the
# report was written but a scenario failed: the report says which, and make
# run still succeeds; any other failure (the server could not start) fails.
run: build
	@rc=0; scripts/load/run.sh --duration 6 handshake rr bulk || rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "make run: some scenarios failed (see the report above)" >&2; rc=0; fi; \
	exit $$rc

# The foundation demo: isolates, messages, wakeups, timers, submit, drain.
demo: build
	./build/release/examples/hello-isolates

# atoll against nginx, same certificate, workers and generators (a few minutes).
compare: build
	scripts/load/compare.sh

# Default configuration (optimized wolfSSL when it was built), ASan+UBSan
# (system wolfSSL: both wolfSSL configurations pass the suite), and
# ThreadSanitizer over the cross-isolate suites, then the fuzz targets
# (regressions, 60 s each: make fuzz below), then the API reference (make
# docs below: a public declaration left undocumented fails the suite).
test: deps test-release test-asan test-tsan fuzz docs

test-release:
	cmake --preset release $(CMAKE_FLAGS)
	cmake --build --preset release -j $(JOBS)
	ctest --preset release

test-asan:
	cmake --preset asan $(CMAKE_FLAGS)
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan

# ThreadSanitizer over the cross-isolate suites (isolates, messaging); see
# tests/tsan/criterion/criterion.h for why they run without Criterion there.
test-tsan:
	cmake --preset tsan $(CMAKE_FLAGS)
	cmake --build --preset tsan -j $(JOBS)
	ctest --preset tsan

# libFuzzer (docs/fuzzing.md): builds tests/fuzz/ with clang, ASan and UBSan
# into build/fuzz, replays the regressions, then fuzzes each target for
# FUZZ_SECONDS on a copy of its seed corpus; any crash, leak, UBSan report
# or hang fails. scripts/fuzz.sh runs them longer.
FUZZ_SECONDS ?= 60
fuzz:
	bash scripts/deps.sh --no-wolfssl
	bash scripts/fuzz.sh --seconds $(FUZZ_SECONDS) --jobs $(JOBS)

# API reference from the public headers (docs/Doxyfile) into DOCS_DIR/html;
# any doxygen warning (an undocumented public declaration, a broken
# reference) fails it. About a second. Two checks doxygen cannot make come
# first: every header has a @file block (without one doxygen skips the
# header's functions silently), and every public function's doc block has
# a "Thread:" line (docs/guide.md's table of threads is built from them).
# The options are read from stdin so that DOCS_DIR needs no Doxyfile edit.
DOCS_DIR ?= build/docs
docs:
	bash scripts/deps.sh --no-wolfssl
	@missing=$$(grep -L '@file' include/atoll/*.h); \
	if [ -n "$$missing" ]; then echo "docs: no @file block: $$missing" >&2; exit 1; fi
	@awk 'FNR == 1 { doc = ""; end = 0 } \
	  /^\/\*\*/ { doc = ""; inb = 1 } inb { doc = doc $$0 } inb && /\*\// { inb = 0; end = FNR } \
	  /^ATOLL_API/ && (end != FNR - 1 || doc !~ /Thread:/) { \
	    print FILENAME ":" FNR ": public function without a Thread: line" > "/dev/stderr"; bad = 1 } \
	  END { exit bad }' include/atoll/*.h
	mkdir -p $(DOCS_DIR)
	{ cat docs/Doxyfile; echo 'OUTPUT_DIRECTORY = $(DOCS_DIR)'; } | doxygen -

# Instruction counts (callgrind) per TLS handshake and per keep-alive request
# against scripts/load/icount-baseline.json (docs/performance.md); 20 to 45 s.
# Re-record: scripts/icount.sh --record.
icount: build
	scripts/icount.sh --check --bin build/release/tools

bench: build
	./build/release/tools/atoll-bench-ports

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
