//! [`DirLock`]: the queue directory's owner, one process at a time.
//!
//! fjall keeps a lock file of its own, but it takes it inside its open,
//! after [`FjallStore::open`](super::FjallStore::open) has already copied
//! (and, on a failed open, put back) the journals: a second process doing
//! that to a directory a live server writes would put an old copy over
//! the server's journal. So the store takes this lock first, and holds it
//! as long as it is open. The locked file, `syncmq.lock`, also holds the
//! owner's pid, so that the error a second process gets can say who has
//! the directory. The OS lets go of the lock when the owner exits, however
//! it exits; the pid left in the file is only read while a live process
//! holds the lock, so it is never a dead owner's.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// The lock file's name inside the queue directory (fjall reads only
/// files ending in `.jnl` there, and its own `lock` and `version`).
pub(crate) const LOCK_FILE: &str = "syncmq.lock";

/// The held lock; dropping it (closing the file) lets go.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes directory `dir` (created if missing) for this process and
    /// writes its pid into the lock file.
    ///
    /// # Errors
    ///
    /// [`Error::DirectoryInUse`] when another process (or another open in
    /// this one) holds it, with that owner's pid when its lock file says;
    /// [`Error::Io`] naming the directory or the file otherwise.
    pub(crate) fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create the queue directory {}", dir.display()), e))?;
        let path = dir.join(LOCK_FILE);
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::DirectoryInUse {
                    dir: dir.to_path_buf(),
                    pid: read_pid(&mut file),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io("lock", e)),
        }
        // Cut before writing, so that a reader never sees an earlier
        // owner's pid with this one's digits over it.
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(|e| io("write the pid into", e))?;
        Ok(DirLock { _file: file })
    }
}

/// The pid in a lock file someone else holds; `None` when it holds none
/// yet (the owner is between locking and writing) or not a number.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        match DirLock::acquire(dir.path()) {
            Err(Error::DirectoryInUse { dir: d, pid }) => {
                assert_eq!(d, dir.path());
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected DirectoryInUse, got {other:?}"),
        }
        drop(first);
        let again = DirLock::acquire(dir.path()).unwrap();
        drop(again);
        // A new directory is created.
        let nested = dir.path().join("a/b");
        let _lock = DirLock::acquire(&nested).unwrap();
        assert!(nested.join(LOCK_FILE).is_file());
    }
}
