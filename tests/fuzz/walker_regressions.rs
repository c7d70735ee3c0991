//! Deterministic cases of the frame walker over recorded images of real processes (recorded by
//! tests/fuzz/fuzz_walker.rs), each a shape of hostile or changing memory once met or
//! constructed: a chain that ends at a generator, a freed frame, a cycle of shim frames, a chain
//! into another object, a frame pushed between the walk's two copies.

use crate::common::*;
use crate::fuzz_walker::*;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tracer::reader::direct::Target;
use tracer::reader::layout::{CurrentFrame, Frames, InterpreterFrameLayout};
use tracer::reader::memory::{ImageMemory, MemoryError, MemoryReader, ReadRequest};
use tracer::reader::sample::Sample;
use tracer::reader::PyVersion;
use tracer::reader::{DirectReader, StackReader};

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
    let names = frame_names(frames, &codes);
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
    let ranges = record_reads(&mut tgt);
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
        let link = layout.frames.common().caller;
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
        let frame_size = layout.frames.frame_objects().unwrap().size;
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
            free_list[5] + layout.frames.frame_objects().unwrap().back,
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
        let Some(&InterpreterFrameLayout {
            owned_by_cstack: Some(owned_by_cstack),
            owner: owner_at,
            previous: previous_at,
            ..
        }) = layout.frames.interpreter_frames()
        else {
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
            match layout.frames {
                Frames::InterpreterFrames(frames) => {
                    let previous_at = frames.previous;
                    let mut direct = image.clone();
                    poke(&mut direct, frame_slot, object);
                    cases.push((name, direct));
                    // A frame outside the chunk with a real code object, its `previous` the
                    // object.
                    let code = image.read_usize(first_frame + frames.code).unwrap()
                        & !layout.iframe_code_tag_mask;
                    let mut fake = vec![0u8; 512];
                    fake[frames.code..][..8].copy_from_slice(&code.to_le_bytes());
                    fake[previous_at..][..8].copy_from_slice(&object.to_le_bytes());
                    fake[frames.owner] = frames.owned_by_generator;
                    let mut regions = image.regions().to_vec();
                    regions.push((FAKE_FRAME, fake));
                    let mut through = ImageMemory::new(regions);
                    poke(&mut through, frame_slot, FAKE_FRAME);
                    cases.push((name, through));
                }
                Frames::FrameObjects(frames) => {
                    let mut from_first = image.clone();
                    poke(&mut from_first, first_frame + frames.back, object);
                    cases.push((name, from_first));
                }
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

/// Precision of the whole-stack flag: a frame pushed between the two copies of a read, on every
/// Python (3.8–3.15 images recorded from mix.py). The frame pointer moves from the caller to
/// the callee after its first read in every call, so every attempt of the reader tears the
/// same way: copy A is the callers, copy B the callers and the callee. Both frame pointers are
/// read between the two copies of the frames, so the callers are the whole stack at the moment
/// copy A's pointer was read (`DirectReader::copies_agree`). On 3.11+ the callee is the frame
/// B's pointer points to, its instruction an address within its own code: the stack when B's
/// pointer was read, whole too (`DirectReader::whole_at_frame_pointer`). 3.8–3.10 report the
/// callers, whole: a frame object's `f_lasti` is an offset, and a frame read in one copy only
/// is not trusted there. The same image read still reports the whole stack.
#[test]
fn a_frame_pushed_between_the_copies_is_whole_at_one_pointer() {
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
        let previous = layout.frames.common().caller;
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
            let names: Vec<String> = frame_names(frames, &codes);
            assert!(
                !thread.truncated,
                "{} (sample {round}): the callers, whole when copy A's pointer was read, \
                 reported truncated: {names:?} (whole: {whole:?})",
                recorded.label
            );
            let expected = if matches!(layout.frames, Frames::InterpreterFrames(_)) {
                &whole[..]
            } else {
                &whole[1..]
            };
            assert_eq!(
                names[..],
                expected[..],
                "{} (sample {round}): the stack at one of the two pointers",
                recorded.label
            );
        }
        tested += 1;
    }
    if tested == 0 {
        println!("SKIP: no Python to record an image of");
    }
}

/// A memory that changes one field after its first read in every call: copy A of the stack
/// sees the field as the image holds it, copy B (and every later read of the call) `value`,
/// as if the thread ran on while its stack was copied. Ranges are served one at a time, in the
/// order asked, as `process_vm_readv` reads them.
struct ChangingImage {
    image: ImageMemory,
    /// The field, its bytes as the image holds them, and what later reads of the call see.
    address: usize,
    before: Vec<u8>,
    after: Vec<u8>,
}

/// Set the bytes at `address` in `image` (which must hold them).
fn poke_bytes(image: &mut ImageMemory, address: usize, bytes: &[u8]) {
    let region = image
        .regions_mut()
        .iter_mut()
        .find(|(start, b)| *start <= address && address + bytes.len() <= start + b.len())
        .expect("the poked bytes are in the image");
    let at = address - region.0;
    region.1[at..at + bytes.len()].copy_from_slice(bytes);
}

impl MemoryReader for ChangingImage {
    fn read_many(&mut self, requests: &mut [ReadRequest]) -> Result<(), MemoryError> {
        poke_bytes(&mut self.image, self.address, &self.before);
        for request in requests.iter_mut() {
            self.image.read_many(std::slice::from_mut(request))?;
            let end = request.address + request.buf.len();
            if request.address <= self.address && self.address + self.before.len() <= end {
                poke_bytes(&mut self.image, self.address, &self.after);
            }
        }
        Ok(())
    }

    fn calls(&self) -> u64 {
        self.image.calls()
    }
}

/// The head thread's frames in one sample over `memory`: ((function, line) innermost first,
/// truncated), or `None` when the sample left the thread out.
fn head_thread_lines(
    recorded: &Recorded,
    memory: Box<dyn MemoryReader>,
) -> Option<(Vec<(String, u32)>, bool)> {
    let target = Target {
        memory,
        layout: recorded.layout,
        interpreter: recorded.interpreter,
        runtime: 0,
        code_type: recorded.code_type,
    };
    let mut reader = DirectReader::new(target, None);
    let (mut sample, mut codes) = (Sample::default(), Vec::new());
    reader.read(&mut sample, &mut codes).expect("readable");
    let tstate = peek(
        &recorded.image,
        recorded.interpreter + recorded.layout.interp_threads_head,
    );
    let thread_id = peek(&recorded.image, tstate + recorded.layout.tstate_thread_id) as u64;
    let (thread, frames) = sample.stacks().find(|(t, _)| t.thread_id == thread_id)?;
    let names = frame_names(frames, &codes);
    let lines = names
        .into_iter()
        .zip(frames.iter().map(|f| f.line))
        .collect();
    Some((lines, thread.truncated))
}

/// The head thread's innermost frame (its address) and that frame's instruction field: its
/// address and width, and its value as the image holds it.
fn innermost_instruction(recorded: &Recorded) -> (usize, usize, usize, i64) {
    let mut image = recorded.image.clone();
    let frame_slot = head_thread_frame_slot(recorded, &mut image);
    let inner = peek(&image, frame_slot);
    let field = inner + recorded.layout.frames.common().instruction;
    match recorded.layout.frames {
        Frames::FrameObjects(_) => {
            let mut word = [0u8; 4];
            image
                .read(field, &mut word)
                .expect("f_lasti is in the image");
            (inner, field, 4, i32::from_le_bytes(word) as i64)
        }
        Frames::InterpreterFrames(_) => (inner, field, 8, peek(&image, field) as i64),
    }
}

fn instruction_bytes(width: usize, value: i64) -> Vec<u8> {
    match width {
        4 => (value as i32).to_le_bytes().to_vec(),
        _ => (value as u64).to_le_bytes().to_vec(),
    }
}

/// An innermost frame that runs on between the two copies (its instruction moves to another
/// line, as a churning leaf's does) is reported whole, on the line of its later instruction:
/// B's frame pointer points to it and copy A holds the same frame, with the same code, at that
/// depth (`DirectReader::whole_at_frame_pointer`). Before, the copies' disagreement cut it off
/// (on the depth-40 bench, 10–20 % of 3.11–3.14's stacks). An instruction torn out of its own
/// code cannot be placed, and a frame whose code changed between the copies is not the same
/// frame: both are cut off, the callers kept, truncated. Every Python (images of mix.py).
#[test]
fn an_innermost_frame_that_ran_on_between_the_copies_is_whole_on_its_later_line() {
    let mut tested = 0;
    for recorded in record_images() {
        let label = &recorded.label;
        let (inner, field, width, original) = innermost_instruction(&recorded);
        let fields = recorded.layout.frames.common();
        let still = |value: i64| {
            let mut image = recorded.image.clone();
            poke_bytes(&mut image, field, &instruction_bytes(width, value));
            head_thread_lines(&recorded, Box::new(image))
        };
        let (whole, truncated) = still(original).expect("the still image is read");
        assert!(
            !truncated,
            "{label}: the still image reads whole: {whole:?}"
        );
        // Another instruction of the same code on another line, as a still image holding it
        // reads: the instruction field steps by code units (2 bytes; 3.10's f_lasti counts units).
        let unit = if recorded.layout.version == PyVersion::new(3, 10) {
            1
        } else {
            2
        };
        let moved = (1..200)
            .flat_map(|k| [original - k * unit, original + k * unit])
            .find_map(|value| {
                let (lines, truncated) = still(value)?;
                let same_frames = lines.iter().map(|l| &l.0).eq(whole.iter().map(|l| &l.0));
                (!truncated && same_frames && lines[0].1 != whole[0].1).then_some((value, lines))
            });
        let Some((value, later)) = moved else {
            panic!("{label}: no instruction of {} on another line", whole[0].0);
        };
        let changing = |after: Vec<u8>| ChangingImage {
            image: recorded.image.clone(),
            address: field,
            before: instruction_bytes(width, original),
            after,
        };
        let (lines, truncated) = head_thread_lines(
            &recorded,
            Box::new(changing(instruction_bytes(width, value))),
        )
        .expect("the thread is read");
        assert!(
            !truncated,
            "{label}: an innermost frame that moved to another line between the copies, \
             reported truncated: {lines:?}"
        );
        assert_eq!(
            lines, later,
            "{label}: the stack, innermost on its later line"
        );

        // Torn out of its code: cut off, the callers kept.
        let outside = match width {
            4 => 1 << 24,
            _ => original + (1 << 24),
        };
        let (lines, truncated) = head_thread_lines(
            &recorded,
            Box::new(changing(instruction_bytes(width, outside))),
        )
        .expect("the thread is read");
        assert!(
            truncated,
            "{label}: a torn instruction, reported whole: {lines:?}"
        );
        assert_eq!(
            lines[..],
            whole[1..],
            "{label}: the callers of a torn frame"
        );

        // Its code replaced by its caller's, at the same address: not the same frame. Cut off,
        // or the thread left out.
        let code_field = inner + fields.code;
        let caller = peek(&recorded.image, inner + fields.caller);
        let caller_code = peek(&recorded.image, caller + fields.code);
        let replaced = ChangingImage {
            image: recorded.image.clone(),
            address: code_field,
            before: peek(&recorded.image, code_field).to_le_bytes().to_vec(),
            after: caller_code.to_le_bytes().to_vec(),
        };
        // (A frame outside the chunk, a running generator's, whose code is not the one
        // planned leaves its thread out: that reports nothing wrong either.)
        if let Some((lines, truncated)) = head_thread_lines(&recorded, Box::new(replaced)) {
            assert!(
                truncated && lines[..] == whole[1..],
                "{label}: an innermost frame whose code changed between the copies: {lines:?}"
            );
        }
        tested += 1;
    }
    if tested == 0 {
        println!("SKIP: no Python to record an image of");
    }
}
