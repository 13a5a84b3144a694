# Thin wrapper over scripts/ and CMake presets. The two commands of the README:
#   make run    install what is missing, build, run the main job
#   make test   install what is missing, build, pass the whole suite
# Other targets: deps, build, test-release, test-asan, test-tsan, bench, format, clean.

JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DATOLL_WERROR=ON

.PHONY: all deps build run test test-release test-asan test-tsan bench format clean

all: build

deps:
	bash scripts/deps.sh

build: deps
	cmake --preset release $(CMAKE_FLAGS)
	cmake --build --preset release -j $(JOBS)

# Until the load tools land, the main job is the isolates demo: isolates,
# messages, wakeups, timers, submit with reply, drain.
run: build
	./build/release/examples/hello-isolates

# Default configuration (optimized wolfSSL when it was built), ASan+UBSan
# (system wolfSSL: both wolfSSL configurations pass the suite), and
# ThreadSanitizer over the cross-isolate suites.
test: deps test-release test-asan test-tsan

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

bench: build
	./build/release/tools/atoll-bench-ports

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
