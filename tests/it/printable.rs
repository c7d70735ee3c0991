//! The printability table behind `repr(str)` (src/reader/printable/) against the interpreters
//! installed here: the committed table must be what its generator measures from them now, and
//! the reprs we build must be the ones each interpreter prints.

use crate::common::{printed, regenerate};
use std::process::Command;
use tracer::reader::printable::{PRINTABLE_IN_EVERY_VERSION, UNPRINTABLE_IN_EVERY_VERSION};
use tracer::reader::values::code_points_repr;

/// The `// Versions: 3.8 3.9 ...` line of a generated file.
fn versions(text: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix("// Versions: "))
        .unwrap_or_default()
        .to_owned()
}

/// The ranges of the table `name` in a generated file's text.
fn table(text: &str, name: &str) -> Vec<(u32, u32)> {
    let start = text
        .find(&format!("pub static {name}:"))
        .unwrap_or_else(|| panic!("no table {name}"));
    let body = &text[start..];
    let body = &body[body.find("= &[").unwrap()..body.find("];").unwrap()];
    body.split('(')
        .skip(1)
        .map(|pair| {
            let (first, last) = pair.split_once(", ").unwrap();
            let hex = |s: &str| {
                u32::from_str_radix(
                    s.trim_end_matches([')', ',', ' ', '\n'])
                        .trim_start_matches("0x"),
                    16,
                )
                .unwrap()
            };
            (hex(first), hex(last.split(')').next().unwrap()))
        })
        .collect()
}

fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether every code point of `inner` lies in `outer`.
fn covered(inner: &[(u32, u32)], outer: &[(u32, u32)]) -> bool {
    inner.iter().all(|&(first, last)| {
        outer
            .iter()
            .any(|&(o_first, o_last)| o_first <= first && last <= o_last)
    })
}

#[test]
fn committed_printable_table_is_what_the_generator_measures_now() {
    let (committed, fresh) = regenerate("src/reader/printable", "printable");
    // The committed tables must be exactly the parsed statics the library uses.
    assert_eq!(
        table(&committed, "PRINTABLE_IN_EVERY_VERSION"),
        PRINTABLE_IN_EVERY_VERSION
    );
    assert_eq!(
        table(&committed, "UNPRINTABLE_IN_EVERY_VERSION"),
        UNPRINTABLE_IN_EVERY_VERSION
    );
    if versions(&committed) == versions(&fresh) {
        assert_eq!(
            without_comments(&committed),
            without_comments(&fresh),
            "the committed printability table differs from the installed interpreters'; \
             regenerate with python3 src/reader/printable/generate.py"
        );
        println!(
            "printable table: regenerated from {}, identical",
            versions(&fresh)
        );
    } else {
        // Fewer versions here: what all of the committed ones agree on, these agree on too.
        println!(
            "SKIP: the printable table was generated from {}, only {} found here: checked for \
             inclusion only",
            versions(&committed),
            versions(&fresh)
        );
        for name in ["PRINTABLE_IN_EVERY_VERSION", "UNPRINTABLE_IN_EVERY_VERSION"] {
            assert!(
                covered(&table(&committed, name), &table(&fresh, name)),
                "{name}: a committed range disagrees with the installed interpreters"
            );
        }
    }
}

per_python!(
    /// Every 37th code point alone, and a few strings mixing quotes, controls and code points of
    /// every escape width, as each interpreter's `repr` shows them; ours must be the same whenever
    /// we give one.
    str_reprs_are_what_each_interpreter_prints,
    gil,
    |python| {
        let script = r#"
import json, sys
cases = [[c] for c in range(0, 0x110000, 37)]
cases += [[0x27, 0x2028, 0x22], [0x27, 0xe9, 0x0a], [0x5c, 0x378, 0x1f40d, 0x7f],
          [0x4e16, 0x200b, 0xd800, 0xe0001], [0x61, 0x1fae8]]
json.dump([[c, repr("".join(map(chr, c)))] for c in cases], sys.stdout)
"#;
        let out = Command::new(&python.path)
            .args(["-c", script])
            .output()
            .expect("running python");
        assert!(out.status.success(), "{}", printed(&out));
        let cases: Vec<(Vec<u32>, String)> = serde_json::from_slice(&out.stdout).unwrap();
        let (mut same, mut opaque) = (0usize, 0usize);
        for (code_points, theirs) in &cases {
            match code_points_repr(code_points, usize::MAX) {
                Some(ours) => {
                    assert_eq!(&ours, theirs, "{}: {code_points:x?}", python.label());
                    same += 1;
                }
                None => opaque += 1,
            }
        }
        assert!(same > cases.len() / 2, "{}: {same} decided", python.label());
        println!(
            "{}: {same} of {} strings' reprs built and identical, {opaque} left opaque \
             (printability differs between versions)",
            python.label(),
            cases.len()
        );
        Ok(())
    }
);
