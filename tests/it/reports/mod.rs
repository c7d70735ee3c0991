//! The report formats against their real consumers: coverage.py (report, html, json, lcov,
//! combine), the stdlib's trace (--report text, CoverageResults.update), Python's XML parser
//! (the flame graph SVG), a structural check of speedscope's schema, pydot (dot); plus merge,
//! conversions, filters, path maps and bad input.
//!
//! One traced run of tests/workloads/mix.py (JSON, with stacks) is shared by the tests. By area:
//! coverage.py's data file and plugin ([`coverage_py`]), the stdlib trace's pickle, merge and
//! text reports ([`trace_module`]), the stack formats ([`graphs`]), filters, conversions and bad
//! input ([`files`]).

mod coverage_py;
mod files;
mod graphs;
mod trace_module;

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// The shared run: mix.py traced from start to exit by `tracer run --format json`.
struct Traced {
    python: Python,
    json: PathBuf,
}

fn traced() -> &'static Traced {
    static TRACED: OnceLock<Traced> = OnceLock::new();
    TRACED.get_or_init(|| {
        let python = newest_python();
        let dir = scratch("reports");
        let out = run_workload(
            &python.path,
            workload("mix.py"),
            &["--format", "json", "-o", "mix.json"],
            "1.5",
            &dir,
        );
        assert!(out.status.success(), "{}", printed(&out));
        Traced {
            python,
            json: dir.join("mix.json"),
        }
    })
}

/// A fresh directory for one test, holding a copy of the shared JSON as `mix.json`.
fn workdir(name: &str) -> PathBuf {
    let t = traced();
    let dir = scratch(name);
    std::fs::copy(&t.json, dir.join("mix.json")).unwrap();
    dir
}

fn tracer_ok(args: &[&str], dir: &Path) -> Output {
    let out = run_tracer(args, dir, TIMEOUT);
    assert!(out.status.success(), "tracer {args:?}: {}", printed(&out));
    out
}

fn run_ok(program: &Path, args: &[&str], dir: &Path) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        printed(&out)
    );
    out
}

/// The lines we counted, by file, as coverage.py should see them.
fn our_line_sets(json: &Path) -> BTreeMap<String, Vec<u32>> {
    let (results, _) = tracer::output::load_results(json).unwrap();
    tracer::output::coverage_db::line_sets(&results)
        .into_iter()
        .map(|(f, l)| (f.to_owned(), l))
        .collect()
}

fn has_cover_named(dir: &Path, module: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()).any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!("{module}.cover"))
            })
        })
        .unwrap_or(false)
}
