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

# Unit tests and the integration tests against every Python 3.8-3.13 found (see
# tests/common/mod.rs; TRACER_TEST_PYTHONS overrides the discovery).
test:
	$(CARGO) test --release -- --nocapture

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf demo-cover

# The executable-line analysis against every stdlib file of every Python 3.8-3.13 (minutes).
.PHONY: exec-lines-accuracy
exec-lines-accuracy:
	$(CARGO) test --release --test executable_lines -- --ignored --nocapture whole_stdlib_accuracy
