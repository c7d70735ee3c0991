//! Property-based fuzzing of every parser of target memory and of results files (`make fuzz`
//! runs many cases; `make test` a few). A binary of its own: its allocator counts every
//! allocation of the process, to catch a parser that sizes a buffer from hostile bytes.

#[path = "../common/mod.rs"]
mod common;

mod fuzz_parsers;
mod fuzz_snapshot;
mod fuzz_walker;
mod walker_regressions;

use common::fuzz::CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;
