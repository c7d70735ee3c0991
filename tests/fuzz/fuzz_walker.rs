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
//! The images and mutations here serve tests/fuzz/fuzz_snapshot.rs (the snapshot walk, fuzzed
//! the same way) and tests/fuzz/walker_regressions.rs (deterministic shapes of hostile memory).

use crate::common::fuzz::{fuzz_cases, CaseCounter};

use crate::common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracer::reader::direct::Target;
use tracer::reader::layout::Layout;
use tracer::reader::memory::{ImageMemory, MemoryError, MemoryReader, ReadRequest};
use tracer::reader::sample::Sample;
use tracer::reader::{DirectReader, FollowedFunction, StackReader};

/// Ranges one case (two samples) may read at most. The reader's own bounds (threads, depth,
/// string and table sizes) keep it far below; more would be a sample costing seconds.
pub(crate) const MAX_RANGES_PER_CASE: u64 = 1_000_000;

/// Ranges read: (address, bytes).
pub(crate) type Ranges = Vec<(usize, Vec<u8>)>;

/// Records every range read successfully from the live target.
pub(crate) struct Recorder {
    pub(crate) inner: Box<dyn MemoryReader>,
    pub(crate) ranges: Arc<Mutex<Ranges>>,
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
pub(crate) struct Counted {
    pub(crate) image: ImageMemory,
    pub(crate) ranges: Arc<AtomicU64>,
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
pub(crate) struct SharedImage {
    pub(crate) image: Arc<Mutex<ImageMemory>>,
    pub(crate) ranges: Arc<AtomicU64>,
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
pub(crate) fn followed() -> FollowedFunction {
    FollowedFunction {
        qualname: "worker".into(),
        locals: true,
    }
}

/// What a recorded image needs besides its bytes.
#[derive(Clone)]
pub(crate) struct Recorded {
    pub(crate) label: String,
    pub(crate) image: ImageMemory,
    pub(crate) layout: Layout,
    pub(crate) interpreter: usize,
    pub(crate) code_type: usize,
    /// `&PyType_Type`, whose bytes (and `PyCode_Type`'s) the image holds too: what a stray
    /// `previous` was seen leading to.
    pub(crate) type_type: usize,
}

/// Make `target` record every range it reads; the ranges recorded so far.
pub(crate) fn record_reads(target: &mut Target) -> Arc<Mutex<Ranges>> {
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let inner = std::mem::replace(&mut target.memory, Box::new(ImageMemory::default()));
    target.memory = Box::new(Recorder {
        inner,
        ranges: ranges.clone(),
    });
    ranges
}

/// The function names of `frames`, by the code ids `codes` reported ("?" for none).
pub(crate) fn frame_names(
    frames: &[tracer::reader::sample::FrameRef],
    codes: &[(
        tracer::reader::sample::CodeId,
        tracer::reader::sample::CodeInfo,
    )],
) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            codes
                .iter()
                .find(|(id, _)| *id == f.code)
                .map_or("?".to_string(), |(_, info)| info.funcname.clone())
        })
        .collect()
}

/// mix.py running under `python`, and our reader's target for it (`None`, said, when
/// discovery fails).
pub(crate) fn mix_target(python: &Python) -> Option<(Workload, Target)> {
    let target = Workload::start(python, &workload("mix.py"), 30.0);
    let Ok(found) = tracer::reader::discover::find_target(target.pid()) else {
        println!("SKIP: {}: discovery failed", python.label());
        return None;
    };
    let (tgt, _) = found.target?;
    Some((target, tgt))
}

/// Sample each Python found a few times (its reader works as in production) and keep what it
/// read as an image.
pub(crate) fn record_images() -> Vec<Recorded> {
    let mut images = Vec::new();
    for python in pythons_under_test() {
        let Some((target, mut tgt)) = mix_target(&python) else {
            continue;
        };
        let (layout, interpreter, code_type) = (tgt.layout, tgt.interpreter, tgt.code_type);
        let ranges = record_reads(&mut tgt);
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
pub(crate) enum Mutation {
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

pub(crate) fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
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
pub(crate) fn image_cases(
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

pub(crate) fn random_bytes(seed: u64, out: &mut [u8]) {
    let mut state = seed | 1;
    for chunk in out.chunks_mut(8) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

pub(crate) fn mutate(image: &ImageMemory, mutations: &[Mutation]) -> ImageMemory {
    let mut mutated = image.clone();
    mutate_in_place(&mut mutated, mutations);
    mutated
}

/// What a mutation overwrote or cut off, to put back: (region index, offset, old bytes).
pub(crate) type Undo = Vec<(usize, usize, Vec<u8>)>;

/// Apply `mutations` to `image`; returns how to undo them ([`undo`]). Every change keeps the
/// regions sorted and apart (a cut only shortens a region).
pub(crate) fn mutate_in_place(image: &mut ImageMemory, mutations: &[Mutation]) -> Undo {
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
pub(crate) fn undo(image: &mut ImageMemory, undo: Undo) {
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
pub(crate) fn counted_reader(
    recorded: &Recorded,
    image: ImageMemory,
) -> (DirectReader, Arc<AtomicU64>) {
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

pub(crate) fn sample_image(recorded: &Recorded, image: ImageMemory) -> u64 {
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
