//! `--ignore-module` and `--ignore-dir`, with the semantics of Lib/trace.py's `_Ignore`:
//! a module is ignored by its name or as a submodule of an ignored name (`spam` ignores
//! `spam.eggs` but not `spammy`), where the name is trace's `_modname` of the file; a file is
//! ignored when its path starts with an ignored directory plus `/`. Code from `<string>` is
//! always ignored, as trace does. Like trace, filters apply to line counts only.

use crate::model::module_name;

/// Which files' lines are left out.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    modules: Vec<String>,
    dirs: Vec<String>,
}

impl Filter {
    /// Build from the command-line values; each may be a comma-separated list (modules) or a
    /// `:`-separated list (directories), as trace accepts.
    pub fn new(modules: &[String], dirs: &[String]) -> Filter {
        Filter {
            modules: modules
                .iter()
                .flat_map(|m| m.split(','))
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .collect(),
            dirs: dirs
                .iter()
                .flat_map(|d| d.split(':'))
                .filter(|d| !d.is_empty())
                .map(|d| normpath(&expand_user(d)))
                .collect(),
        }
    }

    /// True if lines of `filename` are left out.
    pub fn ignores(&self, filename: &str) -> bool {
        let module = module_name(filename);
        if module == "<string>" {
            return true;
        }
        if self
            .modules
            .iter()
            .any(|m| module == *m || module.starts_with(&format!("{m}.")))
        {
            return true;
        }
        self.dirs.iter().any(|d| {
            filename.starts_with(&format!("{d}/")) || (d == "/" && filename.starts_with('/'))
        })
    }
}

fn expand_user(path: &str) -> String {
    match (path.strip_prefix('~'), std::env::var("HOME")) {
        (Some(rest), Ok(home)) if rest.is_empty() || rest.starts_with('/') => {
            format!("{home}{rest}")
        }
        _ => path.to_owned(),
    }
}

/// `posixpath.normpath`: collapse `//`, `.` and `..`, drop a trailing `/`.
pub fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    // POSIX keeps exactly two leading slashes; three or more become one.
    let leading = if path.starts_with("//") && !path.starts_with("///") {
        "//"
    } else if path.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if !parts.is_empty() && parts.last() != Some(&"..") => {
                parts.pop();
            }
            ".." if !leading.is_empty() => {} // `/..` is `/`
            _ => parts.push(part),
        }
    }
    let joined = format!("{leading}{}", parts.join("/"));
    if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_and_submodules() {
        let f = Filter::new(&["spam,eggs".to_owned(), "pkg".to_owned()], &[]);
        assert!(f.ignores("/x/spam.py"));
        assert!(f.ignores("/y/eggs.py"));
        assert!(!f.ignores("/x/spammy.py"));
        assert!(f.ignores("/x/pkg.sub.py")); // _modname "pkg.sub" is a submodule of "pkg"
        assert!(f.ignores("<string>"));
        assert!(!f.ignores("/x/other.py"));
    }

    #[test]
    fn directories_need_a_separator() {
        let f = Filter::new(&[], &["/usr/local/".to_owned(), "/opt/a/../b".to_owned()]);
        assert!(f.ignores("/usr/local/lib/x.py"));
        assert!(!f.ignores("/usr/local.py"));
        assert!(f.ignores("/opt/b/y.py"));
        assert!(!f.ignores("/opt/a/y.py"));
    }

    #[test]
    fn normpath_like_posixpath() {
        assert_eq!(normpath("/a//b/./c/"), "/a/b/c");
        assert_eq!(normpath("a/../../b"), "../b");
        assert_eq!(normpath("/../a"), "/a");
        assert_eq!(normpath("//a"), "//a");
        assert_eq!(normpath("///a"), "/a");
        assert_eq!(normpath(""), ".");
    }
}
