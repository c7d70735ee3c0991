//! What several snapshots of one process prove together, and how it joins sampled results
//! (`attach --snapshot`, `run --snapshot`, `--snapshot-every`).
//!
//! Snapshots are unioned as sets: a line proven by any snapshot ran, however many snapshots
//! prove it. Joined to sampled results, a sampled line keeps its sampled counts and a proven
//! line never sampled counts 1, as `tracer snapshot`'s own counts do; the proven lines and
//! those that only the snapshots found are kept apart for JSON (`proven`, `proven_only`).

use crate::aggregate::model::{CoverageResults, FuncKey, LineHits};
use crate::output::RunInfo;
use crate::snapshot::Snapshot;
use std::collections::BTreeSet;

/// The union of the snapshots taken of one process.
#[derive(Debug, Clone, Default)]
pub struct Proven {
    pub lines: BTreeSet<(String, u32)>,
    pub functions: BTreeSet<FuncKey>,
    /// Likely but unproven lines of any snapshot that no snapshot proved.
    pub likely: BTreeSet<(String, u32)>,
    /// coverage.py arcs proven by any snapshot, `(file, from, to)`.
    pub arcs: BTreeSet<(String, i64, i64)>,
    /// Snapshots taken.
    pub snapshots: usize,
    /// Code objects left out, summed over the snapshots, because another tool instrumented
    /// them (coverage.py, a debugger, `sys.monitoring`): their bytecode no longer holds the
    /// adaptive interpreter's record.
    pub instrumented: usize,
}

impl Proven {
    /// Add one snapshot.
    pub fn add(&mut self, snapshot: &Snapshot) {
        self.snapshots += 1;
        self.lines.extend(snapshot.results.counts.keys().cloned());
        self.functions
            .extend(snapshot.results.calledfuncs.iter().cloned());
        self.likely.extend(snapshot.likely.iter().cloned());
        self.arcs.extend(snapshot.arcs.iter().cloned());
        self.instrumented += snapshot.stats.instrumented;
    }

    /// Keep only what `keep(file)` accepts (the session's filters).
    pub fn retain_files(&mut self, keep: impl Fn(&str) -> bool) {
        self.lines.retain(|(file, _)| keep(file));
        self.likely.retain(|(file, _)| keep(file));
        self.arcs.retain(|(file, _, _)| keep(file));
    }

    /// Join into sampled `results` and their `info`.
    pub fn join_into(&self, results: &mut CoverageResults, info: &mut RunInfo) {
        let mut proven_only = Vec::new();
        for key in &self.lines {
            if !results.counts.contains_key(key) {
                results.counts.insert(
                    key.clone(),
                    LineHits {
                        hits: 1,
                        self_hits: 0,
                    },
                );
                proven_only.push(key.clone());
            }
        }
        results.calledfuncs.extend(self.functions.iter().cloned());
        info.proven = self.lines.iter().cloned().collect();
        info.proven_only = proven_only;
        info.arcs = self.arcs.iter().cloned().collect();
        let mut likely: BTreeSet<(String, u32)> = info.likely.drain(..).collect();
        likely.extend(
            self.likely
                .iter()
                .filter(|key| !self.lines.contains(*key) && !results.counts.contains_key(*key))
                .cloned(),
        );
        info.likely = likely.into_iter().collect();
    }

    /// One line for the log: what the snapshots added.
    pub fn summary(&self, pid: i32) -> String {
        format!(
            "tracer: {} snapshot{} of pid {pid}: {} proven lines, {} functions ({} more lines \
             likely, kept apart)",
            self.snapshots,
            if self.snapshots == 1 { "" } else { "s" },
            self.lines.len(),
            self.functions.len(),
            self.likely.len()
        )
    }

    /// The warning for code the snapshots could not read, if any.
    pub fn instrumented_warning(&self) -> Option<String> {
        (self.instrumented > 0).then(|| {
            format!(
                "tracer: warning: the snapshots left out {} code objects instrumented by \
                 another tool (coverage.py, a debugger or a sys.monitoring tool rewrote their \
                 bytecode, which then holds no record of what ran): their lines come from \
                 sampling only",
                self.instrumented
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampled_line_keeps_its_counts_and_a_proven_one_counts_one() {
        let mut snapshot = Snapshot::default();
        for line in [1, 2] {
            snapshot
                .results
                .counts
                .insert(("/a.py".into(), line), LineHits::default());
        }
        snapshot.likely.insert(("/a.py".into(), 3));
        let mut proven = Proven::default();
        proven.add(&snapshot);
        proven.add(&snapshot);
        let mut results = CoverageResults::default();
        results.counts.insert(
            ("/a.py".into(), 2),
            LineHits {
                hits: 7,
                self_hits: 2,
            },
        );
        let mut info = RunInfo::default();
        proven.join_into(&mut results, &mut info);
        assert_eq!(
            results.counts[&("/a.py".to_owned(), 1)].hits,
            1,
            "proven only"
        );
        assert_eq!(results.counts[&("/a.py".to_owned(), 2)].hits, 7, "sampled");
        assert_eq!(info.proven.len(), 2);
        assert_eq!(info.proven_only, vec![("/a.py".to_owned(), 1)]);
        assert_eq!(info.likely, vec![("/a.py".to_owned(), 3)]);
        assert_eq!(proven.snapshots, 2);
    }
}
