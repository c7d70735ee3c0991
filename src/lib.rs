//! tracer: an out-of-process tracer for CPython.
//!
//! The data path, one folder per step: [`target`] (the process, /proc, attaching) →
//! [`reader`] (find the interpreter's threads, read stacks into compact samples) →
//! [`session`] (the sampler's timer, the aggregator thread, flushes, process families) →
//! [`aggregate`] (fold samples into counts: trace's `CoverageResults`) → [`output`] (pickle,
//! `.cover`, JSON, coverage.py, flame graphs). Beside it: [`snapshot`] (what ran, from the
//! interpreter's own evidence), [`function_view`] (one function's calls), [`source`] (the
//! target's files and their executable lines). [`cli`] defines the arguments and
//! [`commands`] runs them. See docs/ARCHITECTURE.md.

pub mod aggregate;
pub mod cli;
pub mod commands;
pub mod function_view;
pub mod output;
pub mod reader;
pub mod session;
pub mod snapshot;
pub mod source;
pub mod target;
