//! The command line's arguments: `tracer attach`, `run`, `top`, `snapshot`, `report`,
//! `merge`, `dump`. Each command runs in its own module of [`crate::commands`].

use crate::aggregate::filter::PathMap;
use crate::output::Format;
use crate::reader::PyVersion;
use crate::target::attach::ReaderChoice;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "tracer",
    version,
    about = "Trace a running CPython from outside: which lines and functions run, and who calls whom",
    long_about = "Trace a running CPython from outside, without touching it: tracer reads the \
                  interpreter's frames out of the target's memory and aggregates them into the \
                  model of Python's trace module (counts, calledfuncs, callers)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Attach to a running Python process and trace it until --duration, Ctrl-C/SIGTERM, or
    /// its exit.
    Attach {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        trace: TraceArgs,
    },
    /// A live view of a running Python in the terminal, refreshed every second: its hottest
    /// lines (with their source) and functions, self and total, and the sampling rate,
    /// errors and missed ticks. Keys: q quit, p pause, s sort, t thread, v since start / last
    /// refresh.
    Top(TopArgs),
    /// Print every thread's stack of a running Python once (thread name and id, native tid,
    /// running or idle), without pausing it unless --blocking: for incident response.
    Dump {
        /// The process to dump.
        #[arg(long, short = 'p', value_name = "PID", env = "TRACER_PID")]
        pid: i32,
        /// Also print each frame's local variables (their reprs).
        #[arg(long)]
        locals: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Pause the target while its stacks are read.
        #[arg(long)]
        blocking: bool,
    },
    /// Start a command and trace it until it exits; exit with its status.
    Run {
        #[command(flatten)]
        trace: TraceArgs,
        /// The command to start, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Write annotated .cover files and a summary from a results file, like
    /// `python -m trace --report`; or, with --format, convert it to another format.
    Report(ReportArgs),
    /// Read once what a running Python 3.11+ has run since it started, from its adaptive
    /// bytecode, without sampling: the lines and functions proven to have run (counts of 1),
    /// in any format (docs/snapshot.md).
    Snapshot {
        /// The process to read.
        #[arg(long, short = 'p', value_name = "PID", env = "TRACER_PID")]
        pid: i32,
        /// Where to write the results (a directory for --format cover). Default:
        /// tracer-PID.pickle, tracer-PID.json or tracer-PID-cover in the current directory.
        #[arg(long, short = 'o', value_name = "PATH")]
        output: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Pickle)]
        format: Format,
        /// Report only the instructions whose own bytes prove they ran, without inference
        /// (to measure the rule alone).
        #[arg(long)]
        evidence_only: bool,
        #[command(flatten)]
        plugin: CoveragePluginArg,
        #[command(flatten)]
        filters: FilterArgs,
    },
    /// Internal: the keeper of `run --snapshot`'s exit watch, started by tracer itself
    /// (src/target/exit_watch/keeper.rs).
    #[command(name = "keep-watch", hide = true)]
    KeepWatch,
    /// Merge results files (trace pickles and tracer JSON, in any mix) as
    /// `CoverageResults.update` does, and write the sum in any format.
    Merge {
        /// The results files to merge.
        #[arg(required = true, value_name = "IN")]
        inputs: Vec<PathBuf>,
        /// The merged file.
        #[arg(long, short = 'o', value_name = "OUT")]
        output: PathBuf,
        /// Output format; default: told by OUT's extension (.json, .pickle, .coverage, .svg,
        /// .folded, .speedscope.json, .dot), else pickle.
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[command(flatten)]
        plugin: CoveragePluginArg,
        #[command(flatten)]
        filters: FilterArgs,
        #[command(flatten)]
        paths: PathMapArgs,
    },
}

/// `--coverage-plugin` and `--coverage-arcs`, for every command that can write coverage.py's
/// data file.
#[derive(Debug, Args)]
pub struct CoveragePluginArg {
    /// With --format coverage: also store our executable lines in the data file and mark its
    /// files for the tracer_coverage coverage.py plugin, so that coverage.py's statements and
    /// missing lines are ours (docs/reports.md). coverage.py then needs the plugin
    /// configured (`[run] plugins = tracer_coverage`) to read the file.
    #[arg(long, env = "TRACER_COVERAGE_PLUGIN")]
    pub coverage_plugin: bool,
    /// With --format coverage: write arc data (coverage.py's `branch = true`) made of the
    /// arcs the snapshots proved to have run (--snapshot, Python 3.12+). coverage.py reads
    /// executed lines from the arcs, so lines with no proven arc are left out, and a warning
    /// counts them (docs/reports.md).
    #[arg(long, env = "TRACER_COVERAGE_ARCS")]
    pub coverage_arcs: bool,
}

/// Which process `attach` traces.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The process to trace.
    #[arg(
        long,
        short = 'p',
        value_name = "PID",
        env = "TRACER_PID",
        required_unless_present = "name",
        conflicts_with = "name"
    )]
    pub pid: Option<i32>,
    /// Trace the oldest Python process whose command line contains PATTERN (this tracer and
    /// its parents excluded; matches that are not Python, such as a `bash -c` wrapper, are
    /// passed over).
    #[arg(long, value_name = "PATTERN", env = "TRACER_NAME")]
    pub name: Option<String>,
    /// When the target exits, wait for the next process matching --name (or the target's
    /// command line) and go on tracing it into the same results.
    #[arg(long, env = "TRACER_FOLLOW")]
    pub follow: bool,
    /// Also trace the target's Python children and grandchildren, including workers forked
    /// later (gunicorn, multiprocessing): each process's results are kept apart, merged on
    /// output and in every flush, and every process is listed in tracer-processes-NAME.json
    /// beside the output NAME.EXT.
    #[arg(long, env = "TRACER_SUBPROCESSES")]
    pub subprocesses: bool,
    /// With --subprocesses: trace at most N processes at once (a fork storm must not make a
    /// thread per process); further ones are listed in tracer-processes-NAME.json as not traced.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..), env = "TRACER_MAX_PROCESSES")]
    pub max_processes: u16,
    /// With --name: wait up to SECS for a matching process to appear.
    #[arg(long, value_name = "SECS", value_parser = parse_duration, env = "TRACER_WAIT")]
    pub wait: Option<f64>,
}

/// `tracer top`'s options.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The process to watch.
    #[arg(
        long,
        short = 'p',
        value_name = "PID",
        env = "TRACER_PID",
        required_unless_present = "name",
        conflicts_with = "name"
    )]
    pub pid: Option<i32>,
    /// Watch the oldest Python process whose command line contains PATTERN (as `attach
    /// --name`).
    #[arg(long, value_name = "PATTERN", env = "TRACER_NAME")]
    pub name: Option<String>,
    /// With --name: wait up to SECS for a matching process to appear.
    #[arg(long, value_name = "SECS", value_parser = parse_duration, env = "TRACER_WAIT")]
    pub wait: Option<f64>,
    /// Samples per second.
    #[arg(long, default_value_t = 1000.0, value_name = "HZ", value_parser = parse_rate, env = "TRACER_RATE")]
    pub rate: f64,
    /// Seconds between refreshes of the view.
    #[arg(long, default_value_t = 1.0, value_name = "SECS", value_parser = parse_duration)]
    pub refresh: f64,
    /// Which stack reader: tracer's own where it knows the version (auto), or py-spy's.
    #[arg(long, value_enum, default_value_t = ReaderChoice::Auto, env = "TRACER_READER")]
    pub reader: ReaderChoice,
}

/// Filters on line counts, with trace's semantics where trace has them.
#[derive(Debug, Clone, Args, Default)]
pub struct FilterArgs {
    /// Leave out lines of this module and its submodules (comma-separated lists accepted).
    #[arg(long = "ignore-module", value_name = "M", env = "TRACER_IGNORE_MODULE")]
    pub ignore_module: Vec<String>,
    /// Leave out lines of files under this directory (`:`-separated lists accepted).
    #[arg(long = "ignore-dir", value_name = "D", env = "TRACER_IGNORE_DIR")]
    pub ignore_dir: Vec<String>,
    /// Keep only lines of files whose whole path matches this glob (`*` also matches `/`);
    /// repeatable (TRACER_INCLUDE holds one glob).
    #[arg(long, value_name = "GLOB", env = "TRACER_INCLUDE")]
    pub include: Vec<String>,
    /// Leave out lines of the target's own standard library and site-packages, as found from
    /// its memory maps (recorded in JSON results for later reports).
    #[arg(long = "ignore-stdlib", env = "TRACER_IGNORE_STDLIB")]
    pub ignore_stdlib: bool,
}

/// `--path-map`, for reports made on another machine than the trace.
#[derive(Debug, Args, Default)]
pub struct PathMapArgs {
    /// Rewrite file names starting with directory FROM to start with TO (repeatable; the first
    /// match wins). Sources are then read at the rewritten paths.
    #[arg(long = "path-map", value_name = "FROM=TO")]
    pub path_map: Vec<PathMap>,
}

/// `tracer report`'s arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results file: our pickle or JSON, or a pickle from `python -m trace --file`.
    #[arg(long, short = 'f', value_name = "RESULTS")]
    pub file: PathBuf,
    /// Write the .cover files here (named by dotted module path) instead of beside each
    /// source file.
    #[arg(long, short = 'C', value_name = "DIR")]
    pub coverdir: Option<PathBuf>,
    /// Mark executable lines that never ran with `>>>>>> `.
    #[arg(long, short = 'm')]
    pub missing: bool,
    /// Print the `lines cov% module (path)` summary.
    #[arg(long, short = 's')]
    pub summary: bool,
    /// Print trace's "functions called:" list.
    #[arg(long, short = 'l')]
    pub listfuncs: bool,
    /// Print trace's "calling relationships:" list.
    #[arg(long, short = 'T')]
    pub trackcalls: bool,
    /// Print the function view (traced with --function) as text: per call its stack, then
    /// per statement `- 'snippet' hits` and the values of its variables.
    #[arg(long)]
    pub function: bool,
    /// Convert to this format instead of writing .cover files (with -o).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Where --format writes (a directory for cover); without --format, the format is
    /// told by the name's extension.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// The Python version whose compiler decides which lines are executable (for
    /// --missing), as X.Y; default: the one recorded in the results, else 3.12.
    #[arg(long, value_name = "X.Y", value_parser = parse_version)]
    pub python_version: Option<PyVersion>,
    #[command(flatten)]
    pub plugin: CoveragePluginArg,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub paths: PathMapArgs,
}

/// Options shared by `attach` and `run`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Also add what the target has run since it started, read from its adaptive bytecode
    /// (Python 3.11+; see `tracer snapshot`): with `run`, at the moment its interpreter starts
    /// finalizing (the child is paused once, there); with `attach`, when sampling ends (with
    /// --subprocesses, of each process as it finalizes or exits, or when sampling ends).
    #[arg(long, env = "TRACER_SNAPSHOT")]
    pub snapshot: bool,
    /// With --snapshot: also snapshot every SECS while the target runs, so that code later
    /// freed or replaced (a reloaded module, a dropped function) is caught while it lives.
    #[arg(long, value_name = "SECS", value_parser = parse_duration, env = "TRACER_SNAPSHOT_EVERY",
          requires = "snapshot")]
    pub snapshot_every: Option<f64>,
    /// Samples per second.
    #[arg(long, default_value_t = 1000.0, value_name = "HZ", value_parser = parse_rate, env = "TRACER_RATE")]
    pub rate: f64,
    /// Stop sampling after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_duration, env = "TRACER_DURATION")]
    pub duration: Option<f64>,
    /// Keep the tracer's own CPU time within PERCENT of one core (up to 100 × the CPUs), by
    /// sampling fewer ticks when needed (counted as `throttled`). Default: no cap.
    #[arg(long, value_name = "PERCENT", value_parser = parse_max_cpu, env = "TRACER_MAX_CPU")]
    pub max_cpu: Option<f64>,
    /// Pause the target while reading each sample (as py-spy does by default). Without it the
    /// target is never paused.
    #[arg(long, env = "TRACER_BLOCKING")]
    pub blocking: bool,
    /// Where to write the results (a directory for --format cover). Default: tracer-PID.pickle,
    /// tracer-PID.json or tracer-PID-cover in the current directory.
    #[arg(long, short = 'o', value_name = "PATH", env = "TRACER_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Pickle, env = "TRACER_FORMAT")]
    pub format: Format,
    #[command(flatten)]
    pub plugin: CoveragePluginArg,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Which stack reader: tracer's own where it knows the version (auto), or py-spy's.
    #[arg(long, value_enum, default_value_t = ReaderChoice::Auto, env = "TRACER_READER")]
    pub reader: ReaderChoice,
    /// Also write the complete results so far every SECS while sampling, atomically
    /// (a killed tracer leaves the last full flush). A failed write is reported and retried
    /// at the next flush.
    #[arg(long, value_name = "SECS", value_parser = parse_duration, env = "TRACER_FLUSH_EVERY")]
    pub flush_every: Option<f64>,
    /// When stderr is not a terminal, log a status line (samples, rate, errors, processes)
    /// every SECS; on a terminal a live status line is always shown.
    #[arg(long, value_name = "SECS", value_parser = parse_duration, default_value_t = 60.0, env = "TRACER_STATUS_EVERY")]
    pub status_every: f64,
    /// Follow every call of this function (its qualified name, e.g. `Server.handle`; before
    /// 3.11 the part after the last dot is matched with the function's name): per call, its
    /// stack and per statement the samples that found it there. Written with --format json;
    /// shown by `tracer report --function` (docs/function-view.md).
    #[arg(long, value_name = "QUALNAME", env = "TRACER_FUNCTION")]
    pub function: Option<String>,
    /// With --function: also read the values of the local variables each statement uses
    /// (type and a bounded repr, read from memory; nothing runs in the target).
    #[arg(long, requires = "function", env = "TRACER_LOCALS")]
    pub locals: bool,
}

pub(crate) fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e6 => Ok(r),
        _ => Err("the rate is samples per second: a number above 0 and at most 1000000".into()),
    }
}

pub(crate) fn parse_max_cpu(s: &str) -> Result<f64, String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let most = 100.0 * cpus as f64;
    match s.parse::<f64>() {
        Ok(p) if p.is_finite() && p > 0.0 && p <= most => Ok(p),
        _ => Err(format!(
            "the CPU cap is a percent of one core: give a number above 0 and at most {most} \
             (100 × {cpus} CPUs), e.g. --max-cpu 5"
        )),
    }
}

pub(crate) fn parse_duration(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(d) if d.is_finite() && d > 0.0 && d < 1e9 => Ok(d),
        _ => Err("the duration is a number of seconds above 0".into()),
    }
}

pub(crate) fn parse_version(s: &str) -> Result<PyVersion, String> {
    s.parse()
        .map_err(|e: crate::reader::version::ParseVersionError| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Sidecars are configured through the environment: every option of `attach` and `run` has a
    /// variable, and docs/sidecar.md's table lists each one with its option.
    #[test]
    fn every_option_of_attach_and_run_has_a_documented_variable() {
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/sidecar.md"))
            .unwrap();
        let cli = Cli::command();
        for name in ["attach", "run"] {
            let command = cli.find_subcommand(name).unwrap();
            for arg in command.get_arguments() {
                let Some(long) = arg.get_long() else {
                    continue;
                };
                if arg.is_positional() || ["help", "version"].contains(&long) {
                    continue;
                }
                let env = arg
                    .get_env()
                    .unwrap_or_else(|| panic!("{name} --{long} has no environment variable"));
                let env = env.to_str().unwrap();
                let row = docs
                    .lines()
                    .find(|l| l.starts_with(&format!("| `{env}`")))
                    .unwrap_or_else(|| panic!("docs/sidecar.md does not list {env}"));
                let option = if long == "output" {
                    "-o".to_owned()
                } else {
                    format!("--{long}")
                };
                assert!(
                    row.contains(&format!("`{option}`")),
                    "{env} is not {option}: {row}"
                );
            }
        }
    }
}
