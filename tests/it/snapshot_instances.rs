//! Code held only through objects (coverage issue, item 3): instances' attributes (a
//! `functools.partial` in a `curry`-like object's `__dict__`, `__slots__`, a materialized
//! instance dict), a `functools.lru_cache` wrapper, a list, a tuple, a function's default and
//! its `__wrapped__` attribute (tests/workloads/snapshot_instances/). The walk before this
//! reached none of these functions (their module's code, whose `co_consts` held theirs, is
//! freed after import). Every line reported must be in trace's truth of the same workload
//! (precision 1.000); every line marked `# via` must be proven.

use crate::common::{printed, truth_and_snapshot, workload};
use std::process::Command;

per_python!(
    functions_held_only_through_objects_are_proven_and_all_ran_under_trace,
    gil since 11,
    |python| {
        let (row, doc) = truth_and_snapshot(
            python,
            "snapshot-instances",
            "snapshot_instances/drive.py",
            "held.py,drive.py",
        );
        let false_positives = row["false_positives"].as_array().unwrap();
        assert!(
            false_positives.is_empty(),
            "{}: lines reported that trace never saw run: {false_positives:?}",
            python.label()
        );
        let proven: Vec<u64> = doc["counts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r[0].as_str().unwrap_or("").ends_with("held.py"))
            .filter_map(|r| r[1].as_u64())
            .collect();
        let source = std::fs::read_to_string(workload("snapshot_instances/held.py")).unwrap();
        let marked: Vec<(u64, &str)> = source
            .lines()
            .enumerate()
            .filter_map(|(i, l)| l.split_once("# via ").map(|(_, how)| (i as u64 + 1, how)))
            .collect();
        assert_eq!(marked.len(), 8, "the workload's marked lines");
        println!(
            "{}: recall {}, held.py proven {proven:?}",
            python.label(),
            row["recall"]
        );
        // 3.11 quickens only warm code: a function run once is proven called, not its lines.
        let v311 = python.version == tracer::reader::PyVersion::new(3, 11);
        let called: Vec<&str> = doc["calledfuncs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f[0].as_str().unwrap_or("").ends_with("held.py"))
            .filter_map(|f| f[2].as_str())
            .collect();
        for (line, how) in marked {
            if v311 {
                let before: Vec<&str> = source.lines().take(line as usize).collect();
                let def = before.iter().rev().find_map(|l| {
                    l.strip_prefix("def ")
                        .and_then(|rest| rest.split('(').next())
                });
                assert!(
                    def.is_some_and(|name| called.contains(&name)),
                    "{}: held.py:{line}'s function, reachable only {how}, not called: {called:?}",
                    python.label()
                );
                continue;
            }
            assert!(
                proven.contains(&line),
                "{}: held.py:{line}, a function reachable only {how}, not proven: {proven:?}",
                python.label()
            );
        }
        Ok(())
    }
);

per_python!(
    /// The type flags src/snapshot/walk/instances.rs relies on, as each interpreter has them:
    /// `Py_TPFLAGS_HEAPTYPE` (1 << 9) and `Py_TPFLAGS_MANAGED_DICT` (1 << 4) on a plain class,
    /// not `MANAGED_DICT` with `__slots__`, and `Py_TPFLAGS_INLINE_VALUES` (1 << 2) on 3.13+.
    instance_layout_flags_are_the_interpreters_own,
    gil since 11,
    |python| {
        let out = Command::new(&python.path)
            .args([
                "-c",
                "class P: pass\nclass S:\n    __slots__ = ('a',)\nprint(P.__flags__, S.__flags__)",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", printed(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        let flags: Vec<u64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let (plain, slotted) = (flags[0], flags[1]);
        assert_ne!(plain & (1 << 9), 0, "{}: HEAPTYPE", python.label());
        assert_ne!(plain & (1 << 4), 0, "{}: MANAGED_DICT", python.label());
        assert_eq!(
            slotted & (1 << 4),
            0,
            "{}: __slots__ has no dict",
            python.label()
        );
        assert_eq!(
            plain & (1 << 2) != 0,
            python.version >= tracer::reader::PyVersion::new(3, 13),
            "{}: INLINE_VALUES",
            python.label()
        );
        Ok(())
    }
);
