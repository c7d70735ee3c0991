//! The per-version rule: which instructions of a code object's adaptive bytecode prove, on
//! their own, that they ran.
//!
//! 3.12+ quickens a code object when it is created and keeps no unquickened copy, so the rule
//! reads the adaptive bytes alone. An instruction ran if
//! - its opcode is a specialized form that only execution makes (`EVIDENCE` in the generated
//!   table: CALL_PY_EXACT_ARGS, LOAD_ATTR_INSTANCE_VALUE, 3.13's RESUME_CHECK...), or
//! - its first inline-cache word differs from the one quickening wrote (the adaptive counter,
//!   0x0011 on 3.12 and 3.13; on 3.13 the POP_JUMP_IF_* branch history, 0x5555: an
//!   alternating branch can bring that back, so only a difference counts).
//!
//! 3.11 keeps its compiled bytes until a code object is warm, then quickens it (every
//! instruction with a cache into its `*_ADAPTIVE` form, counter 0): the same rule holds there on
//! its generated table (initial counter 0, quickening's own forms not evidence); its warmup
//! counter, which shows a code object entered at all, is read by the walk (`CodeObject::warmed`).
//!
//! Instructions are decoded with their base opcode's cache size; `EXTENDED_ARG` prefixes are
//! their own instructions, as in `dis`, their argument carried into the next.

use super::opcodes::flags::{BRANCH_HISTORY, EVIDENCE, EXTENDED_ARG, NON_RAISING, UNREADABLE};
use super::opcodes::Opcodes;

/// One decoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    /// Byte offset in the code.
    pub offset: u32,
    /// The opcode as found, and its base.
    pub op: u8,
    pub base: u8,
    /// The base's flags (specialized forms share them), plus `EVIDENCE` of the form, and
    /// `NON_RAISING` of the form (a form that may deoptimize into its base has it only if the
    /// base has it too).
    pub flags: u16,
    /// The argument, `EXTENDED_ARG` prefixes applied.
    pub arg: u32,
    /// Code units, caches included.
    pub units: u32,
    /// A conditional jump with a branch history (`BRANCH_HISTORY`): the directions it is
    /// proven to have gone at least once, see [`branch_outcomes`].
    pub jumped: bool,
    pub fell_through: bool,
    /// The adaptive bytes prove this instruction ran.
    pub evidence: bool,
}

impl Instruction {
    /// Byte offset of the instruction after this one.
    pub fn next_offset(&self) -> u32 {
        self.offset + 2 * self.units
    }
}

/// Why a code object's bytes cannot be analysed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown opcode {0} at offset {1}")]
    Unknown(u8, u32),
    #[error("{0} at offset {1}: instrumented or optimized code is not read")]
    Unreadable(&'static str, u32),
    #[error("an instruction's caches run past the end of the code")]
    Truncated,
}

/// Decode `code` (adaptive bytes, an even length) and flag the evidence of each instruction.
pub fn decode(code: &[u8], ops: &Opcodes) -> Result<Vec<Instruction>, DecodeError> {
    let units = code.len() / 2;
    let mut out = Vec::with_capacity(units);
    let mut i = 0usize;
    let mut extended: u32 = 0;
    while i < units {
        let offset = (2 * i) as u32;
        let (op, arg) = (code[2 * i], code[2 * i + 1]);
        let form = ops.get(op).ok_or(DecodeError::Unknown(op, offset))?;
        if form.flags & UNREADABLE != 0 {
            return Err(DecodeError::Unreadable(form.name, offset));
        }
        let base = ops.get(form.base).ok_or(DecodeError::Unknown(op, offset))?;
        let caches = usize::from(base.caches);
        if i + caches >= units {
            return Err(DecodeError::Truncated);
        }
        let full_arg = (extended << 8) | u32::from(arg);
        let mut evidence = form.flags & EVIDENCE != 0;
        let (mut jumped, mut fell_through) = (false, false);
        if caches > 0 {
            let cache = u16::from_ne_bytes([code[2 * i + 2], code[2 * i + 3]]);
            if let Some(initial) = base.initial_cache.filter(|&initial| initial != cache) {
                evidence = true;
                if base.flags & BRANCH_HISTORY != 0 {
                    (jumped, fell_through) = branch_outcomes(cache, initial);
                }
            }
        }
        out.push(Instruction {
            offset,
            op,
            base: form.base,
            // The generator gives a form NON_RAISING only if its base has it too.
            flags: (base.flags & !NON_RAISING) | (form.flags & (EVIDENCE | NON_RAISING)),
            arg: full_arg,
            units: 1 + caches as u32,
            jumped,
            fell_through,
            evidence,
        });
        extended = if base.flags & EXTENDED_ARG != 0 {
            // Four prefixes at most make a 32-bit argument; more is garbage, kept bounded.
            full_arg & 0x00ff_ffff
        } else {
            0
        };
        i += 1 + caches;
    }
    Ok(out)
}

/// The directions a conditional jump surely went, from its 16-bit branch history `word`
/// (`(jumped, fell_through)`). Each execution shifts the history left and sets bit 0 if it
/// jumped, starting from `initial`; so after k executions the word is
/// `initial << k | outcomes`, and the bits above k still show the shifted initial pattern.
/// The fewest executions k that explain `word` (at least one, as it changed) leave the fewest
/// outcome bits; any outcome among those low k bits happened whatever the true count.
pub fn branch_outcomes(word: u16, initial: u16) -> (bool, bool) {
    if word == initial {
        return (false, false);
    }
    // k = 16 always explains the word (every bit an outcome).
    let k = (1..16u32)
        .find(|&k| (word >> k) == (initial << k) >> k)
        .unwrap_or(16);
    let outcomes = if k == 16 { word } else { word & ((1 << k) - 1) };
    (outcomes != 0, outcomes.count_ones() < k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::PyVersion;
    use crate::snapshot::opcodes::{table_for, Opcodes};

    fn opcode(version: PyVersion, name: &str) -> u8 {
        table_for(version)
            .unwrap()
            .ops
            .iter()
            .find(|o| o.name == name)
            .unwrap()
            .code
    }

    #[test]
    fn branch_history_proves_only_the_directions_every_explanation_has() {
        let initial = 0x5555u16;
        let run = |outcomes: &[u16]| outcomes.iter().fold(initial, |h, &o| (h << 1) | o);
        assert_eq!(branch_outcomes(initial, initial), (false, false));
        assert_eq!(branch_outcomes(run(&[1]), initial), (true, false));
        assert_eq!(branch_outcomes(run(&[0]), initial), (false, true));
        assert_eq!(
            branch_outcomes(run(&[1, 0, 0, 0, 0]), initial),
            (true, true)
        );
        // 0, 1, 1, 1 leaves what 1, 1 alone leaves (the initial pattern alternates): only
        // "jumped" is sure.
        assert_eq!(run(&[0, 1, 1, 1]), run(&[1, 1]));
        assert_eq!(branch_outcomes(run(&[0, 1, 1, 1]), initial), (true, false));
        assert_eq!(branch_outcomes(run(&[0; 20]), initial), (false, true));
        assert_eq!(branch_outcomes(run(&[1; 20]), initial), (true, false));
        // Exhaustively for up to 10 executions: what is reported happened.
        for k in 1..=10u32 {
            for bits in 0..(1u16 << k) {
                let outcomes: Vec<u16> = (0..k).rev().map(|i| (bits >> i) & 1).collect();
                let (jumped, fell) = branch_outcomes(run(&outcomes), initial);
                assert!(!jumped || outcomes.contains(&1), "{outcomes:?}");
                assert!(!fell || outcomes.contains(&0), "{outcomes:?}");
            }
        }
    }

    #[test]
    fn counters_and_forms_are_evidence_fresh_bytes_are_not() {
        let v = PyVersion::new(3, 13);
        let ops = Opcodes::new(table_for(v).unwrap());
        let resume = opcode(v, "RESUME");
        let call = opcode(v, "CALL");
        let ret = opcode(v, "RETURN_VALUE");
        let counter = 0x0011u16.to_ne_bytes();
        let mut fresh = vec![
            resume, 0, call, 1, counter[0], counter[1], 0, 0, 0, 0, ret, 0,
        ];
        let decoded = decode(&fresh, &ops).unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[1].units, 4);
        assert!(decoded.iter().all(|i| !i.evidence));
        // The counter moved: CALL ran.
        fresh[4] = 0x02;
        assert!(decode(&fresh, &ops).unwrap()[1].evidence);
        // RESUME_CHECK: the entry ran.
        fresh[0] = opcode(v, "RESUME_CHECK");
        assert!(decode(&fresh, &ops).unwrap()[0].evidence);
        // Caches past the end, an instrumented opcode: refused.
        assert_eq!(decode(&fresh[..6], &ops), Err(DecodeError::Truncated));
        fresh[10] = opcode(v, "INSTRUMENTED_RETURN_VALUE");
        assert!(matches!(
            decode(&fresh, &ops),
            Err(DecodeError::Unreadable(..))
        ));
    }
}
