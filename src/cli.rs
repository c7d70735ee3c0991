//! The command line: `tracer attach`, `tracer run`, `tracer report`.

use crate::attach::{self, AttachError, ReaderChoice};
use crate::filter::Filter;
use crate::output::{self, cover, Format};
use crate::sampler;
use crate::session::{self, SessionOptions};
use crate::source::Sources;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
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
    /// `python -m trace --report`.
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
        /// The Python version whose compiler decides which lines are executable (for
        /// --missing), as X.Y; default: the one recorded in the results, else 3.12.
        #[arg(long, value_name = "X.Y", value_parser = parse_version)]
        python_version: Option<(u8, u8)>,
    },
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
    /// Leave out lines of this module and its submodules (comma-separated lists accepted).
    #[arg(long = "ignore-module", value_name = "M")]
    pub ignore_module: Vec<String>,
    /// Leave out lines of files under this directory (`:`-separated lists accepted).
    #[arg(long = "ignore-dir", value_name = "D")]
    pub ignore_dir: Vec<String>,
    /// Which stack reader: tracer's own where it knows the version (auto), or py-spy's.
    #[arg(long, value_enum, default_value_t = ReaderChoice::Auto)]
    pub reader: ReaderChoice,
}

impl TraceArgs {
    fn session_options(&self) -> SessionOptions {
        SessionOptions {
            rate_hz: self.rate,
            duration: self.duration.map(Duration::from_secs_f64),
            filter: Filter::new(&self.ignore_module, &self.ignore_dir),
        }
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
            python_version,
        } => report_command(&file, coverdir, missing, summary, python_version),
    }
}

fn attach_command(pid: i32, args: &TraceArgs) -> anyhow::Result<i32> {
    let signals = StopSignals::install()?;
    let attached = attach::attach_with(pid, args.blocking, args.reader)?;
    let path = session::output_path(args.output.as_ref(), args.format, pid);
    session::check_output_writable(&path, args.format)?;
    let version = attached.info.version_tuple().unwrap_or((3, 12));
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
    let result = session::sample(attached, &args.session_options(), signals.stop.clone())?;
    report_stop(&result);
    let sources = Sources::of_process(pid, version);
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
    let options = args.session_options();
    let result =
        match attach::attach_when_ready(pid, args.blocking, args.reader, Duration::from_secs(10)) {
            Ok(attached) => {
                let version = attached.info.version_tuple().unwrap_or((3, 12));
                let result = match session::sample(attached, &options, signals.stop.clone()) {
                    Ok(result) => result,
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(e);
                    }
                };
                if signals.terminated.load(Ordering::Relaxed) {
                    // SIGTERM was for the whole job: pass it on. (Ctrl-C already reached the child
                    // through the terminal's process group.)
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
                Some((result, version))
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
    if let Some((result, version)) = result {
        report_stop(&result);
        let sources = Sources::of_process(pid, version);
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

fn report_command(
    file: &std::path::Path,
    coverdir: Option<PathBuf>,
    missing: bool,
    summary: bool,
    python_version: Option<(u8, u8)>,
) -> anyhow::Result<i32> {
    let (results, info) = output::load_results(file)?;
    let version = python_version
        .or_else(|| info.as_ref().and_then(|i| i.target.version_tuple()))
        .unwrap_or((3, 12));
    if results.counts.is_empty() {
        eprintln!(
            "tracer: {} holds no line counts: nothing to report",
            file.display()
        );
    }
    let options = cover::CoverOptions {
        coverdir,
        show_missing: missing,
    };
    let report = cover::write(&results, &options, &Sources::local(version));
    for line in &report.skipped {
        eprintln!("tracer: {line}");
    }
    if summary {
        print!("{}", report.summary_text());
    }
    Ok(0)
}
