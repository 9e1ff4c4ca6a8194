//! The one error type of graft, with structured fields naming the file, tensor, field or operation.
use std::path::PathBuf;

/// Everything that can go wrong in graft.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read, mapped or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file's bytes do not form a valid file of its format.
    #[error("{file}: {field}: {msg}")]
    Format {
        /// The file (path or a name given by the caller for in-memory bytes).
        file: String,
        /// The field, key or tensor at fault.
        field: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A model file is valid but not one graft can run (missing tensor, unsupported architecture...).
    #[error("{file}: {tensor}: {msg}")]
    Model {
        /// The model file.
        file: String,
        /// The tensor or metadata key concerned.
        tensor: String,
        /// What is wrong.
        msg: String,
    },
    /// Tokenizer construction or use failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An operation was called with arguments it cannot honour.
    #[error("{op}: {msg}")]
    Invalid {
        /// The operation.
        op: &'static str,
        /// Why.
        msg: String,
    },
}

/// graft's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Format`] error.
    pub fn format(file: impl Into<String>, field: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Format { file: file.into(), field: field.into(), msg: msg.into() }
    }
    /// A [`Error::Model`] error.
    pub fn model(file: impl Into<String>, tensor: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Model { file: file.into(), tensor: tensor.into(), msg: msg.into() }
    }
    /// An [`Error::Invalid`] error.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Invalid { op, msg: msg.into() }
    }
    /// An [`Error::Io`] error.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
