//! Fuzzing the snapshot walk (src/snapshot/walk.rs and the module namespaces of
//! src/snapshot/walk/namespaces.rs, 3.11+) and the analysis of the code objects
//! it finds (src/snapshot/mod.rs) over images of a real walk, mutated and replaced by random
//! bytes as the frame walker's images are (tests/fuzz/fuzz_walker.rs records them).

use crate::common::fuzz::{fuzz_cases, CaseCounter};
use crate::common::*;
use crate::fuzz_walker::*;
use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracer::reader::direct::Target;
use tracer::reader::memory::ImageMemory;
use tracer::reader::PyVersion;

/// A recorded snapshot walk: the image of everything the walk read, and what reading it needs.
struct RecordedWalk {
    recorded: Recorded,
    version: PyVersion,
    codes: usize,
}

/// Walk each Python 3.11+ found once, as `tracer snapshot` does, and keep what it read.
fn record_snapshot_images() -> Vec<RecordedWalk> {
    let mut images = Vec::new();
    for python in pythons_under_test() {
        if python.version < tracer::snapshot::FIRST_VERSION {
            continue;
        }
        let Some((target, mut tgt)) = mix_target(&python) else {
            continue;
        };
        let ranges = record_reads(&mut tgt);
        // Paused while recording, so that the image is one consistent state.
        let process = remoteprocess::Process::new(target.pid()).expect("the workload's process");
        let lock = process.lock().expect("pausing the workload");
        let walk = tracer::snapshot::walk::Walker::new(&mut tgt)
            .walk()
            .expect("walking a live target");
        let namespaces = tracer::snapshot::walk::namespaces::read(&mut tgt);
        let mut types = tracer::reader::values::TypeCache::default();
        let mut values = tracer::snapshot::walk::namespaces::Values::new(&mut tgt, &mut types);
        for entry in namespaces.iter().flat_map(|n| &n.entries) {
            let _ = values.bound(entry.address);
        }
        drop(lock);
        assert!(
            namespaces.iter().any(|n| !n.entries.is_empty()),
            "{}: the recorded walk read no module namespace",
            python.label()
        );
        let image = ImageMemory::new(std::mem::take(&mut *ranges.lock().unwrap()));
        println!(
            "fuzz image: {}: snapshot walk: {} regions, {} bytes, {} code objects",
            python.label(),
            image.regions().len(),
            image.regions().iter().map(|r| r.1.len()).sum::<usize>(),
            walk.codes.len()
        );
        assert!(
            walk.codes.len() > 10,
            "{}: the recorded walk found almost no code",
            python.label()
        );
        images.push(RecordedWalk {
            recorded: Recorded {
                label: python.label(),
                image,
                layout: tgt.layout,
                interpreter: tgt.interpreter,
                code_type: tgt.code_type,
                type_type: 0,
            },
            version: python.version,
            codes: walk.codes.len(),
        });
    }
    images
}

/// The snapshot walk over `image`, and with `analysis` the analysis of the code objects it
/// returns; returns (ranges read, code objects found).
fn snapshot_image(
    walk: &RecordedWalk,
    image: &Arc<Mutex<ImageMemory>>,
    analysis: bool,
) -> (u64, usize) {
    use tracer::snapshot::opcodes::{table_for, Opcodes};
    use tracer::snapshot::{analyse, SnapshotOptions};
    let recorded = &walk.recorded;
    let ranges = Arc::new(AtomicU64::new(0));
    let mut target = Target {
        memory: Box::new(SharedImage {
            image: image.clone(),
            ranges: ranges.clone(),
        }),
        layout: recorded.layout,
        interpreter: recorded.interpreter,
        runtime: 0,
        code_type: recorded.code_type,
    };
    let walked = tracer::snapshot::walk::Walker::new(&mut target).walk();
    // The module namespaces (src/snapshot/walk/namespaces.rs), read as `tracer snapshot` does.
    let namespaces = tracer::snapshot::walk::namespaces::read(&mut target);
    let mut types = tracer::reader::values::TypeCache::default();
    let mut values = tracer::snapshot::walk::namespaces::Values::new(&mut target, &mut types);
    for entry in namespaces.iter().flat_map(|n| &n.entries) {
        let _ = values.bound(entry.address);
    }
    let Ok(found) = walked else {
        return (ranges.load(Ordering::Relaxed), 0);
    };
    if !analysis {
        return (ranges.load(Ordering::Relaxed), found.codes.len());
    }

    let ops = Opcodes::new(table_for(walk.version).expect("an opcode table"));
    let snapshot = analyse(
        &found.codes,
        found.live.as_ref(),
        walk.version,
        &ops,
        SnapshotOptions::default(),
    );
    assert_eq!(snapshot.stats.proven_lines, snapshot.results.counts.len());
    assert!(
        snapshot
            .likely
            .iter()
            .all(|key| !snapshot.results.counts.contains_key(key)),
        "{}: a likely line is also proven",
        recorded.label
    );
    (ranges.load(Ordering::Relaxed), found.codes.len())
}

/// Fuzzing the snapshot walk (sys.modules → dicts → classes, functions, closures → code →
/// co_consts, and the thread stacks) over images of a real walk: mutated as the frame walker's
/// are, or random bytes at the same addresses. A case passes if the walk returns, code objects
/// or an error, without a panic, within the watchdog's time limit and a bounded number of
/// ranges read. `TRACER_FUZZ_CASES` cases (`make fuzz`: 1,000,000).
#[test]
fn fuzz_snapshot_walk_over_mutated_and_random_images() {
    static COUNT: CaseCounter = CaseCounter::new("snapshot walk");
    fuzz_snapshot_images(&COUNT, fuzz_cases(), false);
}

/// The same images walked, then what the walk returns analysed as `tracer snapshot` does
/// (decoding, graphs, proven and likely lines). The decoders and rules have their own target
/// over random and mutated bytecode (`fuzz_snapshot_bytecode_and_exception_tables` in
/// tests/fuzz/fuzz_parsers.rs); here they meet whatever a lying image makes of whole code objects.
/// A case analyses about a thousand code objects (~10 ms), so this target runs a twentieth of
/// `TRACER_FUZZ_CASES` (at least 500, or all of them if fewer are asked).
#[test]
fn fuzz_snapshot_analysis_over_mutated_and_random_images() {
    static COUNT: CaseCounter = CaseCounter::new("snapshot walk + analysis");
    let cases = (fuzz_cases() / 20).max(fuzz_cases().min(500));
    fuzz_snapshot_images(&COUNT, cases, true);
}

fn fuzz_snapshot_images(count: &CaseCounter, cases: u32, analysis: bool) {
    let images = record_snapshot_images();
    if images.is_empty() {
        println!("SKIP: no Python 3.11+ found: the snapshot walk is not fuzzed");
        return;
    }
    // Working copies, mutated for a case and put back after it (copying ~11,000 regions a
    // case cost more than the walk). The unmutated images read back: the walk finds the same
    // code objects again.
    let working: Vec<Arc<Mutex<ImageMemory>>> = images
        .iter()
        .map(|walk| Arc::new(Mutex::new(walk.recorded.image.clone())))
        .collect();
    for (walk, image) in images.iter().zip(&working) {
        let (_, codes) = snapshot_image(walk, image, analysis);
        assert_eq!(codes, walk.codes, "{}", walk.recorded.label);
    }
    let max_ranges = AtomicU64::new(0);
    let (mut runner, strategy) = image_cases(cases, images.len());
    runner
        .run(&strategy, |(index, mutations, seed)| {
            count.case_of(&(index, &mutations, seed));
            let walk = &images[index];
            let changes = {
                let mut image = working[index].lock().unwrap();
                match &mutations {
                    Some(mutations) => Some(mutate_in_place(&mut image, mutations)),
                    None => {
                        for (i, (_, bytes)) in image.regions_mut().iter_mut().enumerate() {
                            random_bytes(seed.wrapping_add(i as u64), bytes);
                        }
                        None
                    }
                }
            };
            let (ranges, _) = snapshot_image(walk, &working[index], analysis);
            {
                let mut image = working[index].lock().unwrap();
                match changes {
                    Some(changes) => undo(&mut image, changes),
                    None => {
                        let pristine = walk.recorded.image.regions();
                        for (region, (_, bytes)) in image.regions_mut().iter_mut().enumerate() {
                            bytes.copy_from_slice(&pristine[region].1);
                        }
                    }
                }
            }
            max_ranges.fetch_max(ranges, Ordering::Relaxed);
            prop_assert!(
                ranges <= MAX_RANGES_PER_CASE,
                "{}: {ranges} ranges read in one snapshot",
                walk.recorded.label
            );
            Ok(())
        })
        .unwrap();
    println!(
        "{}: at most {} ranges read in one case",
        count.target,
        max_ranges.load(Ordering::Relaxed)
    );
    count.report();
}
