//! Periodic flushes (`--flush-every`): each one a complete results file written atomically
//! (temporary file beside it, fsync, rename), so that a sidecar killed at any moment leaves
//! the last full flush and never a torn file. A failed write is reported and retried at the
//! next flush; it never stops sampling.

use crate::output::{Format, WriteOptions};
use crate::session::{self, SessionResult};
use crate::source::Sources;
use std::path::PathBuf;

/// Writes flushes of a running session to the session's output path.
pub struct FlushWriter {
    pub path: PathBuf,
    pub format: Format,
    pub options: WriteOptions,
    pub sources: Sources,
    /// Print a line for every flush written (plain log mode); failures are always printed.
    pub log_each: bool,
    /// Flushes written, and failed writes, so far.
    pub written: u64,
    pub failed: u64,
}

impl FlushWriter {
    /// A writer of flushes to `path` in `format`.
    pub fn new(
        path: PathBuf,
        format: Format,
        options: WriteOptions,
        sources: Sources,
    ) -> FlushWriter {
        FlushWriter {
            path,
            format,
            options,
            sources,
            log_each: true,
            written: 0,
            failed: 0,
        }
    }

    /// Write one flush; report a failure on stderr and carry on (the next flush retries).
    pub fn write(&mut self, flush: SessionResult) {
        let (samples, errors) = (flush.info.stats.samples, flush.info.stats.errors);
        let outcome = session::write_results(
            &flush,
            self.format,
            &self.path,
            &self.sources,
            &self.options,
        );
        drop(flush);
        release_freed_memory();
        match outcome {
            Ok(_) => {
                self.written += 1;
                if self.log_each {
                    eprintln!(
                        "tracer: flush written to {} ({} samples, {} errors)",
                        self.path.display(),
                        samples,
                        errors
                    );
                }
            }
            Err(e) => {
                self.failed += 1;
                let message = format!("{e:#}").replace('\n', " ");
                eprintln!(
                    "tracer: warning: flush not written ({message}); sampling goes on and \
                     the next flush retries"
                );
            }
        }
    }
}

/// Hand the memory a flush used back to the system.
///
/// A flush is a full copy of the results as strings plus the encoded file, freed as soon as
/// it is written. glibc keeps freed memory in its arenas, and the aggregator's own tables,
/// growing between flushes, pin the arena tops: without a trim a sidecar's RSS ratchets up
/// by about a flush's size every few flushes (measured by `make soak`).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's arenas to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
