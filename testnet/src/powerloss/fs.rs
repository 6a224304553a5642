//! The FUSE side of the power-loss file system: an in-memory tree whose files each
//! keep two contents, what readers see now and what the last `fsync` made durable.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::Stats;

/// Attributes and entries are never cached by the kernel: after a power loss every
/// size it would remember may be wrong.
const TTL: Duration = Duration::ZERO;

/// What `statfs` reports: 64 GiB, all free (the data lives in memory; the tests
/// that use this file system write megabytes).
const BLOCKS: u64 = 1 << 24;
const BLOCK_SIZE: u32 = 4096;

/// `fallocate` modes (linux/falloc.h).
const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;

/// A file's two contents.
#[derive(Debug, Default)]
pub(super) struct Data {
    /// What reads return now.
    current: Vec<u8>,
    /// What survives a power loss: the content at the last `fsync`.
    durable: Vec<u8>,
    /// Bytes written or cut since the last `fsync` (0: `current == durable`).
    unsynced: u64,
}

#[derive(Debug)]
enum Kind {
    Dir(BTreeMap<OsString, u64>),
    File(Data),
    Symlink(PathBuf),
}

#[derive(Debug)]
struct Inode {
    kind: Kind,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
    ctime: SystemTime,
    /// Names pointing here (a directory counts its `.` too).
    nlink: u32,
    /// References the kernel holds (lookups not yet forgotten).
    lookups: u64,
}

impl Inode {
    fn new(kind: Kind, perm: u16, req: &Request) -> Inode {
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

    fn file_type(&self) -> FileType {
        match self.kind {
            Kind::Dir(_) => FileType::Directory,
            Kind::File(_) => FileType::RegularFile,
            Kind::Symlink(_) => FileType::Symlink,
        }
    }

    fn attr(&self, ino: u64) -> FileAttr {
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
    inodes: HashMap<u64, Inode>,
    next: u64,
    pub(super) stats: Stats,
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

    fn get(&self, ino: INodeNo) -> Result<&Inode, Errno> {
        self.inodes.get(&ino.0).ok_or(Errno::ENOENT)
    }

    fn get_mut(&mut self, ino: INodeNo) -> Result<&mut Inode, Errno> {
        self.inodes.get_mut(&ino.0).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: INodeNo) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.get(ino)?.kind {
            Kind::Dir(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: INodeNo) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match &mut self.get_mut(ino)?.kind {
            Kind::Dir(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn data_mut(&mut self, ino: INodeNo) -> Result<&mut Data, Errno> {
        match &mut self.get_mut(ino)?.kind {
            Kind::File(d) => Ok(d),
            Kind::Dir(_) => Err(Errno::EISDIR),
            Kind::Symlink(_) => Err(Errno::EINVAL),
        }
    }

    /// Looks `name` up in `parent` and counts the kernel's new reference.
    fn lookup(&mut self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        let ino = *self.dir(parent)?.get(name).ok_or(Errno::ENOENT)?;
        let inode = self.get_mut(INodeNo(ino))?;
        inode.lookups += 1;
        Ok(inode.attr(ino))
    }

    /// Adds a new inode under `parent` as `name`; the kernel holds one reference.
    fn insert(
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
    fn unlinked(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.nlink = match inode.kind {
                Kind::Dir(_) => 0,
                _ => inode.nlink.saturating_sub(1),
            };
            inode.ctime = SystemTime::now();
        }
        self.maybe_free(ino);
    }

    fn maybe_free(&mut self, ino: u64) {
        if self
            .inodes
            .get(&ino)
            .is_some_and(|i| i.nlink == 0 && i.lookups == 0)
        {
            self.inodes.remove(&ino);
        }
    }

    fn remove(&mut self, parent: INodeNo, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
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

    fn rename(
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

    fn write(&mut self, ino: INodeNo, offset: u64, data: &[u8]) -> Result<u32, Errno> {
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

    fn truncate(&mut self, ino: INodeNo, size: u64) -> Result<(), Errno> {
        let size = usize::try_from(size).map_err(|_| Errno::EFBIG)?;
        let d = self.data_mut(ino)?;
        let changed = d.current.len().abs_diff(size) as u64;
        d.current.resize(size, 0);
        d.unsynced += changed.max(1);
        Ok(())
    }

    fn fsync(&mut self, ino: INodeNo) -> Result<(), Errno> {
        let d = self.data_mut(ino)?;
        if d.unsynced > 0 {
            d.durable = d.current.clone();
            d.unsynced = 0;
        }
        self.stats.syncs += 1;
        Ok(())
    }

    fn fallocate(
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

/// The file system the kernel talks to; shares its tree with the controlling handle.
pub(super) struct PowerLossFs {
    pub(super) tree: Arc<Mutex<Tree>>,
}

pub(super) fn lock(tree: &Mutex<Tree>) -> MutexGuard<'_, Tree> {
    tree.lock().unwrap_or_else(|p| p.into_inner())
}

impl PowerLossFs {
    fn tree(&self) -> MutexGuard<'_, Tree> {
        lock(&self.tree)
    }
}

/// Files are opened with direct I/O: no page cache that could outlive a power loss.
const OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_DIRECT_IO;

fn perm(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

impl Filesystem for PowerLossFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.tree().lookup(parent, name) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut t = self.tree();
        if let Some(i) = t.inodes.get_mut(&ino.0) {
            i.lookups = i.lookups.saturating_sub(nlookup);
        }
        t.maybe_free(ino.0);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.tree().get(ino) {
            Ok(i) => reply.attr(&TTL, &i.attr(ino.0)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut t = self.tree();
        let result = (|| {
            if let Some(size) = size {
                t.truncate(ino, size)?;
            }
            let i = t.get_mut(ino)?;
            if let Some(mode) = mode {
                i.perm = (mode & 0o7777) as u16;
            }
            if let Some(uid) = uid {
                i.uid = uid;
            }
            if let Some(gid) = gid {
                i.gid = gid;
            }
            i.ctime = SystemTime::now();
            match mtime {
                Some(TimeOrNow::SpecificTime(t)) => i.mtime = t,
                Some(TimeOrNow::Now) => i.mtime = SystemTime::now(),
                None => {}
            }
            Ok(i.attr(ino.0))
        })();
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.tree().get(ino).map(|i| &i.kind) {
            Ok(Kind::Symlink(target)) => reply.data(target.as_os_str().as_encoded_bytes()),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let inode = Inode::new(Kind::Dir(BTreeMap::new()), perm(mode, umask), req);
        match self.tree().insert(parent, name, inode) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.tree().remove(parent, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.tree().remove(parent, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let inode = Inode::new(Kind::Symlink(target.to_owned()), 0o777, req);
        match self.tree().insert(parent, link_name, inode) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.tree().rename(parent, name, newparent, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.tree().get(ino).map(|i| &i.kind) {
            Ok(Kind::File(_)) => reply.opened(FileHandle(0), OPEN_FLAGS),
            Ok(Kind::Dir(_)) => reply.error(Errno::EISDIR),
            Ok(Kind::Symlink(_)) => reply.error(Errno::ELOOP),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let t = self.tree();
        match t.get(ino).map(|i| &i.kind) {
            Ok(Kind::File(d)) => {
                let len = d.current.len();
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(len);
                let end = start.saturating_add(size as usize).min(len);
                reply.data(&d.current[start..end]);
            }
            Ok(Kind::Dir(_)) => reply.error(Errno::EISDIR),
            Ok(Kind::Symlink(_)) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.tree().write(ino, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.tree().fsync(ino) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let t = self.tree();
        let entries = match t.dir(ino) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        let dots = [
            (ino.0, FileType::Directory, OsStr::new(".")),
            (ino.0, FileType::Directory, OsStr::new("..")),
        ];
        let children = entries.iter().map(|(name, &child)| {
            let kind = t
                .inodes
                .get(&child)
                .map_or(FileType::RegularFile, Inode::file_type);
            (child, kind, name.as_os_str())
        });
        for (i, (child, kind, name)) in dots.into_iter().chain(children).enumerate() {
            if (i as u64) < offset {
                continue;
            }
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Names are durable at once in this model.
        self.tree().stats.syncs += 1;
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(
            BLOCKS,
            BLOCKS,
            BLOCKS,
            1 << 20,
            1 << 20,
            BLOCK_SIZE,
            255,
            BLOCK_SIZE,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        match self.tree().get(ino) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let inode = Inode::new(Kind::File(Data::default()), perm(mode, umask), req);
        match self.tree().insert(parent, name, inode) {
            Ok(attr) => reply.created(&TTL, &attr, Generation(0), FileHandle(0), OPEN_FLAGS),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        match self.tree().fallocate(ino, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
