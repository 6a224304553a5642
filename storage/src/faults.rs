//! The fault seam of the stores, for tests of the error paths: a `ChunkStore` or
//! `SledStore` fails its writes, fails its syncs, or runs out of space when its
//! `Faults` say so.
//!
//! The switches exist only with the `faults` cargo feature, which tests enable
//! (`mesh-node`'s `test-support` turns it on). Without it `Faults` is an empty type
//! whose checks always pass and compile away: a release build carries no switch.

#[cfg(feature = "faults")]
pub use switches::Faults;

#[cfg(not(feature = "faults"))]
pub(crate) use disabled::Faults;

#[cfg(not(feature = "faults"))]
mod disabled {
    use std::io;

    /// No faults: every check passes.
    #[derive(Debug, Default)]
    pub(crate) struct Faults;

    impl Faults {
        /// No faults.
        pub(crate) fn off() -> Faults {
            Faults
        }

        /// Called before writing `len` bytes.
        #[inline]
        pub(crate) fn before_write(&self, _len: usize) -> io::Result<()> {
            Ok(())
        }

        /// Called before making writes durable.
        #[inline]
        pub(crate) fn before_sync(&self) -> io::Result<()> {
            Ok(())
        }

        /// Called before starting writeback.
        #[inline]
        pub(crate) fn before_writeback(&self) -> io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(feature = "faults")]
mod switches {
    use std::io;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// `ENOSPC`, the error a full disk gives.
    const ENOSPC: i32 = 28;

    /// Which faults to inject. All off by default.
    #[derive(Debug)]
    pub struct Faults {
        /// Bytes that may still be written before the disk is "full".
        space_left: AtomicU64,
        fail_writes: AtomicBool,
        fail_sync: AtomicBool,
        /// Syncs still to fail before they work again.
        failing_syncs: AtomicU64,
        fail_writeback: AtomicBool,
    }

    impl Default for Faults {
        fn default() -> Self {
            Faults {
                space_left: AtomicU64::new(u64::MAX),
                fail_writes: AtomicBool::new(false),
                fail_sync: AtomicBool::new(false),
                failing_syncs: AtomicU64::new(0),
                fail_writeback: AtomicBool::new(false),
            }
        }
    }

    impl Faults {
        /// Every fault off.
        pub(crate) fn off() -> Faults {
            Faults::default()
        }

        /// The disk fills after `bytes` more bytes: writes then fail with `ENOSPC`.
        pub fn disk_full_after(&self, bytes: u64) {
            self.space_left.store(bytes, Ordering::SeqCst);
        }

        /// Every write fails with an I/O error while `on`.
        pub fn fail_writes(&self, on: bool) {
            self.fail_writes.store(on, Ordering::SeqCst);
        }

        /// Every sync (fsync, syncfs, flush) fails while `on`.
        pub fn fail_sync(&self, on: bool) {
            self.fail_sync.store(on, Ordering::SeqCst);
        }

        /// The next `n` syncs fail; later ones work (an I/O error that passes).
        pub fn fail_next_syncs(&self, n: u64) {
            self.failing_syncs.store(n, Ordering::SeqCst);
        }

        /// Starting writeback (`sync_file_range` while chunking) fails while `on`.
        pub fn fail_writeback(&self, on: bool) {
            self.fail_writeback.store(on, Ordering::SeqCst);
        }

        /// Switches every fault off.
        pub fn clear(&self) {
            self.disk_full_after(u64::MAX);
            self.fail_writes(false);
            self.fail_sync(false);
            self.fail_next_syncs(0);
            self.fail_writeback(false);
        }

        /// Called before writing `len` bytes.
        pub(crate) fn before_write(&self, len: usize) -> io::Result<()> {
            if self.fail_writes.load(Ordering::SeqCst) {
                return Err(io::Error::other("injected write failure"));
            }
            let len = len as u64;
            self.space_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(len)
                })
                .map(|_| ())
                .map_err(|_| io::Error::from_raw_os_error(ENOSPC))
        }

        /// Called before making writes durable.
        pub(crate) fn before_sync(&self) -> io::Result<()> {
            let once = self
                .failing_syncs
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if once || self.fail_sync.load(Ordering::SeqCst) {
                return Err(io::Error::other("injected sync failure"));
            }
            Ok(())
        }

        /// Called before starting writeback.
        pub(crate) fn before_writeback(&self) -> io::Result<()> {
            if self.fail_writeback.load(Ordering::SeqCst) {
                return Err(io::Error::other("injected writeback failure"));
            }
            Ok(())
        }
    }
}

#[cfg(all(test, feature = "faults"))]
mod tests {
    use super::*;

    #[test]
    fn space_runs_out_and_clears() {
        let f = Faults::default();
        assert!(f.before_write(1 << 40).is_ok(), "off by default");
        f.disk_full_after(10);
        assert!(f.before_write(6).is_ok());
        let err = f.before_write(6).expect_err("full");
        assert_eq!(err.raw_os_error(), Some(28), "ENOSPC");
        assert!(f.before_write(4).is_ok(), "a smaller write still fits");
        f.fail_sync(true);
        assert!(f.before_sync().is_err());
        f.clear();
        assert!(f.before_sync().is_ok() && f.before_write(100).is_ok());
        f.fail_next_syncs(2);
        assert!(f.before_sync().is_err() && f.before_sync().is_err());
        assert!(f.before_sync().is_ok(), "passes after two");
    }
}
