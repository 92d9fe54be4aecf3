//! The crate's error type. Errors about user data name the file, the line and the field.

use std::path::PathBuf;

/// Errors of `learnrec-fusion`.
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
    /// A file-level problem (missing column, wrong store kind, unreadable record…).
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// Invalid arguments, configuration or batch shapes.
    #[error("{0}")]
    Invalid(String),
    /// Training diverged (loss NaN/Inf).
    #[error(
        "training of `{model}` diverged at step {step}: loss is {loss} (try a lower learning rate)"
    )]
    Diverged { model: String, step: u64, loss: f32 },
    /// An error from the data layer (readers, stores, atomic writes).
    #[error(transparent)]
    Data(#[from] learnrec_eval::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// A parse error at `path:line`, field `field`.
    pub fn parse(
        path: impl Into<PathBuf>,
        line: u64,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Parse {
            path: path.into(),
            line,
            field: field.into(),
            message: message.into(),
        }
    }
    /// A file-level error.
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            message: message.into(),
        }
    }
}
