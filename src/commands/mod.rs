//! One module per command, each entered from the binary's `main` (src/main.rs); [`crate::cli`]
//! holds only their arguments. [`tracing`] is `--snapshot`'s part of `attach` and `run`; the
//! session they start, with its status line and flushes, is [`crate::session::trace_one`].

pub mod attach;
pub mod dump;
pub mod merge;
pub mod report;
pub mod run;
pub mod snapshot;
pub mod top;
pub mod tracing;

use crate::aggregate::filter::Filter;
use crate::cli::{CoveragePluginArg, FilterArgs};
use crate::output::WriteOptions;
pub(crate) use crate::session::StopSignals;

impl CoveragePluginArg {
    /// The options of the written file that this argument sets.
    pub fn write_options(&self) -> WriteOptions {
        WriteOptions {
            coverage_plugin: self.coverage_plugin,
            coverage_arcs: self.coverage_arcs,
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

/// Commands that only print (`report`, `dump`, `merge`) end as other Unix tools do when their
/// reader goes away (`tracer report --listfuncs | head`): by SIGPIPE, silently, instead of a
/// panic in `print!`. `attach` and `run` keep SIGPIPE ignored: a closed log pipe must not cost a
/// sampling session its results.
pub fn end_quietly_on_a_closed_pipe() {
    // SAFETY: restoring the default disposition of one signal, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
