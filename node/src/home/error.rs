//! What can go wrong with a node home.

use std::path::{Path, PathBuf};

/// A node home that cannot be read, written or trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// A file of the home could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file or setting is not what it should be; the message says how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// A file that guards the node's state says the state was damaged.
    #[error("corrupt local data: {0}")]
    Corrupt(String),
}

impl HomeError {
    /// An I/O error mapper for `path`.
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
        move |source| HomeError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
