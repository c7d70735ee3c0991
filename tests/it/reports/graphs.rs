//! The stack formats in their consumers: flame graph SVG, collapsed, speedscope, dot.

use super::*;

#[test]
fn flame_formats_open_in_their_consumers() {
    let t = traced();
    let dir = workdir("reports-flame");
    let (results, _) = tracer::output::load_results(&dir.join("mix.json")).unwrap();
    let stacks = results.stacks.expect("JSON from a trace holds stacks");
    let total: u64 = stacks.samples.values().sum();
    assert!(total > 100, "thread samples: {total}");

    // Folded stacks: `frame;frame count`, frames `func (file:line)`.
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "collapsed",
            "-o",
            "mix.folded",
        ],
        &dir,
    );
    let folded = std::fs::read_to_string(dir.join("mix.folded")).unwrap();
    let mut folded_total = 0u64;
    for line in folded.lines() {
        let (stack, count) = line.rsplit_once(' ').expect("stack and count");
        folded_total += count.parse::<u64>().expect("a count");
        for frame in stack.split(';') {
            let (func, place) = frame.split_once(" (").expect("func (file:line)");
            assert!(!func.is_empty() && place.ends_with(')'), "{frame}");
            let (_, line_no) = place.trim_end_matches(')').rsplit_once(':').unwrap();
            line_no.parse::<u32>().expect("a line number");
        }
    }
    assert_eq!(folded_total, total);
    let mix = workload("mix.py");
    assert!(
        folded.contains(&format!("fib ({}:", mix.display())),
        "fib appears in the folded stacks"
    );

    // The SVG parses as XML (Python's xml.etree) and has a frame per stack node.
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "flamegraph",
            "-o",
            "mix.svg",
        ],
        &dir,
    );
    let out = run_ok(
        &t.python.path,
        &[
            "-c",
            "import sys, xml.etree.ElementTree as ET\n\
             root = ET.parse(sys.argv[1]).getroot()\n\
             assert root.tag.endswith('svg'), root.tag\n\
             titles = [e.text for e in root.iter() if e.tag.endswith('title')]\n\
             assert any('fib (' in (t or '') for t in titles), titles[:5]\n\
             print(len(titles))",
            "mix.svg",
        ],
        &dir,
    );
    let frames: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(frames > 5, "{frames} frames drawn");

    // speedscope: the schema's structure, and the same weights.
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "speedscope",
            "-o",
            "mix.speedscope.json",
        ],
        &dir,
    );
    run_ok(
        &t.python.path,
        &[
            support("speedscope_check.py").to_str().unwrap(),
            "mix.speedscope.json",
        ],
        &dir,
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("mix.speedscope.json")).unwrap()).unwrap();
    let weights: u64 = doc["profiles"][0]["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_u64().unwrap())
        .sum();
    assert_eq!(weights, total);

    // A pickle cannot hold stacks: a one-line error, no file.
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "pickle",
            "-o",
            "mix.pickle",
        ],
        &dir,
    );
    for format in ["collapsed", "flamegraph", "speedscope"] {
        let out = run_tracer(
            &[
                "report",
                "--file",
                "mix.pickle",
                "--format",
                format,
                "-o",
                "out",
            ],
            &dir,
            TIMEOUT,
        );
        assert_one_line_error(&out, &["needs whole stacks"]);
        assert!(!dir.join("out").exists());
    }
}

#[test]
fn dot_graph_parses_with_pydot() {
    let tools = report_tools();
    let dir = workdir("reports-dot");
    tracer_ok(
        &[
            "report",
            "--file",
            "mix.json",
            "--format",
            "dot",
            "-o",
            "callers.dot",
        ],
        &dir,
    );
    let (results, _) = tracer::output::load_results(&dir.join("mix.json")).unwrap();
    let out = run_ok(
        &tools.python(),
        &[
            "-c",
            "import sys, pydot\n\
             (g,) = pydot.graph_from_dot_file(sys.argv[1])\n\
             edges = g.get_edges()\n\
             assert all(int(e.get('weight')) >= 1 for e in edges)\n\
             print(len([n for n in g.get_nodes() if n.get_name().startswith('f')]), len(edges))",
            "callers.dot",
        ],
        &dir,
    );
    let counts: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(
        counts,
        vec![results.calledfuncs.len(), results.callers.len()]
    );
}
