# The two commands a newcomer runs: `make local-run` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
# Tests at once: twice the cores. Most of a test's time is waiting on sockets and processes (the
# suite used a third of two cores' CPU at two at a time, 12-07). The tests whose verdict is a
# latency or deadline bound under load of their own making (ctest label load_bound,
# tests/CMakeLists.txt) run afterwards in a pass of their own, JOBS at a time, so that they never
# share the machine with more than one other test. Both passes always run; either failing fails.
TEST_JOBS ?= $(shell echo $$(( $(JOBS) * 2 )))
# ctest in two passes: $(call run_tests,<timeout>,<extra ctest arguments>)
run_tests = rc=0; \
	ctest --output-on-failure --timeout $(1) -j $(TEST_JOBS) -LE load_bound $(2) || rc=1; \
	ctest --output-on-failure --timeout $(1) -j $(JOBS) -L load_bound $(2) || rc=1; \
	exit $$rc

.PHONY: all deps build local-run test build-asan test-asan test-tsan fuzz format format-check tidy tidy-all clean lint-openapi

all: build

deps:
	@scripts/install-deps.sh build

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS) --target vigil

.env:
	cp .env.example .env

# Runs vigil with .env (made from .env.example when absent) and the example services file.
local-run: build .env
	$(BUILD_DIR)/vigil run

test:
	@scripts/install-deps.sh test
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build $(BUILD_DIR) -j $(JOBS)
	cd $(BUILD_DIR) && $(call run_tests,300,)

# The whole suite (unit, end-to-end, crash and hostile-target tests) under sanitizers, each in
# its own build directory. -O1 keeps them fast enough to run, -g1 (line tables: all a report's
# stack needs) fast to build; any report fails the test that caused it. The benchmark tools are
# not built: their smoke run measures nothing under a sanitizer.
SANITIZER_CMAKE = -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g1 -O1"
# detect_leaks: LeakSanitizer checks every test binary (and vigil, in the end-to-end tests) at exit.
ASAN_ENV = ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# tests/sanitizers/tsan.supp says why its one suppression (inside Debian's compiled httplib) is there.
TSAN_ENV = TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/sanitizers/tsan.supp

ASAN_BUILD_DIR ?= build-asan
# Left out under ASan (they run in `make test`): tests whose length is their load or their
# deadlines and whose code paths shorter tests run under ASan too, so that they would prove
# nothing more there but cost minutes of the stage:
#   crash_test and crash_test_postgres (crash_test(_postgres)?): each SIGKILLs vigil at random
#     for ~30 s and checks the database, on SQLite and on PostgreSQL; a killed process reports
#     nothing to ASan, restart and recovery run in the e2e restart tests, and under ASan vigil
#     is often too slow to write ticks before its kill (the test then fails its own coverage
#     check);
#   HostileClients.SlowlorisConnectionsDoNotTakeTheApiDown: waits out the 10 s head deadline;
#     GuardedServerLimits' head- and request-deadline tests run the same paths in ~2 s;
#   HostileClients.IdleConnectionsThatReconnectDoNotStarveRequests: 1,000 reconnecting
#     connections and 600 timed requests, a latency bound; the eviction paths run in
#     GuardedServerLimits and the e2e out-of-descriptors test;
#   ReliabilityHostile.HostileTargetsEndDownOnTime...: a p99 lateness bound of 0.1 s for healthy
#     services beside hostile targets (0.25 s under ASan in CI on 12-07); each hostile target's
#     path runs under ASan in runner_probe_test and runner_tcp_test;
#   GuardedServerLimits.NearTheDescriptorLimit...: lowers the test process's own open-file limit,
#     and UBSan's vptr check needs descriptors of its own there ("memory cannot be printed", a
#     false report on std::thread in CI on 12-07);
#   the PostgreSQL variants of the API and end-to-end suites (/postgres, _postgres) and the
#     PostgreSQL fault tests (PostgresFaults, PostgresCrashFaults): they run the API, runner and
#     alerting code the SQLite variants run under ASan, over the PostgreSQL backend, whose code
#     runs under ASan in the storage and alerting suites on PostgreSQL, e2e_postgres_test and the
#     migrate tests. They were 148 s of the stage's 637 s of test time (12-07, clang ASan, 2 cores);
#     the killed-postmaster test alone 25 s;
#   BrowserEndToEnd: its time is Chromium's (15 s under ASan); vigil's status page code runs
#     under ASan in api_tests' status page suites;
#   docs_tests.DocsLinks: reads Markdown files only, no vigil code.
ASAN_EXCLUDE = ^(crash_test(_postgres)?|api_hostile_clients_test\.GuardedServerLimits\.NearTheDescriptorLimitTheServerLeavesTheReserveToTheProcess|api_hostile_clients_test\.HostileClients\.(SlowlorisConnectionsDoNotTakeTheApiDown|IdleConnectionsThatReconnectDoNotStarveRequests)|reliability_hostile_test\.ReliabilityHostile\.HostileTargetsEndDownOnTimeWhileHealthyOnesStayPunctualAndMemoryFlat|(api|e2e)_tests\..*[/_]postgres( .*)?|e2e_tests\.(Postgres(Crash)?Faults|BrowserEndToEnd)\..*|docs_tests\.DocsLinks\..*)$$
# clang, ASan and UBSan, with libFuzzer's coverage instrumentation (VIGIL_FUZZ): one build that
# `make fuzz` shares, so that after this it only links its targets.
ASAN_CMAKE = -DCMAKE_CXX_COMPILER=clang++ $(SANITIZER_CMAKE) -DVIGIL_FUZZ=ON -DVIGIL_BUILD_BENCH=OFF
# build-asan: the build alone (.ci/run starts it beside `make test`).
build-asan:
	@scripts/install-deps.sh sanitize
	@scripts/install-deps.sh fuzz
	cmake -S . -B $(ASAN_BUILD_DIR) $(ASAN_CMAKE)
	cmake --build $(ASAN_BUILD_DIR) -j $(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD_DIR) && export $(ASAN_ENV) && $(call run_tests,600,-E '$(ASAN_EXCLUDE)')

test-tsan:
	@scripts/install-deps.sh sanitize
	cmake -S . -B build-tsan $(SANITIZER_CMAKE) -DVIGIL_SANITIZE=thread
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && $(TSAN_ENV) ctest --output-on-failure --timeout 600 -j $(JOBS)

# libFuzzer targets (fuzz/), built in the sanitizer build (clang, ASan and UBSan); each runs
# FUZZ_SECONDS from its seed corpus (fuzz/corpus/<target>). New inputs go to
# build-asan/corpus, crashes to build-asan/crashes.
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/install-deps.sh fuzz
	cmake -S . -B $(ASAN_BUILD_DIR) $(ASAN_CMAKE)
	cmake --build $(ASAN_BUILD_DIR) -j $(JOBS) --target fuzz_targets
	fuzz/run.sh $(ASAN_BUILD_DIR) $(FUZZ_SECONDS)

# The project's C++ sources (third-party code is not in the tree).
CXX_SOURCES = $$(git ls-files '*.cpp' '*.h')
format:
	clang-format -i $(CXX_SOURCES)

# Fails on any file clang-format (.clang-format) would change; `make format` fixes them.
format-check:
	@scripts/install-deps.sh lint
	clang-format --dry-run -Werror $(CXX_SOURCES)

# clang-tidy (.clang-tidy) over the sources compiled in TIDY_BUILD_DIR's compile_commands.json
# (configured only, without the unity build, so that each file has its own compile command),
# with the headers they include; any finding fails. About 7 s of CPU per file, so:
#   make tidy                      every file (~21 min of CPU)
#   make tidy TIDY_BASE=<ref>      the .cpp files changed since <ref> and one file including each
#                                  changed header (every file if .clang-tidy changed), e.g.
#                                  TIDY_BASE=origin/main; CI passes the commit in $(TIDY_CLEAN)
#   make tidy-all                  every file and, when clean, records HEAD in $(TIDY_CLEAN)
#                                  (only with no uncommitted change to the sources or the checks:
#                                  the commit must be what was checked); commit that file
TIDY_BASE ?=
TIDY_JOBS ?= $(JOBS)
TIDY_BUILD_DIR ?= build-tidy
TIDY_CLEAN = .ci/tidy-clean
tidy:
	@scripts/install-deps.sh lint
	cmake -S . -B $(TIDY_BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DVIGIL_UNITY_BUILD=OFF > /dev/null
	@files="$$(scripts/tidy-files.sh $(TIDY_BUILD_DIR) $(TIDY_BASE))" || exit 1; \
	if [ -z "$$files" ]; then echo "tidy: no C++ file changed since $(TIDY_BASE)"; exit 0; fi; \
	echo "tidy: $$(echo $$files | wc -w) files"; \
	echo $$files | xargs -n 1 -P $(TIDY_JOBS) clang-tidy -p $(TIDY_BUILD_DIR) --quiet

tidy-all:
	@$(MAKE) --no-print-directory tidy TIDY_BASE=
	@if [ -n "$$(git status --porcelain -- '*.cpp' '*.h' .clang-tidy '*CMakeLists.txt')" ]; then \
		echo "tidy-all: clean, but sources or checks have uncommitted changes: $(TIDY_CLEAN) not updated"; \
	else \
		git rev-parse HEAD > $(TIDY_CLEAN); \
		echo "tidy-all: clean at $$(cat $(TIDY_CLEAN)); commit $(TIDY_CLEAN)"; \
	fi

# Lints api/openapi.json under Redocly's recommended rules, any finding an error
# (tools/openapi-lint/redocly.yaml), with the Redocly CLI version pinned by
# tools/openapi-lint/package-lock.json (1.34: Redocly CLI 2 needs Node 20.19, Debian 12 has 18).
# Node and npm come from `scripts/install-deps.sh openapi`; tools/npm-ci-cached.sh installs the CLI
# into the build directory once per lock file. Telemetry and the update check are off: they
# only wait on the network.
OPENAPI_LINT_DIR = $(BUILD_DIR)/openapi-lint
lint-openapi:
	@scripts/install-deps.sh openapi
	tools/npm-ci-cached.sh tools/openapi-lint $(OPENAPI_LINT_DIR)
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
		$(OPENAPI_LINT_DIR)/node_modules/.bin/redocly lint api/openapi.json \
		--config tools/openapi-lint/redocly.yaml

clean:
	rm -rf $(BUILD_DIR) build-asan build-tsan build-fuzz build-tidy

# The benchmark suite (bench/, docs/benchmarks.md): installs nginx-light, wrk and
# prometheus-blackbox-exporter, builds vigil for Release in BENCH_BUILD_DIR and prints the tables
# (about 20 minutes; 10 more for 1,000,000 services when 6 GB are free). BENCH_ARGS passes
# options, e.g. BENCH_ARGS="--only engine,api" or "--huge 0".
# bench-smoke: the same at small N in 1-2 minutes (ctest runs it as bench_smoke; 92 s on 12-07 with
# both backends, on a loaded 2-core machine).
BENCH_BUILD_DIR ?= build-bench
BENCH_ARGS ?=
.PHONY: bench bench-smoke
bench bench-smoke:
	@scripts/install-deps.sh bench
	cmake -S . -B $(BENCH_BUILD_DIR) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BENCH_BUILD_DIR) -j $(JOBS) --target vigil_bench_tools
	python3 bench/vigil_bench.py --build-dir $(BENCH_BUILD_DIR) $(if $(filter bench-smoke,$@),--smoke) $(BENCH_ARGS)
