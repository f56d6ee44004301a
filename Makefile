# Thin wrapper over CMake. The two commands a new user needs:
#   make run     install deps if missing, build, load the sample apps, serve
#   make check   install deps if missing, build (-Werror), run every test
JOBS    ?= $(shell nproc)
BUILD   ?= build
ASAN    ?= build-asan
PYTHON  ?= /usr/bin/python3
PYTEST   = $(PYTHON) -m pytest -q -p no:cacheprovider

.PHONY: all build deps build-asan check check-unit check-clang check-tsan check-api check-asan check-lint run bench bench-encryption fuzz clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DFV_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN) -j$(JOBS)

check-lint: build
	@./scripts/check-source.sh

check-unit: build
	@cd $(BUILD) && ctest --output-on-failure -L unit

# STYLE 39: the tree also builds warning-free with clang.
check-clang: deps
	@CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build-clang -j$(JOBS) >/dev/null

check-api: build
	@FORMVAULT_BIN=$(CURDIR)/$(BUILD)/formvault $(PYTEST) tests/api tests/system

# The sanitizer build runs the unit tests and the black-box API suite again;
# the servers it starts abort on the first ASan/UBSan report.
check-asan: build-asan
	@cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -L unit
	@FORMVAULT_BIN=$(CURDIR)/$(ASAN)/formvault FORMVAULT_SANITIZED=1 \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(PYTEST) tests/api

# ThreadSanitizer over the threaded unit tests (group commit, tenant cache,
# metrics, the HTTP server).
check-tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFV_TSAN=ON >/dev/null
	@cmake --build build-tsan -j$(JOBS) >/dev/null
	@cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	    ctest --output-on-failure -R 'unit/(store|ops|http)/'

check: check-lint check-unit check-clang check-tsan check-api check-asan
	@echo "make check: all suites passed"

run: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) --target formvault >/dev/null
	@./scripts/demo.sh $(BUILD)/formvault

bench: build
	@./bench/run.sh $(BUILD)/formvault

# Encryption at rest vs a benchmark-only plain-VFS build, side by side; the
# script builds both (build-bench-enc/, build-bench-plain/) with the same flags.
bench-encryption: deps
	@./bench/encryption.sh

fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DFV_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build-fuzz -j$(JOBS)
	@for t in build-fuzz/tests/fuzz_*[!y]; do [ -x "$$t" ] || continue; \
	    n=$$(basename $$t); echo "fuzzing $$n for $${FUZZ_SECONDS:-60}s"; \
	    $$t -max_total_time=$${FUZZ_SECONDS:-60} tests/fuzz/corpus/$$n || exit 1; done

clean:
	rm -rf $(BUILD) $(ASAN) build-fuzz build-clang build-tsan build-bench-enc build-bench-plain
