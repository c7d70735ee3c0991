# tracer: build, demo, tests. `make demo` and `make test` are the README's first commands.

CARGO ?= cargo
PYTHON ?= python3
TRACER := target/release/tracer

.PHONY: build demo test lint clean

build:
	$(CARGO) build --release

# Build, trace the bundled demo workload from its start to its exit, print trace's summary.
demo: build
	$(TRACER) run --format cover -o demo-cover -- $(PYTHON) tests/workloads/demo.py
	@echo "annotated sources: demo-cover/*.cover"

# Unit tests and the integration tests against every Python 3.8-3.15 found (see
# tests/common/mod.rs; TRACER_TEST_PYTHONS overrides the discovery).
test: report-venv tracefunc-venvs i386-python pythons-new python-ft test-debs
	$(CARGO) test --release -- --nocapture

# CPython 3.14 and 3.15 (read by tracer, tested like 3.8-3.13), Debian sid's builds unpacked under target/pythons by
# tests/support/fetch-python.sh: about 20 s for both the first time (downloads, no compiling),
# nothing once there. `make test PYTHONS_NEW=` leaves them out (their tests print SKIP).
PYTHONS_NEW ?= 3.14 3.15
.PHONY: pythons-new
pythons-new:
	@if [ -n "$(PYTHONS_NEW)" ]; then tests/support/fetch-python.sh $(PYTHONS_NEW); fi

# A free-threaded CPython 3.13 (--disable-gil), built from the source Debian stable packages by
# tests/support/build-python-ft.sh into target/pythons/3.13t: about 12 minutes on 2 cores the
# first time, nothing once there. `make test PYTHON_FT=` leaves it out (its tests print SKIP).
PYTHON_FT ?= 3.13t
.PHONY: python-ft
python-ft:
	@if [ -n "$(PYTHON_FT)" ]; then tests/support/build-python-ft.sh $(PYTHON_FT); fi

# The pinned real consumers of our formats (coverage.py, pydot), for tests/it/reports.rs, and our
# coverage.py plugin (src/coverage_plugin): a venv under target/, rebuilt only when
# tests/support/report-requirements.txt or the plugin changes (tests/common/mod.rs does the same).
REPORT_VENV := target/report-venv
REPORT_PLUGIN := src/coverage_plugin
REPORT_INPUTS := tests/support/report-requirements.txt $(REPORT_PLUGIN)/pyproject.toml \
	$(REPORT_PLUGIN)/tracer_coverage.py
# The newest Python 3.9-3.13 that runs (pyenv's shims name versions that are not selected):
# coverage.py must parse the newest target's standard library.
REPORT_PYTHON ?= $(shell for v in 3.13 3.12 3.11 3.10 3.9; do \
	for p in $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v*/bin/python /usr/bin/python$$v; do \
	$$p -c '' 2>/dev/null && { echo $$p; exit 0; }; done; done; echo python3)

# A real 32-bit Python for tests/it/bad_targets.rs (Debian's i386 packages, unpacked; x86_64 only).
.PHONY: i386-python
i386-python:
	@if [ "$$(uname -m)" = x86_64 ]; then \
		arch/i386/setup.sh || echo "no i386 Python (the 32-bit test will print SKIP)"; \
	fi

# Real readers of our outputs that come from Debian: golang-go (`go tool pprof`, for
# tests/it/pprof.rs), tmux (the terminal tests/it/top.rs runs `tracer top` in) and chromium
# (headless, the browser tests/it/html.rs opens `--format html` in); installed
# when missing and root, else their tests print SKIP.
TEST_DEBS := golang-go tmux chromium
.PHONY: test-debs
test-debs:
	@missing=$$(for p in $(TEST_DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
		grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$$missing >/dev/null; \
		else echo "missing $$missing (as root: apt-get install $$missing): their tests print SKIP"; fi; \
	fi

# Regenerate src/output/pprof/profile.rs from the vendored profile.proto (needs protoc: Debian's
# protobuf-compiler). A unit test fails when the proto and the generated file disagree.
.PHONY: pprof-proto
pprof-proto:
	CARGO_TARGET_DIR=target/pprof-proto $(CARGO) run --release --quiet \
		--manifest-path src/output/pprof/generate/Cargo.toml

.PHONY: report-venv
report-venv:
	@if ! cat $(REPORT_INPUTS) | cmp -s - $(REPORT_VENV)/installed-inputs.txt; then \
		rm -rf $(REPORT_VENV) && \
		$(REPORT_PYTHON) -m venv $(REPORT_VENV) && \
		$(REPORT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
			-r tests/support/report-requirements.txt ./$(REPORT_PLUGIN) && \
		cat $(REPORT_INPUTS) > $(REPORT_VENV)/installed-inputs.txt; \
	fi

# tracefunc, the in-process ground truth of tests/it/function_view.rs, runs inside the workload's
# own interpreter: one venv per Python 3.12 and 3.13 found (target/tracefunc-venv-3.X), rebuilt
# only when tests/support/function-view-requirements.txt changes. The test makes a missing one
# itself, and prints SKIP if it cannot.
TRACEFUNC_REQUIREMENTS := tests/support/function-view-requirements.txt

.PHONY: tracefunc-venvs
tracefunc-venvs:
	@for v in 3.12 3.13; do \
		py=""; \
		for p in $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v*/bin/python /usr/bin/python$$v; do \
			$$p -c '' 2>/dev/null && { py=$$p; break; }; \
		done; \
		if [ -z "$$py" ]; then echo "SKIP: no Python $$v for tracefunc"; continue; fi; \
		venv=target/tracefunc-venv-$$v; \
		if ! cmp -s $(TRACEFUNC_REQUIREMENTS) $$venv/installed-requirements.txt; then \
			rm -rf $$venv && \
			$$py -m venv $$venv && \
			$$venv/bin/python -m pip install --quiet --disable-pip-version-check \
				-r $(TRACEFUNC_REQUIREMENTS) && \
			cp $(TRACEFUNC_REQUIREMENTS) $$venv/installed-requirements.txt || exit 1; \
		fi; \
	done

# Precision under stress on a loaded machine (issue 7, item 3): the stack-churn precision test
# of tests/it/trace_compat.rs STRESS_RUNS times with STRESS_LOAD busy loops beside it (about 40 s
# a run with every Python 3.8-3.14).
STRESS_RUNS ?= 10
STRESS_LOAD ?= 4
.PHONY: stress
stress: pythons-new
	tests/support/stress.sh $(STRESS_RUNS) $(STRESS_LOAD)

# Every fuzz target (tests/fuzz_*.rs) with 1,000,000 cases each (FUZZ_CASES overrides), built
# with overflow checks (Cargo.toml's fuzz profile); `make test` runs the same targets with 2,000.
# The snapshot analysis of walked images (~10 ms a case) runs a twentieth of that: 50,000 here,
# 500 in `make test`. Prints one "FUZZ <target>: N cases" line per target. About an hour on 2 cores.
FUZZ_CASES ?= 1000000
.PHONY: fuzz
fuzz:
	@mkdir -p target
	TRACER_FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --profile fuzz --test fuzz \
		-- --nocapture --test-threads=2 > target/fuzz.log 2>&1; status=$$?; \
		grep -E '^(FUZZ|fuzz|frame walker|snapshot walk|test result)|panicked' target/fuzz.log; exit $$status

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf demo-cover

# The executable-line analysis against every stdlib file of every Python 3.8-3.13 (minutes).
.PHONY: exec-lines-accuracy
exec-lines-accuracy:
	$(CARGO) test --release --test it -- --ignored --nocapture executable_lines::whole_stdlib_accuracy

# tracer against py-spy 0.4.3 and austin 3.7.0, side by side (docs/benchmarks.md): minutes.
# Both are pip-installed into a venv once (austin-dist 4.0 needs glibc 2.38, newer than
# Debian 12's). `make bench READER=py-spy` picks tracer's reader; BENCH_ARGS passes more
# options to the driver (tests/support/bench.py --help).
BENCH_VENV := target/bench-venv
BENCH_STAMP := $(BENCH_VENV)/.installed-py-spy-0.4.3-austin-dist-3.7.0
READER ?= auto
BENCH_ARGS ?=

.PHONY: bench
bench: build $(BENCH_STAMP)
	$(PYTHON) tests/support/bench.py --reader $(READER) --tracer $(TRACER) \
		--venv $(BENCH_VENV) --cargo $(CARGO) $(BENCH_ARGS)

$(BENCH_STAMP):
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check \
		py-spy==0.4.3 austin-dist==3.7.0
	touch $@

# Real code as the measure (docs/benchmarks.md, "Fidelity"): the pytest suites of pinned
# more-itertools 10.5.0, toolz 1.0.0 and packaging 24.2 under coverage.py (the truth) and under
# tracer (sampled on every Python 3.8+ found; on 3.12+ also snapshot), precision and recall
# per suite x version x mode; exits 1 if any line reported did not run. The sdists and a venv per
# Python are made once under target/real-suites by tests/support/real_suites.py. About an hour
# with every Python (packaging's 26,921 tests dominate); FIDELITY_ARGS passes options, e.g.
# FIDELITY_ARGS="--suite toolz --python 3.12" (tests/support/fidelity.py --help).
FIDELITY_ARGS ?=

.PHONY: fidelity real-suites
fidelity: build pythons-new
	$(PYTHON) tests/support/fidelity.py --tracer $(TRACER) $(FIDELITY_ARGS)

real-suites: pythons-new
	$(PYTHON) tests/support/real_suites.py setup

# aarch64: cross-build with Debian's Rust (rustup has no aarch64 std here) and test under qemu.
# arch/aarch64/setup.sh installs the toolchain and an arm64 CPython 3.11 (idempotent).
AARCH64_ENV := RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
	CARGO_TARGET_DIR=target/aarch64

.PHONY: aarch64 test-aarch64
aarch64:
	arch/aarch64/setup.sh
	$(AARCH64_ENV) /usr/bin/cargo build --release --target aarch64-unknown-linux-gnu
	@ls -l target/aarch64/aarch64-unknown-linux-gnu/release/tracer

# The integration tests with the aarch64 tracer and an arm64 Python, both under qemu-user
# (the test harness itself runs natively). Ground truth as on x86_64.
test-aarch64: aarch64
	TRACER_TEST_BIN=$(CURDIR)/arch/aarch64/tracer \
	TRACER_TEST_PYTHONS=$(CURDIR)/arch/aarch64/python3.11 \
	$(CARGO) test --release --test it -- --nocapture trace_compat:: run_and_report::
	@echo "A foreign-architecture Python: the x86_64 tracer against the arm64 CPython under qemu-user"
	TRACER_TEST_PYTHONS=$(CURDIR)/arch/aarch64/python3.11 \
	$(CARGO) test --release --test it -- --nocapture trace_compat::

# Memory over a long run: 10 minutes at 10 kHz against a workload that keeps creating new
# functions (tests/workloads/churn.py, 100 distinct sources, new code objects every round);
# fails if the tracer's RSS floor grows by more than 1 MiB after the warm-up. SOAK_ARGS passes
# options (--seconds, --rate, --every, --templates, --flush-every) to tests/support/soak.py.
SOAK_ARGS ?=

.PHONY: soak
soak: build
	$(PYTHON) tests/support/soak.py --tracer $(TRACER) $(SOAK_ARGS)
