//! The crate's error type.

use std::path::PathBuf;

/// Errors of `learnrec-model`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file is malformed: which file, which tensor or field, what is wrong.
    #[error("{path}: {what}: {message}")]
    Format { path: PathBuf, what: String, message: String },
    /// The architecture or a feature of the model is not supported.
    #[error("{path}: unsupported: {message}")]
    Unsupported { path: PathBuf, message: String },
    /// Invalid arguments or configuration.
    #[error("{0}")]
    Invalid(String),
    /// Training diverged (loss NaN/Inf).
    #[error("training diverged at step {step}: loss is {loss} ({hint})")]
    Diverged { step: u64, loss: f32, hint: String },
    /// A tokenizer error.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An error from the data layer.
    #[error(transparent)]
    Data(#[from] learnrec_eval::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn format(path: impl Into<PathBuf>, what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Format { path: path.into(), what: what.into(), message: message.into() }
    }
}
