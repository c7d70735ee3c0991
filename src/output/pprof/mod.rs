//! `--format pprof`: the whole stacks as a gzipped profile.proto, the format `go tool pprof`
//! reads and Grafana Pyroscope (`/ingest?format=pprof`) and Parca take.
//!
//! - Two sample types: `samples/count` (thread samples) and `wall/nanoseconds` (each thread
//!   sample stands for one sampling period of wall time); the period is the requested rate's.
//! - A `Function` per (file, qualified name), with its first line where the reader knew it
//!   (`co_firstlineno`); a `Location` per (function, line).
//! - A `Sample` per stack of one thread of one process: locations leaf first, numeric labels
//!   `thread_id` (Python's `threading.get_ident()`) and `pid`, left out where not known
//!   (results read back from JSON written before they were kept).
//!
//! Thread stacks counted without their innermost frames (`stats.truncated`) are not among the
//! whole stacks, so not in the profile, as in the flame graphs.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
mod profile {
    include!("profile.rs");
}

use crate::aggregate::model::{CoverageResults, FuncKey, Stacks};
use crate::output::RunInfo;
use profile::{Function, Label, Line, Location, Profile, Sample, ValueType};
use prost::Message;
use std::collections::HashMap;
use std::io::Write;

/// The profile of `stacks` (from `results`), gzipped.
pub fn to_vec(
    results: &CoverageResults,
    stacks: &Stacks,
    info: &RunInfo,
) -> anyhow::Result<Vec<u8>> {
    let profile = build(results, stacks, info);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    Ok(gz.finish()?)
}

/// The nanoseconds of wall time one thread sample stands for: the requested period, or for
/// results that don't say it (merged files), the run's duration over its samples.
fn period_ns(info: &RunInfo) -> i64 {
    if info.rate_requested > 0.0 {
        (1e9 / info.rate_requested).round() as i64
    } else if info.stats.samples > 0 {
        (info.stats.duration_s * 1e9 / info.stats.samples as f64).round() as i64
    } else {
        0
    }
}

/// The function's name as pprof shows it. pprof drops what looks like C++ template arguments
/// (`<...>`), so a name that is all of that (`<module>`, a module-level `<lambda>`) would show
/// as `<unknown>`: such names are prefixed with the module's name (`demo.<module>`). The
/// name as recorded stays in `system_name`.
fn display_name(func: &FuncKey) -> String {
    if func.funcname.starts_with('<') {
        format!("{}.{}", func.modulename, func.funcname)
    } else {
        func.funcname.clone()
    }
}

/// Interns strings into a profile's string table (index 0 is the empty string, as required).
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        Strings {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    fn of(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

fn build(results: &CoverageResults, stacks: &Stacks, info: &RunInfo) -> Profile {
    let mut strings = Strings::new();
    let period = period_ns(info);
    let value_type = |strings: &mut Strings, kind: &str, unit: &str| ValueType {
        r#type: strings.of(kind),
        unit: strings.of(unit),
    };
    let sample_type = vec![
        value_type(&mut strings, "samples", "count"),
        value_type(&mut strings, "wall", "nanoseconds"),
    ];
    let period_type = Some(value_type(&mut strings, "wall", "nanoseconds"));
    let thread_key = strings.of("thread_id");
    let pid_key = strings.of("pid");

    let mut functions: Vec<Function> = Vec::new();
    let mut function_ids: HashMap<&FuncKey, u64> = HashMap::new();
    let mut locations: Vec<Location> = Vec::new();
    let mut location_ids: HashMap<(u64, u32), u64> = HashMap::new();
    let mut samples = Vec::with_capacity(stacks.samples.len());
    for (stack, &count) in &stacks.samples {
        let mut location_id = Vec::with_capacity(stack.frames.len());
        for frame in stack.frames.iter().rev() {
            let function_id = *function_ids.entry(&frame.func).or_insert_with(|| {
                let id = functions.len() as u64 + 1;
                functions.push(Function {
                    id,
                    name: strings.of(&display_name(&frame.func)),
                    system_name: strings.of(&frame.func.funcname),
                    filename: strings.of(&frame.func.filename),
                    start_line: results
                        .first_lines
                        .get(&frame.func)
                        .copied()
                        .unwrap_or(0)
                        .into(),
                });
                id
            });
            let id = *location_ids
                .entry((function_id, frame.line))
                .or_insert_with(|| {
                    let id = locations.len() as u64 + 1;
                    locations.push(Location {
                        id,
                        line: vec![Line {
                            function_id,
                            line: frame.line.into(),
                            column: 0,
                        }],
                        ..Location::default()
                    });
                    id
                });
            location_id.push(id);
        }
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let numeric = |key, num: u64| Label {
            key,
            num: i64::try_from(num).unwrap_or(i64::MAX),
            ..Label::default()
        };
        let mut label = Vec::new();
        if stack.thread != 0 {
            label.push(numeric(thread_key, stack.thread));
        }
        if stack.process != 0 {
            label.push(numeric(pid_key, stack.process.into()));
        }
        samples.push(Sample {
            location_id,
            value: vec![count, count.saturating_mul(period)],
            label,
        });
    }
    let comment = vec![strings.of(&format!(
        "tracer {}, Python {}",
        env!("CARGO_PKG_VERSION"),
        info.target.python_version
    ))];
    Profile {
        sample_type,
        sample: samples,
        location: locations,
        function: functions,
        duration_nanos: (info.stats.duration_s * 1e9).round() as i64,
        period_type,
        period,
        comment,
        string_table: strings.table,
        ..Profile::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::model::{StackFrame, StackKey};
    use std::io::Read;

    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    #[test]
    fn the_generated_messages_are_of_the_vendored_proto() {
        let proto = include_bytes!("profile.proto");
        let header = format!(
            "profile.proto: {} bytes, FNV-1a {:016x}.",
            proto.len(),
            fnv1a(proto)
        );
        assert!(
            include_str!("profile.rs").contains(&header),
            "profile.proto changed: run `make pprof-proto` to regenerate profile.rs"
        );
    }

    #[test]
    fn stacks_become_leaf_first_samples_with_labels_and_wall_time() {
        let main = FuncKey::new("/app/m.py", "<module>");
        let f = FuncKey::new("/app/m.py", "K.f");
        let mut results = CoverageResults::default();
        results.first_lines.insert(f.clone(), 2);
        let frame = |func: &FuncKey, line| StackFrame {
            func: func.clone(),
            line,
        };
        let mut stacks = Stacks::default();
        let key = |thread, frames| StackKey {
            process: 42,
            thread,
            frames,
        };
        stacks
            .samples
            .insert(key(7, vec![frame(&main, 10), frame(&f, 3)]), 5);
        stacks.samples.insert(key(8, vec![frame(&main, 10)]), 2);
        let info = RunInfo {
            rate_requested: 1000.0,
            ..RunInfo::default()
        };
        let bytes = to_vec(&results, &stacks, &info).unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        let p = Profile::decode(raw.as_slice()).unwrap();
        let s = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(p.period, 1_000_000);
        assert_eq!(p.function.len(), 2);
        assert_eq!(p.location.len(), 2, "(main, 10) is shared");
        let leaf_name = |sample: &Sample| {
            let location = &p.location[sample.location_id[0] as usize - 1];
            let function = &p.function[location.line[0].function_id as usize - 1];
            (s(function.name), location.line[0].line, function.start_line)
        };
        let first = &p.sample[0];
        assert_eq!(leaf_name(first), ("K.f", 3, 2));
        assert_eq!(first.value, vec![5, 5_000_000]);
        let labels: Vec<(&str, i64)> = first.label.iter().map(|l| (s(l.key), l.num)).collect();
        assert_eq!(labels, vec![("thread_id", 7), ("pid", 42)]);
        assert_eq!(leaf_name(&p.sample[1]), ("m.<module>", 10, 0));
    }
}
