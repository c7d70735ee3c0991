//! Finding the interpreter in the target: its version, `_PyRuntime`, the layout that applies,
//! and the main `PyInterpreterState`.
//!
//! py-spy's process discovery parses the target's python binary and libpython (symbols
//! relocated to where they are mapped) and detects the version. `_PyRuntime` is then found by
//! its symbol, else by the `.PyRuntime` ELF section (3.13 puts it there), else, on 3.13+, by
//! scanning the binaries' writable mappings for the `_Py_DebugOffsets` cookie `xdebugpy` that
//! starts it.

use super::direct::Target;
use super::layout::{self, Layout};
use super::memory::TargetMemory;
use anyhow::{anyhow, bail, Context};
use py_spy::python_process_info::{get_python_version, PythonProcessInfo};

/// The start of `_PyRuntime` on 3.13+: `_Py_DebugOffsets.cookie`.
const DEBUG_COOKIE: &[u8; 8] = b"xdebugpy";
/// Bytes scanned for the cookie at most.
const MAX_COOKIE_SCAN: usize = 64 << 20;

/// How `_PyRuntime` was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeFoundBy {
    Symbol,
    Section,
    CookieScan,
}

/// What discovery found.
pub struct Discovered {
    /// The target's version, as `3.12.1`.
    pub version_text: String,
    pub version: (u8, u8),
    /// The interpreter, or `None` when the version has no layout (2.7, 3.6, 3.7): the py-spy
    /// reader serves those.
    pub target: Option<(Target, RuntimeFoundBy)>,
}

/// Find the interpreter of `pid`.
pub fn find_target(pid: i32) -> anyhow::Result<Discovered> {
    let process = remoteprocess::Process::new(pid).context("cannot open the process")?;
    let info = PythonProcessInfo::new(&process).context("cannot find the Python binary")?;
    let full = get_python_version(&info, &process).context("cannot tell the Python version")?;
    let version = (full.major as u8, full.minor as u8);
    let version_text = format!("{}.{}.{}", full.major, full.minor, full.patch);
    let generated = layout::layout_for(version);
    if generated.is_none() && version < (3, 13) {
        return Ok(Discovered {
            version_text,
            version,
            target: None,
        });
    }
    let mut memory = TargetMemory::open(pid).map_err(|e| anyhow!("{e}"))?;
    let (runtime, found_by) = find_runtime(pid, &info, &mut memory, version)?;
    let layout: Layout = if version >= (3, 13) {
        let mut head = vec![0u8; layout::debug_offsets::bytes_to_read()];
        memory
            .read(runtime, &mut head)
            .map_err(|e| anyhow!("cannot read _PyRuntime: {e}"))?;
        layout::debug_offsets::layout_from_debug_offsets(&head)
            .map_err(|e| anyhow!("cannot use _Py_DebugOffsets: {e}"))?
    } else {
        *generated.ok_or_else(|| anyhow!("no layout for Python {}.{}", version.0, version.1))?
    };
    let interpreter = memory
        .read_usize(runtime + layout.runtime_interpreters_head)
        .map_err(|e| anyhow!("cannot read the interpreter list: {e}"))?;
    if interpreter == 0 {
        bail!("the interpreter is not initialised yet");
    }
    let code_type = *info
        .get_symbol("PyCode_Type")
        .ok_or_else(|| anyhow!("no PyCode_Type symbol in the Python binary"))?
        as usize;
    Ok(Discovered {
        version_text,
        version,
        target: Some((
            Target {
                memory: Box::new(memory),
                layout,
                interpreter,
                code_type,
            },
            found_by,
        )),
    })
}

fn find_runtime(
    pid: i32,
    info: &PythonProcessInfo,
    memory: &mut TargetMemory,
    version: (u8, u8),
) -> anyhow::Result<(usize, RuntimeFoundBy)> {
    if let Some(address) = info.get_symbol("_PyRuntime") {
        return Ok((*address as usize, RuntimeFoundBy::Symbol));
    }
    let section = [&info.libpython_binary, &info.python_binary]
        .into_iter()
        .flatten()
        .map(|b| b.pyruntime_addr)
        .find(|a| *a != 0);
    if let Some(address) = section {
        return Ok((address as usize, RuntimeFoundBy::Section));
    }
    if version >= (3, 13) {
        if let Some(address) = scan_for_cookie(pid, memory)? {
            return Ok((address, RuntimeFoundBy::CookieScan));
        }
    }
    bail!("cannot find _PyRuntime: no symbol, no .PyRuntime section, no debug cookie")
}

/// Scan the writable mappings of the python binary and libpython for the debug cookie.
pub fn scan_for_cookie(pid: i32, memory: &mut TargetMemory) -> anyhow::Result<Option<usize>> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut scanned = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(range), Some(perms), Some(path)) = (fields.first(), fields.get(1), fields.get(5))
        else {
            continue;
        };
        let name = path.rsplit('/').next().unwrap_or(path);
        if !perms.starts_with("rw")
            || !(name.starts_with("python") || name.starts_with("libpython"))
        {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let mut at = start;
        while at < end && scanned < MAX_COOKIE_SCAN {
            let len = buf.len().min(end - at);
            if memory.read(at, &mut buf[..len]).is_ok() {
                if let Some(pos) = buf[..len]
                    .chunks_exact(8)
                    .position(|word| word == DEBUG_COOKIE)
                {
                    return Ok(Some(at + pos * 8));
                }
            }
            scanned += len;
            at += len;
        }
    }
    Ok(None)
}
