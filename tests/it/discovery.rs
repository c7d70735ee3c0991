//! Finding the interpreter: every way of finding `_PyRuntime` (symbol, `.PyRuntime` section,
//! the 3.13+ debug cookie) agrees on every Python found, Debian's statically linked build
//! included, whether the symbols come from py-spy's discovery or from ours (the memory maps and
//! the ELF files they name, never /proc/PID/exe), and our reader works on each.

use crate::common::*;
use std::time::Duration;
use tracer::reader::discover::{
    find_target, find_target_with, runtime_addresses, symbols_from_maps, DiscoveryMethod,
};

per_python!(
    every_way_of_finding_the_runtime_agrees,
    gil,
    runtime_found_every_way
);

/// Debian's statically linked 3.11: another build of a version, found the same ways.
#[test]
fn every_way_of_finding_the_runtime_agrees_on_a_static_build() {
    match debian_python() {
        Some(python) => runtime_found_every_way(&python).unwrap(),
        None => println!("SKIP: no Debian /usr/bin/python3.11 (statically linked) found"),
    }
}

/// `_PyRuntime` found by symbol, section and cookie alike, from py-spy's discovery and from our
/// maps; the version from the maps; our reader has a layout.
fn runtime_found_every_way(python: &Python) -> Result<(), String> {
    let target = Workload::start(python, &workload("mix.py"), 10.0);
    let found = runtime_addresses(target.pid(), DiscoveryMethod::Auto).unwrap();
    // Our own discovery from the memory maps finds the same, without /proc/PID/exe.
    let ours = runtime_addresses(target.pid(), DiscoveryMethod::Maps).unwrap();
    assert_eq!(ours, found, "{}: maps-based discovery", python.label());
    let symbols = symbols_from_maps(target.pid()).unwrap();
    assert_eq!(
        symbols.version,
        python.version,
        "{}: version from the maps",
        python.label()
    );
    let by_maps = find_target_with(target.pid(), DiscoveryMethod::Maps).unwrap();
    assert!(by_maps.target.is_some(), "{}", python.label());
    let symbol = found.symbol.expect("_PyRuntime symbol");
    if python.version >= PyVersion::new(3, 11) {
        assert_eq!(
            found.section,
            Some(symbol),
            "{}: .PyRuntime section",
            python.label()
        );
    }
    if python.version >= PyVersion::new(3, 13) {
        assert_eq!(
            found.cookie,
            Some(symbol),
            "{}: debug cookie",
            python.label()
        );
    } else {
        assert_eq!(
            found.cookie,
            None,
            "{}: no cookie before 3.13",
            python.label()
        );
    }
    let discovered = find_target(target.pid()).unwrap();
    assert!(
        discovered.target.is_some(),
        "{}: our reader has a layout",
        python.label()
    );
    println!("{}: _PyRuntime at 0x{symbol:x}: {found:?}", python.label());
    Ok(())
}

/// A Python installed under a directory whose name holds spaces (two of them, side by side) is
/// found, traced, and its lines are reported: `/proc/PID/maps` gives the path as the rest of
/// its line, not as one whitespace-separated field.
#[test]
fn a_python_under_a_path_with_spaces_is_traced() {
    let Some(debian) = debian_python() else {
        println!("SKIP: no Debian /usr/bin/python3.11 (statically linked) to copy");
        return;
    };
    let dir = scratch("path with spaces").join("my  python/bin");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("python3.11");
    std::fs::copy(&debian.path, &copy).unwrap();
    let python = Python {
        path: copy.clone(),
        version: debian.version,
        free_threaded: false,
    };
    let target = Workload::start(&python, &workload("mix.py"), 10.0);
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", target.pid())).unwrap();
    assert!(
        maps.contains(copy.to_str().unwrap()),
        "the copy is what runs: {maps}"
    );
    let symbols = symbols_from_maps(target.pid()).unwrap();
    assert_eq!(symbols.version, debian.version);
    let out_dir = scratch("path with spaces out");
    let traced = attach_and_load(
        target.pid(),
        &["--duration", "1"],
        &out_dir,
        Duration::from_secs(30),
    );
    assert!(
        traced
            .results
            .counts
            .keys()
            .any(|(file, _)| file.ends_with("mix.py")),
        "lines of mix.py were traced: {}",
        printed(&traced.out)
    );
}
