//! The generated layouts: one per version, plausible, each field where its version has it.

use super::*;

/// A version with a layout is read, so every other per-version table must know it too:
/// otherwise a version added to the layout generator alone is attached to and silently
/// yields no lines (no line-table format), no `.cover` marks (no executable-line rules),
/// no snapshot (no opcode table), or opaque strings (not in the printable tables).
/// docs/new-python-version.md lists the generators to re-run.
#[test]
fn every_version_with_a_layout_has_every_per_version_table() {
    use crate::reader::linetable::{lookup_offset, LineTableFormat, RawFramePosition};
    for layout in LAYOUTS {
        let version = layout.version;
        assert!(
            LineTableFormat::for_version(version).is_some(),
            "{version:?}: no line-table format (src/reader/linetable/mod.rs)"
        );
        // The kind of position this version's frames store, as its layout says.
        let position = if layout.frames.frame_objects().is_some() {
            RawFramePosition::Lasti(0)
        } else {
            RawFramePosition::InstructionPointer {
                pointer: 0x1000,
                code_start: 0x1000,
            }
        };
        assert!(
            lookup_offset(version, position).is_some(),
            "{version:?}: lookup_offset knows no frame position (src/reader/linetable/mod.rs)"
        );
        assert!(
            crate::source::executable_lines::executable_lines("x = 1\n", version).is_ok(),
            "{version:?}: no executable-line rules (src/source/executable_lines/)"
        );
        if version >= crate::snapshot::FIRST_VERSION {
            assert!(
                crate::snapshot::opcodes::table_for(version).is_some(),
                "{version:?}: no opcode table (src/snapshot/opcodes/generate.py)"
            );
        }
        assert!(
            crate::reader::printable::VERSIONS.contains(&version),
            "{version:?}: not measured by src/reader/printable/generate.py"
        );
        if matches!(layout.current_frame, CurrentFrame::InThreadState { .. }) {
            assert!(
                DEBUG_OFFSETS_LAYOUTS
                    .iter()
                    .any(|debug| debug.version == version),
                "{version:?}: no _Py_DebugOffsets layout (src/reader/layout/generate.py)"
            );
        }
    }
    // And no table for a version the reader does not read.
    for table in crate::snapshot::opcodes::TABLES {
        assert!(layout_for(table.version).is_some(), "{:?}", table.version);
    }
    for version in crate::reader::printable::VERSIONS {
        assert!(layout_for(*version).is_some(), "{version:?}");
    }
    for debug in DEBUG_OFFSETS_LAYOUTS {
        assert!(layout_for(debug.version).is_some(), "{:?}", debug.version);
    }
}

#[test]
fn every_version_from_3_8_to_3_15_has_one_plausible_layout_per_build() {
    for minor in 8..=15 {
        let layout = layout_for(PyVersion::new(3, minor)).expect("generated layout");
        assert_eq!(layout.version, PyVersion::new(3, minor));
        layout
            .check_plausible()
            .unwrap_or_else(|error| panic!("3.{minor}: {error}"));
    }
    for layout in LAYOUTS.iter().filter(|layout| layout.free_threaded) {
        layout
            .check_plausible()
            .unwrap_or_else(|error| panic!("{}t: {error}", layout.version));
    }
    let mut builds: Vec<_> = LAYOUTS
        .iter()
        .map(|layout| (layout.version, layout.free_threaded))
        .collect();
    let listed = builds.clone();
    builds.sort();
    builds.dedup();
    assert_eq!(builds, listed, "one layout per build, in order");
    assert!(layout_for(PyVersion::new(3, 7)).is_none());
    assert!(layout_for(PyVersion::new(3, 16)).is_none());
}

#[test]
fn each_version_has_exactly_its_own_way_to_the_current_frame() {
    for layout in LAYOUTS {
        let minor = layout.version.minor;
        let ways = [
            matches!(layout.current_frame, CurrentFrame::FrameObject { .. }),
            matches!(layout.current_frame, CurrentFrame::ThroughCFrame { .. }),
            matches!(layout.current_frame, CurrentFrame::InThreadState { .. }),
        ];
        let expected = match minor {
            8..=10 => [true, false, false],
            11 | 12 => [false, true, false],
            _ => [false, false, true],
        };
        assert_eq!(ways, expected, "3.{minor}");
        let instruction = match minor {
            8 | 9 => FrameInstruction::LastiBytes,
            10 => FrameInstruction::LastiCodeUnits,
            11 | 12 => FrameInstruction::PrevInstr,
            _ => FrameInstruction::InstrPtr,
        };
        assert_eq!(layout.frame_instruction, instruction, "3.{minor}");
    }
}

#[test]
fn fields_exist_in_the_versions_that_have_them() {
    for layout in LAYOUTS {
        let minor = layout.version.minor;
        assert_eq!(layout.code_lnotab.is_some(), minor <= 9, "3.{minor} lnotab");
        assert_eq!(layout.code_linetable.is_some(), minor >= 10, "3.{minor}");
        assert_eq!(layout.code_qualname.is_some(), minor >= 11, "3.{minor}");
        assert_eq!(layout.code_code.is_some(), minor <= 10, "3.{minor}");
        assert_eq!(layout.code_code_adaptive.is_some(), minor >= 11);
        assert_eq!(layout.tstate_native_thread_id.is_some(), minor >= 11);
        assert_eq!(layout.frames.interpreter_frames().is_some(), minor >= 11);
        assert_eq!(layout.frames.frame_objects().is_some(), minor <= 10);
        assert_eq!(layout.unicode_ready.is_some(), minor <= 11, "3.{minor}");
        if let Some(frames) = layout.frames.interpreter_frames() {
            // 3.15 dropped FRAME_OWNED_BY_CSTACK (entry frames are the interpreter's, 3.14+).
            assert_eq!(frames.owned_by_cstack.is_some(), (12..=14).contains(&minor));
            assert_eq!(frames.owned_by_interpreter.is_some(), minor >= 14);
        }
        assert_eq!(layout.interp_code_object_generation.is_some(), minor >= 14);
        // 3.14's f_executable is a _PyStackRef: its tag bits (Py_TAG_BITS) are masked.
        assert_eq!(layout.iframe_code_tag_mask, if minor >= 14 { 3 } else { 0 });
        let snapshot = minor >= 11;
        assert_eq!(layout.interp_imports_modules.is_some(), snapshot);
        assert_eq!(layout.code_warmup.is_some(), minor == 11);
        assert_eq!(layout.code_warmup_start, (minor == 11).then_some(8));
        assert_eq!(
            matches!(layout.dict_key_table, DictKeyTable::Sized { .. }),
            minor <= 10
        );
        assert_eq!(
            matches!(layout.dict_key_table, DictKeyTable::Log2 { .. }),
            minor >= 11
        );
        assert_eq!(layout.function_code.is_some(), snapshot);
        assert_eq!(layout.code_consts.is_some(), snapshot);
        assert_eq!(layout.code_exceptiontable.is_some(), snapshot);
    }
}

#[test]
fn unicode_state_bits_are_distinct_and_sized_as_documented() {
    for layout in LAYOUTS {
        assert_eq!(layout.unicode_kind.width, 3, "{:?}", layout.version);
        assert_eq!(layout.unicode_compact.width, 1);
        assert_eq!(layout.unicode_ascii.width, 1);
        let mut seen = 0u32;
        for bits in [
            Some(layout.unicode_kind),
            Some(layout.unicode_compact),
            Some(layout.unicode_ascii),
            layout.unicode_ready,
        ]
        .into_iter()
        .flatten()
        {
            let mask = ((1u32 << bits.width) - 1) << bits.shift;
            assert_eq!(seen & mask, 0, "{:?}: overlapping bits", layout.version);
            seen |= mask;
        }
    }
}

#[test]
fn bitfield_extracts_without_overflow() {
    let kind = Bitfield { shift: 2, width: 3 };
    assert_eq!(kind.extract(0b1_0110), 0b101);
    assert_eq!(
        Bitfield {
            shift: 0,
            width: 32
        }
        .extract(u32::MAX),
        u32::MAX
    );
    assert_eq!(
        Bitfield {
            shift: 40,
            width: 3
        }
        .extract(u32::MAX),
        0
    );
    assert_eq!(
        Bitfield {
            shift: 31,
            width: 1
        }
        .extract(1 << 31),
        1
    );
}

#[test]
fn implausible_layouts_are_refused() {
    let good = *layout_for(PyVersion::new(3, 12)).unwrap();
    let mut bad = good;
    bad.tstate_next = bad.tstate_size;
    assert!(bad.check_plausible().is_err());
    let mut bad = good;
    if let Frames::InterpreterFrames(frames) = &mut bad.frames {
        frames.owner = frames.localsplus;
    }
    assert!(bad.check_plausible().is_err());
    let mut bad = good;
    bad.frames = layout_for(PyVersion::new(3, 10)).unwrap().frames;
    assert!(bad.check_plausible().is_err());
    let mut bad = good;
    bad.code_size = usize::MAX;
    assert!(bad.check_plausible().is_err());
    let mut bad = good;
    bad.code_filename = usize::MAX;
    assert!(bad.check_plausible().is_err());
    let mut bad = good;
    bad.unicode_kind = Bitfield {
        shift: 31,
        width: 3,
    };
    assert!(bad.check_plausible().is_err());
}
