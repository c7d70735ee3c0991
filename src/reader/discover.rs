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
use crate::reader::PyVersion;
use crate::target::{proc, process};
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
    pub version: PyVersion,
    /// The interpreter, or `None` when the version has no layout: 2.7, 3.6, 3.7 (py-spy's
    /// reader serves those) or a version newer than tracer knows (refused).
    pub target: Option<(Target, RuntimeFoundBy)>,
    /// The address of `_PyRuntime._finalizing` (with a target).
    pub finalizing: Option<usize>,
}

/// How to find the interpreter's binaries and symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiscoveryMethod {
    /// py-spy's discovery, falling back to ours from the memory maps.
    #[default]
    Auto,
    /// Ours only: the memory maps and the ELF files they name, never `/proc/PID/exe` nor the
    /// executable bit (under qemu-user `/proc/PID/exe` is qemu and code maps show as `r--p`).
    Maps,
}

/// What discovery needs from the interpreter's binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbols {
    pub version: PyVersion,
    /// As `3.12.1`.
    pub version_text: String,
    /// `_PyRuntime` by its symbol, and by the `.PyRuntime` ELF section.
    pub runtime_symbol: Option<usize>,
    pub runtime_section: Option<usize>,
    /// `&PyCode_Type`.
    pub code_type: Option<usize>,
}

/// Find the interpreter of `pid`.
pub fn find_target(pid: i32) -> anyhow::Result<Discovered> {
    find_target_with(pid, DiscoveryMethod::Auto)
}

/// Find the interpreter of `pid` by `method`.
pub fn find_target_with(pid: i32, method: DiscoveryMethod) -> anyhow::Result<Discovered> {
    let symbols = match method {
        DiscoveryMethod::Auto => match symbols_by_py_spy(pid) {
            Ok(symbols) => symbols,
            Err(e) => symbols_from_maps(pid)
                .map_err(|ours| e.context(format!("and from the memory maps: {ours:#}")))?,
        },
        DiscoveryMethod::Maps => symbols_from_maps(pid)?,
    };
    let version = symbols.version;
    let version_text = symbols.version_text.clone();
    let generated = layout::layout_for(version);
    // No layout (2.7, 3.6, 3.7, or newer than tracer knows): the caller decides what to do. A
    // 3.13+ runtime's debug offsets need the base layout of their version too.
    if generated.is_none() {
        return Ok(Discovered {
            version_text,
            version,
            target: None,
            finalizing: None,
        });
    }
    let mut memory = TargetMemory::open(pid).map_err(|e| anyhow!("{e}"))?;
    let (runtime, found_by) = find_runtime(pid, &symbols, &mut memory, version)?;
    let layout: Layout = if version >= PyVersion::new(3, 13) {
        let mut head = vec![0u8; layout::debug_offsets::bytes_to_read()];
        memory
            .read(runtime, &mut head)
            .map_err(|e| anyhow!("cannot read _PyRuntime: {e}"))?;
        layout::debug_offsets::layout_from_debug_offsets(&head)
            .map_err(|e| anyhow!("cannot use _Py_DebugOffsets: {e}"))?
    } else {
        *generated.ok_or_else(|| anyhow!("no layout for Python {version}"))?
    };
    // The main interpreter: `interpreters.head` is the newest, a subinterpreter's once one
    // exists (an idle one has no threads at all). The reader lists the others from the
    // runtime, after the main one.
    let interpreter = memory
        .read_usize(runtime + layout.runtime_interpreters_main)
        .map_err(|e| anyhow!("cannot read the main interpreter: {e}"))?;
    if interpreter == 0 {
        bail!("the interpreter is not initialised yet");
    }
    let code_type = symbols
        .code_type
        .ok_or_else(|| anyhow!("no PyCode_Type symbol in the Python binary"))?;
    Ok(Discovered {
        version_text,
        version,
        finalizing: Some(runtime + layout.runtime_finalizing),
        target: Some((
            Target {
                memory: Box::new(memory),
                layout,
                interpreter,
                code_type,
                runtime,
            },
            found_by,
        )),
    })
}

/// py-spy's discovery: the binaries behind `/proc/PID/exe` and libpython, symbols relocated,
/// and its version detection.
fn symbols_by_py_spy(pid: i32) -> anyhow::Result<Symbols> {
    let process = remoteprocess::Process::new(pid).context("cannot open the process")?;
    let info = PythonProcessInfo::new(&process).context("cannot find the Python binary")?;
    let full = get_python_version(&info, &process).context("cannot tell the Python version")?;
    let runtime_section = [&info.libpython_binary, &info.python_binary]
        .into_iter()
        .flatten()
        .map(|b| b.pyruntime_addr as usize)
        .find(|a| *a != 0);
    Ok(Symbols {
        version: PyVersion::new(
            u8::try_from(full.major).context("implausible Python major version")?,
            u8::try_from(full.minor).context("implausible Python minor version")?,
        ),
        version_text: format!("{}.{}.{}", full.major, full.minor, full.patch),
        runtime_symbol: info.get_symbol("_PyRuntime").map(|a| *a as usize),
        runtime_section,
        code_type: info.get_symbol("PyCode_Type").map(|a| *a as usize),
    })
}

/// Largest ELF file parsed, in bytes.
const MAX_ELF_BYTES: u64 = 512 << 20;

/// Our discovery from `/proc/PID/maps`: the mapped libpython (else python binary) by file name,
/// parsed with goblin from the target's root, its load bias from where its first page is
/// mapped; the version from `Py_Version` (3.11+) in memory, else from the file name.
pub fn symbols_from_maps(pid: i32) -> anyhow::Result<Symbols> {
    let maps = proc::maps(pid).with_context(|| format!("cannot read the memory maps of {pid}"))?;
    // (start, file offset, path) of every file-backed mapping.
    let mappings: Vec<(usize, usize, &str)> = maps
        .iter()
        .filter_map(|m| Some((m.start, m.offset, m.file()?)))
        .collect();
    // The interpreter by file name alone (process::looks_like_python), libpython first: with
    // a shared build the symbols are there, not in the small python binary.
    let is_libpython = |p: &&str| p.rsplit('/').next().unwrap_or(p).starts_with("libpython");
    let pythons = mappings
        .iter()
        .map(|m| m.2)
        .filter(|p| process::looks_like_python(p));
    let mut candidates: Vec<&str> = pythons
        .clone()
        .filter(is_libpython)
        .chain(pythons.filter(|p| !is_libpython(p)))
        .collect();
    candidates.dedup();
    let mut errors = Vec::new();
    for path in candidates {
        match symbols_of_binary(pid, path, &mappings) {
            Ok(symbols)
                if symbols.runtime_symbol.is_some() || symbols.runtime_section.is_some() =>
            {
                return Ok(symbols)
            }
            Ok(_) => errors.push(format!("{path}: no _PyRuntime")),
            Err(e) => errors.push(format!("{path}: {e:#}")),
        }
    }
    bail!(
        "no Python binary with _PyRuntime mapped ({})",
        errors.join("; ")
    )
}

fn symbols_of_binary(
    pid: i32,
    path: &str,
    mappings: &[(usize, usize, &str)],
) -> anyhow::Result<Symbols> {
    use goblin::elf::Elf;
    let base = mappings
        .iter()
        .filter(|m| m.2 == path && m.1 == 0)
        .map(|m| m.0)
        .min()
        .context("its first page is not mapped")?;
    let through_root = format!("/proc/{pid}/root{path}");
    let file = std::fs::File::open(&through_root).or_else(|_| std::fs::File::open(path))?;
    if file.metadata()?.len() > MAX_ELF_BYTES {
        bail!("larger than {MAX_ELF_BYTES} bytes");
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_ELF_BYTES), &mut bytes)?;
    let elf = Elf::parse(&bytes).context("not an ELF file goblin can parse")?;
    let first_load = elf
        .program_headers
        .iter()
        .filter(|h| h.p_type == goblin::elf::program_header::PT_LOAD)
        .map(|h| h.p_vaddr as usize & !0xfff)
        .min()
        .unwrap_or(0);
    let bias = if elf.header.e_type == goblin::elf::header::ET_EXEC {
        0
    } else {
        base.wrapping_sub(first_load)
    };
    let symbol = |wanted: &str| {
        elf.dynsyms
            .iter()
            .filter_map(|s| Some((elf.dynstrtab.get_at(s.st_name)?, s)))
            .chain(
                elf.syms
                    .iter()
                    .filter_map(|s| Some((elf.strtab.get_at(s.st_name)?, s))),
            )
            .find(|(name, s)| *name == wanted && s.st_value != 0)
            .map(|(_, s)| bias.wrapping_add(s.st_value as usize))
    };
    let runtime_section = elf
        .section_headers
        .iter()
        .find(|h| elf.shdr_strtab.get_at(h.sh_name) == Some(".PyRuntime"))
        .map(|h| bias.wrapping_add(h.sh_addr as usize));
    let from_name = PyVersion::from_file_name(path);
    let mut memory = TargetMemory::open(pid).map_err(|e| anyhow!("{e}"))?;
    let from_memory = symbol("Py_Version").and_then(|address| {
        let mut word = [0u8; 4];
        memory.read(address, &mut word).ok()?;
        let hex = u32::from_le_bytes(word);
        let (major, minor, micro) = ((hex >> 24) as u8, (hex >> 16) as u8, (hex >> 8) as u8);
        (major == 3).then(|| {
            (
                PyVersion::new(major, minor),
                format!("{major}.{minor}.{micro}"),
            )
        })
    });
    let (version, version_text) = from_memory
        .or_else(|| from_name.map(|v| (v, v.to_string())))
        .context("cannot tell the Python version from Py_Version or the file name")?;
    Ok(Symbols {
        version,
        version_text,
        runtime_symbol: symbol("_PyRuntime"),
        runtime_section,
        code_type: symbol("PyCode_Type"),
    })
}

fn find_runtime(
    pid: i32,
    symbols: &Symbols,
    memory: &mut TargetMemory,
    version: PyVersion,
) -> anyhow::Result<(usize, RuntimeFoundBy)> {
    if let Some(address) = symbols.runtime_symbol {
        return Ok((address, RuntimeFoundBy::Symbol));
    }
    if let Some(address) = symbols.runtime_section {
        return Ok((address, RuntimeFoundBy::Section));
    }
    if version >= PyVersion::new(3, 13) {
        if let Some(address) = scan_for_cookie(pid, memory)? {
            return Ok((address, RuntimeFoundBy::CookieScan));
        }
    }
    bail!("cannot find _PyRuntime: no symbol, no .PyRuntime section, no debug cookie")
}

/// Scan the writable mappings of the python binary and libpython for the debug cookie.
pub fn scan_for_cookie(pid: i32, memory: &mut TargetMemory) -> anyhow::Result<Option<usize>> {
    let mut scanned = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    for mapping in proc::maps(pid)? {
        let Some(path) = mapping.file() else {
            continue;
        };
        let name = path.rsplit('/').next().unwrap_or(path);
        if !(mapping.readable() && mapping.writable())
            || !(name.starts_with("python") || name.starts_with("libpython"))
        {
            continue;
        }
        let (start, end) = (mapping.start, mapping.end);
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

/// Where each way of finding `_PyRuntime` points, for checking that they agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeAddresses {
    pub symbol: Option<usize>,
    pub section: Option<usize>,
    /// 3.13+ only (older versions have no cookie).
    pub cookie: Option<usize>,
}

/// Every way of finding `_PyRuntime` in `pid`, each tried on its own, by `method`'s symbols.
/// For tests (tests/it/discovery.rs checks that the ways agree); the binary uses [`find_target`].
pub fn runtime_addresses(pid: i32, method: DiscoveryMethod) -> anyhow::Result<RuntimeAddresses> {
    let symbols = match method {
        DiscoveryMethod::Auto => symbols_by_py_spy(pid)?,
        DiscoveryMethod::Maps => symbols_from_maps(pid)?,
    };
    let mut memory = TargetMemory::open(pid).map_err(|e| anyhow!("{e}"))?;
    Ok(RuntimeAddresses {
        symbol: symbols.runtime_symbol,
        section: symbols.runtime_section,
        cookie: scan_for_cookie(pid, &mut memory)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_file_names() {
        assert_eq!(
            PyVersion::from_file_name("python3.11"),
            Some(PyVersion::new(3, 11))
        );
        assert_eq!(
            PyVersion::from_file_name("libpython3.12.so.1.0"),
            Some(PyVersion::new(3, 12))
        );
        assert_eq!(
            PyVersion::from_file_name("libpython3.9d.so"),
            Some(PyVersion::new(3, 9))
        );
        assert_eq!(PyVersion::from_file_name("python"), None);
        assert_eq!(PyVersion::from_file_name("libc.so.6"), None);
    }
}
