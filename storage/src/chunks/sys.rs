//! The system call the chunk store needs that std does not offer: `fallocate`
//! hole punching (giving a removed chunk's blocks back at once). The only `unsafe`
//! in the crate, documented.

use std::fs::File;
use std::io;

/// `fallocate(2)` with `PUNCH_HOLE | KEEP_SIZE`: zeroes `len` bytes at `offset` and
/// frees the whole blocks among them; the file keeps its size.
#[allow(unsafe_code)]
pub(super) fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::other("range too large"));
    };
    // SAFETY: `file` is an open file owned by the caller for the whole call, so its
    // descriptor is valid; fallocate reads no memory of ours.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
