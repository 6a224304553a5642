//! Giving freed memory back to the system after a burst.
//!
//! glibc's allocator keeps what a thread frees in that thread's arena, for the
//! thread to reuse, so after one burst (a listing of 100,000 products read by
//! several clients at once, the web listing rebuilt) the node stays as large as the
//! burst made it long after the memory is free: issue #38's benchmark measured 318
//! MiB resident after fifteen JSON listings of a catalog that needs 120.
//! [`release_freed`] asks glibc to hand its free pages back (`malloc_trim`); with
//! another allocator it does nothing.

use std::sync::atomic::{AtomicBool, Ordering};

/// A trim is under way (one at a time is enough: each walks every arena).
static TRIMMING: AtomicBool = AtomicBool::new(false);

/// Asks the allocator, on the blocking pool, to give free memory back to the
/// system; nothing if a trim is under way already. Call after work that freed
/// much (it walks every arena: milliseconds on a large heap).
pub(crate) fn release_freed() {
    if TRIMMING.swap(true, Ordering::AcqRel) {
        return;
    }
    let done = || TRIMMING.store(false, Ordering::Release);
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || {
                trim();
                done();
            });
        }
        Err(_) => {
            trim();
            done();
        }
    }
}

/// glibc's `malloc_trim(0)`: every arena's free pages back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim reads no memory of ours; it takes the allocator's own
    // locks and only releases pages the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory by their own rules.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
