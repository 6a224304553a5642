//! The system calls std does not offer: `fallocate` hole punching (giving a removed
//! chunk's blocks back at once), and the two ways to copy file bytes without
//! reading them into this process: `FICLONE` (share the blocks, copy-on-write, on
//! XFS and btrfs) and `copy_file_range` (an in-kernel copy, on any Linux file
//! system); `sync_file_range`, which starts writeback without waiting for it; and
//! `pread` into memory not yet zeroed (std reads at an offset only into initialized
//! buffers, and zeroing every chunk read showed in profiles of serving).
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

/// Reads exactly `len` bytes of `file` at `offset` into a new buffer, which is not
/// zeroed first. A file that ends sooner is an `UnexpectedEof` error.
#[allow(unsafe_code)]
pub(crate) fn read_exact_at(file: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let at = libc::off_t::try_from(offset + buf.len() as u64)
            .map_err(|_| io::Error::other("offset too large"))?;
        let want = len - buf.len();
        // SAFETY: the descriptor is an open file borrowed for the whole call; the
        // pointer is the start of `buf`'s spare capacity, which has room for `want`
        // bytes (capacity is `len`), and pread writes at most `want` bytes there.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().add(buf.len()).cast::<libc::c_void>(),
                want,
                at,
            )
        };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n > 0 => {
                // SAFETY: pread initialized the `n <= want` bytes after the old length.
                unsafe { buf.set_len(buf.len() + n as usize) };
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(buf)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exactly_the_range_asked_and_a_short_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let f = File::open(&path).unwrap();
        assert_eq!(read_exact_at(&f, 200_000, 7).unwrap(), &bytes[7..200_007]);
        assert_eq!(read_exact_at(&f, 0, 0).unwrap(), b"");
        let past = read_exact_at(&f, 10, 299_995).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
    }
}
