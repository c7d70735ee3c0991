//! Comparing a thread's two stack copies: how many outer frames they agree on, and, for the
//! stacks cut short, why (debug counters, printed with `TRACER_DEBUG_TRUNCATION=1`).

use super::*;

impl DirectReader {
    /// Whether the copies prove a whole stack: they agree on every frame (as
    /// [`DirectReader::agreed_outer_frames`] counts them), or the whole of one copy is the
    /// outer part of the other (a call or a return between them). Both frame pointers are
    /// read between the two copies of the frames (src/reader/direct: A's frames, A's frame
    /// pointer, B's frame pointer, B's frames), so every agreed frame held its value when
    /// either frame pointer was read: the shorter copy is the thread's whole stack at the
    /// moment its frame pointer was read. The frames kept (the agreed outer part of the later
    /// copy) are then exactly that copy's.
    pub(super) fn copies_agree(&self) -> bool {
        let agreed = self.agreed_outer_frames();
        agreed == self.frames[0].len().min(self.frames[1].len())
    }

    /// Whether copy B, the later one, is the thread's whole stack although the copies differ
    /// in its innermost frames. Its frames below `agreed` (as
    /// [`DirectReader::agreed_outer_frames`] counts them) agree with copy A; each frame above
    /// them
    /// - stands at the same address, with the same code, as copy A's frame at its depth: the
    ///   same frame in both (or a new call of the same code at the same place by the same
    ///   caller), only its instruction moved; or, on 3.11+, is B's innermost frame one deeper
    ///   than copy A, a call made between the copies;
    /// - and stands on a line of its code;
    ///
    /// and B's innermost frame is the one the thread's frame pointer read with copy B pointed
    /// to: nothing was on top of it then.
    ///
    /// Every caller edge is then one both copies hold (the same codes at the same addresses),
    /// or, for a new innermost frame, one its own `previous` gives, to a frame whose code
    /// both copies hold; every line is read from its frame's own memory, as a single read
    /// gives it. A new innermost frame is accepted on 3.11+ only: its instruction pointer is
    /// an address checked against its own code's bytes, so a read torn by the frame being
    /// pushed again (new code, older instruction) cannot be placed; 3.8–3.10's `f_lasti` is
    /// an offset that another code's would fit. docs/hostile.md, "Whole at the frame
    /// pointer".
    pub(super) fn whole_at_frame_pointer(&self, agreed: usize) -> bool {
        let [first, second] = &self.frames;
        let (la, lb) = (first.len(), second.len());
        if agreed >= lb || second[0].address != self.frame_pointers[1] {
            return false;
        }
        let absolute_instructions =
            matches!(self.target.layout.frames, Frames::InterpreterFrames(_));
        second[..lb - agreed].iter().enumerate().all(|(index, b)| {
            // Depth counted from the outermost frame.
            let depth = lb - 1 - index;
            let same_frame = depth < la && {
                let a = &first[la - 1 - depth];
                a.address == b.address && a.code == b.code
            };
            let new_innermost = index == 0 && depth == la && absolute_instructions;
            (same_frame || new_innermost) && self.frame_line(b).is_some()
        })
    }

    /// Swap the copies (and their frame pointers) with the stashed ones.
    pub(super) fn swap_stash(&mut self) {
        let [a, b] = &mut self.frames;
        let [stash_a, stash_b] = &mut self.stash;
        std::mem::swap(a, stash_a);
        std::mem::swap(b, stash_b);
        std::mem::swap(&mut self.frame_pointers, &mut self.stash_pointers);
    }

    /// Whether the copies just read prove a whole stack, by either rule.
    pub(super) fn stack_proven(&self) -> bool {
        self.copies_agree() || self.whole_at_frame_pointer(self.agreed_outer_frames())
    }

    /// Take back the copies stashed by an earlier read of the thread.
    pub(super) fn restore_stash(&mut self) {
        self.swap_stash();
        self.torn_chain = false;
    }

    /// How many outermost frames both copies agree on.
    ///
    /// The frame past the exactly agreed ones also counts when it is the innermost of at least
    /// one copy and the copies differ only in its instruction, both instructions standing on
    /// the same line of the same code: what is reported, `(code, line)`, is then the same in
    /// both. A running frame's instruction changes between the copies when the interpreter
    /// stores it at every instruction, as CPython 3.11+ does (on 3.14 a quarter to a third of
    /// the samples of a CPU-bound thread lost their innermost frame without this); and a
    /// caller's moves on a line while it calls or returns (`CALL` in one copy, the next
    /// instruction of its line in the other, with the callee above it in one copy only).
    pub(super) fn agreed_outer_frames(&self) -> usize {
        let [first, second] = &self.frames;
        let agreed = first
            .iter()
            .rev()
            .zip(second.iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        let (la, lb) = (first.len(), second.len());
        let one_innermost = agreed < la.min(lb) && (la == agreed + 1 || lb == agreed + 1);
        if one_innermost {
            let (a, b) = (&first[la - 1 - agreed], &second[lb - 1 - agreed]);
            let same_line = a.address == b.address
                && a.code == b.code
                && self.frame_line(a).is_some()
                && self.frame_line(a) == self.frame_line(b);
            if same_line {
                return agreed + 1;
            }
        }
        agreed
    }
}

/// Why a thread's stack was reported truncated: the first difference between its two copies,
/// from the outermost frame in, or what else cut it short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CutReason {
    /// One copy is the other plus frames on top: a call or a return between the copies.
    PushedOrPopped,
    /// The same frames, the innermost standing on another line in each copy.
    InnermostMoved,
    /// The same frame in both, on another instruction, with a callee above it in at least one
    /// copy: it returned from a callee and went on (maybe into another call).
    CallerMoved,
    /// A frame of another address or code at the same depth: a return, then a call.
    Replaced,
    /// 3.8–3.10: the chain met a freed frame.
    TornChain,
    /// The innermost agreed frame could not be placed on a line (and had started).
    InnermostUnplaced,
    /// A frame below the innermost could not be placed on a line.
    MiddleUnplaced,
}

const REASONS: [(CutReason, &str); 7] = [
    (CutReason::PushedOrPopped, "pushed_or_popped"),
    (CutReason::InnermostMoved, "innermost_moved"),
    (CutReason::CallerMoved, "caller_moved"),
    (CutReason::Replaced, "replaced"),
    (CutReason::TornChain, "torn_chain"),
    (CutReason::InnermostUnplaced, "innermost_unplaced"),
    (CutReason::MiddleUnplaced, "middle_unplaced"),
];

/// Debug counters of the stacks cut short, per reason, and of the reads each thread needed;
/// printed to stderr when the reader is dropped if `TRACER_DEBUG_TRUNCATION` is set. They
/// change nothing that is reported.
#[derive(Debug, Default)]
pub(super) struct CutCounts {
    /// Threads read (kept in a sample, whole or truncated).
    threads: u64,
    /// Threads whose stack took 1, 2, 3 reads.
    reads: [u64; MAX_ATTEMPTS],
    by_reason: [u64; REASONS.len()],
    /// Truncated stacks by frames cut off: 1, 2, 3, 4 or more.
    cut_frames: [u64; 4],
    /// Reads of the last thread read (set by `read_thread`).
    pub(super) last_reads: usize,
}

impl CutCounts {
    /// A thread read whole.
    pub(super) fn whole(&mut self) {
        self.threads += 1;
        self.reads[self.last_reads.clamp(1, MAX_ATTEMPTS) - 1] += 1;
    }

    /// A thread read truncated, for `reason`, with `cut` frames of its later copy cut off.
    pub(super) fn cut(&mut self, reason: CutReason, cut: usize) {
        self.whole();
        if let Some(i) = REASONS.iter().position(|(r, _)| *r == reason) {
            self.by_reason[i] += 1;
        }
        if cut > 0 {
            self.cut_frames[cut.min(4) - 1] += 1;
        }
    }

    /// One line: `truncation: threads N reads a/b/c reason=count ... cut 1/2/3/4+`.
    pub(super) fn summary(&self) -> String {
        let reasons: Vec<String> = REASONS
            .iter()
            .zip(self.by_reason)
            .map(|((_, name), n)| format!("{name}={n}"))
            .collect();
        let join = |v: &[u64]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join("/")
        };
        format!(
            "truncation: threads {} reads {} {} cut {}",
            self.threads,
            join(&self.reads),
            reasons.join(" "),
            join(&self.cut_frames)
        )
    }
}

impl DirectReader {
    /// Why the two copies of the thread just read were cut to `agreed` outer frames.
    pub(super) fn cut_reason(&self, agreed: usize) -> CutReason {
        if self.torn_chain {
            return CutReason::TornChain;
        }
        let [first, second] = &self.frames;
        let (la, lb) = (first.len(), second.len());
        if agreed >= la.min(lb) {
            return CutReason::PushedOrPopped;
        }
        let (a, b) = (&first[la - 1 - agreed], &second[lb - 1 - agreed]);
        if a.address == b.address && a.code == b.code {
            if agreed + 1 == la && agreed + 1 == lb {
                CutReason::InnermostMoved
            } else {
                CutReason::CallerMoved
            }
        } else {
            CutReason::Replaced
        }
    }
}

impl Drop for DirectReader {
    fn drop(&mut self) {
        if std::env::var_os("TRACER_DEBUG_TRUNCATION").is_some() {
            eprintln!("{}", self.cuts.summary());
        }
    }
}
