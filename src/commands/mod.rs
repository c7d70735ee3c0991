//! One module per command; [`crate::cli`] holds only their arguments. [`tracing`] is what
//! `attach` and `run` share: a session per traced process, the status line and the flushes.

pub mod attach;
pub mod dump;
pub mod merge;
pub mod report;
pub mod run;
pub mod snapshot;
pub mod top;
pub mod tracing;

use crate::aggregate::filter::Filter;
use crate::cli::{Cli, Commands, CoveragePluginArg, FilterArgs};
use crate::output::WriteOptions;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

impl CoveragePluginArg {
    pub(crate) fn write_options(&self) -> WriteOptions {
        WriteOptions {
            coverage_plugin: self.coverage_plugin,
        }
    }
}

impl FilterArgs {
    /// The filter, with `library_dirs` ignored if --ignore-stdlib was given, and `$prefix` in
    /// --ignore-dir standing for the target's `stdlib` directory, as in trace.
    pub fn filter(&self, library_dirs: &[String], stdlib: Option<&str>) -> anyhow::Result<Filter> {
        let dirs = self
            .ignore_dir
            .iter()
            .map(|d| crate::aggregate::filter::expand_ignore_dir(d, stdlib))
            .collect::<anyhow::Result<Vec<String>>>()?;
        let filter = Filter::new(&self.ignore_module, &dirs).with_include(&self.include)?;
        Ok(if self.ignore_stdlib {
            filter.with_ignored_dirs(library_dirs)
        } else {
            filter
        })
    }
}

/// Signals that end sampling: the flag to stop, and whether SIGTERM (to forward to a child).
pub(crate) struct StopSignals {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) terminated: Arc<AtomicBool>,
}

impl StopSignals {
    pub(crate) fn install() -> anyhow::Result<StopSignals> {
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
        Commands::Attach { target, trace } => attach::attach_command(&target, &trace),
        Commands::Run { trace, command } => run::run_command(&trace, &command),
        Commands::Top(top) => top::top_command(&top),
        Commands::Dump {
            pid,
            locals,
            json,
            blocking,
        } => {
            let dump = dump::dump(pid, locals, blocking)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&dump)?);
            } else {
                print!("{}", dump::to_text(&dump));
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
        } => report::report_command(&report::ReportRequest {
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
        } => snapshot::snapshot_command(
            pid,
            output.as_ref(),
            (format, plugin.write_options()),
            crate::snapshot::SnapshotOptions { evidence_only },
            &filters,
        ),
        Commands::Merge {
            inputs,
            output,
            format,
            plugin,
            filters,
            paths,
        } => merge::merge_command(
            &inputs,
            &output,
            (format, plugin.write_options()),
            &filters,
            &paths.path_map,
        ),
    }
}
