//! The integration tests, one binary with a module per area, each against real CPython
//! processes (tests/common finds them: `TRACER_TEST_PYTHONS`, pyenv's, target/pythons,
//! Debian's). Select an area or a case by name: `cargo test --release --test it trace_compat::`.
//! The fuzz tests are their own binary (tests/fuzz): they count the allocations of their whole
//! process.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod bad_targets;
mod bench_paused;
mod cli_errors;
mod containers;
mod coverage_arcs;
mod discovery;
mod executable_lines;
mod fleet;
mod function_view;
mod html;
mod layouts;
mod linetable;
mod pacing;
mod pprof;
mod printable;
mod reader_differential;
mod readers;
mod real_suite_fidelity;
mod reports;
mod run_and_report;
mod run_snapshot;
mod security;
mod sidecar;
mod signals_and_filters;
mod snapshot;
mod snapshot_instances;
mod snapshot_namespaces;
mod snapshot_rules;
mod top;
mod trace_compat;
