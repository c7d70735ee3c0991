//! `--format html`: one self-contained page (inline CSS, no script, nothing fetched) with
//! - the summary table: per file, its executable lines, those that ran, coverage, samples;
//! - each source file's lines shaded by hits (the sample count of a line, on a log scale) with
//!   a bar for self hits, executable lines that never ran marked, likely-but-unproven lines
//!   (`tracer snapshot`) marked apart;
//! - per function, its callers and callees with the samples of each edge.
//!
//! Sources are read as the target saw them ([`Sources`]); a file that cannot be read is listed
//! with the reason, its lines left out.

use crate::aggregate::model::{CoverageResults, FuncKey};
use crate::output::cover::{full_module_name, PRAGMA_NOCOVER};
use crate::output::RunInfo;
use crate::source::{expand_tabs, SourceText, Sources};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; }
td, th { padding: 0.15em 0.6em; text-align: left; }
th { border-bottom: 1px solid #999; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
table.src { font: 12.5px/1.35 ui-monospace, monospace; width: 100%; }
table.src td { padding: 0 0.5em; white-space: pre; }
table.src td.no, table.src td.hits, table.src td.self { color: #777; text-align: right; }
table.src td.bar { width: 4em; padding: 0; }
table.src td.bar span { display: inline-block; height: 0.8em; background: #e07b00; }
tr.missed td.code { background: #fdd; }
tr.missed td.no { border-left: 4px solid #d33; }
tr.likely td.no { border-left: 4px solid #e9b; }
.legend span { padding: 0 0.5em; margin-right: 1em; }
.note { color: #666; }
";

/// The page for `results`.
pub fn page(results: &CoverageResults, info: &RunInfo, sources: &Sources) -> String {
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    let likely: BTreeSet<(&str, u32)> = info.likely.iter().map(|(f, l)| (f.as_str(), *l)).collect();
    for recorded in results.files() {
        if recorded.starts_with('<') && recorded.ends_with('>') {
            continue;
        }
        match sources.read(recorded) {
            Ok(bytes) => files.push(file_section(results, recorded, &bytes, sources, &likely)),
            Err(e) => unreadable.push(format!("{}: {e}", recorded)),
        }
    }
    let mut out = String::new();
    let title = match info.target.command_line.as_str() {
        "" => "tracer".to_owned(),
        command => format!("tracer: {command}"),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let stats = &info.stats;
    let _ = writeln!(
        out,
        "<p class=\"note\">pid {} · Python {} · {} samples in {:.1} s at {} Hz requested · {} \
         errors · {} missed ticks · {} truncated stacks</p>",
        info.target.pid,
        escape(&info.target.python_version),
        stats.samples,
        stats.duration_s,
        info.rate_requested,
        stats.errors,
        stats.missed,
        stats.truncated
    );
    out.push_str(
        "<p class=\"legend\"><span style=\"background:rgba(40,110,220,.35)\">ran (darker: more \
         samples)</span><span style=\"background:#fdd\">executable, never seen running</span>\
         <span style=\"border-left:4px solid #e9b\">likely, not proven</span>\
         <span style=\"border-left:2em solid #e07b00\">self samples (innermost frame)</span></p>\n",
    );
    out.push_str(
        "<h2>Summary</h2>\n<table class=\"summary\"><tr><th>module</th><th>path</th>\
         <th>lines</th><th>ran</th><th>cov%</th><th>self samples</th></tr>\n",
    );
    // The most sampled files first: where the time went.
    files.sort_by(|a, b| {
        b.self_samples
            .cmp(&a.self_samples)
            .then_with(|| a.path.cmp(&b.path))
    });
    for f in &files {
        let percent = (100 * f.ran).checked_div(f.executable).unwrap_or(100);
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#{}\">{}</a></td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{percent}%</td><td class=\"n\">{}</td></tr>",
            f.anchor,
            escape(&f.module),
            escape(&f.path),
            f.executable,
            f.ran,
            f.self_samples
        );
    }
    out.push_str("</table>\n");
    for line in &unreadable {
        let _ = writeln!(out, "<p class=\"note\">not shown: {}</p>", escape(line));
    }
    for f in &files {
        out.push_str(&f.html);
    }
    out.push_str(&functions_section(results));
    out.push_str("</body></html>\n");
    out
}

/// One source file's part of the page.
struct FileSection {
    module: String,
    path: String,
    anchor: String,
    executable: usize,
    ran: usize,
    self_samples: u64,
    html: String,
}

fn file_section(
    results: &CoverageResults,
    filename: &str,
    bytes: &[u8],
    sources: &Sources,
    likely: &BTreeSet<(&str, u32)>,
) -> FileSection {
    let hits: BTreeMap<u32, (u64, u64)> = results
        .lines_of(filename)
        .map(|(l, h)| (l, (h.hits, h.self_hits)))
        .collect();
    let source = SourceText::decode(bytes);
    let executable = sources.executable_lines(&source);
    let max_hits = hits.values().map(|h| h.0).max().unwrap_or(1).max(1);
    let max_self = hits.values().map(|h| h.1).max().unwrap_or(1).max(1);
    let anchor = format!("f{:x}", fnv1a(filename.as_bytes()));
    let module = full_module_name(filename);
    let mut html = String::new();
    let _ = writeln!(
        html,
        "<h2 id=\"{anchor}\">{}</h2>\n<table class=\"src\"><tr><th>line</th><th>hits</th>\
         <th>self</th><th></th><th>source</th></tr>",
        escape(filename)
    );
    let (mut ran, mut counted) = (0usize, 0usize);
    let mut self_samples = 0u64;
    for (index, text) in source.lines().iter().enumerate() {
        let lineno = index as u32 + 1;
        let text = expand_tabs(text.trim_end_matches(['\n', '\r']));
        let (class, style, hit_cells) = match hits.get(&lineno) {
            Some(&(n, own)) => {
                ran += 1;
                counted += 1;
                self_samples += own;
                // A log scale: one sample is visible, the hottest line darkest.
                let alpha = 0.12 + 0.5 * ((n as f64).ln_1p() / (max_hits as f64).ln_1p());
                let width = 100.0 * own as f64 / max_self as f64;
                (
                    "ran",
                    format!(" style=\"background:rgba(40,110,220,{alpha:.2})\""),
                    format!(
                        "<td class=\"hits\">{n}</td><td class=\"self\">{own}</td>\
                         <td class=\"bar\"><span style=\"width:{width:.0}%\"></span></td>"
                    ),
                )
            }
            None if likely.contains(&(filename, lineno)) => (
                "likely",
                String::new(),
                "<td></td><td></td><td class=\"bar\"></td>".to_owned(),
            ),
            None if executable.contains(&lineno) && !text.contains(PRAGMA_NOCOVER) => {
                counted += 1;
                (
                    "missed",
                    String::new(),
                    "<td></td><td></td><td class=\"bar\"></td>".to_owned(),
                )
            }
            None => (
                "plain",
                String::new(),
                "<td></td><td></td><td class=\"bar\"></td>".to_owned(),
            ),
        };
        let _ = writeln!(
            html,
            "<tr class=\"{class}\" id=\"{anchor}-{lineno}\"><td class=\"no\">{lineno}</td>\
             {hit_cells}<td class=\"code\"{style}>{}</td></tr>",
            escape(&text)
        );
    }
    html.push_str("</table>\n");
    FileSection {
        module,
        path: filename.to_owned(),
        anchor,
        executable: counted,
        ran,
        self_samples,
        html,
    }
}

/// Per function, its callers and callees with the samples of each edge.
fn functions_section(results: &CoverageResults) -> String {
    let mut callers: BTreeMap<&FuncKey, Vec<(&FuncKey, u64)>> = BTreeMap::new();
    let mut callees: BTreeMap<&FuncKey, Vec<(&FuncKey, u64)>> = BTreeMap::new();
    for ((caller, callee), &hits) in &results.callers {
        callers.entry(callee).or_default().push((caller, hits));
        callees.entry(caller).or_default().push((callee, hits));
    }
    let name = |f: &FuncKey| format!("{} ({})", escape(&f.funcname), escape(&f.filename));
    let list = |edges: Option<&Vec<(&FuncKey, u64)>>| {
        let mut edges = edges.cloned().unwrap_or_default();
        edges.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        edges
            .iter()
            .map(|(f, hits)| format!("{} ×{hits}", name(f)))
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let mut out = String::from(
        "<h2 id=\"functions\">Functions: callers and callees</h2>\n<table class=\"functions\">\
         <tr><th>function</th><th>called by (samples)</th><th>calls (samples)</th></tr>\n",
    );
    for func in &results.calledfuncs {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            name(func),
            list(callers.get(func)),
            list(callees.get(func))
        );
    }
    out.push_str("</table>\n");
    out
}

/// Text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::model::LineHits;

    #[test]
    fn names_from_the_target_cannot_open_markup() {
        assert_eq!(
            escape("<script>\"a\" & 'b'\u{1b}[2J"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;\u{fffd}[2J"
        );
    }

    #[test]
    fn a_page_marks_ran_missed_and_likely_lines_and_lists_edges() {
        let dir = std::env::temp_dir().join(format!("tracer-html-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("m.py");
        std::fs::write(&file, "def f():\n    return 1\n\nx = 2\nf()\n").unwrap();
        let file = file.to_str().unwrap().to_owned();
        let mut results = CoverageResults::default();
        for (line, hits) in [(1, 3), (5, 9)] {
            results
                .counts
                .insert((file.clone(), line), LineHits { hits, self_hits: 1 });
        }
        let module = FuncKey::new(&file, "<module>");
        let f = FuncKey::new(&file, "f");
        results.calledfuncs.insert(module.clone());
        results.calledfuncs.insert(f.clone());
        results.callers.insert((module, f), 4);
        let info = RunInfo {
            likely: vec![(file.clone(), 2)],
            ..RunInfo::default()
        };
        let html = page(
            &results,
            &info,
            &Sources::local(Some(crate::reader::PyVersion::new(3, 12))),
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let row = |n: u32| {
            let start = html.find(&format!("-{n}\"><td class=\"no\">{n}<")).unwrap();
            let tr = html[..start].rfind("<tr").unwrap();
            html[tr..start].to_owned()
        };
        assert!(row(1).contains("class=\"ran\""), "{}", row(1));
        assert!(row(2).contains("class=\"likely\""), "{}", row(2));
        assert!(row(4).contains("class=\"missed\""), "{}", row(4));
        assert!(row(3).contains("class=\"plain\""), "{}", row(3));
        assert!(html.contains("&lt;module&gt;"));
        assert!(html.contains("×4"));
        assert!(!html.contains("http"), "nothing fetched from the network");
    }
}
