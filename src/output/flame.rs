//! Flame graphs from whole stacks: folded stacks (`--format collapsed`), an SVG drawn by
//! inferno (`--format flamegraph`) and a speedscope profile (`--format speedscope`).
//!
//! A frame is written `func (file:line)`: the function's name as recorded (`co_qualname` on
//! 3.11+, `co_name` before) and the line it stood on. Stacks go outermost first. A stack's
//! weight is the number of thread samples that stood exactly on it.

use crate::aggregate::model::{CoverageResults, StackFrame, Stacks};
use crate::output::Format;
use anyhow::Context;
use serde_json::json;
use std::collections::BTreeMap;

/// The stacks of `results`, or the one-line reason `format` cannot be drawn from them.
pub fn stacks_of(results: &CoverageResults, format: Format) -> anyhow::Result<&Stacks> {
    let stacks = results.stacks.as_ref().with_context(|| {
        format!(
            "--format {} needs whole stacks, which these results do not hold (trace's pickle \
             and coverage.py's file cannot): record with --format json, or convert a JSON file",
            format.name()
        )
    })?;
    if stacks.dropped > 0 {
        eprintln!(
            "tracer: warning: {} thread samples of stacks beyond the kept maximum are not drawn",
            stacks.dropped
        );
    }
    Ok(stacks)
}

/// One frame as folded-stack text: `func (file:line)`. `;` separates frames in the folded
/// format, so a `;` inside a name is written as `:`.
pub fn frame_label(frame: &StackFrame) -> String {
    format!(
        "{} ({}:{})",
        frame.func.funcname, frame.func.filename, frame.line
    )
    .replace(';', ":")
}

/// Folded stacks: one `frame;frame;... count` line per stack, outermost frame first.
pub fn collapsed(stacks: &Stacks) -> String {
    let mut out = String::new();
    for (stack, count) in stacks.by_frames() {
        let labels: Vec<String> = stack.iter().map(frame_label).collect();
        out.push_str(&labels.join(";"));
        out.push_str(&format!(" {count}\n"));
    }
    out
}

/// A flame graph SVG of `stacks`, drawn by inferno.
pub fn flamegraph_svg(stacks: &Stacks, title: &str) -> anyhow::Result<Vec<u8>> {
    let folded = collapsed(stacks);
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_owned();
    options.count_name = "samples".to_owned();
    let mut svg = Vec::new();
    if folded.is_empty() {
        // inferno refuses an empty profile; an empty graph is still a graph.
        options.subtitle = Some("no stacks were sampled".to_owned());
        inferno::flamegraph::from_lines(&mut options, ["(no samples) 0"], &mut svg)
            .or_else(|_| empty_svg(title, &mut svg))?;
        return Ok(svg);
    }
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
        .context("inferno could not draw the flame graph")?;
    Ok(svg)
}

fn empty_svg(title: &str, svg: &mut Vec<u8>) -> std::io::Result<()> {
    svg.clear();
    let escaped = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    svg.extend_from_slice(
        format!(
            "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg version=\"1.1\" width=\"1200\" \
             height=\"60\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"600\" y=\"30\" \
             text-anchor=\"middle\">{escaped}: no stacks were sampled</text></svg>\n"
        )
        .as_bytes(),
    );
    Ok(())
}

/// A speedscope file (https://www.speedscope.app/file-format-schema.json): one sampled
/// profile, frames shared, each distinct stack one sample weighted by its thread samples.
pub fn speedscope(stacks: &Stacks, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut frame_index: BTreeMap<&StackFrame, usize> = BTreeMap::new();
    let mut frames = Vec::new();
    let mut samples = Vec::new();
    let mut weights = Vec::new();
    for (stack, count) in stacks.by_frames() {
        let mut indexes = Vec::with_capacity(stack.len());
        for frame in stack {
            let index = *frame_index.entry(frame).or_insert_with(|| {
                frames.push(json!({
                    "name": frame.func.funcname,
                    "file": frame.func.filename,
                    "line": frame.line,
                }));
                frames.len() - 1
            });
            indexes.push(index);
        }
        samples.push(indexes);
        weights.push(count);
    }
    let total: u64 = weights.iter().sum();
    let document = json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "exporter": format!("tracer {}", env!("CARGO_PKG_VERSION")),
        "name": name,
        "activeProfileIndex": 0,
        "shared": {"frames": frames},
        "profiles": [{
            "type": "sampled",
            "name": name,
            "unit": "none",
            "startValue": 0,
            "endValue": total,
            "samples": samples,
            "weights": weights,
        }],
    });
    let mut bytes = serde_json::to_vec(&document)?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::model::{FuncKey, StackKey};

    fn stacks() -> Stacks {
        let main = FuncKey::new("/app/m.py", "<module>");
        let f = FuncKey::new("/app/m.py", "K.f");
        let frame = |func: &FuncKey, line| StackFrame {
            func: func.clone(),
            line,
        };
        let mut s = Stacks::default();
        let stack = StackKey::of_frames;
        s.samples
            .insert(stack(vec![frame(&main, 10), frame(&f, 3)]), 7);
        s.samples.insert(stack(vec![frame(&main, 11)]), 2);
        s
    }

    #[test]
    fn folded_lines_name_function_file_and_line() {
        assert_eq!(
            collapsed(&stacks()),
            "<module> (/app/m.py:10);K.f (/app/m.py:3) 7\n<module> (/app/m.py:11) 2\n"
        );
    }

    #[test]
    fn svg_and_speedscope_are_written() {
        let svg = String::from_utf8(flamegraph_svg(&stacks(), "t").unwrap()).unwrap();
        assert!(svg.contains("<svg") && svg.contains("K.f (/app/m.py:3)"));
        let empty = flamegraph_svg(&Stacks::default(), "t").unwrap();
        assert!(String::from_utf8(empty).unwrap().contains("<svg"));
        let doc: serde_json::Value =
            serde_json::from_slice(&speedscope(&stacks(), "n").unwrap()).unwrap();
        assert_eq!(doc["profiles"][0]["weights"], json!([7, 2]));
        assert_eq!(doc["profiles"][0]["samples"], json!([[0, 1], [2]]));
        assert_eq!(doc["shared"]["frames"][1]["name"], "K.f");
    }
}
