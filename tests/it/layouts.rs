//! The per-version layouts against the interpreters installed here: the committed table must be
//! what the generator measures from their headers now, and the `_Py_DebugOffsets` of 3.13+
//! (static data in libpython or the executable) must agree with their generated layouts.

use crate::common::{all_pythons, printed, pythons_under_test, regenerate, PyVersion, Python};
use std::path::{Path, PathBuf};
use std::process::Command;
use tracer::reader::layout::debug_offsets::{
    bytes_to_read, layout_from_debug_offsets, DebugOffsets, DebugOffsetsError,
};
use tracer::reader::layout::{layout_for, layout_for_build, DEBUG_OFFSETS_LAYOUTS, LAYOUTS};

/// The newest minor version with a committed layout.
fn newest_minor() -> u8 {
    LAYOUTS.last().expect("generated layouts").version.minor
}

/// The text of each `pub const NAME: ... = ...;` item of a generated file, comment lines left
/// out (they name the patch versions measured, which may differ without the layout changing).
fn items(text: &str) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub const ") {
            let name = rest.split(':').next().unwrap_or_default().to_owned();
            current = Some((name, String::new()));
        }
        if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
            if line == "};" {
                items.extend(current.take());
            }
        }
    }
    items
}

fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn committed_table_is_what_the_generator_measures_now() {
    let (committed, fresh) = regenerate("src/reader/layout", "layouts");
    let committed_items = items(&committed);
    let fresh_items = items(&fresh);
    let mut all_present = true;
    // One past the newest committed: a version generated but not committed fails below.
    for minor in 8..=newest_minor() + 1 {
        let layout_name = format!("PY3_{minor}");
        let free_threaded_name = format!("PY3_{minor}T");
        let debug_name = format!("DEBUG_OFFSETS_PY3_{minor}");
        for name in [layout_name, free_threaded_name, debug_name] {
            let committed_item = committed_items.iter().find(|(n, _)| *n == name);
            let fresh_item = fresh_items.iter().find(|(n, _)| *n == name);
            match (committed_item, fresh_item) {
                (Some((_, committed)), Some((_, fresh))) => assert_eq!(
                    committed,
                    fresh,
                    "{name}: the committed table differs from the headers of the installed 3.{minor}; \
                     regenerate with python3 src/reader/layout/generate.py"
                ),
                (Some(_), None) => {
                    all_present = false;
                    println!("SKIP: {name} not checked: no CPython 3.{minor} headers found");
                }
                (None, Some(_)) => panic!("{name} is generated but not committed"),
                (None, None) => {}
            }
        }
    }
    if all_present {
        assert_eq!(
            without_comments(&committed),
            without_comments(&fresh),
            "generated.rs differs from a fresh generation outside the per-version items"
        );
    }
}

#[test]
fn every_interpreter_under_test_has_a_plausible_layout() {
    for python in pythons_under_test() {
        let layout = layout_for(python.version)
            .unwrap_or_else(|| panic!("{}: no generated layout", python.label()));
        layout.check_plausible().unwrap();
    }
    let builds: Vec<_> = LAYOUTS
        .iter()
        .map(|layout| (layout.version, layout.free_threaded))
        .collect();
    let mut expected: Vec<_> = (8..=15)
        .map(|minor| (PyVersion::new(3, minor), false))
        .collect();
    expected.insert(6, (PyVersion::new(3, 13), true));
    assert_eq!(
        builds, expected,
        "3.8 to 3.15 with the GIL and 3.13 free-threaded, oldest first"
    );
}

/// Candidate ELF files holding the interpreter's `_PyRuntime`: its shared libpython if it has
/// one, and the executable (a statically linked interpreter).
fn runtime_images(python: &Python) -> Vec<PathBuf> {
    let out = Command::new(&python.path)
        .args([
            "-c",
            "import os, sys, sysconfig\n\
             print(os.path.join(sysconfig.get_config_var('LIBDIR') or '', \
             sysconfig.get_config_var('INSTSONAME') or ''))\n\
             print(os.path.realpath(sys.executable))",
        ])
        .output()
        .expect("running python");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|path| path.is_file())
        .collect()
}

/// The initial bytes of `_PyRuntime`: the `.PyRuntime` section, where 3.13 places it.
fn py_runtime_section(image: &Path) -> Option<Vec<u8>> {
    let data = std::fs::read(image).ok()?;
    let elf = goblin::elf::Elf::parse(&data).ok()?;
    let section = elf
        .section_headers
        .iter()
        .find(|section| elf.shdr_strtab.get_at(section.sh_name) == Some(".PyRuntime"))?;
    let start = usize::try_from(section.sh_offset).ok()?;
    let end = start.checked_add(usize::try_from(section.sh_size).ok()?)?;
    data.get(start..end).map(<[u8]>::to_vec)
}

#[test]
fn debug_offsets_of_installed_3_13_and_later_agree_with_the_generated_layouts() {
    assert!(!DEBUG_OFFSETS_LAYOUTS.is_empty());
    for minor in DEBUG_OFFSETS_LAYOUTS
        .iter()
        .map(|debug| debug.version.minor)
    {
        match all_pythons()
            .into_iter()
            .find(|p| p.version == PyVersion::new(3, minor) && !p.free_threaded)
        {
            Some(python) => check_debug_offsets(&python),
            None => println!("SKIP: no Python 3.{minor} found: its debug offsets are not checked"),
        }
    }
    for layout in LAYOUTS.iter().filter(|layout| layout.free_threaded) {
        let minor = layout.version.minor;
        match all_pythons()
            .into_iter()
            .find(|p| p.version == layout.version && p.free_threaded)
        {
            Some(python) => check_debug_offsets(&python),
            None => println!(
                "SKIP: no Python 3.{minor}t found (make pythons-new builds it): its debug \
                 offsets are not checked"
            ),
        }
    }
}

fn check_debug_offsets(python: &Python) {
    let found = runtime_images(python)
        .into_iter()
        .find_map(|image| py_runtime_section(&image).map(|bytes| (image, bytes)));
    let Some((image, bytes)) = found else {
        panic!(
            "{}: no .PyRuntime section in its libpython or executable",
            python.label()
        );
    };

    let offsets =
        DebugOffsets::parse(&bytes).unwrap_or_else(|error| panic!("{}: {error}", image.display()));
    assert_eq!(offsets.version(), python.version);
    assert_eq!(offsets.free_threaded, python.free_threaded);
    let generated = layout_for_build(python.version, python.free_threaded).unwrap();
    let mut disagreements = Vec::new();
    for &(field, value) in &offsets.values {
        if field.get(generated) != Some(value) {
            disagreements.push(format!(
                "{field:?}: debug offsets {value}, generated {:?} ({})",
                field.get(generated),
                field.layout_field()
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{}: {}",
        image.display(),
        disagreements.join("; ")
    );
    assert_eq!(layout_from_debug_offsets(&bytes).as_ref(), Ok(generated));
    // What a reader of a live process would read: just enough bytes.
    assert_eq!(
        layout_from_debug_offsets(&bytes[..bytes_to_read()]).as_ref(),
        Ok(generated)
    );
    println!(
        "{}: {} fields of _Py_DebugOffsets (version {:#x}) agree with the generated 3.{}{} layout",
        image.display(),
        offsets.values.len(),
        offsets.version_hex,
        python.version.minor,
        if python.free_threaded { "t" } else { "" }
    );

    // The section is the whole _PyRuntime: cut short inside the debug offsets, it is refused.
    let short = &bytes[..offsets.layout.size - 1];
    assert!(matches!(
        layout_from_debug_offsets(short),
        Err(DebugOffsetsError::TooShort { .. })
    ));
}

/// The fields `tests/support/layout_probe.py` checks, as its `name=value` arguments (fields the
/// version lacks are left out).
fn probe_arguments(layout: &tracer::reader::layout::Layout) -> Vec<String> {
    let (fo, fi) = (
        layout.frames.frame_objects(),
        layout.frames.interpreter_frames(),
    );
    let plain = [
        (
            "runtime_interpreters_head",
            layout.runtime_interpreters_head,
        ),
        (
            "runtime_interpreters_main",
            layout.runtime_interpreters_main,
        ),
        ("interp_next", layout.interp_next),
        ("interp_id", layout.interp_id),
        ("interp_threads_head", layout.interp_threads_head),
        ("tstate_next", layout.tstate_next),
        ("tstate_interp", layout.tstate_interp),
        ("tstate_thread_id", layout.tstate_thread_id),
        ("iframe_code_tag_mask", layout.iframe_code_tag_mask),
        ("code_filename", layout.code_filename),
        ("code_name", layout.code_name),
        ("code_firstlineno", layout.code_firstlineno),
        ("code_flags", layout.code_flags),
        ("code_argcount", layout.code_argcount),
        ("code_nlocals", layout.code_nlocals),
        ("object_type", layout.object_type),
        ("var_object_size", layout.var_object_size),
        ("type_name", layout.type_name),
        ("bytes_sval", layout.bytes_sval),
        ("tuple_items", layout.tuple_items),
        ("unicode_ascii_size", layout.unicode_ascii_size),
        ("unicode_compact_size", layout.unicode_compact_size),
        ("unicode_length", layout.unicode_length),
        ("unicode_state", layout.unicode_state),
        ("dict_used", layout.dict_used),
        ("dict_keys", layout.dict_keys),
        ("dict_values", layout.dict_values),
    ];
    let optional = [
        ("tstate_native_thread_id", layout.tstate_native_thread_id),
        (
            "tstate_datastack_chunk",
            fi.map(|f| f.tstate_datastack_chunk),
        ),
        ("tstate_datastack_top", fi.map(|f| f.tstate_datastack_top)),
        (
            "tstate_datastack_limit",
            fi.map(|f| f.tstate_datastack_limit),
        ),
        ("stack_chunk_size", fi.map(|f| f.stack_chunk_size)),
        ("stack_chunk_data", fi.map(|f| f.stack_chunk_data)),
        ("frame_object_back", fo.map(|f| f.back)),
        ("frame_object_code", fo.map(|f| f.code)),
        ("frame_object_lasti", fo.map(|f| f.lasti)),
        ("iframe_previous", fi.map(|f| f.previous)),
        ("iframe_code", fi.map(|f| f.code)),
        ("iframe_instr_ptr", fi.map(|f| f.instr_ptr)),
        ("iframe_owner", fi.map(|f| f.owner)),
        ("code_qualname", layout.code_qualname),
        ("code_lnotab", layout.code_lnotab),
        ("code_linetable", layout.code_linetable),
        ("code_code", layout.code_code),
        ("code_code_adaptive", layout.code_code_adaptive),
        ("code_nlocalsplus", layout.code_nlocalsplus),
        ("code_varnames", layout.code_varnames),
        ("code_localsplusnames", layout.code_localsplusnames),
        (
            "frame_owned_by_cstack",
            fi.and_then(|f| f.owned_by_cstack).map(usize::from),
        ),
        (
            "frame_owned_by_interpreter",
            fi.and_then(|f| f.owned_by_interpreter).map(usize::from),
        ),
    ];
    use tracer::reader::layout::CurrentFrame;
    let current_frame: Vec<(&str, usize)> = match layout.current_frame {
        CurrentFrame::FrameObject { tstate_frame } => vec![("tstate_frame", tstate_frame)],
        CurrentFrame::ThroughCFrame {
            tstate_cframe,
            cframe_current_frame,
        } => vec![
            ("tstate_cframe", tstate_cframe),
            ("cframe_current_frame", cframe_current_frame),
        ],
        CurrentFrame::InThreadState {
            tstate_current_frame,
        } => vec![("tstate_current_frame", tstate_current_frame)],
    };
    use tracer::reader::layout::DictKeyTable;
    let dict_key_table: Vec<(&str, usize)> = match layout.dict_key_table {
        DictKeyTable::Sized {
            dict_keys_size,
            dict_keys_nentries,
            dict_keys_indices,
            dict_entry_size,
            dict_entry_key,
            dict_entry_value,
        } => vec![
            ("dict_keys_size", dict_keys_size),
            ("dict_keys_nentries", dict_keys_nentries),
            ("dict_keys_indices", dict_keys_indices),
            ("dict_entry_size", dict_entry_size),
            ("dict_entry_key", dict_entry_key),
            ("dict_entry_value", dict_entry_value),
        ],
        DictKeyTable::Log2 {
            dict_keys_log2_size,
            dict_keys_log2_index_bytes,
            dict_keys_kind,
            dict_keys_nentries,
            dict_keys_indices,
            dict_entry_size,
            dict_entry_key,
            dict_entry_value,
            dict_unicode_entry_size,
            dict_unicode_entry_key,
            dict_unicode_entry_value,
            dict_kind_general,
        } => vec![
            ("dict_keys_log2_size", dict_keys_log2_size),
            ("dict_keys_log2_index_bytes", dict_keys_log2_index_bytes),
            ("dict_keys_kind", dict_keys_kind),
            ("dict_keys_nentries", dict_keys_nentries),
            ("dict_keys_indices", dict_keys_indices),
            ("dict_entry_size", dict_entry_size),
            ("dict_entry_key", dict_entry_key),
            ("dict_entry_value", dict_entry_value),
            ("dict_unicode_entry_size", dict_unicode_entry_size),
            ("dict_unicode_entry_key", dict_unicode_entry_key),
            ("dict_unicode_entry_value", dict_unicode_entry_value),
            ("dict_kind_general", dict_kind_general),
        ],
    };
    let bits = [
        ("unicode_kind", Some(layout.unicode_kind)),
        ("unicode_compact", Some(layout.unicode_compact)),
        ("unicode_ascii", Some(layout.unicode_ascii)),
        ("unicode_ready", layout.unicode_ready),
    ];
    let mut arguments: Vec<String> = plain
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    for (name, value) in current_frame.into_iter().chain(dict_key_table) {
        arguments.push(format!("{name}={value}"));
    }
    for (name, value) in optional {
        arguments.extend(value.map(|value| format!("{name}={value}")));
    }
    for (name, value) in bits {
        arguments.extend(value.map(|bits| format!("{name}={},{}", bits.shift, bits.width)));
    }
    arguments
}

per_python!(
    /// Independent of the headers: each interpreter's own objects, frames and thread state, read in
    /// process through ctypes at the generated offsets, hold what Python says they hold.
    generated_offsets_read_each_interpreter_correctly_in_process,
    |python| {
        let probe = crate::common::support("layout_probe.py");
        let layout = layout_for_build(python.version, python.free_threaded).unwrap();
        let out = Command::new(&python.path)
            .arg(&probe)
            .args(probe_arguments(layout))
            .output()
            .expect("running the layout probe");
        let report = String::from_utf8_lossy(&out.stdout);
        let checks = report
            .lines()
            .filter(|line| line.starts_with("ok "))
            .count();
        assert!(
            out.status.success() && checks > 40,
            "{}: {}",
            python.label(),
            printed(&out)
        );
        println!("{}: {checks} in-process checks passed", python.label());
        Ok(())
    }
);
