//! The system calls std does not offer: `fallocate` hole punching (giving a removed
//! chunk's blocks back at once), and the two ways to copy file bytes without
//! reading them into this process: `FICLONE` (share the blocks, copy-on-write, on
//! XFS and btrfs) and `copy_file_range` (an in-kernel copy, on any Linux file
//! system); and `sync_file_range`, which starts writeback without waiting for it.
//! The only `unsafe` in the crate, each block documented.

use std::fs::File;
use std::io;

/// `fallocate(2)` with `PUNCH_HOLE | KEEP_SIZE`: zeroes `len` bytes at `offset` and
/// frees the whole blocks among them; the file keeps its size.
#[allow(unsafe_code)]
pub(crate) fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
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

/// `ioctl(FICLONE)`: makes `dst` share every block of `src` (copy-on-write), so it
/// holds the same bytes without any being written. Fails with `EOPNOTSUPP`,
/// `EXDEV` or `EINVAL` where the file system cannot (ext4, tmpfs, across mounts).
#[allow(unsafe_code)]
pub(crate) fn clone_file(dst: &File, src: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: both descriptors are open files borrowed for the whole call; FICLONE
    // takes the source descriptor as its argument and reads no memory of ours.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `copy_file_range(2)` until `len` bytes of `src` at `src_offset` are at
/// `dst_offset` of `dst`: the kernel copies (or, on XFS and btrfs, shares) them.
/// A source shorter than asked is an `UnexpectedEof` error.
#[allow(unsafe_code)]
pub(crate) fn copy_range(
    src: &File,
    src_offset: u64,
    dst: &File,
    dst_offset: u64,
    len: u64,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let too_large = || io::Error::other("range too large");
    let mut off_in = libc::loff_t::try_from(src_offset).map_err(|_| too_large())?;
    let mut off_out = libc::loff_t::try_from(dst_offset).map_err(|_| too_large())?;
    let mut left = len;
    while left > 0 {
        let step = usize::try_from(left.min(1 << 30)).map_err(|_| too_large())?;
        // SAFETY: both descriptors are open files borrowed for the whole call; the
        // two offsets are locals the kernel reads and advances, valid throughout.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                step,
                0,
            )
        };
        match n {
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => left -= n as u64,
        }
    }
    Ok(())
}

/// `sync_file_range(2)` with `SYNC_FILE_RANGE_WRITE` over the whole file: starts
/// writing its dirty pages back and returns without waiting, so that a later
/// `fsync` finds little left. Durability still comes from that `fsync` only.
#[allow(unsafe_code)]
pub(crate) fn start_writeback(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `file` is an open file borrowed for the whole call; the call reads no
    // memory of ours.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
