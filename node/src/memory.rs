//! Giving freed memory back to the system after a burst.
//!
//! glibc's allocator keeps what a thread frees in that thread's arena, for the
//! thread to reuse, so after one burst (a listing of 100,000 products read by
//! several clients at once, the web listing rebuilt) the node stays as large as the
//! burst made it long after the memory is free: issue #38's benchmark measured 318
//! MiB resident after fifteen JSON listings of a catalog that needs 120.
//! [`release_freed`] asks glibc to hand its free pages back (`malloc_trim`); with
//! another allocator it does nothing. [`limit_arenas`] caps glibc's arenas at one
//! per core (its default is eight per core, each keeping its own free memory):
//! at 100,000 products the node's RSS after the benchmark's listings fell from 500
//! to 441 MiB with the same live data (`MALLOC_ARENA_MAX=2`, 2 cores).

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

/// Caps glibc's allocator at one arena per core, unless `MALLOC_ARENA_MAX` says
/// otherwise (glibc reads it itself). Call first thing in `main`, before threads
/// exist (each thread takes its arena on its first allocation); [`crate::start`]
/// calls it too, for the threads made after.
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    set_arena_max(i32::try_from(cores).unwrap_or(i32::MAX));
}

/// glibc's `mallopt(M_ARENA_MAX, n)`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(n: i32) {
    // SAFETY: mallopt only changes the allocator's own tuning; arenas made
    // before it keep working.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, n);
    }
}

/// Other allocators manage their own arenas.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_: i32) {}

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
