//! The crate's error type. Every error about user data names the file, the line and the field.

use std::path::PathBuf;

/// Errors of `learnrec-eval`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bad content in a data file: which file, which (1-based) line, which field, what is wrong.
    #[error("{path}:{line}: field `{field}`: {message}")]
    Parse {
        path: PathBuf,
        line: u64,
        field: String,
        message: String,
    },
    /// A file-level problem (empty file, missing column, unknown format…).
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// Invalid arguments or configuration.
    #[error("{0}")]
    Invalid(String),
    /// A metric is undefined for the given input (e.g. AUC of one class only).
    #[error("undefined: {0}")]
    Undefined(String),
    /// Fetching an asset failed (missing client, offline, checksum mismatch…).
    #[error("asset `{asset}`: {message}")]
    Asset { asset: String, message: String },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    /// A parse error at `path:line`, field `field`.
    pub fn parse(path: impl Into<PathBuf>, line: u64, field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Parse { path: path.into(), line, field: field.into(), message: message.into() }
    }
    /// A file-level error.
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File { path: path.into(), message: message.into() }
    }
}
