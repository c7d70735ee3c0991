//! Compact samples: what travels from the sampler thread to the aggregator.
//!
//! A frame is two integers, an interned code id and a line number. The strings behind a code
//! id (file name, function name) are sent once, in a [`Message::Code`] that precedes the first
//! sample using that id on the same channel, so the aggregator always knows every id it sees.
//! Messages travel in batches (`Vec<Message>`, in order), one channel send per batch.

/// Interned identity of a code object: index into the aggregator's code table.
pub type CodeId = u32;

/// What the strings of a code id are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeInfo {
    /// `co_filename`.
    pub filename: String,
    /// `co_qualname` where the version has one (3.11+), else `co_name`.
    pub funcname: String,
    /// `co_firstlineno` of the first code object seen with these names; 0 when the reader
    /// does not know it (py-spy's).
    pub first_line: u32,
}

/// One frame of a stack: the code running and the line it stands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameRef {
    pub code: CodeId,
    pub line: u32,
}

/// One thread's stack inside a [`Sample`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadStack {
    /// Python's thread id (`threading.get_ident()`).
    pub thread_id: u64,
    /// End (exclusive) of this thread's frames in [`Sample::frames`]; it starts where the
    /// previous thread's ended.
    pub end: u32,
    /// The innermost frames are missing (they could not be read reliably): the first frame is
    /// a caller, not where the thread is running, so it earns no self hit.
    pub truncated: bool,
}

/// All threads' stacks at one instant. Frames are innermost first, threads concatenated, so a
/// sample is two flat vectors whatever the number of threads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    pub frames: Vec<FrameRef>,
    pub threads: Vec<ThreadStack>,
    /// Frames of the function followed with `--function`, with what the function view needs;
    /// empty (and never filled) without it.
    pub followed: Vec<FollowedFrame>,
    /// Threads left out of this sample, by why (their stacks could not be read whole).
    pub threads_dropped: crate::reader::ErrorKinds,
}

/// Where in its source a frame of the followed function stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePoint {
    pub line: u32,
    /// The instruction's start column (UTF-8 bytes) from the 3.11+ location table; `None`
    /// before 3.11, or for an instruction without columns.
    pub column: Option<u32>,
}

/// One local variable of a followed frame, as read in one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSample {
    pub name: String,
    /// `type(v).__name__`.
    pub type_name: String,
    /// A bounded repr (see `reader::values`).
    pub repr: String,
}

/// A frame of the followed function in one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedFrame {
    /// The frame's address in the target: with its thread and callers, what tells calls apart.
    pub address: u64,
    /// Index of this frame in [`Sample::frames`]; its callers follow it up to its thread's end.
    pub frame_index: u32,
    /// `co_firstlineno` of its code.
    pub first_line: u32,
    pub point: SourcePoint,
    /// Bound local variables (`--locals`), in the code's order.
    pub locals: Vec<LocalSample>,
}

impl Sample {
    /// Clear for reuse, keeping the allocations.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.threads.clear();
        self.followed.clear();
        self.threads_dropped = Default::default();
    }

    /// Close the stack of `thread_id`: the frames pushed since the previous call are its stack,
    /// `truncated` if its innermost frames are missing.
    pub fn end_thread(&mut self, thread_id: u64, truncated: bool) {
        self.threads.push(ThreadStack {
            thread_id,
            end: self.frames.len() as u32,
            truncated,
        });
    }

    /// Each thread's stack description and frames, innermost first.
    pub fn stacks(&self) -> impl Iterator<Item = (&ThreadStack, &[FrameRef])> + '_ {
        let mut start = 0usize;
        self.threads.iter().map(move |t| {
            let end = (t.end as usize).min(self.frames.len());
            let frames = &self.frames[start.min(end)..end];
            start = end;
            (t, frames)
        })
    }

    /// Threads whose stacks are truncated.
    pub fn truncated_threads(&self) -> usize {
        self.threads.iter().filter(|t| t.truncated).count()
    }
}

/// What the sampler sends to the aggregator.
#[derive(Debug)]
pub enum Message {
    /// A new code id and its strings, sent before the first sample that uses it.
    Code(CodeId, CodeInfo),
    /// One sample of every thread.
    Sample(Sample),
    /// A flush request (`--flush-every`), placed after the last sample it is to include,
    /// with the sampler's stats at that point: the aggregator answers it with its results.
    Flush(
        crate::session::sampler::FlushRequest,
        Box<crate::session::sampler::SamplerStats>,
    ),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_split_the_flat_frames_by_thread() {
        let mut s = Sample::default();
        s.frames.push(FrameRef { code: 0, line: 1 });
        s.frames.push(FrameRef { code: 1, line: 2 });
        s.end_thread(7, false);
        s.end_thread(8, false); // a thread with no Python frames
        s.frames.push(FrameRef { code: 2, line: 3 });
        s.end_thread(9, true);
        let stacks: Vec<_> = s.stacks().map(|(t, f)| (t.thread_id, f.len())).collect();
        assert_eq!(stacks, vec![(7, 2), (8, 0), (9, 1)]);
        assert_eq!(s.truncated_threads(), 1);
    }
}
