//! The one way the node runs blocking work (disk, hashing, sled) from async code.

use thiserror::Error;

/// A blocking task that panicked or was cancelled: a bug or a shutdown, never the
/// input's fault.
#[derive(Debug, Error)]
#[error("a background task of the node failed ({0}); this is a bug, or the node is shutting down")]
pub struct TaskError(String);

impl From<tokio::task::JoinError> for TaskError {
    fn from(e: tokio::task::JoinError) -> Self {
        TaskError(e.to_string())
    }
}

/// Runs `work` on tokio's blocking pool and returns its result; a panic or
/// cancellation of the task becomes `E::from(TaskError)`.
pub(crate) async fn blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<TaskError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| E::from(TaskError::from(e)))?
}
