//! The command line: `tracer attach`, `tracer run`, `tracer report`.

use crate::attach::{self, AttachError, ReaderChoice};
use crate::family;
use crate::filter::{Filter, PathMap};
use crate::flush::SnapshotWriter;
use crate::model::CoverageResults;
use crate::output::{self, cover, Format, RunInfo, WriteOptions};
use crate::sampler;
use crate::session::{self, SessionOptions, SessionResult};
use crate::snapshot;
use crate::source::Sources;
use crate::status::{StatusCounters, StatusReporter};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    Report {
        /// A results file: our pickle or JSON, or a pickle from `python -m trace --file`.
        #[arg(long, short = 'f', value_name = "RESULTS")]
        file: PathBuf,
        /// Write the .cover files here (named by dotted module path) instead of beside each
        /// source file.
        #[arg(long, short = 'C', value_name = "DIR")]
        coverdir: Option<PathBuf>,
        /// Mark executable lines that never ran with `>>>>>> `.
        #[arg(long, short = 'm')]
        missing: bool,
        /// Print the `lines cov% module (path)` summary.
        #[arg(long, short = 's')]
        summary: bool,
        /// Print trace's "functions called:" list.
        #[arg(long, short = 'l')]
        listfuncs: bool,
        /// Print trace's "calling relationships:" list.
        #[arg(long, short = 'T')]
        trackcalls: bool,
        /// Print the function view (traced with --function) as text: per call its stack, then
        /// per statement `- 'snippet' hits` and the values of its variables.
        #[arg(long)]
        function: bool,
        /// Convert to this format instead of writing .cover files (with -o).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Where --format writes (a directory for cover); without --format, the format is
        /// told by the name's extension.
        #[arg(long, short = 'o', value_name = "PATH")]
        output: Option<PathBuf>,
        /// The Python version whose compiler decides which lines are executable (for
        /// --missing), as X.Y; default: the one recorded in the results, else 3.12.
        #[arg(long, value_name = "X.Y", value_parser = parse_version)]
        python_version: Option<(u8, u8)>,
        #[command(flatten)]
        plugin: CoveragePluginArg,
        #[command(flatten)]
        filters: FilterArgs,
        #[command(flatten)]
        paths: PathMapArgs,
    },
    /// Read once what a running Python 3.12+ has run since it started, from its adaptive
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

/// `--coverage-plugin`, for every command that can write coverage.py's data file.
#[derive(Debug, Args)]
pub struct CoveragePluginArg {
    /// With --format coverage: also store our executable lines in the data file and mark its
    /// files for the tracer_coverage coverage.py plugin, so that coverage.py's statements and
    /// missing lines are ours (docs/reports.md). coverage.py then needs the plugin
    /// configured (`[run] plugins = tracer_coverage`) to read the file.
    #[arg(long, env = "TRACER_COVERAGE_PLUGIN")]
    pub coverage_plugin: bool,
}

impl CoveragePluginArg {
    fn write_options(&self) -> WriteOptions {
        WriteOptions {
            coverage_plugin: self.coverage_plugin,
        }
    }
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
    /// Trace the oldest process whose command line contains PATTERN (this tracer and its
    /// parents excluded).
    #[arg(long, value_name = "PATTERN", env = "TRACER_NAME")]
    pub name: Option<String>,
    /// When the target exits, wait for the next process matching --name (or the target's
    /// command line) and go on tracing it into the same results.
    #[arg(long, env = "TRACER_FOLLOW")]
    pub follow: bool,
    /// Also trace the target's Python children and grandchildren, including workers forked
    /// later (gunicorn, multiprocessing): each process's results are kept apart, merged on
    /// output, and every traced process is listed in OUTPUT.processes.json.
    #[arg(long, env = "TRACER_SUBPROCESSES")]
    pub subprocesses: bool,
    /// With --subprocesses: trace at most N processes at once (a fork storm must not make a
    /// thread per process); further ones are listed in OUTPUT.processes.json as not traced.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..), env = "TRACER_MAX_PROCESSES")]
    pub max_processes: u16,
    /// With --name: wait up to SECS for a matching process to appear.
    #[arg(long, value_name = "SECS", value_parser = parse_duration, env = "TRACER_WAIT")]
    pub wait: Option<f64>,
    /// When sampling ends, also add a snapshot of what the target has run since it started
    /// (Python 3.12+, read from its adaptive bytecode; see `tracer snapshot`).
    #[arg(long, env = "TRACER_SNAPSHOT")]
    pub snapshot: bool,
}

impl TargetArgs {
    /// The pid to trace: --pid, or the process --name finds (waiting up to --wait, or until
    /// `stop` is set).
    fn select(&self, stop: &AtomicBool) -> anyhow::Result<i32> {
        if self.wait.is_some() && self.name.is_none() {
            anyhow::bail!("--wait waits for a process matching --name PATTERN: give --name");
        }
        if let Some(pid) = self.pid {
            return Ok(pid);
        }
        let pattern = self.name.as_deref().unwrap_or_default();
        if pattern.is_empty() {
            anyhow::bail!("--name needs a non-empty pattern to look for in command lines");
        }
        let wait = Duration::from_secs_f64(self.wait.unwrap_or(0.0));
        let Some(pid) = wait_for_match(pattern, wait, stop) else {
            anyhow::bail!(
                "no process's command line contains {pattern:?}{}: check with `pgrep -af {pattern:?}`, \
                 or wait for it with --wait SECS",
                if self.wait.is_some() {
                    format!(" after waiting {}s", wait.as_secs_f64())
                } else {
                    String::new()
                }
            );
        };
        Ok(pid)
    }
}

/// The oldest process whose command line contains `pattern`, polled until `wait` passes or
/// `stop` is set. Several matches (a pre-fork server's workers) pick the oldest, the master.
fn wait_for_match(pattern: &str, wait: Duration, stop: &AtomicBool) -> Option<i32> {
    let start = std::time::Instant::now();
    let mut announced = false;
    loop {
        let found = crate::process::find_by_command_line(pattern);
        if let Some(&pid) = found.first() {
            if found.len() > 1 {
                eprintln!(
                    "tracer: {} processes match {pattern:?}; tracing the oldest, pid {pid}",
                    found.len()
                );
            }
            return Some(pid);
        }
        if start.elapsed() >= wait || stop.load(Ordering::Relaxed) {
            return None;
        }
        if !announced {
            eprintln!(
                "tracer: waiting up to {}s for a process matching {pattern:?}",
                wait.as_secs_f64()
            );
            announced = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Filters on line counts, with trace's semantics where trace has them.
#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Leave out lines of this module and its submodules (comma-separated lists accepted).
    #[arg(long = "ignore-module", value_name = "M")]
    pub ignore_module: Vec<String>,
    /// Leave out lines of files under this directory (`:`-separated lists accepted).
    #[arg(long = "ignore-dir", value_name = "D")]
    pub ignore_dir: Vec<String>,
    /// Keep only lines of files whose whole path matches this glob (`*` also matches `/`);
    /// repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out lines of the target's own standard library and site-packages, as found from
    /// its memory maps (recorded in JSON results for later reports).
    #[arg(long = "ignore-stdlib")]
    pub ignore_stdlib: bool,
}

impl FilterArgs {
    /// The filter, with `library_dirs` ignored if --ignore-stdlib was given, and `$prefix` in
    /// --ignore-dir standing for the target's `stdlib` directory, as in trace.
    pub fn filter(&self, library_dirs: &[String], stdlib: Option<&str>) -> anyhow::Result<Filter> {
        let dirs = self
            .ignore_dir
            .iter()
            .map(|d| crate::filter::expand_ignore_dir(d, stdlib))
            .collect::<anyhow::Result<Vec<String>>>()?;
        let filter = Filter::new(&self.ignore_module, &dirs).with_include(&self.include)?;
        Ok(if self.ignore_stdlib {
            filter.with_ignored_dirs(library_dirs)
        } else {
            filter
        })
    }
}

/// `--path-map`, for reports made on another machine than the trace.
#[derive(Debug, Args, Default)]
pub struct PathMapArgs {
    /// Rewrite file names starting with directory FROM to start with TO (repeatable; the first
    /// match wins). Sources are then read at the rewritten paths.
    #[arg(long = "path-map", value_name = "FROM=TO")]
    pub path_map: Vec<PathMap>,
}

/// Options shared by `attach` and `run`.
#[derive(Debug, Args)]
pub struct TraceArgs {
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
    /// Also write a complete snapshot of the results every SECS while sampling, atomically
    /// (a killed tracer leaves the last full snapshot). A failed write is reported and retried
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

impl TraceArgs {
    /// How often a status line is logged when stderr is not a terminal.
    fn status_every(&self) -> Duration {
        Duration::from_secs_f64(self.status_every)
    }

    fn session_options(
        &self,
        library_dirs: &[String],
        stdlib: Option<&str>,
    ) -> anyhow::Result<SessionOptions> {
        Ok(SessionOptions {
            rate_hz: self.rate,
            duration: self.duration.map(Duration::from_secs_f64),
            filter: self.filters.filter(library_dirs, stdlib)?,
            snapshot_every: self.flush_every.map(Duration::from_secs_f64),
            max_cpu_percent: self.max_cpu,
            function: self
                .function
                .as_ref()
                .inspect(|_| {
                    if self.format != Format::Json {
                        eprintln!(
                            "tracer: warning: the function view is written with --format json \
                             only; {} leaves it out",
                            self.format.name()
                        );
                    }
                })
                .map(|qualname| crate::reader::FunctionFilter {
                    qualname: qualname.clone(),
                    locals: self.locals,
                }),
        })
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e6 => Ok(r),
        _ => Err("the rate is samples per second: a number above 0 and at most 1000000".into()),
    }
}

fn parse_max_cpu(s: &str) -> Result<f64, String> {
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

fn parse_duration(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(d) if d.is_finite() && d > 0.0 && d < 1e9 => Ok(d),
        _ => Err("the duration is a number of seconds above 0".into()),
    }
}

fn parse_version(s: &str) -> Result<(u8, u8), String> {
    let (major, minor) = s.split_once('.').ok_or("expected X.Y, as 3.12")?;
    Ok((
        major.parse().map_err(|_| "expected X.Y, as 3.12")?,
        minor.parse().map_err(|_| "expected X.Y, as 3.12")?,
    ))
}

/// Signals that end sampling: the flag to stop, and whether SIGTERM (to forward to a child).
struct StopSignals {
    stop: Arc<AtomicBool>,
    terminated: Arc<AtomicBool>,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let terminated = Arc::new(AtomicBool::new(false));
        // A second Ctrl-C while results are being written ends the tracer at once.
        signal_hook::flag::register_conditional_shutdown(SIGINT, 130, stop.clone())?;
        signal_hook::flag::register(SIGINT, stop.clone())?;
        signal_hook::flag::register(SIGTERM, stop.clone())?;
        signal_hook::flag::register(SIGTERM, terminated.clone())?;
        Ok(StopSignals { stop, terminated })
    }
}

/// Commands that only print (`report`, `dump`, `merge`) end as other Unix tools do when their
/// reader goes away (`tracer report --listfuncs | head`): by SIGPIPE, silently, instead of a
/// panic in `print!`. `attach` and `run` keep SIGPIPE ignored: a closed log pipe must not cost a
/// sampling session its results.
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: restoring the default disposition of one signal, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Run the parsed command; the returned code is the process's exit status.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    if matches!(
        cli.command,
        Commands::Report { .. } | Commands::Dump { .. } | Commands::Merge { .. }
    ) {
        end_quietly_on_a_closed_pipe();
    }
    match cli.command {
        Commands::Attach { target, trace } => attach_command(&target, &trace),
        Commands::Run { trace, command } => run_command(&trace, &command),
        Commands::Dump {
            pid,
            locals,
            json,
            blocking,
        } => {
            let dump = crate::dump::dump(pid, locals, blocking)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&dump)?);
            } else {
                print!("{}", crate::dump::to_text(&dump));
            }
            Ok(0)
        }
        Commands::Report {
            file,
            coverdir,
            missing,
            summary,
            listfuncs,
            trackcalls,
            function,
            format,
            output,
            python_version,
            plugin,
            filters,
            paths,
        } => report_command(&ReportRequest {
            file,
            coverdir,
            missing,
            summary,
            listfuncs,
            trackcalls,
            function,
            format,
            output,
            python_version,
            write_options: plugin.write_options(),
            filters,
            path_map: paths.path_map,
        }),
        Commands::Snapshot {
            pid,
            output,
            format,
            evidence_only,
            plugin,
            filters,
        } => snapshot_command(
            pid,
            output.as_ref(),
            (format, plugin.write_options()),
            snapshot::SnapshotOptions { evidence_only },
            &filters,
        ),
        Commands::Merge {
            inputs,
            output,
            format,
            plugin,
            filters,
            paths,
        } => merge_command(
            &inputs,
            &output,
            (format, plugin.write_options()),
            &filters,
            &paths.path_map,
        ),
    }
}

fn attach_command(target: &TargetArgs, args: &TraceArgs) -> anyhow::Result<i32> {
    let signals = StopSignals::install()?;
    let pid = target.select(&signals.stop)?;
    let attached = attach::attach_with(pid, args.blocking, args.reader)?;
    let path = session::output_path(args.output.as_ref(), args.format, pid);
    session::check_output_writable(&path, args.format)?;
    args.plugin.write_options().check(args.format)?;
    // What --follow looks for once the target exits: --name's pattern, else the target's own
    // command line.
    let follow_pattern = target.follow.then(|| {
        target
            .name
            .clone()
            .unwrap_or_else(|| attached.info.command_line.clone())
    });
    let version = attached.info.version_tuple().unwrap_or((3, 12));
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let counters = Arc::new(StatusCounters::default());
    let status = StatusReporter::start(counters.clone(), Some(args.status_every()));
    let mut snapshots = SnapshotWriter::new(
        path.clone(),
        args.format,
        args.plugin.write_options(),
        Sources::of_process(pid, version),
    );
    snapshots.log_each = !status.on_terminal;
    let mut gathered: Option<SessionResult> = None;
    let mut traced_pids = Vec::new();
    let mut next = Some(attached);
    let mut last_pid = pid;
    while let Some(attached) = next.take() {
        last_pid = attached.info.pid;
        traced_pids.push(last_pid);
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if remaining.is_some_and(|r| r.is_zero()) {
            break;
        }
        let traced = if target.subprocesses {
            let trace = |pid: i32,
                         attached: Option<attach::Attached>,
                         duration: Option<Duration>,
                         on_snapshot: &mut dyn FnMut(SessionResult)|
             -> anyhow::Result<SessionResult> {
                let attached = match attached {
                    Some(attached) => attached,
                    // Forked a moment ago: its interpreter is its parent's copy, readable at
                    // once; one that exec'd needs a moment.
                    None => attach::attach_when_ready(
                        pid,
                        args.blocking,
                        args.reader,
                        Duration::from_secs(2),
                    )?,
                };
                trace_one(
                    attached,
                    args,
                    duration,
                    &signals,
                    &counters.sampler,
                    on_snapshot,
                )
            };
            let options = family::FamilyOptions {
                max_processes: usize::from(target.max_processes),
                flush_every: args.flush_every.map(Duration::from_secs_f64),
                deadline,
            };
            family::trace_family(
                attached,
                &options,
                &path,
                &signals.stop,
                &counters,
                &mut snapshots,
                &trace,
            )
        } else {
            counters.processes.store(1, Ordering::Relaxed);
            let traced = trace_one(
                attached,
                args,
                remaining,
                &signals,
                &counters.sampler,
                &mut |snapshot| {
                    match &gathered {
                        None => snapshots.write(snapshot),
                        Some(earlier) => {
                            let mut merged = earlier.copy();
                            merged.absorb(&snapshot);
                            snapshots.write(merged)
                        }
                    }
                    counters
                        .snapshots
                        .store(snapshots.written, Ordering::Relaxed);
                },
            );
            counters.processes.store(0, Ordering::Relaxed);
            traced
        };
        let result = match traced {
            Ok(result) => result,
            Err(e) if gathered.is_some() => {
                eprintln!("tracer: warning: pid {last_pid} could not be traced: {e:#}");
                continue;
            }
            Err(e) => return Err(e),
        };
        let exited = result.stop_reason == sampler::StopReason::TargetExited;
        gathered = Some(match gathered {
            Some(mut all) => {
                all.absorb(&result);
                all
            }
            None => result,
        });
        if let (true, Some(pattern)) = (exited, follow_pattern.as_deref()) {
            eprintln!(
                "tracer: pid {last_pid} exited; --follow: waiting for the next process matching \
                 {pattern:?} (Ctrl-C to stop)"
            );
            next = wait_to_follow(pattern, &traced_pids, args, &signals.stop, deadline);
        }
    }
    status.stop();
    let result = gathered.context("no process was traced")?;
    if traced_pids.len() > 1 {
        let pids: Vec<String> = traced_pids.iter().map(i32::to_string).collect();
        eprintln!(
            "tracer: results of pids {} merged into one",
            pids.join(", ")
        );
    }
    report_stop(&result);
    let mut result = result;
    if target.snapshot {
        add_snapshot(&mut result, last_pid, &args.filters);
    }
    // The target's root and rights as taken at attach time: it may be gone by now.
    let sources = if last_pid == pid {
        snapshots.sources.clone()
    } else {
        let version = result.info.target.version_tuple().unwrap_or((3, 12));
        Sources::of_process(last_pid, version)
    };
    let message = session::write_results(
        &result,
        args.format,
        &path,
        &sources,
        &args.plugin.write_options(),
    )?;
    println!("{message}");
    Ok(0)
}

/// `attach --snapshot`: add what the target has run since it started to the sampled results.
/// A target gone or too old is a warning: the sampled results are still written.
fn add_snapshot(result: &mut SessionResult, pid: i32, filters: &FilterArgs) {
    let taken = snapshot::take(pid, snapshot::SnapshotOptions::default()).and_then(|taken| {
        let info = &result.info;
        let filter = filters.filter(&info.library_dirs, info.stdlib_dir.as_deref())?;
        let mut results = taken.results;
        let mut likely = taken.likely;
        if !filter.is_empty() {
            results.retain_counts(|file| filter.ignores(file));
            likely.retain(|(file, _)| !filter.ignores(file));
        }
        Ok((results, likely))
    });
    match taken {
        Ok((results, likely)) => {
            eprintln!(
                "tracer: snapshot of pid {pid} added: {} proven lines, {} functions ({} more \
                 lines likely, kept apart)",
                results.counts.len(),
                results.calledfuncs.len(),
                likely.len()
            );
            result.results.update(&results);
            // Kept apart from the counts.
            let kept = &mut result.info.likely;
            kept.extend(likely);
            kept.sort_unstable();
            kept.dedup();
        }
        Err(e) => eprintln!("tracer: warning: no snapshot of pid {pid}: {e:#}"),
    }
}

/// `tracer snapshot`: read once what `pid` has run and write it in `format`.
fn snapshot_command(
    pid: i32,
    output: Option<&PathBuf>,
    (format, write_options): (Format, WriteOptions),
    options: snapshot::SnapshotOptions,
    filters: &FilterArgs,
) -> anyhow::Result<i32> {
    let path = session::output_path(output, format, pid);
    session::check_output_writable(&path, format)?;
    write_options.check(format)?;
    let taken = snapshot::take(pid, options)?;
    let version = taken
        .stats
        .walk_version()
        .unwrap_or(snapshot::FIRST_VERSION);
    let library_dirs = crate::library_dirs::of_process(pid, version);
    let stdlib_dir = crate::library_dirs::stdlib_of_process(pid, version);
    let filter = filters.filter(&library_dirs, stdlib_dir.as_deref())?;
    let mut results = taken.results;
    let mut likely = taken.likely;
    if !filter.is_empty() {
        results.retain_counts(|file| filter.ignores(file));
        likely.retain(|(file, _)| !filter.ignores(file));
    }
    let likely_lines = likely.len();
    let info = RunInfo {
        target: crate::attach::TargetInfo {
            pid,
            python_version: taken.stats.python_version.clone(),
            executable: crate::process::executable(pid)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            command_line: crate::process::command_line(pid).unwrap_or_default(),
            reader: "snapshot".to_owned(),
        },
        library_dirs,
        stdlib_dir,
        likely: likely.into_iter().collect(),
        ..RunInfo::default()
    };
    let sources = Sources::of_process(pid, version);
    if let Some(report) = output::write(&results, &info, format, &path, &sources, &write_options)? {
        for line in &report.skipped {
            eprintln!("tracer: {line}");
        }
        print!("{}", report.summary_text());
    }
    let s = &taken.stats;
    println!(
        "tracer: wrote snapshot to {} ({} lines in {} files, {} functions; {} code objects \
         read, {} analysed, {} skipped, {} unstable; {} lines from evidence alone, {} with \
         inference; {} more lines likely, not proven, kept apart{})",
        path.display(),
        results.counts.len(),
        results.files().len(),
        results.calledfuncs.len(),
        s.walk.code_objects,
        s.analysed,
        s.skipped,
        s.walk.unstable_codes,
        s.evidence_lines,
        s.proven_lines,
        likely_lines,
        if format == Format::Json {
            " in \"likely\""
        } else {
            ": --format json lists them"
        }
    );
    Ok(0)
}

/// Wait for the next Python process matching `pattern` that was not traced yet, and attach
/// to it; `None` once stopped by a signal or past `deadline`.
fn wait_to_follow(
    pattern: &str,
    traced: &[i32],
    args: &TraceArgs,
    stop: &AtomicBool,
    deadline: Option<Instant>,
) -> Option<attach::Attached> {
    let mut refused: Vec<i32> = Vec::new();
    // Bounded by the stop signal and the deadline; a sidecar waits as long as it runs.
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let candidate = crate::process::find_by_command_line(pattern)
            .into_iter()
            .find(|pid| !traced.contains(pid) && !refused.contains(pid));
        if let Some(pid) = candidate {
            // Just started: its interpreter may need a moment.
            match attach::attach_when_ready(
                pid,
                args.blocking,
                args.reader,
                Duration::from_secs(10),
            ) {
                Ok(attached) => {
                    eprintln!(
                        "tracer: following pid {pid} (Python {})",
                        attached.info.python_version
                    );
                    return Some(attached);
                }
                Err(e) => {
                    eprintln!("tracer: not following pid {pid}: {e}");
                    refused.push(pid);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Trace one process until it exits, the duration passes or a signal comes, handing each
/// snapshot (library directories filled in) to `on_snapshot`.
fn trace_one(
    mut attached: attach::Attached,
    args: &TraceArgs,
    duration: Option<Duration>,
    signals: &StopSignals,
    live: &Arc<crate::sampler::LiveCounters>,
    on_snapshot: &mut dyn FnMut(SessionResult),
) -> anyhow::Result<SessionResult> {
    let pid = attached.info.pid;
    let version = attached.info.version_tuple().unwrap_or((3, 12));
    let library_dirs = crate::library_dirs::of_process(pid, version);
    let stdlib_dir = crate::library_dirs::stdlib_of_process(pid, version);
    let mut options = args.session_options(&library_dirs, stdlib_dir.as_deref())?;
    options.duration = duration;
    // Refused before anything is announced (the session asks again, harmlessly).
    if let Some(function) = &options.function {
        attached
            .reader
            .follow_function(function.clone())
            .map_err(|e| anyhow::anyhow!("cannot follow --function {}: {e}", function.qualname))?;
    }
    eprintln!(
        "tracer: tracing pid {pid} (Python {}) at {} Hz{}; Ctrl-C to stop",
        attached.info.python_version,
        args.rate,
        if args.blocking {
            ", pausing it for each sample"
        } else {
            ""
        }
    );
    let mut result = session::sample_with_snapshots(
        attached,
        &options,
        signals.stop.clone(),
        live,
        &mut |mut snapshot| {
            snapshot.info.library_dirs = library_dirs.clone();
            snapshot.info.stdlib_dir = stdlib_dir.clone();
            on_snapshot(snapshot)
        },
    )?;
    // Extension modules loaded while sampling show more library directories.
    let mut library_dirs = library_dirs;
    if crate::process::is_alive(pid) {
        for dir in crate::library_dirs::of_process(pid, version) {
            if !library_dirs.contains(&dir) {
                library_dirs.push(dir);
            }
        }
        if args.filters.ignore_stdlib {
            let filter = args.filters.filter(&library_dirs, stdlib_dir.as_deref())?;
            result.results.retain_counts(|file| filter.ignores(file));
        }
    }
    result.info.library_dirs = library_dirs;
    result.info.stdlib_dir = stdlib_dir;
    Ok(result)
}

fn run_command(args: &TraceArgs, command: &[String]) -> anyhow::Result<i32> {
    let signals = StopSignals::install()?;
    args.plugin.write_options().check(args.format)?;
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .spawn()
        .with_context(|| format!("cannot start {:?}", command[0]))?;
    let pid = child.id() as i32;
    let path = session::output_path(args.output.as_ref(), args.format, pid);
    if let Err(e) = session::check_output_writable(&path, args.format) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    // Check the filters before starting to sample (`$prefix` is checked once attached).
    if let Err(e) = args.filters.filter(&[], Some("")) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let result =
        match attach::attach_when_ready(pid, args.blocking, args.reader, Duration::from_secs(10)) {
            Ok(attached) => {
                let version = attached.info.version_tuple().unwrap_or((3, 12));
                let library_dirs = crate::library_dirs::of_process(pid, version);
                let stdlib_dir = crate::library_dirs::stdlib_of_process(pid, version);
                let options = args.session_options(&library_dirs, stdlib_dir.as_deref())?;
                // The target's root and rights, taken now: it may be gone when the results are
                // written.
                let sources = Sources::of_process(pid, version);
                let mut snapshots = SnapshotWriter::new(
                    path.clone(),
                    args.format,
                    args.plugin.write_options(),
                    sources.clone(),
                );
                let counters = Arc::new(StatusCounters::default());
                counters.processes.store(1, Ordering::Relaxed);
                let status = StatusReporter::start(counters.clone(), Some(args.status_every()));
                snapshots.log_each = !status.on_terminal;
                let sampled = session::sample_with_snapshots(
                    attached,
                    &options,
                    signals.stop.clone(),
                    &counters.sampler,
                    &mut |mut snapshot| {
                        snapshot.info.library_dirs = library_dirs.clone();
                        snapshot.info.stdlib_dir = stdlib_dir.clone();
                        snapshots.write(snapshot);
                        counters
                            .snapshots
                            .store(snapshots.written, Ordering::Relaxed);
                    },
                );
                status.stop();
                let mut result = match sampled {
                    Ok(result) => result,
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(e);
                    }
                };
                result.info.library_dirs = library_dirs;
                result.info.stdlib_dir = stdlib_dir;
                if signals.terminated.load(Ordering::Relaxed) {
                    // SIGTERM was for the whole job: pass it on. (Ctrl-C already reached the child
                    // through the terminal's process group.)
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
                Some((result, sources, true))
            }
            // The command ran and exited before its interpreter could be read (`python -c
            // pass` takes a few milliseconds): its results are empty, and still written, so
            // that a script reading them finds a file whatever the command's speed.
            Err(e @ (AttachError::Exited(_) | AttachError::NoSuchProcess(_))) => {
                Some(exited_untraced(pid, command, args, &e))
            }
            Err(e) if !crate::process::is_alive(pid) => {
                Some(exited_untraced(pid, command, args, &e))
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.into());
            }
        };
    let status = child.wait().context("waiting for the traced command")?;
    if let Some((result, sources, sampled)) = result {
        if sampled {
            report_stop(&result);
        }
        let message = session::write_results(
            &result,
            args.format,
            &path,
            &sources,
            &args.plugin.write_options(),
        )?;
        println!("{message}");
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// The empty results of a command that exited before it could be traced, and a note saying so.
fn exited_untraced(
    pid: i32,
    command: &[String],
    args: &TraceArgs,
    why: &AttachError,
) -> (SessionResult, Sources, bool) {
    eprintln!(
        "tracer: {command:?} exited before it could be traced ({why}); writing empty results"
    );
    let target = attach::TargetInfo {
        pid,
        executable: command[0].clone(),
        command_line: command.join(" "),
        ..attach::TargetInfo::default()
    };
    let result = SessionResult {
        results: CoverageResults::default(),
        info: RunInfo {
            target,
            rate_requested: args.rate,
            ..RunInfo::default()
        },
        stop_reason: sampler::StopReason::TargetExited,
        first_error: None,
    };
    // The target is gone: no file of its is read as it saw it.
    (result, Sources::of_process(pid, (3, 12)), false)
}

fn report_stop(result: &session::SessionResult) {
    let why = match result.stop_reason {
        sampler::StopReason::Duration => "duration reached",
        sampler::StopReason::Signal => "stopped by signal",
        sampler::StopReason::TargetExited => "target exited",
    };
    eprintln!("tracer: sampling ended: {why}");
    if result.info.stats.samples == 0 {
        if let Some(e) = &result.first_error {
            eprintln!("tracer: no stack could be read; first error: {e}");
        }
    }
}

/// What `tracer report` was asked to do.
struct ReportRequest {
    file: PathBuf,
    coverdir: Option<PathBuf>,
    missing: bool,
    summary: bool,
    listfuncs: bool,
    trackcalls: bool,
    function: bool,
    format: Option<Format>,
    output: Option<PathBuf>,
    python_version: Option<(u8, u8)>,
    write_options: WriteOptions,
    filters: FilterArgs,
    path_map: Vec<PathMap>,
}

/// Load a results file, rewrite its paths and filter its line counts as asked.
fn load_for_report(
    file: &Path,
    filters: &FilterArgs,
    path_map: &[PathMap],
) -> anyhow::Result<(CoverageResults, Option<RunInfo>)> {
    let (results, info) = output::load_results(file)?;
    let (results, info) = remap(results, info, path_map);
    let results = apply_filters(results, info.as_ref(), filters, &[file])?;
    Ok((results, info))
}

fn remap(
    results: CoverageResults,
    info: Option<RunInfo>,
    path_map: &[PathMap],
) -> (CoverageResults, Option<RunInfo>) {
    if path_map.is_empty() {
        return (results, info);
    }
    let map = |path: &str| PathMap::apply(path_map, path);
    let info = info.map(|mut info| {
        info.library_dirs = info.library_dirs.iter().map(|d| map(d)).collect();
        info.stdlib_dir = info.stdlib_dir.as_deref().map(map);
        info
    });
    (results.map_paths(map), info)
}

fn apply_filters(
    mut results: CoverageResults,
    info: Option<&RunInfo>,
    filters: &FilterArgs,
    files: &[&Path],
) -> anyhow::Result<CoverageResults> {
    let library_dirs = info.map(|i| i.library_dirs.clone()).unwrap_or_default();
    if filters.ignore_stdlib && library_dirs.is_empty() {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        anyhow::bail!(
            "--ignore-stdlib needs the target's library directories, which {} does not record \
             (only tracer JSON does): use --ignore-dir",
            names.join(", ")
        );
    }
    let stdlib = info.and_then(|i| i.stdlib_dir.as_deref());
    let filter = filters.filter(&library_dirs, stdlib)?;
    if !filter.is_empty() {
        results.retain_counts(|file| filter.ignores(file));
    }
    Ok(results)
}

fn report_command(request: &ReportRequest) -> anyhow::Result<i32> {
    let (results, info) = load_for_report(&request.file, &request.filters, &request.path_map)?;
    let version = request
        .python_version
        .or_else(|| info.as_ref().and_then(|i| i.target.version_tuple()))
        .unwrap_or((3, 12));
    let sources = Sources::local(version);
    if request.listfuncs {
        print!("{}", output::trace_text::functions_called(&results));
    }
    if request.trackcalls {
        print!("{}", output::trace_text::calling_relationships(&results));
    }
    if request.function {
        let Some(function) = &results.function else {
            anyhow::bail!(
                "{} holds no function view: trace with --function QUALNAME --format json",
                request.file.display()
            );
        };
        // Into a pipe that closes early (`| head`), stop quietly as other tools do.
        let text = crate::function_view::render_text(function);
        let mut stdout = std::io::stdout().lock();
        match std::io::Write::write_all(&mut stdout, text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(e).context("cannot print the function view");
            }
            _ => {}
        }
        if request.format.is_none() && request.output.is_none() && request.coverdir.is_none() {
            return Ok(0);
        }
    }
    // -o without --format: the format the name tells.
    let format = match (request.format, &request.output) {
        (Some(format), _) => Some(format),
        (None, Some(path)) => Some(Format::from_path(path).with_context(|| {
            format!(
                "cannot tell the format of {} from its name: give --format",
                path.display()
            )
        })?),
        (None, None) => None,
    };
    request
        .write_options
        .check(format.unwrap_or(Format::Cover))?;
    if let Some(format) = format.filter(|f| *f != Format::Cover || request.output.is_some()) {
        let path = request
            .output
            .as_ref()
            .with_context(|| format!("--format {} needs -o PATH to write to", format.name()))?;
        let info = info.unwrap_or_default();
        if let Some(report) = output::write(
            &results,
            &info,
            format,
            path,
            &sources,
            &request.write_options,
        )? {
            for line in &report.skipped {
                eprintln!("tracer: {line}");
            }
            if request.summary {
                print!("{}", report.summary_text());
            }
        }
        eprintln!(
            "tracer: wrote {} as {} to {}",
            request.file.display(),
            format.name(),
            path.display()
        );
        return Ok(0);
    }
    if results.counts.is_empty() {
        eprintln!(
            "tracer: {} holds no line counts: nothing to report",
            request.file.display()
        );
    }
    let options = cover::CoverOptions {
        coverdir: request.coverdir.clone(),
        show_missing: request.missing,
    };
    let report = cover::write(&results, &options, &sources);
    for line in &report.skipped {
        eprintln!("tracer: {line}");
    }
    if request.summary {
        print!("{}", report.summary_text());
    }
    Ok(0)
}

fn merge_command(
    inputs: &[PathBuf],
    output_path: &Path,
    (format, write_options): (Option<Format>, WriteOptions),
    filters: &FilterArgs,
    path_map: &[PathMap],
) -> anyhow::Result<i32> {
    let format = format
        .or_else(|| Format::from_path(output_path))
        .unwrap_or(Format::Pickle);
    write_options.check(format)?;
    let mut merged: Option<(CoverageResults, RunInfo)> = None;
    let mut without_stacks = Vec::new();
    for input in inputs {
        let (results, info) = output::load_results(input)?;
        if results.stacks.is_none() {
            without_stacks.push(input.display().to_string());
        }
        let info = info.unwrap_or_default();
        match &mut merged {
            None => merged = Some((results, info)),
            Some((all, all_info)) => {
                all.update(&results);
                all_info.update(&info);
            }
        }
    }
    let (results, info) = merged.context("no input files")?;
    if !without_stacks.is_empty() && without_stacks.len() < inputs.len() {
        eprintln!(
            "tracer: warning: the merged results hold no stacks (for flame graphs): {} held none",
            without_stacks.join(", ")
        );
    }
    let (results, info) = remap(results, Some(info), path_map);
    let info = info.unwrap_or_default();
    let file_refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let results = apply_filters(results, Some(&info), filters, &file_refs)?;
    let version = info.target.version_tuple().unwrap_or((3, 12));
    if let Some(report) = output::write(
        &results,
        &info,
        format,
        output_path,
        &Sources::local(version),
        &write_options,
    )? {
        for line in &report.skipped {
            eprintln!("tracer: {line}");
        }
    }
    eprintln!(
        "tracer: merged {} files into {} ({}: {} lines in {} files, {} functions, {} call edges)",
        inputs.len(),
        output_path.display(),
        format.name(),
        results.counts.len(),
        results.files().len(),
        results.calledfuncs.len(),
        results.callers.len()
    );
    Ok(0)
}
