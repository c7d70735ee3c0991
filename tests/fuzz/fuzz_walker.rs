//! Fuzzing the frame walker and its string and bytes readers (src/reader/direct/) over memory
//! that lies: [`ImageMemory`] images recorded from real paused-or-live CPython processes (every
//! range the reader read while sampling them), then mutated (bytes, words, pointers redirected
//! into other recorded ranges) or replaced wholesale by random bytes at the same addresses.
//!
//! Each case runs two samples (the second one through the caches and plans the first made). A
//! case passes if both return, sample or error, without a panic, within the watchdog's time
//! limit, with a bounded number of ranges read, and with every frame naming a code id the
//! reader reported and a line > 0. `TRACER_FUZZ_CASES` cases per run (`make fuzz`: 1,000,000).
//!
//! The reader follows mix.py's `worker` (always on its thread's stack) with its locals, as
//! `--function worker --locals` does, so the function view's reads are recorded and fuzzed too.
//! The snapshot walk (src/snapshot/walk.rs, 3.12+) is fuzzed the same way over images of a
//! real walk, its code objects then analysed (src/snapshot/mod.rs): see
//! `fuzz_snapshot_walk_over_mutated_and_random_images`.

use crate::common::fuzz::{fuzz_cases, CaseCounter};
use tracer::reader::PyVersion;

use crate::common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracer::reader::direct::Target;
use tracer::reader::layout::{CurrentFrame, Layout};
use tracer::reader::memory::{ImageMemory, MemoryError, MemoryReader, ReadRequest};
use tracer::reader::sample::Sample;
use tracer::reader::{DirectReader, FollowedFunction, StackReader};

/// Ranges one case (two samples) may read at most. The reader's own bounds (threads, depth,
/// string and table sizes) keep it far below; more would be a sample costing seconds.
const MAX_RANGES_PER_CASE: u64 = 1_000_000;

/// Ranges read: (address, bytes).
type Ranges = Vec<(usize, Vec<u8>)>;

/// Records every range read successfully from the live target.
struct Recorder {
    inner: Box<dyn MemoryReader>,
    ranges: Arc<Mutex<Ranges>>,
}

impl MemoryReader for Recorder {
    fn read_many(&mut self, requests: &mut [ReadRequest]) -> Result<(), MemoryError> {
        self.inner.read_many(requests)?;
        let mut ranges = self.ranges.lock().unwrap();
        ranges.extend(requests.iter().map(|r| (r.address, r.buf.to_vec())));
        Ok(())
    }

    fn calls(&self) -> u64 {
        self.inner.calls()
    }
}

/// An image served to the reader, counting ranges into a counter the test keeps.
struct Counted {
    image: ImageMemory,
    ranges: Arc<AtomicU64>,
}

impl MemoryReader for Counted {
    fn read_many(&mut self, requests: &mut [ReadRequest]) -> Result<(), MemoryError> {
        self.ranges
            .fetch_add(requests.len() as u64, Ordering::Relaxed);
        self.image.read_many(requests)
    }

    fn calls(&self) -> u64 {
        self.image.calls()
    }
}

/// An image the test keeps and mutates between cases, served to the reader; counts ranges.
struct SharedImage {
    image: Arc<Mutex<ImageMemory>>,
    ranges: Arc<AtomicU64>,
}

impl MemoryReader for SharedImage {
    fn read_many(&mut self, requests: &mut [ReadRequest]) -> Result<(), MemoryError> {
        self.ranges
            .fetch_add(requests.len() as u64, Ordering::Relaxed);
        self.image.lock().unwrap().read_many(requests)
    }

    fn calls(&self) -> u64 {
        self.image.lock().unwrap().calls()
    }
}

/// The function the reader follows, with its locals: mix.py's `worker`.
fn followed() -> FollowedFunction {
    FollowedFunction {
        qualname: "worker".into(),
        locals: true,
    }
}

/// What a recorded image needs besides its bytes.
#[derive(Clone)]
struct Recorded {
    label: String,
    image: ImageMemory,
    layout: Layout,
    interpreter: usize,
    code_type: usize,
    /// `&PyType_Type`, whose bytes (and `PyCode_Type`'s) the image holds too: what a stray
    /// `previous` was seen leading to.
    type_type: usize,
}

/// Sample each Python found a few times (its reader works as in production) and keep what it
/// read as an image.
fn record_images() -> Vec<Recorded> {
    let mut images = Vec::new();
    for python in pythons_under_test() {
        let target = Workload::start(&python, &workload("mix.py"), 30.0);
        let Ok(found) = tracer::reader::discover::find_target(target.pid()) else {
            println!("SKIP: {}: discovery failed", python.label());
            continue;
        };
        let Some((mut tgt, _)) = found.target else {
            continue;
        };
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let (layout, interpreter, code_type) = (tgt.layout, tgt.interpreter, tgt.code_type);
        let inner = std::mem::replace(&mut tgt.memory, Box::new(ImageMemory::default()));
        tgt.memory = Box::new(Recorder {
            inner,
            ranges: ranges.clone(),
        });
        // Paused while recording, so that the image is one consistent state.
        let process = remoteprocess::Process::new(target.pid()).ok();
        let mut reader = DirectReader::new(tgt, process);
        reader.follow_function(followed()).unwrap();
        let (mut sample, mut codes) = (Sample::default(), Vec::new());
        let (mut frames, mut followed_frames) = (0, 0);
        for _ in 0..5 {
            if reader.read(&mut sample, &mut codes).is_ok() {
                frames = frames.max(sample.frames.len());
                followed_frames += sample.followed.len();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The type objects a stray pointer leads to, `PyCode_Type` (an object whose type field
        // points to `PyType_Type`) and `PyType_Type` (whose type field points to itself).
        let mut live = tracer::reader::memory::TargetMemory::open(target.pid()).unwrap();
        let type_type = live.read_usize(code_type + layout.object_type).unwrap();
        for address in [code_type, type_type] {
            let mut bytes = vec![0u8; 1024];
            live.read(address, &mut bytes).unwrap();
            ranges.lock().unwrap().push((address, bytes));
        }
        let recorded = std::mem::take(&mut *ranges.lock().unwrap());
        let image = ImageMemory::new(recorded);
        println!(
            "fuzz image: {}: {} regions, {} bytes, {} frames, {} code objects, {} frames of \
             worker",
            python.label(),
            image.regions().len(),
            image.regions().iter().map(|r| r.1.len()).sum::<usize>(),
            frames,
            codes.len(),
            followed_frames
        );
        assert!(
            frames > 0,
            "{}: the recording read no frame",
            python.label()
        );
        images.push(Recorded {
            label: python.label(),
            image,
            layout,
            interpreter,
            code_type,
            type_type,
        });
    }
    images
}

/// One change to an image.
#[derive(Debug, Clone)]
enum Mutation {
    /// A byte anywhere.
    Byte { at: usize, value: u8 },
    /// An aligned word: a random value.
    Word { at: usize, value: u64 },
    /// An aligned word pointed into another (or the same) region: a plausible wrong pointer,
    /// a cycle, a frame pointing at a string.
    Redirect { at: usize, to: usize },
    /// An aligned word zeroed (a NULL), or set to all ones (-1).
    Zero { at: usize, ones: bool },
    /// A region shortened (memory unmapped under us).
    Unmap { at: usize, keep: usize },
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Byte { at, value }),
        2 => (any::<usize>(), any::<u64>()).prop_map(|(at, value)| Mutation::Word { at, value }),
        4 => (any::<usize>(), any::<usize>()).prop_map(|(at, to)| Mutation::Redirect { at, to }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(at, ones)| Mutation::Zero { at, ones }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(at, keep)| Mutation::Unmap { at, keep }),
    ];
    prop::collection::vec(one, 1..12)
}

/// A deterministic stream of random bytes (xorshift64*), to fill whole images from one seed.
/// A runner of `cases` and the cases over `images` recorded images: (which image, its
/// mutations or `None` for random bytes at the same addresses, the random bytes' seed).
fn image_cases(
    cases: u32,
    images: usize,
) -> (
    TestRunner,
    impl Strategy<Value = (usize, Option<Vec<Mutation>>, u64)>,
) {
    let runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 1_000,
        ..Config::default()
    });
    let strategy = (
        0..images,
        prop_oneof![
            9 => mutations().prop_map(Some),
            1 => Just(None),
        ],
        any::<u64>(),
    );
    (runner, strategy)
}

fn random_bytes(seed: u64, out: &mut [u8]) {
    let mut state = seed | 1;
    for chunk in out.chunks_mut(8) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

fn mutate(image: &ImageMemory, mutations: &[Mutation]) -> ImageMemory {
    let mut mutated = image.clone();
    mutate_in_place(&mut mutated, mutations);
    mutated
}

/// What a mutation overwrote or cut off, to put back: (region index, offset, old bytes).
type Undo = Vec<(usize, usize, Vec<u8>)>;

/// Apply `mutations` to `image`; returns how to undo them ([`undo`]). Every change keeps the
/// regions sorted and apart (a cut only shortens a region).
fn mutate_in_place(image: &mut ImageMemory, mutations: &[Mutation]) -> Undo {
    let mut undo = Undo::new();
    let regions = image.regions_mut();
    let total: usize = regions.iter().map(|r| r.1.len()).sum();
    if total == 0 {
        return undo;
    }
    // A position over the concatenated regions: (region index, offset in it).
    let locate = |at: usize, regions: &[(usize, Vec<u8>)]| -> Option<(usize, usize)> {
        let mut at = at % total;
        for (i, (_, bytes)) in regions.iter().enumerate() {
            if at < bytes.len() {
                return Some((i, at));
            }
            at -= bytes.len();
        }
        None
    };
    for mutation in mutations {
        let mut set = |regions: &mut [(usize, Vec<u8>)], at: usize, value: &[u8]| {
            if let Some((i, offset)) = locate(at, regions) {
                let offset = if value.len() > 1 { offset & !7 } else { offset };
                let bytes = &mut regions[i].1;
                let end = (offset + value.len()).min(bytes.len());
                undo.push((i, offset, bytes[offset..end].to_vec()));
                bytes[offset..end].copy_from_slice(&value[..end - offset]);
            }
        };
        match *mutation {
            Mutation::Byte { at, value } => set(regions, at, &[value]),
            Mutation::Word { at, value } => set(regions, at, &value.to_le_bytes()),
            Mutation::Redirect { at, to } => {
                if let Some((i, offset)) = locate(to, regions) {
                    let target = (regions[i].0 + offset) as u64;
                    set(regions, at, &target.to_le_bytes());
                }
            }
            Mutation::Zero { at, ones } => {
                let value = if ones { u64::MAX } else { 0 };
                set(regions, at, &value.to_le_bytes())
            }
            Mutation::Unmap { at, keep } => {
                if let Some((i, _)) = locate(at, regions) {
                    let bytes = &mut regions[i].1;
                    let keep = keep % bytes.len().max(1);
                    undo.push((i, keep, bytes.split_off(keep)));
                }
            }
        }
    }
    undo
}

/// Put back what [`mutate_in_place`] changed, newest change first.
fn undo(image: &mut ImageMemory, undo: Undo) {
    let regions = image.regions_mut();
    for (i, offset, old) in undo.into_iter().rev() {
        let bytes = &mut regions[i].1;
        if offset == bytes.len() {
            bytes.extend_from_slice(&old); // a cut region
        } else {
            bytes[offset..offset + old.len()].copy_from_slice(&old);
        }
    }
}

/// Two samples over `image`; checks what the reader reports.
/// A reader of `image` as recorded, and the count of ranges it reads.
fn counted_reader(recorded: &Recorded, image: ImageMemory) -> (DirectReader, Arc<AtomicU64>) {
    let ranges = Arc::new(AtomicU64::new(0));
    let target = Target {
        memory: Box::new(Counted {
            image,
            ranges: ranges.clone(),
        }),
        layout: recorded.layout,
        interpreter: recorded.interpreter,
        runtime: 0,
        code_type: recorded.code_type,
    };
    (DirectReader::new(target, None), ranges)
}

fn sample_image(recorded: &Recorded, image: ImageMemory) -> u64 {
    let (mut reader, ranges) = counted_reader(recorded, image);
    reader.follow_function(followed()).unwrap();
    let (mut sample, mut codes) = (Sample::default(), Vec::new());
    for _ in 0..2 {
        if reader.read(&mut sample, &mut codes).is_ok() {
            for followed in &sample.followed {
                assert!(
                    (followed.frame_index as usize) < sample.frames.len(),
                    "{}: a followed frame outside the sample",
                    recorded.label
                );
            }
            for frame in &sample.frames {
                assert!(
                    (frame.code as usize) < codes.len(),
                    "{}: unknown code id",
                    recorded.label
                );
                assert!(frame.line > 0, "{}: line 0 reported", recorded.label);
            }
        }
    }
    ranges.load(Ordering::Relaxed)
}

#[test]
fn fuzz_frame_walker_over_mutated_and_random_images() {
    static COUNT: CaseCounter = CaseCounter::new("frame walker");
    let images = record_images();
    assert!(!images.is_empty(), "no Python with a layout to record");
    // The unmutated images read back: the walker finds frames in them.
    for recorded in &images {
        sample_image(recorded, recorded.image.clone());
    }
    let max_ranges = AtomicU64::new(0);
    let cases = fuzz_cases();
    let (mut runner, strategy) = image_cases(cases, images.len());
    runner
        .run(&strategy, |(index, mutations, seed)| {
            COUNT.case_of(&(index, &mutations, seed));
            let recorded = &images[index];
            let image = match &mutations {
                Some(mutations) => mutate(&recorded.image, mutations),
                None => {
                    // The same addresses, random contents.
                    let mut image = recorded.image.clone();
                    for (i, (_, bytes)) in image.regions_mut().iter_mut().enumerate() {
                        random_bytes(seed.wrapping_add(i as u64), bytes);
                    }
                    image
                }
            };
            let ranges = sample_image(recorded, image);
            max_ranges.fetch_max(ranges, Ordering::Relaxed);
            prop_assert!(
                ranges <= MAX_RANGES_PER_CASE,
                "{}: {ranges} ranges read in two samples",
                recorded.label
            );
            Ok(())
        })
        .unwrap();
    println!(
        "frame walker: at most {} ranges read in one case",
        max_ranges.load(Ordering::Relaxed)
    );
    COUNT.report();
}

/// Deterministic sweep: every aligned word of every recorded image set in turn to NULL, to all
/// ones (a pointer at the top of memory: it once made the walker slice out of bounds), and to
/// its own address (a cycle).
#[test]
fn every_word_nulled_saturated_or_made_a_cycle() {
    let images = record_images();
    let mut cases = 0u64;
    for recorded in &images {
        let regions = recorded.image.regions();
        for (index, (start, bytes)) in regions.iter().enumerate() {
            for offset in (0..bytes.len().saturating_sub(7)).step_by(8) {
                for value in [0u64, u64::MAX, (start + offset) as u64] {
                    let mut image = recorded.image.clone();
                    image.regions_mut()[index].1[offset..offset + 8]
                        .copy_from_slice(&value.to_le_bytes());
                    let ranges = sample_image(recorded, image);
                    assert!(ranges <= MAX_RANGES_PER_CASE, "{}", recorded.label);
                    cases += 1;
                }
            }
        }
    }
    println!("FUZZ word sweep: {cases} cases, 0 panics, 0 hangs");
}

/// A recorded snapshot walk: the image of everything the walk read, and what reading it needs.
struct RecordedWalk {
    recorded: Recorded,
    version: PyVersion,
    codes: usize,
}

/// Walk each Python 3.12+ found once, as `tracer snapshot` does, and keep what it read.
fn record_snapshot_images() -> Vec<RecordedWalk> {
    let mut images = Vec::new();
    for python in pythons_under_test() {
        if python.version < tracer::snapshot::FIRST_VERSION {
            continue;
        }
        let target = Workload::start(&python, &workload("mix.py"), 30.0);
        let Ok(found) = tracer::reader::discover::find_target(target.pid()) else {
            println!("SKIP: {}: discovery failed", python.label());
            continue;
        };
        let Some((mut tgt, _)) = found.target else {
            continue;
        };
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let inner = std::mem::replace(&mut tgt.memory, Box::new(ImageMemory::default()));
        tgt.memory = Box::new(Recorder {
            inner,
            ranges: ranges.clone(),
        });
        // Paused while recording, so that the image is one consistent state.
        let process = remoteprocess::Process::new(target.pid()).expect("the workload's process");
        let lock = process.lock().expect("pausing the workload");
        let walk = tracer::snapshot::walk::Walker::new(&mut tgt)
            .walk()
            .expect("walking a live target");
        drop(lock);
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
    let Ok(found) = tracer::snapshot::walk::Walker::new(&mut target).walk() else {
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
        println!("SKIP: no Python 3.12+ found: the snapshot walk is not fuzzed");
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

/// Set the pointer-sized word at `address` in `image` (which must hold it).
fn poke(image: &mut ImageMemory, address: usize, value: usize) {
    let region = image
        .regions_mut()
        .iter_mut()
        .find(|(start, bytes)| *start <= address && address + 8 <= start + bytes.len())
        .expect("the poked word is in the image");
    let at = address - region.0;
    region.1[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Frames of the main thread in one sample over `image`: (function names, truncated), or
/// how the sample counted the thread when it left it out.
fn main_thread_stack(
    recorded: &Recorded,
    image: ImageMemory,
) -> Result<(Vec<String>, bool), tracer::reader::ErrorKinds> {
    let target = Target {
        memory: Box::new(image),
        layout: recorded.layout,
        interpreter: recorded.interpreter,
        runtime: 0,
        code_type: recorded.code_type,
    };
    let mut reader = DirectReader::new(target, None);
    let (mut sample, mut codes) = (Sample::default(), Vec::new());
    reader
        .read(&mut sample, &mut codes)
        .expect("the image is readable");
    let Some((thread, frames)) = sample.stacks().next() else {
        return Err(sample.threads_dropped);
    };
    let names = frames
        .iter()
        .map(|f| {
            codes
                .iter()
                .find(|(id, _)| *id == f.code)
                .map_or("?".to_string(), |(_, info)| info.funcname.clone())
        })
        .collect();
    Ok((names, thread.truncated))
}

/// One read of `script`'s process under `python`, paused, once it printed "ready" and a
/// moment more: an image of the ranges read, with what reading it again needs.
fn record_paused(python: &Python, script: &str) -> Option<Recorded> {
    let target = Workload::start(python, &workload(script), 30.0);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let found = tracer::reader::discover::find_target(target.pid()).ok()?;
    let (mut tgt, _) = found.target?;
    let (layout, interpreter, code_type) = (tgt.layout, tgt.interpreter, tgt.code_type);
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let inner = std::mem::replace(&mut tgt.memory, Box::new(ImageMemory::default()));
    tgt.memory = Box::new(Recorder {
        inner,
        ranges: ranges.clone(),
    });
    let process = remoteprocess::Process::new(target.pid()).ok();
    let mut reader = DirectReader::new(tgt, process);
    let (mut sample, mut codes) = (Sample::default(), Vec::new());
    reader.read(&mut sample, &mut codes).ok()?;
    drop(reader);
    let image = ImageMemory::new(std::mem::take(&mut *ranges.lock().unwrap()));
    Some(Recorded {
        label: python.label(),
        image,
        layout,
        interpreter,
        code_type,
        type_type: 0,
    })
}

/// A running generator's frame links to its caller only while it runs: when it yields or
/// returns, the thread's frame pointer goes back to the caller first, then the link is
/// cleared. A read across the two sees the thread standing in a generator whose frame ends the
/// chain; both copies can agree on it (the generator yielded before each copy of its frame
/// was read), and `tracer dump` printed mix.py's main thread as `squares` alone, whole. Here a
/// real thread paused in a generator (tests/workloads/paused_generator.py) reads whole under
/// `drive` and `<module>`; with the generator's link cleared, the thread is left out, counted
/// as torn, on every version 3.8+ and on the free-threaded 3.13t.
#[test]
fn a_chain_that_ends_at_a_generator_leaves_its_thread_out() {
    let mut tested = 0;
    let builds = all_pythons()
        .into_iter()
        .filter(|p| p.version >= PyVersion::new(3, 8));
    for python in builds {
        let Some(recorded) = record_paused(&python, "paused_generator.py") else {
            println!("SKIP: {}: no image recorded", python.label());
            continue;
        };
        let layout = recorded.layout;
        let mut image = recorded.image.clone();
        let frame_slot = head_thread_frame_slot(&recorded, &mut image);
        let generator_frame = image.read_usize(frame_slot).unwrap();
        let whole = main_thread_stack(&recorded, image.clone());
        assert_eq!(
            whole,
            Ok((
                vec!["waiting".to_string(), "drive".into(), "<module>".into()],
                false
            )),
            "{}: the paused thread as recorded",
            python.label()
        );
        let link = layout
            .iframe_previous
            .or(layout.frame_object_back)
            .expect("a link to the caller");
        poke(&mut image, generator_frame + link, 0);
        let torn = main_thread_stack(&recorded, image);
        assert!(
            matches!(torn, Err(dropped) if dropped.torn == 1),
            "{}: a chain ending at the generator `waiting` read as {torn:?}",
            python.label()
        );
        println!(
            "{}: waiting < drive < <module> read whole; with the generator's link cleared the \
             thread is left out (torn)",
            python.label()
        );
        tested += 1;
    }
    assert!(tested > 0, "no Python recorded");
}

/// 3.8–3.10 free frame objects onto a free list linked through `f_back`, their code and
/// instruction left in place: a chain torn by a frame freed under the walker reads on into the
/// free list, which stays still, so both copies agree on it (a phantom `dive` → `raise_at` edge
/// was seen this way under stack churn). A frame whose reference count is zero ends the walk;
/// found on every read again, the thread is left out of the sample, counted as torn. The same
/// image with the freed frames revived (reference count 1) reads as a stack of `gone` frames:
/// what the reader reported before it checked.
#[test]
fn a_walk_that_meets_a_freed_frame_reports_nothing_of_its_thread() {
    let mut tested = 0;
    for python in pythons_under_test() {
        if python.version >= PyVersion::new(3, 11) {
            continue; // frames live in the thread's data stack, not on a free list
        }
        let mut child = std::process::Command::new(&python.path)
            .arg(workload("freed_frames.py"))
            .env("WORKLOAD_SECONDS", "30")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let freed: Vec<usize> = lines
            .next()
            .unwrap()
            .unwrap()
            .strip_prefix("freed ")
            .expect("the workload lists its freed frames")
            .split(' ')
            .map(|a| usize::from_str_radix(a.trim_start_matches("0x"), 16).unwrap())
            .collect();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        // gone(6)'s frame, freed last, heads the free list; gone(0)'s became the zombie frame
        // that the waiting gone(-1) now runs in.
        let free_list = &freed[..6];

        let found = tracer::reader::discover::find_target(pid).unwrap();
        let (mut tgt, _) = found.target.expect("a layout for this version");
        let (layout, interpreter, code_type) = (tgt.layout, tgt.interpreter, tgt.code_type);
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let inner = std::mem::replace(&mut tgt.memory, Box::new(ImageMemory::default()));
        tgt.memory = Box::new(Recorder {
            inner,
            ranges: ranges.clone(),
        });
        let mut reader = DirectReader::new(tgt, None);
        let (mut sample, mut codes) = (Sample::default(), Vec::new());
        reader.read(&mut sample, &mut codes).unwrap();
        drop(reader);
        let mut recorded_ranges = std::mem::take(&mut *ranges.lock().unwrap());
        let mut live = tracer::reader::memory::TargetMemory::open(pid).unwrap();
        let frame_size = layout.frame_object_size.unwrap();
        for &frame in free_list {
            let mut bytes = vec![0u8; frame_size];
            live.read(frame, &mut bytes).unwrap();
            let refcnt = isize::from_le_bytes(bytes[..8].try_into().unwrap());
            assert_eq!(
                refcnt,
                0,
                "{}: a freed frame's reference count",
                python.label()
            );
            recorded_ranges.push((frame, bytes));
        }
        let _ = child.kill();
        let _ = child.wait();
        let recorded = Recorded {
            label: python.label(),
            image: ImageMemory::new(recorded_ranges),
            layout,
            interpreter,
            code_type,
            type_type: 0,
        };

        let (names, _) =
            main_thread_stack(&recorded, recorded.image.clone()).expect("the live stack is read");
        assert_eq!(
            names.first().map(String::as_str),
            Some("gone"),
            "{}: the live stack as recorded: {names:?}",
            python.label()
        );

        // The thread's frame pointer redirected to the head of the free list, as a walk
        // reading a frame just freed sees it; the list ends at gone(1)'s frame.
        let mut torn = recorded.image.clone();
        let mut tstate = [0u8; 8];
        torn.read(interpreter + layout.interp_threads_head, &mut tstate)
            .unwrap();
        let tstate = usize::from_le_bytes(tstate);
        poke(
            &mut torn,
            tstate + layout.current_frame.tstate_field(),
            free_list[0],
        );
        poke(
            &mut torn,
            free_list[5] + layout.frame_object_back.unwrap(),
            0,
        );
        let read = main_thread_stack(&recorded, torn.clone());
        assert!(
            matches!(read, Err(dropped) if dropped.torn == 1),
            "{}: a walk into freed frames read as {read:?}",
            python.label()
        );

        let mut revived = torn;
        for &frame in free_list {
            poke(&mut revived, frame + layout.object_refcnt, 1);
        }
        let (names, _) = main_thread_stack(&recorded, revived).expect("the revived list is read");
        assert_eq!(
            names,
            vec!["gone"; 6],
            "{}: the free list revived should read as gone's six frames",
            python.label()
        );
        println!(
            "{}: a walk into 6 freed frames reports nothing of the thread; revived, they read \
             as a stack of 6",
            python.label()
        );
        tested += 1;
    }
    if tested == 0 {
        println!("SKIP: no Python 3.8–3.10 found");
    }
}

/// A shim frame (pushed by C code, 3.12+) outside the thread's chunk whose `previous` is
/// itself: shims are not kept as frames, so a walk bounded by frames kept followed this cycle
/// without end, growing its list of outside frames until the OOM killer came (found by
/// `make fuzz` at 24 GiB). The walk is bounded by steps: one sample returns, with or without
/// frames, and the watchdog (20 s, 2 GiB) never fires.
#[test]
fn a_cycle_of_shim_frames_outside_the_chunk_ends_the_walk() {
    const SHIM: usize = 0x10_0000;
    let mut tested = 0;
    for recorded in record_images() {
        let layout = recorded.layout;
        let (Some(owned_by_cstack), Some(owner_at), Some(previous_at)) = (
            layout.frame_owned_by_cstack,
            layout.iframe_owner,
            layout.iframe_previous,
        ) else {
            continue; // before 3.12: no shim frames
        };
        let mut image = recorded.image.clone();
        let mut head = [0u8; 8];
        image
            .read(recorded.interpreter + layout.interp_threads_head, &mut head)
            .unwrap();
        let tstate = usize::from_le_bytes(head);
        let frame_slot = match layout.current_frame {
            CurrentFrame::InThreadState {
                tstate_current_frame,
            } => tstate + tstate_current_frame,
            CurrentFrame::ThroughCFrame {
                tstate_cframe,
                cframe_current_frame,
            } => {
                let mut cframe_ptr = [0u8; 8];
                image.read(tstate + tstate_cframe, &mut cframe_ptr).unwrap();
                usize::from_le_bytes(cframe_ptr) + cframe_current_frame
            }
            CurrentFrame::FrameObject { .. } => unreachable!("3.12+ has interpreter frames"),
        };
        let mut shim = vec![0u8; 512];
        shim[previous_at..previous_at + 8].copy_from_slice(&SHIM.to_le_bytes());
        shim[owner_at] = owned_by_cstack;
        let mut regions = image.regions().to_vec();
        regions.push((SHIM, shim));
        let mut image = ImageMemory::new(regions);
        poke(&mut image, frame_slot, SHIM);
        crate::common::fuzz::tick("shim cycle");
        let target = Target {
            memory: Box::new(image),
            layout,
            interpreter: recorded.interpreter,
            runtime: 0,
            code_type: recorded.code_type,
        };
        let mut reader = DirectReader::new(target, None);
        let (mut sample, mut codes) = (Sample::default(), Vec::new());
        let result = reader.read(&mut sample, &mut codes);
        println!(
            "{}: a self-referencing shim frame: the sample returned ({}), {} frames",
            recorded.label,
            if result.is_ok() { "ok" } else { "an error" },
            sample.frames.len()
        );
        tested += 1;
    }
    if tested == 0 {
        println!("SKIP: no Python 3.12+ found");
    }
}

/// The thread list's head (the thread sampled first) and its frame-pointer slot in `image`.
fn head_thread_frame_slot(recorded: &Recorded, image: &mut ImageMemory) -> usize {
    let layout = recorded.layout;
    let tstate = image
        .read_usize(recorded.interpreter + layout.interp_threads_head)
        .unwrap();
    match layout.current_frame {
        CurrentFrame::FrameObject { tstate_frame } => tstate + tstate_frame,
        CurrentFrame::InThreadState {
            tstate_current_frame,
        } => tstate + tstate_current_frame,
        CurrentFrame::ThroughCFrame {
            tstate_cframe,
            cframe_current_frame,
        } => image.read_usize(tstate + tstate_cframe).unwrap() + cframe_current_frame,
    }
}

/// One sample over `image`: (ranges read, threads listed, threads left out as implausible or
/// torn, whether the sample was dropped).
fn sample_counted(recorded: &Recorded, image: ImageMemory) -> (u64, usize, u64, bool) {
    let (mut reader, ranges) = counted_reader(recorded, image);
    let (mut sample, mut codes) = (Sample::default(), Vec::new());
    let dropped = reader.read(&mut sample, &mut codes).is_err();
    let left_out = sample.threads_dropped.implausible + sample.threads_dropped.torn;
    (
        ranges.load(Ordering::Relaxed),
        sample.threads.len(),
        left_out,
        dropped,
    )
}

/// Ranges one sample of a recorded image may read when a chain leads into an object: a few
/// batches and the objects' first words. Following `PyType_Type`'s type field as `previous`
/// read the same 71 bytes 16,381 times a walk, three walks a sample, before the fix.
const MAX_RANGES_INTO_AN_OBJECT: u64 = 200;

/// A stack read that catches frames changing can follow `previous` into an ordinary object:
/// on 3.12, real code (generators, context managers) led the walk on into `PyType_Type`,
/// whose type field, at the offset of `previous`, points to itself. Here a real paused
/// thread's frame chain is pointed at `PyType_Type` and at `PyCode_Type`, directly and from a
/// frame outside the data stack that holds a real code object (a running generator's, as
/// far as the walk can tell), and on 3.8–3.10 from the thread's first frame's `f_back`. Each
/// walk ends at once, the thread is left out and counted, and the sample reads a handful of
/// ranges.
#[test]
fn a_chain_into_another_object_ends_the_walk_at_once() {
    const FAKE_FRAME: usize = 0x20_0000;
    let mut tested = 0;
    for recorded in record_images() {
        let layout = recorded.layout;
        let mut image = recorded.image.clone();
        let frame_slot = head_thread_frame_slot(&recorded, &mut image);
        let first_frame = image.read_usize(frame_slot).unwrap();
        // The image merges five reads of a running process (paused for each): a thread may be
        // left out of it already (a generator's frame read after it yielded, the thread's frame
        // pointer before).
        let (_, threads_before, left_before, _) = sample_counted(&recorded, image.clone());
        let mut cases: Vec<(&str, ImageMemory)> = Vec::new();
        for (name, object) in [
            ("PyType_Type", recorded.type_type),
            ("PyCode_Type", recorded.code_type),
        ] {
            match (layout.iframe_previous, layout.frame_object_back) {
                (Some(previous_at), _) => {
                    let mut direct = image.clone();
                    poke(&mut direct, frame_slot, object);
                    cases.push((name, direct));
                    // A frame outside the chunk with a real code object, its `previous` the
                    // object.
                    let code = image
                        .read_usize(first_frame + layout.iframe_code.unwrap())
                        .unwrap()
                        & !layout.iframe_code_tag_mask;
                    let mut fake = vec![0u8; 512];
                    fake[layout.iframe_code.unwrap()..][..8].copy_from_slice(&code.to_le_bytes());
                    fake[previous_at..][..8].copy_from_slice(&object.to_le_bytes());
                    fake[layout.iframe_owner.unwrap()] = layout.frame_owned_by_generator.unwrap();
                    let mut regions = image.regions().to_vec();
                    regions.push((FAKE_FRAME, fake));
                    let mut through = ImageMemory::new(regions);
                    poke(&mut through, frame_slot, FAKE_FRAME);
                    cases.push((name, through));
                }
                (None, Some(back_at)) => {
                    let mut from_first = image.clone();
                    poke(&mut from_first, first_frame + back_at, object);
                    cases.push((name, from_first));
                }
                _ => unreachable!("every layout links its frames"),
            }
        }
        for (name, case) in cases {
            crate::common::fuzz::tick("chain into an object");
            let (ranges, threads, left_out, dropped) = sample_counted(&recorded, case);
            println!(
                "{}: a chain into {name}: {ranges} ranges, {threads} of {threads_before} \
                 threads listed, {left_out} left out, sample {}",
                recorded.label,
                if dropped { "dropped" } else { "kept" }
            );
            assert!(
                ranges <= MAX_RANGES_INTO_AN_OBJECT,
                "{}: a chain into {name} read {ranges} ranges",
                recorded.label
            );
            assert!(
                !dropped,
                "{}: the other threads are still readable",
                recorded.label
            );
            assert_eq!(
                (threads, left_out),
                (threads_before - 1, left_before + 1),
                "{}: the thread led into {name} is left out and counted",
                recorded.label
            );
        }
        tested += 1;
    }
    assert!(tested > 0, "no Python recorded");
}

/// An image in which the thread's frame pointer moves during each call of reads: the first
/// read of it in a call sees the caller (`outer`), every later one the callee (`inner`), as if
/// the thread called a function while its stack was being copied. Ranges are served one at a
/// time, in the order asked, as `process_vm_readv` reads them.
struct CallingImage {
    image: ImageMemory,
    frame_slot: usize,
    outer: usize,
    inner: usize,
}

impl MemoryReader for CallingImage {
    fn read_many(&mut self, requests: &mut [ReadRequest]) -> Result<(), MemoryError> {
        poke(&mut self.image, self.frame_slot, self.outer);
        for request in requests.iter_mut() {
            self.image.read_many(std::slice::from_mut(request))?;
            let end = request.address + request.buf.len();
            if (request.address..end).contains(&self.frame_slot) {
                poke(&mut self.image, self.frame_slot, self.inner);
            }
        }
        Ok(())
    }

    fn calls(&self) -> u64 {
        self.image.calls()
    }
}

/// The word at `address` in `image`.
fn peek(image: &ImageMemory, address: usize) -> usize {
    let mut memory = image.clone();
    memory
        .read_usize(address)
        .expect("the word is in the image")
}

/// Precision of the whole-stack flag: a frame pushed between the two copies of a read is never
/// reported, on every Python (3.8–3.14 images recorded from mix.py). The frame pointer moves
/// from the caller to the callee after its first read in every call, so every attempt of the
/// reader tears the same way: copy A is the callers, copy B the callers and the callee. Both
/// frame pointers are read between the two copies of the frames, so the callers are the whole
/// stack at the moment copy A's pointer was read (`DirectReader::copies_agree`): they are
/// reported, whole, and the callee never. The same image read still reports the whole stack.
#[test]
fn a_frame_pushed_between_the_copies_is_never_reported() {
    let mut tested = 0;
    for recorded in record_images() {
        let layout = recorded.layout;
        let image = recorded.image.clone();
        let tstate = peek(&image, recorded.interpreter + layout.interp_threads_head);
        let frame_slot = match layout.current_frame {
            CurrentFrame::FrameObject { tstate_frame } => tstate + tstate_frame,
            CurrentFrame::ThroughCFrame {
                tstate_cframe,
                cframe_current_frame,
            } => peek(&image, tstate + tstate_cframe) + cframe_current_frame,
            CurrentFrame::InThreadState {
                tstate_current_frame,
            } => tstate + tstate_current_frame,
        };
        let inner = peek(&image, frame_slot);
        let previous = layout
            .iframe_previous
            .or(layout.frame_object_back)
            .expect("a link to the caller");
        let outer = peek(&image, inner + previous);
        let (whole, truncated) =
            main_thread_stack(&recorded, image.clone()).expect("the still image is read");
        assert!(
            !truncated,
            "{}: the still image reads whole",
            recorded.label
        );
        assert!(whole.len() >= 2, "{}: {whole:?}", recorded.label);
        let calling = CallingImage {
            image,
            frame_slot,
            outer,
            inner,
        };
        let target = Target {
            memory: Box::new(calling),
            layout,
            interpreter: recorded.interpreter,
            code_type: recorded.code_type,
            runtime: 0,
        };
        let mut reader = DirectReader::new(target, None);
        let (mut sample, mut codes) = (Sample::default(), Vec::new());
        for round in 0..3 {
            reader.read(&mut sample, &mut codes).expect("readable");
            let (thread, frames) = sample.stacks().next().expect("the thread is listed");
            let names: Vec<String> = frames
                .iter()
                .map(|f| {
                    codes
                        .iter()
                        .find(|(id, _)| *id == f.code)
                        .map_or("?".to_string(), |(_, info)| info.funcname.clone())
                })
                .collect();
            assert!(
                !thread.truncated,
                "{} (sample {round}): the callers, whole when copy A's pointer was read, \
                 reported truncated: {names:?} (whole: {whole:?})",
                recorded.label
            );
            assert_eq!(
                names[..],
                whole[1..],
                "{} (sample {round}): the callers kept",
                recorded.label
            );
        }
        tested += 1;
    }
    if tested == 0 {
        println!("SKIP: no Python to record an image of");
    }
}
