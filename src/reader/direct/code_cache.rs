//! The code cache: each code object's names and line table, read once and then trusted only
//! while its identity fields still read the same.

use super::*;

/// What a cached code object is, and what must still hold for the cache entry to be valid.
#[derive(Debug, Clone)]
pub(super) struct CodeEntry {
    /// The sample that last saw this code on a stack (for the sweep).
    pub(super) last_seen: u64,
    /// Identity fields as read when the entry was made: compared on every use.
    pub(super) identity: CodeIdentity,
    pub(super) id: CodeId,
    /// The line table decoded once: runs of code with one line, in offset order.
    pub(super) lines: Vec<LineRange>,
    /// Length of the code in bytes, bounding instruction offsets.
    pub(super) code_bytes: u32,
    /// 3.11+: byte offset of the first instruction that runs once the frame has started.
    pub(super) first_traceable_byte: u32,
    /// 3.12: the backward jumps just before a loop's exit, by byte offset, with the line a
    /// frame standing on one is reported on
    /// ([`crate::reader::linetable::may_stand_on_an_unrun_loop_jump`]); `None`
    /// where that line is unknown (the frame is then not placed). Sorted; empty elsewhere.
    pub(super) loop_exit_jumps: Vec<(u32, Option<u32>)>,
    /// Set for the code of the function followed with `--function`.
    pub(super) target: Option<Box<FollowedCode>>,
    /// The interpreter's trampoline code (3.13+: `co_flags` holds `CO_NO_MONITORING_EVENTS`):
    /// its frames hold no Python code and are passed over, neither reported nor a cut.
    pub(super) trampoline: bool,
}

impl CodeEntry {
    /// The line a frame standing at byte `offset` is reported on: its instruction's, except on
    /// a loop's exit jump where that may not have run (3.12).
    pub(super) fn reported_line_at(&self, offset: u32) -> Option<u32> {
        match self
            .loop_exit_jumps
            .binary_search_by_key(&offset, |(at, _)| *at)
        {
            Ok(index) => self.loop_exit_jumps[index].1,
            Err(_) => self.line_at(offset),
        }
    }

    /// The line of the instruction at byte `offset` (binary search over the decoded runs).
    pub(super) fn line_at(&self, offset: u32) -> Option<u32> {
        let index = self.lines.partition_point(|r| r.end <= offset);
        let run = self.lines.get(index)?;
        (run.start <= offset).then_some(run.line).flatten()
    }
}

/// The fields of a code object that identify it: if any differs, the address now holds
/// another object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CodeIdentity {
    pub(super) type_ptr: usize,
    pub(super) filename: usize,
    pub(super) name: usize,
    pub(super) line_table: usize,
    pub(super) first_line: u32,
}

impl DirectReader {
    /// Resolve the code objects of thread `tstate`'s frames (both copies), validating cached
    /// entries against their identity fields: those read with the batch if planned, the rest
    /// in one more call.
    pub(super) fn validate_codes(
        &mut self,
        tstate: usize,
        new_codes: &mut Vec<(CodeId, CodeInfo)>,
    ) -> Result<(), MemoryError> {
        let mut addresses = std::mem::take(&mut self.code_scratch);
        addresses.clear();
        addresses.extend(
            self.frames[0]
                .iter()
                .chain(self.frames[1].iter())
                .map(|f| f.code)
                .filter(|c| *c != 0),
        );
        addresses.sort_unstable();
        addresses.dedup();
        let span = code_identity_span(&self.target.layout);
        let mut missing: Vec<(usize, Vec<u8>)> = addresses
            .iter()
            .filter(|a| !self.identities.iter().any(|(p, _)| p == *a))
            .map(|&a| (a, vec![0u8; span]))
            .collect();
        if !missing.is_empty() {
            let mut requests: Vec<ReadRequest> = missing
                .iter_mut()
                .map(|(address, buf)| ReadRequest {
                    address: *address,
                    buf,
                })
                .collect();
            let batch_ok = self.target.memory.read_many(&mut requests).is_ok();
            drop(requests);
            if !batch_ok {
                // One stale pointer fails the whole batch: read one by one, so that it drops
                // only its own frames.
                missing.retain_mut(|(address, buf)| self.target.memory.read(*address, buf).is_ok());
            }
        }
        let identities = std::mem::take(&mut self.identities);
        for &address in &addresses {
            let bytes = identities
                .iter()
                .chain(missing.iter())
                .find(|(a, _)| *a == address)
                .map(|(_, b)| b.as_slice());
            let Some(bytes) = bytes else {
                self.codes.remove(&address);
                continue;
            };
            let identity = self.identity_from(bytes);
            if identity.type_ptr != self.target.code_type {
                self.codes.remove(&address);
                continue;
            }
            let cached = self
                .codes
                .get(&address)
                .is_some_and(|e| e.identity == identity);
            if !cached {
                self.codes.remove(&address);
                if let Ok(entry) = self.resolve_code(address, identity, new_codes) {
                    if self.codes.len() >= MAX_CACHED_CODES {
                        self.codes.clear();
                    }
                    self.codes.insert(address, entry);
                }
            }
        }
        self.identities = identities;
        let plan = self.plans.entry(tstate).or_default();
        plan.codes.clear();
        plan.codes.extend(addresses.iter().take(MAX_PLANNED_CODES));
        self.code_scratch = addresses;
        Ok(())
    }

    pub(super) fn identity_from(&self, bytes: &[u8]) -> CodeIdentity {
        let layout = &self.target.layout;
        let field = |offset: usize| read_usize_at(bytes, offset).unwrap_or(0);
        CodeIdentity {
            type_ptr: field(layout.object_type),
            filename: field(layout.code_filename),
            name: field(layout.code_qualname.unwrap_or(layout.code_name)),
            line_table: field(layout.code_linetable.or(layout.code_lnotab).unwrap_or(0)),
            first_line: read_i32_at(bytes, layout.code_firstlineno)
                .unwrap_or(0)
                .max(0) as u32,
        }
    }

    /// Read a code object's strings and line table: a new cache entry.
    pub(super) fn resolve_code(
        &mut self,
        address: usize,
        identity: CodeIdentity,
        new_codes: &mut Vec<(CodeId, CodeInfo)>,
    ) -> Result<CodeEntry, MemoryError> {
        let layout = self.target.layout;
        let filename = self.read_unicode(identity.filename)?;
        let name = self.read_unicode(identity.name)?;
        let line_table = self.read_bytes(identity.line_table, MAX_LINETABLE_BYTES)?;
        let format =
            LineTableFormat::for_version(layout.version).ok_or(MemoryError::Unmapped(address))?;
        let mut header = vec![0u8; layout.code_size];
        self.target.memory.read(address, &mut header)?;
        let code_bytes = match layout.code_code {
            // 3.8–3.10: co_code is a bytes object; its length in bytes.
            Some(co_code) => {
                let bytes_object = read_usize_at(&header, co_code).unwrap_or(0);
                self.read_bytes_len(bytes_object)?
            }
            // 3.11+: the code object is variable-sized: ob_size code units of two bytes.
            None => read_usize_at(&header, layout.var_object_size)
                .unwrap_or(0)
                .saturating_mul(2),
        };
        let code_bytes = u32::try_from(code_bytes).map_err(|_| MemoryError::Unmapped(address))?;
        let first_traceable_byte = layout
            .code_firsttraceable
            .and_then(|o| read_i32_at(&header, o))
            .unwrap_or(0)
            .clamp(0, i32::MAX / 2) as u32
            * 2;
        let trampoline = layout.code_flag_no_monitoring_events.is_some_and(|flag| {
            read_i32_at(&header, layout.code_flags).is_some_and(|flags| flags as usize & flag != 0)
        });
        let mut lines: Vec<LineRange> = LineTable::new(format, &line_table, identity.first_line)
            .ranges(code_bytes)
            .collect();
        // 3.8–3.9: only lines a frame's position proves ran (src/reader/line_proof).
        if let (true, false, Some(co_code)) = (
            line_proof::applies_to(layout.version),
            self.f_lineno_lines,
            layout.code_code,
        ) {
            let bytes_object = read_usize_at(&header, co_code).unwrap_or(0);
            let code = self.read_bytes(bytes_object, MAX_LINETABLE_BYTES)?;
            lines = line_proof::proven_lines(layout.version, &code, &lines)
                .ok_or(MemoryError::Implausible(address))?;
        }
        let loop_exit_jumps = match (
            crate::reader::linetable::may_stand_on_an_unrun_loop_jump(layout.version)
                && !self.f_lineno_lines,
            layout.code_code_adaptive,
        ) {
            (true, Some(code_at)) if code_bytes as usize <= MAX_LINETABLE_BYTES => {
                let mut code = vec![0u8; code_bytes as usize];
                self.target
                    .memory
                    .read(address.wrapping_add(code_at), &mut code)?;
                loop_exit_jumps(layout.version, &code, &lines)
            }
            (true, _) => return Err(MemoryError::Implausible(address)),
            (false, _) => Vec::new(),
        };
        let target = match &self.function {
            Some(filter) if filter.matches(&name, layout.code_qualname.is_some()) => {
                let locals = filter.locals;
                Some(Box::new(self.followed_code(
                    &header,
                    format,
                    &line_table,
                    identity.first_line,
                    locals,
                )?))
            }
            _ => None,
        };
        let id = self
            .interner
            .intern(&filename, &name, identity.first_line, new_codes);
        Ok(CodeEntry {
            last_seen: self.samples_read,
            identity,
            id,
            lines,
            code_bytes,
            first_traceable_byte,
            loop_exit_jumps,
            target,
            trampoline,
        })
    }
}
