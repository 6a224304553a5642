//! Every input kept under `fuzz/regressions/<target>/` (crashes the fuzzers found,
//! allocation bombs, and seeds) run through its fuzz target in the normal test
//! suite, with the memory each input makes the decoder allocate measured: no input
//! may make a decoder allocate more than [`MAX_PEAK_BYTES`] at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// tests fail loudly by design
// A counting allocator needs `unsafe impl GlobalAlloc`; it only forwards to System.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most any one input may make a decoder hold allocated at once.
const MAX_PEAK_BYTES: usize = 16 * 1024 * 1024;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the
// counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                - layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn regressions() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions")
}

/// One test (so nothing else allocates concurrently in this binary) over every
/// target and every kept input; every target must have some.
#[test]
fn every_kept_input_passes_its_target_within_the_memory_bound() {
    let mut ran = 0;
    let mut failures = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(regressions())
        .expect("fuzz/regressions exists")
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let target = mesh_node::fuzzing::target(&name)
            .unwrap_or_else(|| panic!("fuzz/regressions/{name} names no fuzz target"));
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let base = CURRENT.load(Ordering::SeqCst);
            PEAK.store(base, Ordering::SeqCst);
            let outcome = std::panic::catch_unwind(|| target(&data));
            let peak = PEAK.load(Ordering::SeqCst).saturating_sub(base);
            let label = format!("{name}/{}", input.file_name().unwrap().to_string_lossy());
            if outcome.is_err() {
                failures.push(format!("{label}: panicked"));
            } else if peak > MAX_PEAK_BYTES {
                failures.push(format!("{label}: allocated {peak} bytes at once"));
            }
            ran += 1;
        }
    }
    assert!(ran >= 40, "only {ran} kept inputs found");
    for (name, _) in mesh_node::fuzzing::TARGETS {
        let dir = regressions().join(name);
        let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert!(
            n > 0,
            "no kept inputs for fuzz target {name} in {}",
            dir.display()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
