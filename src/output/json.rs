//! tracer's JSON results format, version 1 (documented in docs/json-format.md).

use super::RunInfo;
use crate::aggregate::model::{CoverageResults, FuncKey, LineHits, StackFrame, StackKey, Stacks};
use crate::function_view::{CallTrace, FunctionTraces, StatementTrace};
use crate::reader::ErrorKinds;
use crate::session::sampler::SamplerStats;
use crate::target::attach::TargetInfo;
use anyhow::bail;
use serde::{Deserialize, Serialize};

/// The `format` field's value.
pub const FORMAT_NAME: &str = "tracer-coverage";
/// The version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

type Func = (String, String, String);

#[derive(Serialize, Deserialize)]
struct Document {
    format: String,
    version: u32,
    #[serde(default)]
    target: Target,
    #[serde(default)]
    stats: Stats,
    counts: Vec<(String, u32, u64, u64)>,
    calledfuncs: Vec<Func>,
    callers: Vec<(Func, Func, u64)>,
    /// Optional: `[function, first line]`, `function` an index into `calledfuncs`, for the
    /// functions whose `co_firstlineno` the reader knew.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    first_lines: Vec<(usize, u32)>,
    /// Optional: absent in files converted from formats without stacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stacks: Option<StacksDoc>,
    /// Optional: `tracer snapshot`'s likely but unproven lines, `[filename, line]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    likely: Vec<(String, u32)>,
    /// Optional: `--snapshot`'s proven lines, and those of them never sampled (their count of
    /// 1 is the snapshots'), `[filename, line]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    proven: Vec<(String, u32)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    proven_only: Vec<(String, u32)>,
    /// Optional: `--snapshot`'s proven coverage.py arcs, `[filename, from, to]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    arcs: Vec<(String, i64, i64)>,
    /// Optional: the function view, with `--function` (docs/function-view.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    function: Option<FunctionDoc>,
    /// Optional: `--subprocesses`'s processes, each with its own samples.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    processes: Vec<super::ProcessRecord>,
}

/// The function view: per call of the followed function, its stack and statements.
#[derive(Serialize, Deserialize, Default)]
struct FunctionDoc {
    qualname: String,
    locals: bool,
    #[serde(default)]
    dropped_calls: u64,
    #[serde(default)]
    dropped_values: u64,
    calls: Vec<CallDoc>,
}

#[derive(Serialize, Deserialize, Default)]
struct CallDoc {
    thread_id: u64,
    frame_address: u64,
    file: String,
    function: String,
    first_line: u32,
    /// Outermost first: `[function, file, line]`.
    callers: Vec<(String, String, u32)>,
    /// tracefunc's stack string (derived from the above; written for readers, not read).
    #[serde(default)]
    stack: String,
    samples: u64,
    #[serde(default)]
    unplaced: u64,
    statements: Vec<StatementDoc>,
}

#[derive(Serialize, Deserialize, Default)]
struct StatementDoc {
    snippet: String,
    line: u32,
    hits: u64,
    /// Variable name → `[[type, repr], ...]`.
    #[serde(default)]
    vars: std::collections::BTreeMap<String, Vec<(String, String)>>,
}

fn function_doc(traces: &FunctionTraces) -> FunctionDoc {
    FunctionDoc {
        qualname: traces.qualname.clone(),
        locals: traces.locals,
        dropped_calls: traces.dropped_calls,
        dropped_values: traces.dropped_values,
        calls: traces
            .calls
            .iter()
            .map(|call| CallDoc {
                thread_id: call.thread_id,
                frame_address: call.frame_address,
                file: call.filename.clone(),
                function: call.funcname.clone(),
                first_line: call.first_line,
                callers: call.callers.clone(),
                stack: call.stack_string(),
                samples: call.samples,
                unplaced: call.unplaced,
                statements: call
                    .statements
                    .iter()
                    .map(|s| StatementDoc {
                        snippet: s.snippet.clone(),
                        line: s.line,
                        hits: s.hits,
                        vars: s.vars.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn function_traces(doc: FunctionDoc) -> FunctionTraces {
    FunctionTraces {
        qualname: doc.qualname,
        locals: doc.locals,
        dropped_calls: doc.dropped_calls,
        dropped_values: doc.dropped_values,
        calls: doc
            .calls
            .into_iter()
            .map(|call| CallTrace {
                thread_id: call.thread_id,
                frame_address: call.frame_address,
                filename: call.file,
                funcname: call.function,
                first_line: call.first_line,
                callers: call.callers,
                samples: call.samples,
                unplaced: call.unplaced,
                points: Vec::new(),
                statements: call
                    .statements
                    .into_iter()
                    .map(|s| StatementTrace {
                        snippet: s.snippet,
                        line: s.line,
                        hits: s.hits,
                        vars: s.vars,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Whole stacks: `samples` rows are `[count, [[function, line], ...], thread, pid]`, frames
/// outermost first, `function` an index into `calledfuncs`.
#[derive(Serialize, Deserialize, Default)]
struct StacksDoc {
    dropped: u64,
    samples: Vec<StackRow>,
}

/// One row of [`StacksDoc::samples`]. Files written before threads and processes were kept
/// have rows of two elements; they are read as of thread 0 and pid 0 (unknown).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StackRow {
    Whole(u64, Vec<(usize, u32)>, u64, u32),
    FramesOnly(u64, Vec<(usize, u32)>),
}

#[derive(Serialize, Deserialize, Default)]
struct Target {
    pid: i32,
    python_version: String,
    executable: String,
    command_line: String,
    #[serde(default)]
    reader: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    free_threaded: bool,
    #[serde(default)]
    library_dirs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdlib_dir: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
struct Stats {
    samples: u64,
    duration_s: f64,
    /// Optional: `duration_s` when absent (one process).
    #[serde(default)]
    process_seconds: Option<f64>,
    rate_requested: f64,
    errors: u64,
    late: u64,
    #[serde(default)]
    missed: u64,
    #[serde(default)]
    throttled: u64,
    #[serde(default)]
    ticks: u64,
    #[serde(default)]
    truncated: u64,
    #[serde(default)]
    cpu_s: f64,
    #[serde(default)]
    batches: u64,
    #[serde(default)]
    spin_s: f64,
    #[serde(default)]
    errors_by_kind: ErrorKinds,
    #[serde(default)]
    threads_dropped: ErrorKinds,
}

fn func_tuple(f: &FuncKey) -> Func {
    (f.filename.clone(), f.modulename.clone(), f.funcname.clone())
}

fn func_key((filename, modulename, funcname): Func) -> FuncKey {
    FuncKey {
        filename,
        modulename,
        funcname,
    }
}

/// Encode results and run information as tracer JSON.
pub fn to_vec(results: &CoverageResults, info: &RunInfo) -> anyhow::Result<Vec<u8>> {
    let t = &info.target;
    let s = &info.stats;
    let calledfuncs: Vec<Func> = results.calledfuncs.iter().map(func_tuple).collect();
    let stacks = match &results.stacks {
        None => None,
        Some(stacks) => {
            let index: std::collections::HashMap<&FuncKey, usize> = results
                .calledfuncs
                .iter()
                .enumerate()
                .map(|(i, f)| (f, i))
                .collect();
            let mut samples = Vec::with_capacity(stacks.samples.len());
            for (stack, count) in &stacks.samples {
                let mut frames = Vec::with_capacity(stack.frames.len());
                for frame in &stack.frames {
                    let Some(i) = index.get(&frame.func) else {
                        bail!(
                            "a stack names {} of {}, which is not among the called functions",
                            frame.func.funcname,
                            frame.func.filename
                        );
                    };
                    frames.push((*i, frame.line));
                }
                samples.push(StackRow::Whole(*count, frames, stack.thread, stack.process));
            }
            Some(StacksDoc {
                dropped: stacks.dropped,
                samples,
            })
        }
    };
    let doc = Document {
        format: FORMAT_NAME.to_owned(),
        version: FORMAT_VERSION,
        target: Target {
            pid: t.pid,
            python_version: t.python_version.clone(),
            executable: t.executable.clone(),
            command_line: t.command_line.clone(),
            reader: t.reader.clone(),
            free_threaded: t.free_threaded,
            library_dirs: info.library_dirs.clone(),
            stdlib_dir: info.stdlib_dir.clone(),
        },
        stats: Stats {
            samples: s.samples,
            duration_s: s.duration_s,
            process_seconds: Some(s.process_seconds),
            rate_requested: info.rate_requested,
            errors: s.errors,
            late: s.late,
            missed: s.missed,
            throttled: s.throttled,
            ticks: s.ticks,
            truncated: s.truncated,
            cpu_s: s.cpu_s,
            batches: s.batches,
            spin_s: s.spin_s,
            errors_by_kind: s.errors_by_kind,
            threads_dropped: s.threads_dropped,
        },
        counts: results
            .counts
            .iter()
            .map(|((file, line), h)| (file.clone(), *line, h.hits, h.self_hits))
            .collect(),
        callers: results
            .callers
            .iter()
            .map(|((a, b), hits)| (func_tuple(a), func_tuple(b), *hits))
            .collect(),
        first_lines: results
            .calledfuncs
            .iter()
            .enumerate()
            .filter_map(|(i, f)| Some((i, *results.first_lines.get(f)?)))
            .collect(),
        calledfuncs,
        stacks,
        function: results.function.as_ref().map(function_doc),
        likely: info.likely.clone(),
        proven: info.proven.clone(),
        proven_only: info.proven_only.clone(),
        arcs: info.arcs.clone(),
        processes: info.processes.clone(),
    };
    let mut bytes = serde_json::to_vec_pretty(&doc)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Decode tracer JSON.
pub fn from_slice(bytes: &[u8]) -> anyhow::Result<(CoverageResults, RunInfo)> {
    let doc: Document = serde_json::from_slice(bytes)?;
    if doc.format != FORMAT_NAME {
        bail!("format is {:?}, not {FORMAT_NAME:?}", doc.format);
    }
    if doc.version != FORMAT_VERSION {
        bail!(
            "format version {} is not one this tracer reads ({FORMAT_VERSION})",
            doc.version
        );
    }
    let mut results = CoverageResults::default();
    for (file, line, hits, self_hits) in doc.counts {
        let entry = results
            .counts
            .entry((file, line))
            .or_insert(LineHits::default());
        // A file may repeat a key with any counts: saturate, never overflow.
        entry.hits = entry.hits.saturating_add(hits);
        entry.self_hits = entry.self_hits.saturating_add(self_hits);
    }
    let funcs: Vec<FuncKey> = doc.calledfuncs.into_iter().map(func_key).collect();
    if let Some(doc_stacks) = doc.stacks {
        let mut stacks = Stacks {
            dropped: doc_stacks.dropped,
            ..Stacks::default()
        };
        for row in doc_stacks.samples {
            let (count, frames, thread, process) = match row {
                StackRow::Whole(count, frames, thread, process) => (count, frames, thread, process),
                StackRow::FramesOnly(count, frames) => (count, frames, 0, 0),
            };
            let mut stack = Vec::with_capacity(frames.len());
            for (i, line) in frames {
                let Some(func) = funcs.get(i) else {
                    bail!("a stack frame names function {i}, past the end of calledfuncs");
                };
                stack.push(StackFrame {
                    func: func.clone(),
                    line,
                });
            }
            let key = StackKey {
                process,
                thread,
                frames: stack,
            };
            let total = stacks.samples.entry(key).or_default();
            *total = total.saturating_add(count);
        }
        results.stacks = Some(stacks);
    }
    for (i, line) in doc.first_lines {
        let Some(func) = funcs.get(i) else {
            bail!("first_lines names function {i}, past the end of calledfuncs");
        };
        let mine = results.first_lines.entry(func.clone()).or_insert(line);
        *mine = (*mine).min(line);
    }
    results.calledfuncs = funcs.into_iter().collect();
    results.function = doc.function.map(function_traces);
    for (a, b, hits) in doc.callers {
        let total = results
            .callers
            .entry((func_key(a), func_key(b)))
            .or_default();
        *total = total.saturating_add(hits);
    }
    let info = RunInfo {
        target: TargetInfo {
            pid: doc.target.pid,
            python_version: doc.target.python_version,
            executable: doc.target.executable,
            command_line: doc.target.command_line,
            reader: doc.target.reader,
            free_threaded: doc.target.free_threaded,
        },
        stats: SamplerStats {
            samples: doc.stats.samples,
            errors: doc.stats.errors,
            late: doc.stats.late,
            missed: doc.stats.missed,
            throttled: doc.stats.throttled,
            ticks: doc.stats.ticks,
            truncated: doc.stats.truncated,
            cpu_s: doc.stats.cpu_s,
            batches: doc.stats.batches,
            spin_s: doc.stats.spin_s,
            errors_by_kind: doc.stats.errors_by_kind,
            threads_dropped: doc.stats.threads_dropped,
            duration_s: doc.stats.duration_s,
            process_seconds: doc.stats.process_seconds.unwrap_or(doc.stats.duration_s),
            ..SamplerStats::default()
        },
        rate_requested: doc.stats.rate_requested,
        library_dirs: doc.target.library_dirs,
        stdlib_dir: doc.target.stdlib_dir,
        likely: {
            let mut likely = doc.likely;
            likely.sort_unstable();
            likely.dedup();
            likely
        },
        proven: doc.proven,
        proven_only: doc.proven_only,
        arcs: {
            let mut arcs = doc.arcs;
            arcs.sort_unstable();
            arcs.dedup();
            arcs
        },
        processes: doc.processes,
    };
    Ok((results, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_self_hits_and_stats() {
        let mut r = CoverageResults::default();
        r.counts.insert(
            ("/a.py".into(), 3),
            LineHits {
                hits: 5,
                self_hits: 2,
            },
        );
        let f = FuncKey::new("/a.py", "f");
        r.calledfuncs.insert(f.clone());
        r.first_lines.insert(f.clone(), 2);
        r.callers.insert((f.clone(), f.clone()), 9);
        let mut stacks = Stacks::default();
        let key = StackKey {
            process: 42,
            thread: 7,
            frames: vec![StackFrame { func: f, line: 3 }],
        };
        stacks.samples.insert(key.clone(), 4);
        r.stacks = Some(stacks);
        let info = RunInfo {
            target: TargetInfo {
                pid: 42,
                python_version: "3.12.1".into(),
                ..TargetInfo::default()
            },
            stats: SamplerStats {
                samples: 100,
                late: 2,
                duration_s: 2.0,
                process_seconds: 3.5,
                ..SamplerStats::default()
            },
            rate_requested: 1000.0,
            library_dirs: vec!["/usr/lib/python3.12".into()],
            stdlib_dir: Some("/usr/lib/python3.12".into()),
            likely: vec![("/a.py".into(), 4)],
            proven: vec![("/a.py".into(), 3)],
            proven_only: vec![("/a.py".into(), 3)],
            arcs: vec![("/a.py".into(), -1, 3), ("/a.py".into(), 3, -1)],
            processes: vec![crate::output::ProcessRecord {
                pid: 43,
                parent: Some(42),
                generation: 1,
                samples: 60,
                duration_s: 1.5,
                ended: "running".into(),
                ..Default::default()
            }],
        };
        let bytes = to_vec(&r, &info).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["counts"][0], serde_json::json!(["/a.py", 3, 5, 2]));
        assert_eq!(v["stats"]["samples"], 100);
        assert_eq!(v["target"]["python_version"], "3.12.1");
        let (back, back_info) = from_slice(&bytes).unwrap();
        assert_eq!(back, r);
        assert_eq!(back_info.stats.late, 2);
        assert_eq!(back_info.stats.process_seconds, 3.5);
        assert_eq!(back_info.processes, info.processes);
        assert_eq!(back_info.proven, info.proven);
        assert_eq!(back_info.proven_only, info.proven_only);
        assert_eq!(back_info.arcs, info.arcs);
        assert_eq!(back_info.library_dirs, info.library_dirs);
        assert_eq!(back_info.stdlib_dir, info.stdlib_dir);
        // Likely lines stay apart from the counts.
        assert_eq!(v["likely"], serde_json::json!([["/a.py", 4]]));
        assert_eq!(back_info.likely, info.likely);
        assert!(!back.counts.contains_key(&("/a.py".to_owned(), 4)));
        assert_eq!(
            v["stacks"]["samples"][0],
            serde_json::json!([4, [[0, 3]], 7, 42])
        );
        // Rows written before threads and processes were kept: unknown (0) ones.
        let mut old = v.clone();
        old["stacks"]["samples"][0] = serde_json::json!([4, [[0, 3]]]);
        let (old, _) = from_slice(&serde_json::to_vec(&old).unwrap()).unwrap();
        let old_key = StackKey::of_frames(key.frames.clone());
        assert_eq!(old.stacks.unwrap().samples[&old_key], 4);
        let mut bad = v.clone();
        bad["stacks"]["samples"][0][1][0][0] = serde_json::json!(7);
        assert!(from_slice(&serde_json::to_vec(&bad).unwrap()).is_err());
        // Written before process_seconds: one process, its duration.
        let mut old = v.clone();
        old["stats"]
            .as_object_mut()
            .unwrap()
            .remove("process_seconds");
        let (_, old_info) = from_slice(&serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(old_info.stats.process_seconds, 2.0);
    }

    #[test]
    fn the_function_view_round_trips() {
        use crate::function_view::{CallTrace, FunctionTraces, StatementTrace};
        let mut vars = std::collections::BTreeMap::new();
        vars.insert("x".to_owned(), vec![("int".to_owned(), "1".to_owned())]);
        let results = CoverageResults {
            function: Some(FunctionTraces {
                qualname: "f".into(),
                locals: true,
                dropped_calls: 1,
                dropped_values: 2,
                calls: vec![CallTrace {
                    thread_id: 7,
                    frame_address: 0x1000,
                    filename: "/w/a.py".into(),
                    funcname: "f".into(),
                    first_line: 3,
                    callers: vec![("main".into(), "/w/a.py".into(), 9)],
                    samples: 5,
                    unplaced: 1,
                    points: Vec::new(),
                    statements: vec![StatementTrace {
                        snippet: "y = x".into(),
                        line: 4,
                        hits: 4,
                        vars,
                    }],
                }],
            }),
            ..CoverageResults::default()
        };
        let bytes = to_vec(&results, &RunInfo::default()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v["function"]["calls"][0]["stack"],
            "main (a.py:9)\nf (a.py:3)"
        );
        assert_eq!(
            v["function"]["calls"][0]["statements"][0]["vars"]["x"],
            serde_json::json!([["int", "1"]])
        );
        let (back, _) = from_slice(&bytes).unwrap();
        assert_eq!(back, results);
    }

    #[test]
    fn refuses_other_formats_and_versions() {
        assert!(from_slice(
            br#"{"format":"x","version":1,"counts":[],"calledfuncs":[],"callers":[]}"#
        )
        .is_err());
        assert!(from_slice(br#"{"format":"tracer-coverage","version":9,"counts":[],"calledfuncs":[],"callers":[]}"#).is_err());
        assert!(from_slice(b"{").is_err());
    }
}
