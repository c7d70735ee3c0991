//! The results model: Python's `trace.CoverageResults`, plus the per-line "self" hits and
//! per-edge hits that sampling gives us for free.
//!
//! Keys are the ones Lib/trace.py uses, so the stdlib can read what we write:
//! - `counts`: `(filename, lineno) → hits`
//! - `calledfuncs`: `(filename, modulename, funcname)`
//! - `callers`: `((caller file, mod, func), (callee file, mod, func))`

use std::collections::{BTreeMap, BTreeSet};

/// A function as trace names it: `(filename, modulename, funcname)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FuncKey {
    pub filename: String,
    pub modulename: String,
    pub funcname: String,
}

impl FuncKey {
    /// A function key with trace's module name derived from the file name.
    pub fn new(filename: &str, funcname: &str) -> FuncKey {
        FuncKey {
            filename: filename.to_owned(),
            modulename: module_name(filename),
            funcname: funcname.to_owned(),
        }
    }
}

/// Hits of one line: `hits` counts samples in which any frame stood on it, `self_hits` the
/// samples in which it was the innermost frame of some thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineHits {
    pub hits: u64,
    pub self_hits: u64,
}

/// `trace.CoverageResults`: what ran, how often, who called whom.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoverageResults {
    /// `(filename, lineno) → hits`.
    pub counts: BTreeMap<(String, u32), LineHits>,
    /// Every function seen running.
    pub calledfuncs: BTreeSet<FuncKey>,
    /// `(caller, callee) → samples in which the edge was on a stack` (trace itself stores 1).
    pub callers: BTreeMap<(FuncKey, FuncKey), u64>,
}

impl CoverageResults {
    /// Merge `other` into `self` as `CoverageResults.update` does: counts are summed, functions
    /// and edges unioned. Self hits and edge hits, which trace does not have, are summed too.
    pub fn update(&mut self, other: &CoverageResults) {
        for (key, hits) in &other.counts {
            let entry = self.counts.entry(key.clone()).or_default();
            entry.hits += hits.hits;
            entry.self_hits += hits.self_hits;
        }
        self.calledfuncs.extend(other.calledfuncs.iter().cloned());
        for (edge, hits) in &other.callers {
            *self.callers.entry(edge.clone()).or_default() += hits;
        }
    }

    /// The distinct files with at least one counted line.
    pub fn files(&self) -> BTreeSet<&str> {
        self.counts.keys().map(|(file, _)| file.as_str()).collect()
    }

    /// Lines hit in `filename`, with their hits.
    pub fn lines_of<'a>(&'a self, filename: &'a str) -> impl Iterator<Item = (u32, LineHits)> + 'a {
        self.counts
            .range((filename.to_owned(), 0)..=(filename.to_owned(), u32::MAX))
            .map(|((_, line), hits)| (*line, *hits))
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.calledfuncs.is_empty() && self.callers.is_empty()
    }
}

/// trace's `_modname`: the file's base name without its extension.
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    // os.path.splitext: the extension starts at the last dot, unless the name is all
    // leading dots before it (".bashrc" has no extension).
    match base.rfind('.') {
        Some(dot) if base[..dot].chars().any(|c| c != '.') => base[..dot].to_owned(),
        _ => base.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_name_follows_splitext() {
        assert_eq!(module_name("/a/b/spam.py"), "spam");
        assert_eq!(module_name("spam.tar.gz"), "spam.tar");
        assert_eq!(module_name("/a/.hidden"), ".hidden");
        assert_eq!(module_name("/a/..x.py"), "..x");
        assert_eq!(
            module_name("<frozen importlib._bootstrap>"),
            "<frozen importlib"
        );
        assert_eq!(module_name("noext"), "noext");
    }

    #[test]
    fn update_sums_counts_and_unions_the_rest() {
        let f = FuncKey::new("/x/a.py", "f");
        let g = FuncKey::new("/x/a.py", "g");
        let mut a = CoverageResults::default();
        a.counts.insert(
            ("/x/a.py".into(), 3),
            LineHits {
                hits: 2,
                self_hits: 1,
            },
        );
        a.calledfuncs.insert(f.clone());
        a.callers.insert((f.clone(), g.clone()), 2);
        let mut b = CoverageResults::default();
        b.counts.insert(
            ("/x/a.py".into(), 3),
            LineHits {
                hits: 5,
                self_hits: 0,
            },
        );
        b.counts.insert(
            ("/x/a.py".into(), 4),
            LineHits {
                hits: 1,
                self_hits: 1,
            },
        );
        b.calledfuncs.insert(f.clone());
        b.calledfuncs.insert(g.clone());
        b.callers.insert((f.clone(), g.clone()), 3);
        a.update(&b);
        assert_eq!(
            a.counts[&("/x/a.py".to_owned(), 3)],
            LineHits {
                hits: 7,
                self_hits: 1
            }
        );
        assert_eq!(a.counts[&("/x/a.py".to_owned(), 4)].hits, 1);
        assert_eq!(a.calledfuncs.len(), 2);
        assert_eq!(a.callers[&(f, g)], 5);
    }
}
