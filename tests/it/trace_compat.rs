//! `tracer attach` against the stdlib's own trace, on every Python 3.8–3.13 found.
//!
//! For each interpreter, the same workload runs three times in separate processes:
//! 1. under the stdlib's `trace.Trace` counting lines, functions and edges, its hook kept until
//!    the interpreter's shutdown is over (tests/support/trace_truth.py: ground truth of what ran);
//! 2. under tests/support/line_share.py (ground truth of each line's share of run time);
//! 3. traced by `tracer attach` until it exits.
//!
//! Every line, function and call edge tracer reports must be in (1): precision 1.000. Every
//! workload line holding ≥ 5% of the run time in (2) must be found. The stdlib's
//! `trace --report` must accept tracer's pickle.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use tracer::aggregate::model::{CoverageResults, FuncKey};

/// Seconds the sampled workload runs (tracer attaches once it is ready, and stops at its exit).
const SAMPLED_SECONDS: f64 = 3.0;
/// Seconds of the runs under trace and line_share (one iteration is enough for trace).
const TRUTH_SECONDS: f64 = 0.3;
const SHARE_SECONDS: f64 = 2.0;
/// A line holding at least this share of the run time must be found.
const MIN_SHARE: f64 = 0.05;

per_python!(
    /// `tracer attach` against the stdlib's trace on the same code, on each Python.
    attach_matches_stdlib_trace,
    check_python
);

per_python!(
    /// Precision under stress: the highest rate, never pausing the target, against stacks that
    /// change as fast as they can (tests/workloads/stack_churn.py: recursion built and torn down,
    /// generators, exceptions unwinding, threads dying). Every line, function and edge reported
    /// must have run (ground truth from a separate run under trace), on every Python found.
    precision_under_stack_churn_at_the_highest_rate,
    |python| check_precision_only(python, "stack_churn.py", "1000000")
);

per_python!(
    /// Precision with generators at a high rate (tests/workloads/generators.py): loops over
    /// generators that yield nothing, `yield from`, comprehensions, async generators. On 3.12 a
    /// `for` over an empty generator was sampled on its body line, which never ran: the caller
    /// stands on the loop's backward jump between the generator's return and `END_FOR`
    /// (`may_stand_on_an_unrun_loop_jump`, src/reader/linetable/). Every line, function and edge
    /// reported must have run, on every Python found.
    precision_with_generators_at_a_high_rate,
    |python| check_precision_only(python, "generators.py", "20000")
);

fn check_precision_only(python: &Python, workload_name: &str, rate: &str) -> Result<(), String> {
    let PyVersion { major, minor } = python.version;
    let name = workload_name.trim_end_matches(".py");
    let dir = scratch(&format!("{name}-{major}.{minor}"));
    let script = workload(workload_name);
    let script_str = script.to_str().unwrap();
    run_python(
        python,
        &[
            support("trace_truth.py").to_str().unwrap(),
            "truth.pickle",
            script_str,
        ],
        &dir,
        TRUTH_SECONDS,
    );
    let truth = load(&dir.join("truth.pickle"))?;
    if truth.counts.is_empty() {
        return Err("the ground truth is empty".into());
    }
    let mut target = Workload::start(python, &script, SAMPLED_SECONDS);
    let pid = target.pid().to_string();
    let out = run_tracer(
        &[
            "attach",
            "--pid",
            &pid,
            "--rate",
            rate,
            "--format",
            "json",
            "-o",
            "ours.json",
        ],
        &dir,
        Duration::from_secs(60),
    );
    target.wait(Duration::from_secs(30));
    if !out.status.success() {
        return Err(format!("tracer attach failed\n{}", printed(&out)));
    }
    let bytes = std::fs::read(dir.join("ours.json")).map_err(|e| e.to_string())?;
    let (ours, _) = tracer::output::json::from_slice(&bytes).map_err(|e| format!("{e:#}"))?;
    // trace cannot see what a new thread runs before `_bootstrap_inner` installs its hook
    // (`_set_ident`, `_set_tstate_lock`, `Event.set` and the `Condition` methods it calls):
    // with four threads started per iteration and sampling at the highest rate, tracer does.
    // threading.py is left out of the comparison here (mix.py's test keeps it in, with only
    // `_bootstrap` and `_bootstrap_inner` exempt); every other file must match exactly.
    let threading_file = bootstrap_exemptions(python).threading_file;
    let mut compared = ours.clone();
    compared
        .counts
        .retain(|(file, _), _| *file != threading_file);
    compared
        .calledfuncs
        .retain(|f| f.filename != threading_file);
    compared
        .callers
        .retain(|(a, b), _| a.filename != threading_file && b.filename != threading_file);
    let left_out = ours.counts.len() - compared.counts.len();
    let mut problems = Vec::new();
    check_precision(
        &compared,
        &truth,
        &bootstrap_exemptions(python),
        &mut problems,
    );
    let found = ours.lines_of(script_str).count();
    println!(
        "{}: {name} at rate {rate}: {} lines ({found} of the workload, {left_out} of threading.py \
         not compared), {} functions, {} edges, all of them ran",
        python.label(),
        ours.counts.len(),
        ours.calledfuncs.len(),
        ours.callers.len()
    );
    if found == 0 {
        problems.push("no line of the workload found".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn check_python(python: &Python) -> Result<(), String> {
    let PyVersion { major, minor } = python.version;
    let dir = scratch(&format!("compat-{major}.{minor}"));
    let script = workload("mix.py");
    let script_str = script.to_str().unwrap();

    // 1. Ground truth of what ran: the stdlib's trace.Trace counting lines, functions and
    //    edges, its hook kept through interpreter shutdown (tests/support/trace_truth.py).
    run_python(
        python,
        &[
            support("trace_truth.py").to_str().unwrap(),
            "truth.pickle",
            script_str,
        ],
        &dir,
        TRUTH_SECONDS,
    );
    let truth = load(&dir.join("truth.pickle"))?;
    if truth.counts.is_empty() || truth.calledfuncs.is_empty() || truth.callers.is_empty() {
        return Err("the ground truth is empty: trace did not record the workload".into());
    }

    // 2. Ground truth of where the time goes. A free-threaded 3.13's own `sys._current_frames`
    //    returns impossible stacks of a running thread (measured on 3.13.5t: `outer_work` at its
    //    RETURN_VALUE under `add_many`, every return line at 5-17% of samples, where tracer
    //    finds none), so there the share comes from the same version built with the GIL: the
    //    same bytecode, timed by an interpreter that reports its own frames rightly.
    let share_json = dir.join("share.json");
    let share_python = if python.free_threaded {
        match all_pythons()
            .into_iter()
            .find(|p| p.version == python.version && !p.free_threaded)
        {
            Some(sibling) => Some(sibling),
            None => {
                println!(
                    "SKIP: {}: hot lines not checked, no Python {} with the GIL to time them",
                    python.label(),
                    python.version
                );
                None
            }
        }
    } else {
        Some(python.clone())
    };
    if let Some(share_python) = &share_python {
        run_python(
            share_python,
            &[
                support("line_share.py").to_str().unwrap(),
                share_json.to_str().unwrap(),
                script_str,
            ],
            &dir,
            SHARE_SECONDS,
        );
    }

    // 3. tracer attach, until the workload exits.
    let mut target = Workload::start(python, &script, SAMPLED_SECONDS);
    let pid = target.pid().to_string();
    // TRACER_TEST_RATE samples faster, to stress precision (make stress).
    let rate = std::env::var("TRACER_TEST_RATE").unwrap_or_else(|_| "1000".into());
    let out = run_tracer(
        &[
            "attach",
            "--pid",
            &pid,
            "--rate",
            &rate,
            "-o",
            "ours.pickle",
        ],
        &dir,
        Duration::from_secs(60),
    );
    target.wait(Duration::from_secs(30));
    if !out.status.success() {
        return Err(format!("tracer attach failed\n{}", printed(&out)));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.contains("target exited") {
        return Err(format!(
            "expected sampling to end with the target's exit\n{}",
            printed(&out)
        ));
    }
    let ours = load(&dir.join("ours.pickle"))?;
    if !tracer::output::pickle::trace_reads_callers(python.version) && !ours.callers.is_empty() {
        return Err(
            "the pickle for 3.8/3.9 must leave callers out: their trace cannot read them".into(),
        );
    }

    let exempt = bootstrap_exemptions(python);
    let mut problems = Vec::new();
    check_precision(&ours, &truth, &exempt, &mut problems);
    let recall = match share_python {
        Some(_) => check_recall(&ours, &share_json, &script, &mut problems),
        None => "not checked".into(),
    };
    let workload_lines: BTreeSet<u32> = truth.lines_of(script_str).map(|(l, _)| l).collect();
    let found: BTreeSet<u32> = ours.lines_of(script_str).map(|(l, _)| l).collect();
    println!(
        "{}: {} lines, {} functions, {} edges; workload lines found {}/{} ({:.0}%); \
         lines with >= {:.0}% of run time found: {}",
        python.label(),
        ours.counts.len(),
        ours.calledfuncs.len(),
        ours.callers.len(),
        found.intersection(&workload_lines).count(),
        workload_lines.len(),
        100.0 * found.intersection(&workload_lines).count() as f64
            / workload_lines.len().max(1) as f64,
        MIN_SHARE * 100.0,
        recall
    );

    // The stdlib's own report accepts our pickle and writes the workload's .cover file.
    let report = std::process::Command::new(&python.path)
        .args([
            "-m",
            "trace",
            "--report",
            "--file",
            "ours.pickle",
            "--coverdir",
            "report",
            "--missing",
            "--summary",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    if !report.status.success() {
        problems.push(format!(
            "python -m trace --report rejected our pickle\n{}",
            printed(&report)
        ));
    } else {
        let summary = String::from_utf8_lossy(&report.stdout);
        let covered = std::fs::read_dir(dir.join("report"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().ends_with("mix.cover"))
            })
            .unwrap_or(false);
        if !covered || !summary.contains("lines   cov%   module   (path)") {
            problems.push(format!(
                "trace --report wrote no mix.cover or no summary\n{}",
                printed(&report)
            ));
        }
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

pub(crate) fn load(path: &Path) -> Result<CoverageResults, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    tracer::output::pickle::from_slice(&bytes).map_err(|e| format!("{}: {e:#}", path.display()))
}

/// The function name without its qualifying prefix: trace names methods `Class.method` on
/// every version, tracer uses `co_qualname` on 3.11+ and `co_name` before.
fn short(f: &FuncKey) -> (String, String) {
    let name = f.funcname.rsplit('.').next().unwrap_or(&f.funcname);
    (f.filename.clone(), name.to_owned())
}

/// Whether `line` of `file` is the `def` line of a function trace saw called. A frame waiting
/// at its entry (the `RESUME` on its first line, where a thread also waits for the GIL) stands
/// on that line, and the line did run: the `def` statement made the function. trace counts it
/// only if that statement ran under trace, which for a function defined before trace started
/// (`WeakSet.__init__`'s `_remove`, a weakref callback in every thread's teardown, defined when
/// threading was imported) it did not.
fn is_def_line_of_a_called_function(
    file: &str,
    line: u32,
    called: &BTreeSet<(String, String)>,
) -> bool {
    let Ok(source) = std::fs::read_to_string(file) else {
        return false;
    };
    let Some(text) = source.lines().nth((line as usize).saturating_sub(1)) else {
        return false;
    };
    let text = text.trim_start();
    let text = text.strip_prefix("async ").unwrap_or(text);
    let Some(rest) = text.strip_prefix("def ") else {
        return false;
    };
    let name: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    called.contains(&(file.to_owned(), name))
}

/// What trace cannot see although it ran: frames already running when trace installed its
/// hook. A new thread's `_bootstrap` and `_bootstrap_inner` call `settrace` themselves, so
/// trace never counts their lines or calls; tracer, looking from outside, does.
pub(crate) struct Exemptions {
    threading_file: String,
    /// Line ranges of those two functions in threading.py.
    ranges: Vec<(u32, u32)>,
}

impl Exemptions {
    fn covers_line(&self, file: &str, line: u32) -> bool {
        file == self.threading_file && self.ranges.iter().any(|(a, b)| (*a..=*b).contains(&line))
    }

    fn covers_func(&self, f: &FuncKey) -> bool {
        let (file, name) = short(f);
        file == self.threading_file && (name == "_bootstrap" || name == "_bootstrap_inner")
    }
}

pub(crate) fn bootstrap_exemptions(python: &Python) -> Exemptions {
    let code = "import inspect, json, threading\n\
                r = []\n\
                for name in ('_bootstrap', '_bootstrap_inner'):\n\
                \x20   lines, start = inspect.getsourcelines(getattr(threading.Thread, name))\n\
                \x20   r.append([start, start + len(lines) - 1])\n\
                print(json.dumps([threading.__file__, r]))";
    let out = run_python(python, &["-c", code], Path::new("/"), 0.0);
    let (file, ranges): (String, Vec<(u32, u32)>) =
        serde_json::from_slice(&out.stdout).expect("threading line ranges");
    Exemptions {
        threading_file: file,
        ranges,
    }
}

pub(crate) fn check_precision(
    ours: &CoverageResults,
    truth: &CoverageResults,
    exempt: &Exemptions,
    problems: &mut Vec<String>,
) {
    let truth_lines: BTreeSet<&(String, u32)> = truth.counts.keys().collect();
    let truth_funcs: BTreeSet<_> = truth.calledfuncs.iter().map(short).collect();
    let phantom_lines: Vec<_> = ours
        .counts
        .keys()
        .filter(|key| {
            !truth_lines.contains(key)
                && !exempt.covers_line(&key.0, key.1)
                && !is_def_line_of_a_called_function(&key.0, key.1, &truth_funcs)
        })
        .collect();
    if !phantom_lines.is_empty() {
        problems.push(format!("lines reported that never ran: {phantom_lines:?}"));
    }
    let phantom_funcs: Vec<_> = ours
        .calledfuncs
        .iter()
        .filter(|f| !truth_funcs.contains(&short(f)) && !exempt.covers_func(f))
        .collect();
    if !phantom_funcs.is_empty() {
        problems.push(format!(
            "functions reported that never ran: {phantom_funcs:?}"
        ));
    }
    let truth_edges: BTreeSet<_> = truth
        .callers
        .keys()
        .map(|(a, b)| (short(a), short(b)))
        .collect();
    let phantom_edges: Vec<_> = ours
        .callers
        .keys()
        .filter(|(a, b)| !truth_edges.contains(&(short(a), short(b))) && !exempt.covers_func(a))
        .collect();
    if !phantom_edges.is_empty() {
        problems.push(format!(
            "call edges reported that never happened: {phantom_edges:?}"
        ));
    }
}

/// Check that every workload line holding ≥ MIN_SHARE of the run time was found; returns a
/// description of how many were.
fn check_recall(
    ours: &CoverageResults,
    share_json: &Path,
    script: &Path,
    problems: &mut Vec<String>,
) -> String {
    #[derive(serde::Deserialize)]
    struct Share {
        samples: u64,
        lines: Vec<(String, u32, u64)>,
    }
    let share: Share =
        serde_json::from_slice(&std::fs::read(share_json).unwrap()).expect("share.json");
    if share.samples < 200 {
        problems.push(format!(
            "line_share took only {} samples: ground truth too thin",
            share.samples
        ));
        return "n/a".into();
    }
    let script = script.to_str().unwrap();
    let hot: BTreeMap<u32, f64> = share
        .lines
        .iter()
        .filter(|(file, _, _)| file == script)
        .map(|(_, line, n)| (*line, *n as f64 / share.samples as f64))
        .filter(|(_, s)| *s >= MIN_SHARE)
        .collect();
    let found: BTreeSet<u32> = ours.lines_of(script).map(|(l, _)| l).collect();
    let missed: Vec<_> = hot.iter().filter(|(l, _)| !found.contains(l)).collect();
    if !missed.is_empty() {
        problems.push(format!(
            "hot lines (line, share of run time) not found: {missed:?}"
        ));
    }
    format!("{}/{}", hot.len() - missed.len(), hot.len())
}
