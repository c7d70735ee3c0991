//! A CPython version as `major.minor`: what every per-version table is keyed by.
//!
//! Where a version cannot be known (a results file that names none), callers hold an
//! `Option<PyVersion>` and say so; there is no default version.

use std::fmt;
use std::str::FromStr;

/// The `major.minor` of a CPython release, ordered as releases are (3.9 < 3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PyVersion {
    /// `3` for every version tracer's own reader reads.
    pub major: u8,
    /// `12` for 3.12.
    pub minor: u8,
}

impl PyVersion {
    /// `major.minor`.
    pub const fn new(major: u8, minor: u8) -> PyVersion {
        PyVersion { major, minor }
    }

    /// The version at the start of a release text such as `3.12.1`, `3.13.0rc1` or `3.14t`:
    /// digits, a dot, digits, then anything that does not continue the minor number.
    pub fn from_release(text: &str) -> Option<PyVersion> {
        let (major, rest) = text.split_once('.')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let minor = &rest[..digits];
        if major.is_empty() || !major.bytes().all(|b| b.is_ascii_digit()) || minor.is_empty() {
            return None;
        }
        Some(PyVersion::new(major.parse().ok()?, minor.parse().ok()?))
    }

    /// The version of an interpreter's file name: `python3.11`, `libpython3.11.so.1.0`,
    /// `libpython3.11d.so`, a path ending in one of them.
    pub fn from_file_name(path: &str) -> Option<PyVersion> {
        let name = path.rsplit('/').next()?;
        let rest = name
            .strip_prefix("lib")
            .unwrap_or(name)
            .strip_prefix("python")?;
        PyVersion::from_release(rest)
    }
}

impl fmt::Display for PyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A version text that is not `X.Y`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected X.Y, as 3.12 (got {0:?})")]
pub struct ParseVersionError(pub String);

impl FromStr for PyVersion {
    type Err = ParseVersionError;

    /// Exactly `X.Y`, as a user writes it (`--python-version 3.12`).
    fn from_str(text: &str) -> Result<PyVersion, ParseVersionError> {
        let error = || ParseVersionError(text.to_owned());
        let (major, minor) = text.split_once('.').ok_or_else(error)?;
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(error());
            }
            part.parse::<u8>().map_err(|_| error())
        };
        Ok(PyVersion::new(number(major)?, number(minor)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_as_releases_do() {
        assert!(PyVersion::new(3, 9) < PyVersion::new(3, 10));
        assert!(PyVersion::new(2, 7) < PyVersion::new(3, 0));
        assert_eq!(PyVersion::new(3, 12).to_string(), "3.12");
    }

    #[test]
    fn user_text_is_exactly_x_dot_y() {
        assert_eq!("3.12".parse(), Ok(PyVersion::new(3, 12)));
        for bad in ["3", "3.", ".12", "3.12.1", "3.x", "+3.12", "3.300", ""] {
            assert!(bad.parse::<PyVersion>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn release_texts_and_file_names_give_their_version() {
        assert_eq!(
            PyVersion::from_release("3.15.2"),
            Some(PyVersion::new(3, 15))
        );
        assert_eq!(
            PyVersion::from_release("3.13.0rc1"),
            Some(PyVersion::new(3, 13))
        );
        assert_eq!(
            PyVersion::from_release("3.13t"),
            Some(PyVersion::new(3, 13))
        );
        assert_eq!(
            PyVersion::from_release("2.7.18"),
            Some(PyVersion::new(2, 7))
        );
        assert_eq!(PyVersion::from_release("unknown"), None);
        assert_eq!(PyVersion::from_release("3."), None);
        for (name, minor) in [
            ("python3.11", 11),
            ("libpython3.11.so.1.0", 11),
            ("libpython3.11d.so", 11),
            ("/usr/lib/x86_64-linux-gnu/libpython3.12.so.1.0", 12),
        ] {
            assert_eq!(
                PyVersion::from_file_name(name),
                Some(PyVersion::new(3, minor)),
                "{name}"
            );
        }
        assert_eq!(PyVersion::from_file_name("python3"), None);
        assert_eq!(PyVersion::from_file_name("ruby3.1"), None);
    }
}
