//! The 3.8–3.10 walk: a thread's `PyFrameObject` chain, one heap object per frame, read twice
//! in one call (the chain as the thread's last sample found it) and compared.
//!
//! The two copies are read in mirror order around the frame pointers: copy A from the
//! outermost frame in, then the thread's frame pointer twice, then copy B from the innermost
//! frame out. All of copy A is read before any of copy B (the ranges of one call are read one
//! after the other), so what both copies agree on held at the moment between them, when both
//! frame pointers were read (`DirectReader::copies_agree`); the mirror puts the two reads of
//! what changes fastest (the frame pointer, the innermost frame's `f_lasti`) next to each
//! other, instead of a whole chain of reads apart.

use super::*;

impl DirectReader {
    /// 3.8–3.10: read the planned chain of `tstate` twice in one call, and follow `f_back` from
    /// the frame pointer in each copy. A frame not in the batch is read alone, only to find
    /// the chain: it sets `needs_replan` and fails the read, to be read whole with the next
    /// batch.
    pub(super) fn read_frame_objects(
        &mut self,
        frames: &FrameObjectLayout,
        tstate: usize,
        frame_slot: usize,
    ) -> Result<(), MemoryError> {
        self.torn_chain = false;
        let layout = self.target.layout;
        let span = frame_object_span(&layout, frames);
        let mut plan = self.plans.remove(&tstate).unwrap_or_default();
        let identity_span = code_identity_span(&layout);
        self.identities
            .resize_with(plan.codes.len(), || (0, Vec::new()));
        for ((address, buf), &planned) in self.identities.iter_mut().zip(&plan.codes) {
            *address = planned;
            buf.resize(identity_span, 0);
        }
        // `plan.outside` holds the chain, innermost first.
        for copy in &mut self.outside {
            copy.resize_with(plan.outside.len(), || (0, Vec::new()));
            for ((address, buf), &planned) in copy.iter_mut().zip(&plan.outside) {
                *address = planned;
                buf.resize(span, 0);
            }
        }
        let (mut frame_a, mut frame_b) = ([0u8; 8], [0u8; 8]);
        let read = {
            let [outside_a, outside_b] = &mut self.outside;
            let mut requests = Vec::with_capacity(2 + outside_a.len() + outside_b.len());
            // Copy A outermost frame first, both frame pointers, copy B innermost frame first.
            for (address, buf) in outside_a.iter_mut().rev() {
                requests.push(ReadRequest {
                    address: *address,
                    buf,
                });
            }
            requests.push(ReadRequest {
                address: frame_slot,
                buf: &mut frame_a,
            });
            requests.push(ReadRequest {
                address: frame_slot,
                buf: &mut frame_b,
            });
            for (address, buf) in outside_b.iter_mut().chain(self.identities.iter_mut()) {
                requests.push(ReadRequest {
                    address: *address,
                    buf,
                });
            }
            self.target.memory.read_many(&mut requests)
        };
        if read.is_err() {
            // A planned frame is gone (freed, its memory returned): read the frame pointers
            // alone and let the walk find the chain anew.
            self.outside.iter_mut().for_each(Vec::clear);
            self.identities.clear();
            plan.codes.clear();
            self.target.memory.read_many(&mut [
                ReadRequest {
                    address: frame_slot,
                    buf: &mut frame_a,
                },
                ReadRequest {
                    address: frame_slot,
                    buf: &mut frame_b,
                },
            ])?;
        }
        let mut chain = Vec::new();
        self.frame_pointers = [usize::from_le_bytes(frame_a), usize::from_le_bytes(frame_b)];
        for (copy, first) in [(0, frame_a), (1, frame_b)] {
            let mut walked_frames = std::mem::take(&mut self.frames[copy]);
            walked_frames.clear();
            let walked = self.walk_frame_objects(
                frames,
                usize::from_le_bytes(first),
                copy,
                &mut walked_frames,
                if copy == 0 { Some(&mut chain) } else { None },
            );
            self.frames[copy] = walked_frames;
            if walked.is_err() || self.torn_chain || self.needs_replan {
                // Plan the chain as the last walk found it.
                if copy == 1 {
                    chain.clear();
                    chain.extend(self.frames[1].iter().map(|f| f.address));
                }
                self.plans.insert(
                    tstate,
                    ThreadPlan {
                        outside: chain,
                        codes: plan.codes,
                    },
                );
                walked?;
                if self.torn_chain {
                    // Nothing of this thread is reported: the frames read before the freed one
                    // are no longer known to be its callees' chain.
                    self.frames[0].clear();
                    self.frames[1].clear();
                    return Ok(());
                }
                return Err(MemoryError::Torn(0));
            }
        }
        // Plan copy B's chain, the later one, and the frames only copy A had (a callee
        // returned between them, and likely called again).
        let mut planned: Vec<usize> = self.frames[1].iter().map(|f| f.address).collect();
        planned.extend(chain.iter().filter(|a| !self.visited.contains(a)));
        planned.truncate(MAX_DEPTH);
        self.plans.insert(
            tstate,
            ThreadPlan {
                outside: planned,
                codes: plan.codes,
            },
        );
        Ok(())
    }

    /// Follow `f_back` from `frame` in copy `copy` of the batch, pushing each frame to `out`
    /// and (copy A) its address to `chain`. A frame not in the batch is read alone, once the
    /// walk can no longer follow the batch, and sets `needs_replan`.
    fn walk_frame_objects(
        &mut self,
        frames: &FrameObjectLayout,
        mut frame: usize,
        copy: usize,
        out: &mut Vec<RawFrame>,
        mut chain: Option<&mut Vec<usize>>,
    ) -> Result<(), MemoryError> {
        let layout = self.target.layout;
        let span = frame_object_span(&layout, frames);
        // Every frame of a chain is a frame object, of one type: the first frame's type stands
        // for it, and a frame met twice is a cycle.
        let mut frame_type = None;
        self.visited.clear();
        // The batch lists the chain as last planned: expected at `cursor`, else looked up
        // (an index built at the first miss).
        let mut cursor = 0usize;
        let mut index_of: Option<HashMap<usize, usize>> = None;
        while frame != 0 {
            if out.len() >= MAX_DEPTH
                || !frame.is_multiple_of(std::mem::align_of::<usize>())
                || !self.visited.insert(frame)
            {
                return Err(MemoryError::Implausible(frame));
            }
            let planned = &self.outside[copy];
            let index = if planned.get(cursor).is_some_and(|(a, _)| *a == frame) {
                Some(cursor)
            } else {
                index_of
                    .get_or_insert_with(|| {
                        planned
                            .iter()
                            .enumerate()
                            .map(|(i, (a, _))| (*a, i))
                            .collect()
                    })
                    .get(&frame)
                    .copied()
            };
            let bytes: &[u8] = match index {
                Some(index) => {
                    cursor = index + 1;
                    &planned[index].1
                }
                None => {
                    self.needs_replan = true;
                    self.frame_scratch.resize(span, 0);
                    self.target.memory.read(frame, &mut self.frame_scratch)?;
                    &self.frame_scratch
                }
            };
            let field = |offset: usize| read_usize_at(bytes, offset).unwrap_or(0);
            let type_ptr = field(layout.object_type);
            if *frame_type.get_or_insert(type_ptr) != type_ptr {
                return Err(MemoryError::Implausible(frame));
            }
            // A frame freed while we followed the chain: CPython keeps freed frames on a free
            // list (and as each code's zombie frame) with a zero reference count, the list
            // linked through `f_back` and each frame's stale code and instruction left in
            // place. Walking on would read the free list as a stack, and both copies would
            // agree on it (it does not change while nothing is allocated): phantom edges such
            // as `dive` calling `raise_at`. A live frame is always referenced.
            if (field(layout.object_refcnt) as isize) <= 0 {
                self.torn_chain = true;
                return Ok(());
            }
            let back = field(frames.back);
            // A generator's frame links to its caller only while it runs: the frame pointer is
            // set back to the caller when the frame returns or yields, then `f_back` cleared.
            // A chain that ends at a generator's frame was read across the two (both copies
            // can agree on it when the generator yielded before each was read): its callers
            // are not shown (a dump of mix.py printed the main thread as `squares` alone).
            if back == 0 && field(frames.gen) != 0 {
                return Err(MemoryError::Torn(frame));
            }
            out.push(RawFrame {
                address: frame,
                code: field(frames.code),
                position: RawFramePosition::Lasti(
                    read_i32_at(bytes, frames.lasti).unwrap_or(i32::MIN),
                ),
                outside: false,
            });
            if let Some(chain) = chain.as_deref_mut() {
                chain.push(frame);
            }
            frame = back;
        }
        Ok(())
    }
}
