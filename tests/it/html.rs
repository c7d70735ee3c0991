//! `--format html` opened in headless Chromium (Debian's chromium, installed by `make test`'s
//! setup), with the network cut off: the DOM it builds holds the workload's hot line as run,
//! with its hits, a missed line marked, the summary row and the callers of a function; a
//! screenshot is taken (target/test-scratch/html/page.png, to look at).

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        eprintln!("SKIP: no chromium (Debian's; `make test` installs it): html not opened");
    }
    found
}

/// Chromium, headless, offline (a proxy that does not exist), with a fresh profile.
fn headless(chromium: &Path, dir: &Path, args: &[&str], page: &Path) -> Vec<u8> {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--proxy-server=127.0.0.1:9",
            "--window-size=1200,1400",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium {args:?}: {}", printed(&out));
    out.stdout
}

#[test]
fn chromium_shows_the_sources_as_they_ran() {
    let Some(chromium) = chromium() else { return };
    let python = newest_python();
    let dir = scratch("html");
    let out = run_workload(
        &python.path,
        workload("mix.py"),
        &["--rate", "2000", "--format", "json", "-o", "mix.json"],
        "1.5",
        &dir,
    );
    assert!(out.status.success(), "{}", printed(&out));
    let report = [
        "report",
        "-f",
        "mix.json",
        "--format",
        "html",
        "-o",
        "page.html",
    ];
    let out = run_tracer(&report, &dir, TIMEOUT);
    assert!(out.status.success(), "{}", printed(&out));
    let page = dir.join("page.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: links only within the page, nothing loaded, no script. (Quotes in the
    // sources are escaped, so an attribute can only be the page's own.)
    assert!(
        html.match_indices("href=\"")
            .all(|(at, m)| html[at + m.len()..].starts_with('#')),
        "links leave the page"
    );
    let style = &html[html.find("<style>").unwrap()..html.find("</style>").unwrap()];
    assert!(
        !html.contains(" src=\"")
            && !html.contains("<link")
            && !html.contains("<script")
            && !style.contains("url(")
            && !style.contains("@import"),
        "the page loads or runs something"
    );

    let dom =
        String::from_utf8_lossy(&headless(&chromium, &dir, &["--dump-dom"], &page)).into_owned();
    let (results, _) = tracer::output::load_results(&dir.join("mix.json")).unwrap();
    let mix = workload("mix.py").display().to_string();
    let row_of = |text: &str| {
        let at = dom
            .find(text)
            .unwrap_or_else(|| panic!("{text:?} not in the DOM"));
        let start = dom[..at].rfind("<tr").unwrap();
        let end = at + dom[at..].find("</tr>").unwrap();
        dom[start..end].to_owned()
    };
    // The hot line, as run, with its hits as our JSON counts them.
    let hot = row_of("yield i * i");
    let line: u32 = hot
        .split("<td class=\"no\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .and_then(|s| s.parse().ok())
        .expect("a line number");
    let hits = results.counts[&(mix.clone(), line)];
    assert!(hot.contains("class=\"ran\""), "{hot}");
    assert!(
        hot.contains(&format!("<td class=\"hits\">{}</td>", hits.hits))
            && hot.contains(&format!("<td class=\"self\">{}</td>", hits.self_hits)),
        "{hot} against {hits:?}"
    );
    // Executable lines of mix.py never seen running are marked; none of them is in the counts.
    let section = {
        let at = dom
            .find(&format!(">{mix}</h2>"))
            .expect("a section for mix.py");
        &dom[at..at + dom[at..].find("</table>").unwrap()]
    };
    let missed: Vec<u32> = section
        .match_indices("<tr class=\"missed\" id=\"")
        .filter_map(|(at, _)| {
            let row = &section[at..at + section[at..].find("</tr>")?];
            row.split("<td class=\"no\">")
                .nth(1)?
                .split('<')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(!missed.is_empty(), "some line of mix.py is marked missed");
    for line in &missed {
        assert!(
            !results.counts.contains_key(&(mix.clone(), *line)),
            "line {line} ran"
        );
    }
    let ran = section.matches("<tr class=\"ran\"").count();
    assert_eq!(
        ran,
        results.lines_of(&mix).count(),
        "every line counted is shaded"
    );
    // The summary names the workload's module, and the functions table fib's callers.
    assert!(
        dom.contains(&format!("<td>{mix}</td>")),
        "summary row of mix.py"
    );
    let fib = row_of("<td>fib (");
    assert!(fib.contains("fib (") && fib.contains('×'), "{fib}");

    let png = dir.join("page.png");
    headless(
        &chromium,
        &dir,
        &[&format!("--screenshot={}", png.display())],
        &page,
    );
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "a real picture"
    );
    eprintln!("html: screenshot at {}", png.display());
}
