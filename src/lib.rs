//! tracer: an out-of-process tracer for CPython.
//!
//! The data path, one module per step:
//! [`attach`] (find the interpreter) → [`reader`] (read stacks) → [`sampler`] (timer, send
//! compact [`sample`]s) → [`aggregate`] (fold into counts; [`function_view`] per call of one
//! function) → [`model`] (trace's
//! `CoverageResults`) → [`output`] (pickle, `.cover`, JSON). [`session`] ties them together;
//! [`cli`] is the command line. See docs/ARCHITECTURE.md.

pub mod aggregate;
pub mod attach;
pub mod cli;
pub mod dump;
pub mod family;
pub mod filter;
pub mod flush;
pub mod function_view;
pub mod library_dirs;
pub mod model;
pub mod output;
pub mod pacing;
pub mod process;
pub mod reader;
pub mod sample;
pub mod sampler;
pub mod session;
pub mod snapshot;
pub mod source;
pub mod status;
