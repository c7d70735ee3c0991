//! Each CPython version's opcodes, as data generated from that version's own metadata by
//! `generate.py` (in this directory) into `generated.rs`: numbers, names, the base opcode of
//! every specialized form, inline-cache sizes, jumps, and the first cache word quickening
//! leaves in fresh code. Nothing here is typed by hand from a header.

use crate::reader::PyVersion;

mod generated;

pub use generated::TABLES;

/// Flags of an [`Op`] (see `generate.py` for how each is decided).
pub mod flags {
    /// A specialized form that only execution makes: seeing it proves the instruction ran.
    pub const EVIDENCE: u16 = 1 << 0;
    /// A relative jump.
    pub const JUMP: u16 = 1 << 1;
    /// The jump goes backward.
    pub const BACKWARD: u16 = 1 << 2;
    /// Never continues with the next instruction.
    pub const NO_FALLTHROUGH: u16 = 1 << 3;
    /// Also lands one or two instructions past its jump target (FOR_ITER, SEND).
    pub const MULTI_TARGET: u16 = 1 << 4;
    /// Instrumented forms, ENTER_EXECUTOR: the original opcode is kept elsewhere.
    pub const UNREADABLE: u16 = 1 << 5;
    /// `EXTENDED_ARG`: its argument prefixes the next instruction's.
    pub const EXTENDED_ARG: u16 = 1 << 6;
    /// `RESUME` or a specialized form of it.
    pub const RESUME: u16 = 1 << 7;
    /// `LOAD_CONST` or a form of it.
    pub const LOAD_CONST: u16 = 1 << 8;
    /// Once started, completes and continues in its frame: the version's own metadata gives
    /// it no error exit, no eval-breaker check and no call out to arbitrary code, and it
    /// neither suspends nor leaves the frame (3.13+; 3.12's metadata has no error flags).
    pub const NON_RAISING: u16 = 1 << 9;
    /// A conditional jump whose first cache word is its branch history (measured): bit 0 is
    /// 1 if its last execution jumped.
    pub const BRANCH_HISTORY: u16 = 1 << 10;
}

/// One opcode of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub code: u8,
    pub name: &'static str,
    /// The opcode it specializes (itself for a base opcode).
    pub base: u8,
    /// Inline cache entries (code units) following the instruction.
    pub caches: u8,
    /// The first cache word quickening writes in fresh code (the adaptive counter, or the
    /// POP_JUMP_IF_* branch history); `None` when unmeasured or without cache.
    pub initial_cache: Option<u16>,
    /// [`flags`] bits.
    pub flags: u16,
}

/// The opcodes of one CPython version.
#[derive(Debug)]
pub struct OpcodeTable {
    pub version: PyVersion,
    pub ops: &'static [Op],
}

/// The generated table of `version`, if any.
pub fn table_for(version: PyVersion) -> Option<&'static OpcodeTable> {
    TABLES.iter().copied().find(|t| t.version == version)
}

/// An [`OpcodeTable`] indexed by opcode byte.
pub struct Opcodes {
    ops: [Option<Op>; 256],
}

impl Opcodes {
    pub fn new(table: &OpcodeTable) -> Opcodes {
        let mut ops = [None; 256];
        for op in table.ops {
            ops[usize::from(op.code)] = Some(*op);
        }
        Opcodes { ops }
    }

    /// The opcode `code`, or `None` if the version has no such opcode.
    pub fn get(&self, code: u8) -> Option<&Op> {
        self.ops[usize::from(code)].as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;

    fn op(version: PyVersion, name: &str) -> Op {
        *table_for(version)
            .unwrap()
            .ops
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    }

    #[test]
    fn tables_hold_what_the_issue_measured() {
        for v in [PyVersion::new(3, 12), PyVersion::new(3, 13)] {
            let call = op(v, "CALL");
            assert_eq!(call.initial_cache, Some(0x0011), "{v:?}");
            assert_eq!(call.flags & EVIDENCE, 0);
            let spec = op(v, "CALL_PY_EXACT_ARGS");
            assert_eq!(spec.base, call.code);
            assert_ne!(spec.flags & EVIDENCE, 0);
            assert_ne!(op(v, "JUMP_BACKWARD").flags & BACKWARD, 0);
            assert_ne!(op(v, "RETURN_VALUE").flags & NO_FALLTHROUGH, 0);
            assert_ne!(op(v, "FOR_ITER").flags & MULTI_TARGET, 0);
            assert_ne!(op(v, "INSTRUMENTED_LINE").flags & UNREADABLE, 0);
            // Every base opcode is its own base; every form's base is a base opcode.
            for o in table_for(v).unwrap().ops {
                let base = table_for(v).unwrap().ops.iter().find(|b| b.code == o.base);
                assert_eq!(base.map(|b| b.base), Some(o.base), "{}", o.name);
                assert_eq!(base.unwrap().caches, o.caches, "{}", o.name);
            }
        }
        // 3.12's quickening-time superinstructions are in fresh code: not evidence.
        assert_eq!(
            op(PyVersion::new(3, 12), "LOAD_FAST__LOAD_FAST").flags & EVIDENCE,
            0
        );
        // 3.13: RESUME_CHECK is, and POP_JUMP_IF_* keep a branch history from 0x5555.
        assert_ne!(
            op(PyVersion::new(3, 13), "RESUME_CHECK").flags & EVIDENCE,
            0
        );
        assert_eq!(
            op(PyVersion::new(3, 13), "POP_JUMP_IF_TRUE").initial_cache,
            Some(0x5555)
        );
        assert_eq!(
            op(PyVersion::new(3, 12), "POP_JUMP_IF_TRUE").initial_cache,
            None
        );
        // 3.13's metadata: loads and stores complete; calls, the eval-breaker checks, yields
        // and returns do not count. 3.12 has no error flags: nothing is NON_RAISING.
        for name in [
            "LOAD_FAST",
            "STORE_FAST",
            "LOAD_CONST",
            "POP_TOP",
            "JUMP_FORWARD",
        ] {
            assert_ne!(
                op(PyVersion::new(3, 13), name).flags & NON_RAISING,
                0,
                "{name}"
            );
        }
        for name in [
            "CALL",
            "RESUME",
            "JUMP_BACKWARD",
            "YIELD_VALUE",
            "RETURN_VALUE",
            "RETURN_GENERATOR",
            "BINARY_OP",
            "LOAD_FAST_CHECK",
        ] {
            assert_eq!(
                op(PyVersion::new(3, 13), name).flags & NON_RAISING,
                0,
                "{name}"
            );
        }
        assert!(table_for(PyVersion::new(3, 12))
            .unwrap()
            .ops
            .iter()
            .all(|o| o.flags & (NON_RAISING | BRANCH_HISTORY) == 0));
        assert_ne!(
            op(PyVersion::new(3, 13), "POP_JUMP_IF_NONE").flags & BRANCH_HISTORY,
            0
        );
    }

    #[test]
    fn the_3_11_table_holds_what_quickening_writes() {
        let v = PyVersion::new(3, 11);
        // Quickening's forms are not evidence (its RESUME_QUICK neither: rule W reads
        // co_warmup instead); what specializing makes is; every first cache word starts at 0.
        for name in [
            "LOAD_ATTR_ADAPTIVE",
            "CALL_ADAPTIVE",
            "PRECALL_ADAPTIVE",
            "RESUME_QUICK",
            "JUMP_BACKWARD_QUICK",
            "EXTENDED_ARG_QUICK",
            "LOAD_FAST__LOAD_FAST",
            "STORE_FAST__STORE_FAST",
        ] {
            assert_eq!(op(v, name).flags & EVIDENCE, 0, "{name}");
        }
        for name in [
            "LOAD_ATTR_INSTANCE_VALUE",
            "CALL_PY_EXACT_ARGS",
            "PRECALL_NO_KW_LEN",
            "LOAD_GLOBAL_BUILTIN",
            "COMPARE_OP_INT_JUMP",
        ] {
            assert_ne!(op(v, name).flags & EVIDENCE, 0, "{name}");
        }
        for name in ["LOAD_ATTR", "LOAD_GLOBAL", "CALL", "PRECALL", "BINARY_OP"] {
            assert_eq!(op(v, name).initial_cache, Some(0), "{name}");
        }
        assert_ne!(op(v, "RESUME_QUICK").flags & RESUME, 0);
        assert_ne!(op(v, "POP_JUMP_BACKWARD_IF_TRUE").flags & BACKWARD, 0);
        assert!(table_for(v)
            .unwrap()
            .ops
            .iter()
            .all(|o| o.flags & (NON_RAISING | BRANCH_HISTORY) == 0));
    }
}
