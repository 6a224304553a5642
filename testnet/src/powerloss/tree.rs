//! The power-loss disk's data: an in-memory tree of inodes whose files each keep
//! two contents, what readers see now and what the last `fsync` made durable.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::SystemTime;

use fuser::{Errno, FileAttr, FileType, INodeNo, RenameFlags, Request};

/// What the disk saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Write requests.
    pub writes: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// `fsync` and `fsyncdir` requests.
    pub syncs: u64,
    /// Power losses simulated.
    pub power_losses: u64,
    /// Files whose unsynced changes a power loss threw away.
    pub files_reverted: u64,
    /// Bytes written (or cut) but never synced, thrown away.
    pub bytes_forgotten: u64,
}

/// What `statfs` reports: 64 GiB, all free (the data lives in memory; the tests
/// that use this file system write megabytes).
pub(super) const BLOCKS: u64 = 1 << 24;
pub(super) const BLOCK_SIZE: u32 = 4096;

/// `fallocate` modes (linux/falloc.h).
const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;

/// A file's two contents.
#[derive(Debug, Default)]
pub(super) struct Data {
    /// What reads return now.
    pub(super) current: Vec<u8>,
    /// What survives a power loss: the content at the last `fsync`.
    durable: Vec<u8>,
    /// Bytes written or cut since the last `fsync` (0: `current == durable`).
    unsynced: u64,
}

#[derive(Debug)]
pub(super) enum Kind {
    Dir(BTreeMap<OsString, u64>),
    File(Data),
    Symlink(PathBuf),
}

#[derive(Debug)]
pub(super) struct Inode {
    pub(super) kind: Kind,
    pub(super) perm: u16,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: SystemTime,
    pub(super) ctime: SystemTime,
    /// Names pointing here (a directory counts its `.` too).
    pub(super) nlink: u32,
    /// References the kernel holds (lookups not yet forgotten).
    pub(super) lookups: u64,
}

impl Inode {
    pub(super) fn new(kind: Kind, perm: u16, req: &Request) -> Inode {
        let now = SystemTime::now();
        let nlink = if matches!(kind, Kind::Dir(_)) { 2 } else { 1 };
        Inode {
            kind,
            perm,
            uid: req.uid(),
            gid: req.gid(),
            mtime: now,
            ctime: now,
            nlink,
            lookups: 0,
        }
    }

    pub(super) fn file_type(&self) -> FileType {
        match self.kind {
            Kind::Dir(_) => FileType::Directory,
            Kind::File(_) => FileType::RegularFile,
            Kind::Symlink(_) => FileType::Symlink,
        }
    }

    pub(super) fn attr(&self, ino: u64) -> FileAttr {
        let size = match &self.kind {
            Kind::Dir(_) => 0,
            Kind::File(d) => d.current.len() as u64,
            Kind::Symlink(t) => t.as_os_str().len() as u64,
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.mtime,
            mtime: self.mtime,
            ctime: self.ctime,
            crtime: self.ctime,
            kind: self.file_type(),
            perm: self.perm,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLOCK_SIZE,
            flags: 0,
        }
    }

    fn touch(&mut self) {
        let now = SystemTime::now();
        self.mtime = now;
        self.ctime = now;
    }
}

/// Every inode, by number; the root is 1.
#[derive(Debug)]
pub(super) struct Tree {
    pub(super) inodes: HashMap<u64, Inode>,
    next: u64,
    pub(super) stats: Stats,
    /// Files open (opened or created, not yet released): the kernel refuses to
    /// unmount while any is, and a release can arrive just after `close` returns.
    pub(super) open_files: u64,
}

impl Tree {
    pub(super) fn new(uid: u32, gid: u32) -> Tree {
        let now = SystemTime::now();
        let root = Inode {
            kind: Kind::Dir(BTreeMap::new()),
            perm: 0o755,
            uid,
            gid,
            mtime: now,
            ctime: now,
            nlink: 2,
            lookups: 1,
        };
        Tree {
            inodes: HashMap::from([(INodeNo::ROOT.0, root)]),
            next: INodeNo::ROOT.0 + 1,
            stats: Stats::default(),
            open_files: 0,
        }
    }

    /// The power loss: every file's content goes back to what its last `fsync` made
    /// durable. Names (creates, renames, removals) were durable at once and stay.
    pub(super) fn power_loss(&mut self) {
        self.stats.power_losses += 1;
        for inode in self.inodes.values_mut() {
            if let Kind::File(d) = &mut inode.kind {
                if d.unsynced > 0 {
                    self.stats.files_reverted += 1;
                    self.stats.bytes_forgotten += d.unsynced;
                    d.current = d.durable.clone();
                    d.unsynced = 0;
                }
            }
        }
    }

    pub(super) fn get(&self, ino: INodeNo) -> Result<&Inode, Errno> {
        self.inodes.get(&ino.0).ok_or(Errno::ENOENT)
    }

    pub(super) fn get_mut(&mut self, ino: INodeNo) -> Result<&mut Inode, Errno> {
        self.inodes.get_mut(&ino.0).ok_or(Errno::ENOENT)
    }

    pub(super) fn dir(&self, ino: INodeNo) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.get(ino)?.kind {
            Kind::Dir(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    pub(super) fn dir_mut(&mut self, ino: INodeNo) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match &mut self.get_mut(ino)?.kind {
            Kind::Dir(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    pub(super) fn data_mut(&mut self, ino: INodeNo) -> Result<&mut Data, Errno> {
        match &mut self.get_mut(ino)?.kind {
            Kind::File(d) => Ok(d),
            Kind::Dir(_) => Err(Errno::EISDIR),
            Kind::Symlink(_) => Err(Errno::EINVAL),
        }
    }

    /// Looks `name` up in `parent` and counts the kernel's new reference.
    pub(super) fn lookup(&mut self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        let ino = *self.dir(parent)?.get(name).ok_or(Errno::ENOENT)?;
        let inode = self.get_mut(INodeNo(ino))?;
        inode.lookups += 1;
        Ok(inode.attr(ino))
    }

    /// Adds a new inode under `parent` as `name`; the kernel holds one reference.
    pub(super) fn insert(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        mut inode: Inode,
    ) -> Result<FileAttr, Errno> {
        if self.dir(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next;
        self.next += 1;
        inode.lookups = 1;
        let is_dir = matches!(inode.kind, Kind::Dir(_));
        let attr = inode.attr(ino);
        self.inodes.insert(ino, inode);
        self.dir_mut(parent)?.insert(name.to_owned(), ino);
        let p = self.get_mut(parent)?;
        p.touch();
        if is_dir {
            p.nlink += 1;
        }
        Ok(attr)
    }

    /// Drops a name of `ino`; frees the inode once no name and no reference is left.
    pub(super) fn unlinked(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.nlink = match inode.kind {
                Kind::Dir(_) => 0,
                _ => inode.nlink.saturating_sub(1),
            };
            inode.ctime = SystemTime::now();
        }
        self.maybe_free(ino);
    }

    pub(super) fn maybe_free(&mut self, ino: u64) {
        if self
            .inodes
            .get(&ino)
            .is_some_and(|i| i.nlink == 0 && i.lookups == 0)
        {
            self.inodes.remove(&ino);
        }
    }

    pub(super) fn remove(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        want_dir: bool,
    ) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.get(name).ok_or(Errno::ENOENT)?;
        match (&self.get(INodeNo(ino))?.kind, want_dir) {
            (Kind::Dir(entries), true) if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
            (Kind::Dir(_), true) => {}
            (Kind::Dir(_), false) => return Err(Errno::EISDIR),
            (_, true) => return Err(Errno::ENOTDIR),
            (_, false) => {}
        }
        self.dir_mut(parent)?.remove(name);
        let p = self.get_mut(parent)?;
        p.touch();
        if want_dir {
            p.nlink = p.nlink.saturating_sub(1);
        }
        self.unlinked(ino);
        Ok(())
    }

    pub(super) fn rename(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return Err(Errno::EINVAL);
        }
        let ino = *self.dir(parent)?.get(name).ok_or(Errno::ENOENT)?;
        let moving_dir = matches!(self.get(INodeNo(ino))?.kind, Kind::Dir(_));
        if let Some(&target) = self.dir(newparent)?.get(newname) {
            if target == ino {
                return Ok(());
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            match (&self.get(INodeNo(target))?.kind, moving_dir) {
                (Kind::Dir(e), true) if !e.is_empty() => return Err(Errno::ENOTEMPTY),
                (Kind::Dir(_), false) => return Err(Errno::EISDIR),
                (Kind::Dir(_), true) => {}
                (_, true) => return Err(Errno::ENOTDIR),
                (_, false) => {}
            }
            self.dir_mut(newparent)?.remove(newname);
            if moving_dir {
                let np = self.get_mut(newparent)?;
                np.nlink = np.nlink.saturating_sub(1);
            }
            self.unlinked(target);
        }
        self.dir_mut(parent)?.remove(name);
        self.dir_mut(newparent)?.insert(newname.to_owned(), ino);
        if moving_dir && parent != newparent {
            let p = self.get_mut(parent)?;
            p.nlink = p.nlink.saturating_sub(1);
            self.get_mut(newparent)?.nlink += 1;
        }
        self.get_mut(parent)?.touch();
        self.get_mut(newparent)?.touch();
        self.get_mut(INodeNo(ino))?.ctime = SystemTime::now();
        Ok(())
    }

    pub(super) fn write(&mut self, ino: INodeNo, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let len = u32::try_from(data.len()).map_err(|_| Errno::EINVAL)?;
        let start = usize::try_from(offset).map_err(|_| Errno::EFBIG)?;
        let end = start.checked_add(data.len()).ok_or(Errno::EFBIG)?;
        let d = self.data_mut(ino)?;
        if d.current.len() < end {
            d.current.resize(end, 0);
        }
        d.current[start..end].copy_from_slice(data);
        d.unsynced += u64::from(len);
        self.get_mut(ino)?.touch();
        self.stats.writes += 1;
        self.stats.bytes_written += u64::from(len);
        Ok(len)
    }

    pub(super) fn truncate(&mut self, ino: INodeNo, size: u64) -> Result<(), Errno> {
        let size = usize::try_from(size).map_err(|_| Errno::EFBIG)?;
        let d = self.data_mut(ino)?;
        let changed = d.current.len().abs_diff(size) as u64;
        d.current.resize(size, 0);
        d.unsynced += changed.max(1);
        Ok(())
    }

    pub(super) fn fsync(&mut self, ino: INodeNo) -> Result<(), Errno> {
        let d = self.data_mut(ino)?;
        if d.unsynced > 0 {
            d.durable = d.current.clone();
            d.unsynced = 0;
        }
        self.stats.syncs += 1;
        Ok(())
    }

    pub(super) fn fallocate(
        &mut self,
        ino: INodeNo,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let start = usize::try_from(offset).map_err(|_| Errno::EFBIG)?;
        let len = usize::try_from(length).map_err(|_| Errno::EFBIG)?;
        let end = start.checked_add(len).ok_or(Errno::EFBIG)?;
        let d = self.data_mut(ino)?;
        if mode == FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE {
            let end = end.min(d.current.len());
            if start < end {
                d.current[start..end].fill(0);
                d.unsynced += (end - start) as u64;
            }
            Ok(())
        } else if mode == 0 {
            if d.current.len() < end {
                d.unsynced += (end - d.current.len()) as u64;
                d.current.resize(end, 0);
            }
            Ok(())
        } else if mode == FALLOC_FL_KEEP_SIZE {
            Ok(())
        } else {
            Err(Errno::EOPNOTSUPP)
        }
    }
}
