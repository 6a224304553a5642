//! A value built from the store on first use and kept in step by its writers
//! afterwards: the shape of the catalog's in-memory indexes (announcements, the
//! reversed lineage). A writer stores first and then updates the value if it is
//! loaded; a load reads the store under the write lock, so an update either waits
//! for the load or is read by it, and a reader never sees the value ahead of the
//! store.

use std::sync::{Arc, RwLock};

/// The value, or nothing until it is loaded.
#[derive(Debug)]
pub(crate) struct LoadedOnUse<T> {
    inner: Arc<RwLock<Option<T>>>,
}

impl<T> Clone for LoadedOnUse<T> {
    fn clone(&self) -> Self {
        LoadedOnUse {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Default for LoadedOnUse<T> {
    fn default() -> Self {
        LoadedOnUse {
            inner: Arc::new(RwLock::new(None)),
        }
    }
}

impl<T> LoadedOnUse<T> {
    /// `f` over the value, built with `load` first if it is not yet (one load at a
    /// time; readers wait for it).
    pub(crate) fn read<R, E>(
        &self,
        load: impl FnOnce() -> Result<T, E>,
        f: impl FnOnce(&T) -> R,
    ) -> Result<R, E> {
        {
            let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
            if let Some(value) = guard.as_ref() {
                return Ok(f(value));
            }
        }
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(value) = guard.as_ref() {
            return Ok(f(value));
        }
        let value = guard.insert(load()?);
        Ok(f(value))
    }

    /// `f` over the value if it is loaded (never loads it).
    pub(crate) fn peek<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(f)
    }

    /// Applies `f` to the value if it is loaded (else the load will read the change
    /// from the store).
    pub(crate) fn update(&self, f: impl FnOnce(&mut T)) {
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(value) = guard.as_mut() {
            f(value);
        }
    }
}
