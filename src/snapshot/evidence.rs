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
//! Instructions are decoded with their base opcode's cache size; `EXTENDED_ARG` prefixes are
//! their own instructions, as in `dis`, their argument carried into the next.

use super::opcodes::flags::{EVIDENCE, EXTENDED_ARG, UNREADABLE};
use super::opcodes::Opcodes;

/// One decoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    /// Byte offset in the code.
    pub offset: u32,
    /// The opcode as found, and its base.
    pub op: u8,
    pub base: u8,
    /// The base's flags (specialized forms share them), plus `EVIDENCE` of the form.
    pub flags: u16,
    /// The argument, `EXTENDED_ARG` prefixes applied.
    pub arg: u32,
    /// Code units, caches included.
    pub units: u32,
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
        if caches > 0 {
            let word = u16::from_ne_bytes([code[2 * i + 2], code[2 * i + 3]]);
            if base.initial_cache.is_some_and(|initial| initial != word) {
                evidence = true;
            }
        }
        out.push(Instruction {
            offset,
            op,
            base: form.base,
            flags: base.flags | (form.flags & EVIDENCE),
            arg: full_arg,
            units: 1 + caches as u32,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::opcodes::{table_for, Opcodes};

    fn opcode(version: (u8, u8), name: &str) -> u8 {
        table_for(version)
            .unwrap()
            .ops
            .iter()
            .find(|o| o.name == name)
            .unwrap()
            .code
    }

    #[test]
    fn counters_and_forms_are_evidence_fresh_bytes_are_not() {
        let v = (3, 13);
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
