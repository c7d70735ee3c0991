//! The 3.8–3.10 walk: a thread's `PyFrameObject` chain, one heap object per frame, each read
//! twice and compared.

use super::*;

impl DirectReader {
    /// 3.8–3.10: follow `f_back` from the thread's frame, twice.
    pub(super) fn read_frame_objects(&mut self, frame_slot: usize) -> Result<(), MemoryError> {
        self.torn_chain = false;
        let layout = self.target.layout;
        let span = frame_object_span(&layout);
        let mut buf = vec![0u8; span];
        for copy in 0..2 {
            let mut frames = std::mem::take(&mut self.frames[copy]);
            frames.clear();
            let mut frame = self.target.memory.read_usize(frame_slot)?;
            let mut result = Ok(());
            // Every frame of a chain is a frame object, of one type: the first frame's type
            // stands for it, and a frame met twice is a cycle.
            let mut frame_type = None;
            self.visited.clear();
            while frame != 0 {
                if frames.len() >= MAX_DEPTH
                    || !frame.is_multiple_of(std::mem::align_of::<usize>())
                    || !self.visited.insert(frame)
                {
                    result = Err(MemoryError::Implausible(frame));
                    break;
                }
                if let Err(e) = self.target.memory.read(frame, &mut buf) {
                    result = Err(e);
                    break;
                }
                let field = |offset: usize| read_usize_at(&buf, offset).unwrap_or(0);
                let type_ptr = field(layout.object_type);
                if *frame_type.get_or_insert(type_ptr) != type_ptr {
                    result = Err(MemoryError::Implausible(frame));
                    break;
                }
                // A frame freed while we followed the chain: CPython keeps freed frames on a
                // free list (and as each code's zombie frame) with a zero reference count, the
                // list linked through `f_back` and each frame's stale code and instruction left
                // in place. Walking on would read the free list as a stack, and both copies
                // would agree on it (it does not change while nothing is allocated): phantom
                // edges such as `dive` calling `raise_at`. A live frame is always referenced.
                if (field(layout.object_refcnt) as isize) <= 0 {
                    self.torn_chain = true;
                    break;
                }
                frames.push(RawFrame {
                    address: frame,
                    code: field(layout.frame_object_code.unwrap_or(0)),
                    position: RawFramePosition::Lasti(
                        read_i32_at(&buf, layout.frame_object_lasti.unwrap_or(0))
                            .unwrap_or(i32::MIN),
                    ),
                    outside: false,
                });
                frame = field(layout.frame_object_back.unwrap_or(0));
            }
            self.frames[copy] = frames;
            result?;
            if self.torn_chain {
                // Nothing of this thread is reported: the frames read before the freed one are
                // no longer known to be its callees' chain.
                self.frames[0].clear();
                self.frames[1].clear();
                break;
            }
        }
        Ok(())
    }
}
