//! The command line: `tracer attach`, `tracer run`, `tracer report`.

use crate::attach::{self, AttachError, ReaderChoice};
use crate::filter::{Filter, PathMap};
use crate::model::CoverageResults;
use crate::output::{self, cover, Format, RunInfo};
use crate::sampler;
use crate::session::{self, SessionOptions};
use crate::source::Sources;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
        /// The process to trace.
        #[arg(long, short = 'p', value_name = "PID")]
        pid: i32,
        #[command(flatten)]
        trace: TraceArgs,
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
        filters: FilterArgs,
        #[command(flatten)]
        paths: PathMapArgs,
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
        filters: FilterArgs,
        #[command(flatten)]
        paths: PathMapArgs,
    },
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
    #[arg(long, default_value_t = 1000.0, value_name = "HZ", value_parser = parse_rate)]
    pub rate: f64,
    /// Stop sampling after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<f64>,
    /// Pause the target while reading each sample (as py-spy does by default). Without it the
    /// target is never paused.
    #[arg(long)]
    pub blocking: bool,
    /// Where to write the results (a directory for --format cover). Default: tracer-PID.pickle,
    /// tracer-PID.json or tracer-PID-cover in the current directory.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Pickle)]
    pub format: Format,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Which stack reader: tracer's own where it knows the version (auto), or py-spy's.
    #[arg(long, value_enum, default_value_t = ReaderChoice::Auto)]
    pub reader: ReaderChoice,
}

impl TraceArgs {
    fn session_options(
        &self,
        library_dirs: &[String],
        stdlib: Option<&str>,
    ) -> anyhow::Result<SessionOptions> {
        Ok(SessionOptions {
            rate_hz: self.rate,
            duration: self.duration.map(Duration::from_secs_f64),
            filter: self.filters.filter(library_dirs, stdlib)?,
        })
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e6 => Ok(r),
        _ => Err("the rate is samples per second: a number above 0 and at most 1000000".into()),
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

/// Run the parsed command; the returned code is the process's exit status.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Commands::Attach { pid, trace } => attach_command(pid, &trace),
        Commands::Run { trace, command } => run_command(&trace, &command),
        Commands::Report {
            file,
            coverdir,
            missing,
            summary,
            listfuncs,
            trackcalls,
            format,
            output,
            python_version,
            filters,
            paths,
        } => report_command(&ReportRequest {
            file,
            coverdir,
            missing,
            summary,
            listfuncs,
            trackcalls,
            format,
            output,
            python_version,
            filters,
            path_map: paths.path_map,
        }),
        Commands::Merge {
            inputs,
            output,
            format,
            filters,
            paths,
        } => merge_command(&inputs, &output, format, &filters, &paths.path_map),
    }
}

fn attach_command(pid: i32, args: &TraceArgs) -> anyhow::Result<i32> {
    let signals = StopSignals::install()?;
    let attached = attach::attach_with(pid, args.blocking, args.reader)?;
    let path = session::output_path(args.output.as_ref(), args.format, pid);
    session::check_output_writable(&path, args.format)?;
    let version = attached.info.version_tuple().unwrap_or((3, 12));
    let library_dirs = crate::library_dirs::of_process(pid, version);
    let stdlib_dir = crate::library_dirs::stdlib_of_process(pid, version);
    let options = args.session_options(&library_dirs, stdlib_dir.as_deref())?;
    // The target's root and rights, taken now: it may be gone when the results are written.
    let sources = Sources::of_process(pid, version);
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
    let mut result = session::sample(attached, &options, signals.stop.clone())?;
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
    report_stop(&result);
    let message = session::write_results(&result, args.format, &path, &sources)?;
    println!("{message}");
    Ok(0)
}

fn run_command(args: &TraceArgs, command: &[String]) -> anyhow::Result<i32> {
    let signals = StopSignals::install()?;
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
                let sources = Sources::of_process(pid, version);
                let mut result = match session::sample(attached, &options, signals.stop.clone()) {
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
                Some((result, sources))
            }
            Err(e @ (AttachError::Exited(_) | AttachError::NoSuchProcess(_))) => {
                eprintln!("tracer: {command:?} exited before it could be traced ({e})");
                None
            }
            Err(e) if !crate::process::is_alive(pid) => {
                eprintln!("tracer: {command:?} exited before it could be traced ({e})");
                None
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.into());
            }
        };
    let status = child.wait().context("waiting for the traced command")?;
    if let Some((result, sources)) = result {
        report_stop(&result);
        let message = session::write_results(&result, args.format, &path, &sources)?;
        println!("{message}");
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
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
    format: Option<Format>,
    output: Option<PathBuf>,
    python_version: Option<(u8, u8)>,
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
    if let Some(format) = format.filter(|f| *f != Format::Cover || request.output.is_some()) {
        let path = request
            .output
            .as_ref()
            .with_context(|| format!("--format {} needs -o PATH to write to", format.name()))?;
        let info = info.unwrap_or_default();
        if let Some(report) = output::write(&results, &info, format, path, &sources)? {
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
    format: Option<Format>,
    filters: &FilterArgs,
    path_map: &[PathMap],
) -> anyhow::Result<i32> {
    let format = format
        .or_else(|| Format::from_path(output_path))
        .unwrap_or(Format::Pickle);
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
