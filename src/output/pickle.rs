//! The trace module's results pickle: the tuple `(counts, calledfuncs, callers)` that
//! `python -m trace --file F` writes and `--report --file F` reads.
//!
//! Written with protocol 2, which every Python since 2.3 reads. `counts` values are hits;
//! `calledfuncs` values are 1 as trace writes them; `callers` values are the edge's hits
//! (trace writes 1 and never reads the value).

use crate::aggregate::model::{CoverageResults, FuncKey, LineHits};
use crate::reader::PyVersion;
use anyhow::{bail, Context};
use serde_pickle::value::{HashableValue as Key, Value};
use serde_pickle::{DeOptions, SerOptions};
use std::collections::BTreeMap;

/// Whether the trace module of Python `version` can read a results pickle holding call edges.
/// Python 3.8 and 3.9's `CoverageResults.__init__` passes the loaded `callers` into its
/// `infile` parameter and fails with a TypeError when it is not empty (fixed in 3.10).
pub fn trace_reads_callers(version: PyVersion) -> bool {
    !matches!((version.major, version.minor), (3, 8) | (3, 9))
}

/// Encode `results` as trace's pickle; `with_callers: false` writes an empty `callers`
/// (see [`trace_reads_callers`]).
pub fn to_vec(results: &CoverageResults, with_callers: bool) -> anyhow::Result<Vec<u8>> {
    let counts: BTreeMap<Key, Value> = results
        .counts
        .iter()
        .map(|((file, line), hits)| {
            (
                Key::Tuple(vec![Key::String(file.clone()), Key::I64(*line as i64)]),
                Value::I64(hits.hits as i64),
            )
        })
        .collect();
    let calledfuncs: BTreeMap<Key, Value> = results
        .calledfuncs
        .iter()
        .map(|f| (func_key(f), Value::I64(1)))
        .collect();
    let callers: BTreeMap<Key, Value> = results
        .callers
        .iter()
        .filter(|_| with_callers)
        .map(|((caller, callee), hits)| {
            (
                Key::Tuple(vec![func_key(caller), func_key(callee)]),
                Value::I64(*hits as i64),
            )
        })
        .collect();
    let value = Value::Tuple(vec![
        Value::Dict(counts),
        Value::Dict(calledfuncs),
        Value::Dict(callers),
    ]);
    Ok(serde_pickle::value_to_vec(
        &value,
        SerOptions::new().proto_v2(),
    )?)
}

fn func_key(f: &FuncKey) -> Key {
    Key::Tuple(vec![
        Key::String(f.filename.clone()),
        Key::String(f.modulename.clone()),
        Key::String(f.funcname.clone()),
    ])
}

/// Decode a trace pickle (any protocol trace or we write).
pub fn from_slice(bytes: &[u8]) -> anyhow::Result<CoverageResults> {
    let value = serde_pickle::value_from_slice(bytes, DeOptions::new().decode_strings())
        .context("not a pickle")?;
    let parts = match value {
        Value::Tuple(parts) | Value::List(parts) if parts.len() == 3 => parts,
        _ => bail!("expected the tuple (counts, calledfuncs, callers)"),
    };
    let mut parts = parts.into_iter();
    let (counts, calledfuncs, callers) = (
        dict(parts.next(), "counts")?,
        dict(parts.next(), "calledfuncs")?,
        dict(parts.next(), "callers")?,
    );
    let mut results = CoverageResults::default();
    for (key, value) in counts {
        let Key::Tuple(key) = key else {
            bail!("a counts key is not a (filename, lineno) tuple")
        };
        let [file, line] = key.as_slice() else {
            bail!("a counts key is not a (filename, lineno) tuple")
        };
        let file = string(file).context("a counts filename is not a string")?;
        let line = integer(&line.clone().into_value())
            .filter(|l| (0..=u32::MAX as i64).contains(l))
            .context("a counts line number is not a line number")?;
        let hits = integer(&value)
            .filter(|h| *h >= 0)
            .context("a counts value is not a hit count")?;
        let entry = results
            .counts
            .entry((file, line as u32))
            .or_insert(LineHits::default());
        entry.hits = entry.hits.saturating_add(hits as u64);
    }
    for (key, _) in calledfuncs {
        results
            .calledfuncs
            .insert(func(&key).context("a calledfuncs key")?);
    }
    for (key, value) in callers {
        let Key::Tuple(pair) = key else {
            bail!("a callers key is not a (caller, callee) tuple")
        };
        let [caller, callee] = pair.as_slice() else {
            bail!("a callers key is not a (caller, callee) tuple")
        };
        let hits = integer(&value).filter(|h| *h > 0).unwrap_or(1) as u64;
        results.callers.insert(
            (
                func(caller).context("a callers key")?,
                func(callee).context("a callers key")?,
            ),
            hits,
        );
    }
    Ok(results)
}

fn dict(value: Option<Value>, what: &str) -> anyhow::Result<BTreeMap<Key, Value>> {
    match value {
        Some(Value::Dict(d)) => Ok(d),
        _ => bail!("{what} is not a dict"),
    }
}

fn string(key: &Key) -> Option<String> {
    match key {
        Key::String(s) => Some(s.clone()),
        Key::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::I64(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        Value::Int(big) => i64::try_from(big.clone()).ok(),
        _ => None,
    }
}

/// `(filename, modulename, funcname)`; trace stores `None` as the module of a code with no file.
fn func(key: &Key) -> anyhow::Result<FuncKey> {
    let Key::Tuple(parts) = key else {
        bail!("is not a (filename, modulename, funcname) tuple")
    };
    let [file, module, name] = parts.as_slice() else {
        bail!("is not a (filename, modulename, funcname) tuple")
    };
    let text = |k: &Key| match k {
        Key::None => Some(String::new()),
        other => string(other),
    };
    Ok(FuncKey {
        filename: text(file).context("filename is not a string")?,
        modulename: text(module).context("modulename is not a string")?,
        funcname: text(name).context("funcname is not a string")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_our_own_reader() {
        let mut r = CoverageResults::default();
        r.counts.insert(
            ("/a/ü.py".into(), 7),
            LineHits {
                hits: 12,
                self_hits: 3,
            },
        );
        let f = FuncKey::new("/a/ü.py", "grüße");
        let g = FuncKey::new("/a/b.py", "K.m");
        r.calledfuncs.insert(f.clone());
        r.calledfuncs.insert(g.clone());
        r.callers.insert((f, g), 4);
        let back = from_slice(&to_vec(&r, true).unwrap()).unwrap();
        assert!(from_slice(&to_vec(&r, false).unwrap())
            .unwrap()
            .callers
            .is_empty());
        assert_eq!(back.counts[&("/a/ü.py".to_owned(), 7)].hits, 12);
        assert_eq!(back.calledfuncs, r.calledfuncs);
        assert_eq!(back.callers, r.callers);
    }

    #[test]
    fn rejects_what_is_not_a_results_pickle() {
        assert!(from_slice(b"").is_err());
        assert!(from_slice(b"garbage").is_err());
        let not_tuple = serde_pickle::value_to_vec(&Value::I64(3), SerOptions::new()).unwrap();
        assert!(from_slice(&not_tuple).is_err());
    }
}
