//! `--ignore-module` and `--ignore-dir`, with the semantics of Lib/trace.py's `_Ignore`:
//! a module is ignored by its name or as a submodule of an ignored name (`spam` ignores
//! `spam.eggs` but not `spammy`), where the name is trace's `_modname` of the file; a file is
//! ignored when its path starts with an ignored directory plus `/`. Code from `<string>` is
//! always ignored, as trace does. Like trace, filters apply to line counts only.
//!
//! Beyond trace: `--include GLOB` keeps only the files whose whole path matches one of the
//! globs (`*` matches any characters, `/` included; `?` one character; `[...]` a class), and
//! `--ignore-stdlib` ignores the target's own standard-library and site-packages directories
//! (found by [`crate::target::library_dirs`]) as `--ignore-dir` would.
//!
//! [`PathMap`] (`--path-map FROM=TO`) rewrites file names for reports made on another machine.

use crate::aggregate::model::module_name;
use anyhow::Context;

/// Which files' lines are left out.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    modules: Vec<String>,
    dirs: Vec<String>,
    /// `--include`: when set, files matching none of the globs are left out.
    include: Option<globset::GlobSet>,
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
            include: None,
        }
    }

    /// Also keep only the files whose path matches one of `globs` (none: no restriction).
    pub fn with_include(mut self, globs: &[String]) -> anyhow::Result<Filter> {
        if globs.is_empty() {
            return Ok(self);
        }
        let mut set = globset::GlobSetBuilder::new();
        for glob in globs {
            set.add(
                globset::Glob::new(glob)
                    .with_context(|| format!("--include {glob:?} is not a valid glob"))?,
            );
        }
        self.include = Some(set.build()?);
        Ok(self)
    }

    /// Also leave out files under each of `dirs` (as `--ignore-dir` does).
    pub fn with_ignored_dirs(mut self, dirs: &[String]) -> Filter {
        self.dirs
            .extend(dirs.iter().filter(|d| !d.is_empty()).map(|d| normpath(d)));
        self
    }

    /// True if this filter leaves nothing out.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty() && self.dirs.is_empty() && self.include.is_none()
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
        if self.dirs.iter().any(|d| {
            filename.starts_with(&format!("{d}/")) || (d == "/" && filename.starts_with('/'))
        }) {
            return true;
        }
        match &self.include {
            Some(include) => !include.is_match(filename),
            None => false,
        }
    }
}

/// `--path-map FROM=TO`: file names starting with the directory `FROM` are rewritten to start
/// with `TO` instead; the first matching map wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMap {
    pub from: String,
    pub to: String,
}

impl std::str::FromStr for PathMap {
    type Err = String;

    fn from_str(s: &str) -> Result<PathMap, String> {
        match s.split_once('=') {
            Some((from, to)) if !from.is_empty() => Ok(PathMap {
                from: from.trim_end_matches('/').to_owned(),
                to: to.trim_end_matches('/').to_owned(),
            }),
            _ => Err("expected FROM=TO, as /srv/app=/home/me/app".to_owned()),
        }
    }
}

impl PathMap {
    /// `filename` rewritten by the first map whose `from` is a directory prefix of it (or the
    /// whole name), unchanged if none is.
    pub fn apply(maps: &[PathMap], filename: &str) -> String {
        for map in maps {
            if map.from.is_empty() {
                // `/=/x`: every absolute path.
                if let Some(rest) = filename.strip_prefix('/') {
                    return format!("{}/{rest}", map.to);
                }
                continue;
            }
            if let Some(rest) = filename.strip_prefix(map.from.as_str()) {
                if rest.is_empty() || rest.starts_with('/') {
                    return format!("{}{rest}", map.to);
                }
            }
        }
        filename.to_owned()
    }
}

/// An `--ignore-dir` value as trace's `parse_ignore_dir` reads it: environment variables
/// expanded (`os.path.expandvars`, our environment), then `$prefix` and `$exec_prefix`
/// replaced by the *target's* standard-library directory (`stdlib`; trace uses its own
/// `sysconfig` paths). Fails when `$prefix` is used and the target's stdlib is unknown.
pub fn expand_ignore_dir(dir: &str, stdlib: Option<&str>) -> anyhow::Result<String> {
    let expanded = expand_vars(dir);
    if !expanded.contains("$prefix") && !expanded.contains("$exec_prefix") {
        return Ok(expanded);
    }
    let stdlib = stdlib.with_context(|| {
        format!("--ignore-dir {dir:?} needs the target's stdlib directory, which is not known here (only tracer JSON records it)")
    })?;
    Ok(expanded
        .replace("$prefix", stdlib)
        .replace("$exec_prefix", stdlib))
}

/// `posixpath.expandvars`: `$name` and `${name}` replaced by the environment's value; unknown
/// names left as they are.
fn expand_vars(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let (name, consumed) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match std::env::var(name) {
            Ok(value) if !name.is_empty() => out.push_str(&value),
            _ => out.push_str(&rest[dollar..dollar + 1 + consumed]),
        }
        rest = &rest[dollar + 1 + consumed..];
    }
    out.push_str(rest);
    out
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
    fn include_globs_keep_only_matching_files() {
        let f = Filter::new(&[], &[])
            .with_include(&["*/app/*".to_owned(), "/srv/x.py".to_owned()])
            .unwrap();
        assert!(!f.ignores("/home/me/app/pkg/m.py"));
        assert!(!f.ignores("/srv/x.py"));
        assert!(f.ignores("/usr/lib/python3.12/os.py"));
        assert!(Filter::new(&[], &[])
            .with_include(&["[".to_owned()])
            .is_err());
    }

    #[test]
    fn ignored_library_dirs() {
        let f = Filter::new(&[], &[]).with_ignored_dirs(&["/usr/lib/python3.12".to_owned()]);
        assert!(f.ignores("/usr/lib/python3.12/json/decoder.py"));
        assert!(!f.ignores("/usr/lib/python3.123/x.py"));
        assert!(!f.ignores("/app/m.py"));
    }

    #[test]
    fn path_maps_rewrite_directory_prefixes() {
        let maps: Vec<PathMap> = ["/srv/app/=/home/me/app", "/srv=/mnt/srv"]
            .iter()
            .map(|m| m.parse().unwrap())
            .collect();
        assert_eq!(PathMap::apply(&maps, "/srv/app/m.py"), "/home/me/app/m.py");
        assert_eq!(PathMap::apply(&maps, "/srv/other.py"), "/mnt/srv/other.py");
        assert_eq!(PathMap::apply(&maps, "/srvx/m.py"), "/srvx/m.py");
        assert_eq!(PathMap::apply(&maps, "<string>"), "<string>");
        assert!("nothing".parse::<PathMap>().is_err());
        assert!("=/x".parse::<PathMap>().is_err());
    }

    #[test]
    fn ignore_dirs_expand_like_trace() {
        std::env::set_var("TRACER_TEST_DIR", "/opt/x");
        assert_eq!(
            expand_ignore_dir("$TRACER_TEST_DIR/a:${TRACER_TEST_DIR}", None).unwrap(),
            "/opt/x/a:/opt/x"
        );
        assert_eq!(
            expand_ignore_dir("$NO_SUCH_VAR_HERE/a", None).unwrap(),
            "$NO_SUCH_VAR_HERE/a"
        );
        assert_eq!(
            expand_ignore_dir("$prefix", Some("/usr/lib/python3.12")).unwrap(),
            "/usr/lib/python3.12"
        );
        assert!(expand_ignore_dir("$exec_prefix", None).is_err());
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
