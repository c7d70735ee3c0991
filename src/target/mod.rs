//! The traced process, before anything is read from its interpreter: what `/proc` says of it
//! ([`process`]), the checks and interpreter discovery of attaching ([`attach`]), and where its
//! standard library and site-packages live ([`library_dirs`]).

pub mod attach;
pub mod exit_watch;
pub mod library_dirs;
pub mod proc;
pub mod process;
