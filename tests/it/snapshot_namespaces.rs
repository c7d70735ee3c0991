//! Module bodies proven by what module namespaces hold (src/snapshot/bodies/namespaces.rs):
//! tests/workloads/snapshot_namespaces/, a package of modules that made no function (constant
//! tables, `TypedDict` classes with no method, imports), a module reloaded twice (the second
//! reload failing half-way), names rebound from outside (a display's name to other content, a
//! class from another module, a module), a name `mock.patch`ed to equal content, a submodule
//! bound in its package by the import system, a module whose import raised half-way. Every line
//! reported must be in trace's truth of the same workload (precision 1.000, asserted); the
//! statements only a namespace proves must be reported, and the never-run statements whose
//! names were bound from outside must not.

use crate::common::{truth_and_snapshot, workload};

const FILES: &str = "nsw/__init__.py,tables.py,reloaded.py,rebound.py,other.py,\
                     pkg/__init__.py,pkg/sub.py,broken.py";

/// 1-based line of the first line of `file` (under the workload's nsw/) holding `text`.
fn line_of(file: &str, text: &str) -> u64 {
    let path = workload(&format!("snapshot_namespaces/nsw/{file}"));
    let source = std::fs::read_to_string(path).unwrap();
    source
        .lines()
        .position(|l| l.contains(text))
        .unwrap_or_else(|| panic!("{file}: no line holds {text:?}")) as u64
        + 1
}

per_python!(
    /// The statements proven by the namespaces alone are reported, every reported line ran
    /// under trace, and what was bound from outside proves nothing.
    namespaces_prove_module_bodies_that_made_no_function,
    gil since 11,
    |python| {
        let (row, doc) =
            truth_and_snapshot(python, "snapshot-namespaces", "snapshot_namespaces/drive.py", FILES);
        let false_positives = row["false_positives"].as_array().unwrap();
        assert!(
            false_positives.is_empty(),
            "{}: lines reported that trace never saw run: {false_positives:?}",
            python.label()
        );
        let proven = |file: &str| -> Vec<u64> {
            doc["counts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| {
                    r[0].as_str()
                        .unwrap_or("")
                        .ends_with(&format!("snapshot_namespaces/nsw/{file}"))
                })
                .filter_map(|r| r[1].as_u64())
                .collect()
        };
        let recall = &row["recall"]["module/class level"];
        println!(
            "{}: module/class level recall {}/{}; tables.py proven {:?}",
            python.label(),
            recall[0],
            recall[1],
            proven("tables.py")
        );
        // Proven by a display or a class found in the namespace: the statement and, by the
        // sequence rule, everything before it; a class with no method, whole.
        for (file, sure) in [
            ("tables.py", "from typing import TypedDict"),
            ("tables.py", "class License(TypedDict):"),
            ("tables.py", "    id: str"),
            ("tables.py", "VERSION = \"3.25.0\""),
            ("tables.py", "COLORS: dict[str, License] = {"),
            ("tables.py", "\"blue\": {"),
            ("tables.py", "SHORT = [\"too\", \"short\"]"),
            ("tables.py", "EXCEPTIONS: dict[str, Exception_] = {"),
            ("__init__.py", "from .tables import License as _License"),
            ("__init__.py", "__all__ ="),
            ("reloaded.py", "LATE = "),
            ("rebound.py", "KEPT = "),
            ("other.py", "class Ghost:"),
            ("other.py", "    x = 2"),
            ("pkg/sub.py", "SUB_TABLE = "),
        ] {
            assert!(
                proven(file).contains(&line_of(file, sure)),
                "{}: {file}: {sure:?} not proven",
                python.label()
            );
        }
        // Never run, their names bound from outside or by the import system.
        for (file, unsure) in [
            ("rebound.py", "NEVER = "),
            ("rebound.py", "    class Ghost:"),
            ("rebound.py", "        x = 1"),
            ("rebound.py", "    import json"),
            ("pkg/__init__.py", "from . import sub"),
        ] {
            assert!(
                !proven(file).contains(&line_of(file, unsure)),
                "{}: {file}: unsure line {unsure:?} reported as run",
                python.label()
            );
        }
        Ok(())
    }
);
