//! The callers graph in Graphviz's dot language (`--format dot`): a node per function, an
//! edge per caller → callee pair, labelled and weighted by its hits (samples in which the
//! edge was on some stack). Pen width grows with the edge's share of the heaviest edge.

use crate::aggregate::model::{CoverageResults, FuncKey};
use std::collections::BTreeMap;

/// A dot string literal: quoted, with `"` and `\` escaped and newlines as `\n`.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The callers graph of `results` as a dot digraph.
pub fn dot(results: &CoverageResults) -> String {
    let mut ids: BTreeMap<&FuncKey, usize> = BTreeMap::new();
    for f in results
        .calledfuncs
        .iter()
        .chain(results.callers.keys().flat_map(|(a, b)| [a, b]))
    {
        let next = ids.len();
        ids.entry(f).or_insert(next);
    }
    let heaviest = results.callers.values().copied().max().unwrap_or(1).max(1);
    let mut out = String::from(
        "digraph callers {\n  node [shape=box, fontname=\"monospace\"];\n  \
         edge [fontname=\"monospace\"];\n",
    );
    for (f, id) in &ids {
        let label = format!("{}.{}\n{}", f.modulename, f.funcname, f.filename);
        out.push_str(&format!("  f{id} [label={}];\n", quoted(&label)));
    }
    for ((caller, callee), hits) in &results.callers {
        let width = 1.0 + 4.0 * (*hits as f64 / heaviest as f64);
        out.push_str(&format!(
            "  f{} -> f{} [label=\"{hits}\", weight={hits}, penwidth={width:.2}];\n",
            ids[caller], ids[callee]
        ));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_weighted_edges() {
        let mut r = CoverageResults::default();
        let a = FuncKey::new("/x/a.py", "main");
        let b = FuncKey::new("/x/a.py", "say \"hi\"");
        r.calledfuncs.insert(a.clone());
        r.calledfuncs.insert(b.clone());
        r.callers.insert((a, b), 42);
        let text = dot(&r);
        assert!(text.starts_with("digraph callers {\n"));
        assert!(text.contains("label=\"a.say \\\"hi\\\"\\n/x/a.py\""));
        assert!(text.contains("f0 -> f1 [label=\"42\", weight=42, penwidth=5.00];"));
        assert!(text.ends_with("}\n"));
    }
}
