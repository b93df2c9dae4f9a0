//! The listeners below gRPC: binding the Unix socket safely, and accepting connections
//! under limits that hold when a local process misbehaves.
//!
//! What tonic and hyper do not give us, written here by hand:
//! - a cap on open connections (at the cap, a connection that has not started HTTP/2
//!   makes room, else accepting waits and the kernel's backlog queues the rest);
//! - a cap on the connections of one peer (a uid on the Unix socket, an IP address on
//!   TCP), so that one caller cannot hold every slot ([`peers`]);
//! - a deadline for a new connection to send its HTTP/2 preface and first frame, so a
//!   connection that never speaks gives its slot back;
//! - a pause after an accept fails for lack of file descriptors or memory (tonic's
//!   accept loop retries at once, which spun a core at 95 % under 2,000 idle
//!   connections and a 1,024-file limit);
//! - the socket directory's checks, a lock beside the socket, and removing at shutdown
//!   only the socket this process created.

mod accept;
mod peers;

pub(crate) use accept::{Limits, incoming};
pub(crate) use peers::{Peer, PeerSlot, Peers};

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::UnixListener;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ListenError {
    #[error("cannot listen on {what}: {source}")]
    Bind {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "another process is listening on socket `{0}`; stop it or choose another `server.unix_socket`"
    )]
    SocketInUse(PathBuf),
    #[error("`{0}` exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error(
        "the socket's directory `{dir}` can be written by every user (mode {mode:04o}) and has no sticky bit, so any local user could replace the socket; use a private directory, or `chmod +t` it"
    )]
    WorldWritableDir { dir: PathBuf, mode: u32 },
    #[error(
        "the socket's directory `{dir}` belongs to uid {owner}, who could replace the socket; use a directory owned by the daemon's user (uid {me}) or root"
    )]
    ForeignDir { dir: PathBuf, owner: u32, me: u32 },
    #[error(
        "a stale socket `{path}` belongs to uid {owner}, not to the daemon's user (uid {me}); refusing to replace it"
    )]
    ForeignSocket { path: PathBuf, owner: u32, me: u32 },
    #[error(
        "another vaultbridge is serving or starting on socket `{socket}` (it holds `{lock}`); stop it or choose another `server.unix_socket`"
    )]
    Locked { socket: PathBuf, lock: PathBuf },
    #[error(
        "cannot give the {what} to {} (`server.unix_socket_owner`/`unix_socket_group`): {source}{}",
        owner_and_group(*owner, *group),
        if source.kind() == io::ErrorKind::PermissionDenied { "; only root may give a file to another owner, and a group only to one the daemon's user belongs to" } else { "" }
    )]
    Chown {
        what: String,
        owner: Option<u32>,
        group: Option<u32>,
        source: io::Error,
    },
}

fn owner_and_group(owner: Option<u32>, group: Option<u32>) -> String {
    match (owner, group) {
        (Some(owner), Some(group)) => format!("uid {owner}, gid {group}"),
        (Some(owner), None) => format!("uid {owner}"),
        (None, Some(group)) => format!("gid {group}"),
        (None, None) => "its current owner".to_owned(),
    }
}

/// The socket file of a bound listener, with the lock that makes this process its only
/// owner and the identity (device and inode) of the file it created.
#[derive(Debug)]
pub(crate) struct UnixSocket {
    path: PathBuf,
    created: (u64, u64),
    // Held, never read: the lock lasts as long as the file stays open.
    _lock: File,
}

impl UnixSocket {
    /// Removes the socket file if it is still the one this process bound. Another
    /// file at the path (someone moved ours away and put theirs there) is left alone.
    pub(crate) fn remove(self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.created => {
                if let Err(err) = std::fs::remove_file(&self.path) {
                    tracing::warn!(socket = %self.path.display(), error = %err, "could not remove the socket file");
                }
            }
            Ok(_) => tracing::warn!(
                socket = %self.path.display(),
                "the socket path now holds a file this process did not create; leaving it alone"
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                tracing::warn!(socket = %self.path.display(), error = %err, "could not look at the socket file")
            }
        }
    }
}

/// Who may use the socket file: its mode, and the owner and group to give it (the
/// daemon's own when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketAccess {
    pub mode: u32,
    pub owner: Option<u32>,
    pub group: Option<u32>,
}

impl SocketAccess {
    #[cfg(test)]
    pub(crate) fn mode(mode: u32) -> Self {
        Self {
            mode,
            owner: None,
            group: None,
        }
    }

    fn changes_owner(&self) -> bool {
        self.owner.is_some() || self.group.is_some()
    }

    /// Gives `path` to the configured owner and group.
    fn apply_owner(&self, path: &Path, what: &str) -> Result<(), ListenError> {
        if !self.changes_owner() {
            return Ok(());
        }
        std::os::unix::fs::chown(path, self.owner, self.group).map_err(|source| {
            ListenError::Chown {
                what: format!("{what} `{}`", path.display()),
                owner: self.owner,
                group: self.group,
                source,
            }
        })
    }
}

/// Binds the socket: checks its directory, takes the lock beside it, replaces a stale
/// socket file left by a crashed run (but never a live socket, a file that is not a
/// socket, or another user's socket), and gives it its owner, group and mode.
pub(crate) fn bind_unix(
    path: &Path,
    access: &SocketAccess,
) -> Result<(UnixListener, UnixSocket), ListenError> {
    let mode = access.mode;
    let me = rustix::process::geteuid().as_raw();
    create_socket_dir(path, access)?;
    check_socket_dir(path, me, access.owner)?;
    let lock = lock_beside(path)?;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(ListenError::NotASocket(path.to_path_buf()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ListenError::SocketInUse(path.to_path_buf()));
        }
        if meta.uid() != me && me != 0 {
            return Err(ListenError::ForeignSocket {
                path: path.to_path_buf(),
                owner: meta.uid(),
                me,
            });
        }
        // The lock makes this safe: a second daemon would have failed to take it, so
        // nobody binds between this check and the bind below.
        tracing::info!(socket = %path.display(), "replacing a stale socket file");
        std::fs::remove_file(path).map_err(|source| ListenError::Bind {
            what: format!("socket `{}` (removing the stale file)", path.display()),
            source,
        })?;
    }
    let bind_error = |source| ListenError::Bind {
        what: format!("socket `{}`", path.display()),
        source,
    };
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    // The process umask (0077, set at start) already made the socket private, so it
    // changes hands before the mode opens it to a group: no one else can connect
    // in between.
    access.apply_owner(path, "socket")?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(bind_error)?;
    let meta = std::fs::symlink_metadata(path).map_err(bind_error)?;
    let socket = UnixSocket {
        path: path.to_path_buf(),
        created: (meta.dev(), meta.ino()),
        _lock: lock,
    };
    Ok((listener, socket))
}

/// Creates the socket's directory when it is missing (its parent must exist), private
/// to the daemon's user (or the socket's configured owner and group), with group
/// access when the socket's mode grants it. A volume every container may write (a
/// Kubernetes `emptyDir` is created `0777`) is then the parent, not the directory the
/// socket sits in.
fn create_socket_dir(path: &Path, access: &SocketAccess) -> Result<(), ListenError> {
    let socket_mode = access.mode;
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.exists() {
        return Ok(());
    }
    let mode = if socket_mode & 0o060 != 0 {
        0o750
    } else {
        0o700
    };
    let created = std::fs::DirBuilder::new()
        .mode(mode)
        .create(dir)
        // The umask (0077) narrowed the mode; set it as meant.
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)));
    match created {
        Ok(()) => {
            access.apply_owner(dir, "socket directory")?;
            tracing::info!(dir = %dir.display(), mode = format!("{mode:04o}"), "created the socket's directory");
            Ok(())
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(ListenError::Bind {
            what: format!("socket `{}` (creating its directory)", path.display()),
            source,
        }),
    }
}

/// Whoever may write the socket's directory may rename the socket away and serve their
/// own at its path. Refused: a directory of another user (root excepted), and one that
/// every user may write without the sticky bit (which would stop them renaming files
/// they do not own). A group-writable directory without the sticky bit is allowed with
/// a warning: a shared group is a deliberate choice, often the point of the socket.
/// The socket's configured owner (`socket_owner`) may own the directory: it owns the
/// socket anyway.
pub(crate) fn check_socket_dir(
    path: &Path,
    me: u32,
    socket_owner: Option<u32>,
) -> Result<(), ListenError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let meta = std::fs::metadata(&dir).map_err(|source| ListenError::Bind {
        what: format!("socket `{}` (its directory)", path.display()),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    let sticky = mode & 0o1000 != 0;
    if meta.uid() != me && meta.uid() != 0 && Some(meta.uid()) != socket_owner {
        return Err(ListenError::ForeignDir {
            dir,
            owner: meta.uid(),
            me,
        });
    }
    if mode & 0o002 != 0 && !sticky {
        return Err(ListenError::WorldWritableDir { dir, mode });
    }
    if mode & 0o020 != 0 && !sticky {
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{mode:04o}"),
            "the socket's directory is writable by its group, whose members could replace the socket"
        );
    }
    Ok(())
}

/// An exclusive lock on `<socket>.lock`, held for the daemon's life. Two daemons
/// started together over a stale socket both saw it stale, both replaced it and both
/// served (1 start in 12); the lock lets one through. The lock file is never removed:
/// unlinking it would let a third daemon lock a new file while the second still holds
/// the old one.
fn lock_beside(path: &Path) -> Result<File, ListenError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&lock_path)
        .map_err(|source| ListenError::Bind {
            what: format!(
                "socket `{}` (its lock `{}`)",
                path.display(),
                lock_path.display()
            ),
            source,
        })?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(ListenError::Locked {
            socket: path.to_path_buf(),
            lock: lock_path,
        }),
        Err(err) => Err(ListenError::Bind {
            what: format!(
                "socket `{}` (locking `{}`)",
                path.display(),
                lock_path.display()
            ),
            source: err.into(),
        }),
    }
}

#[cfg(test)]
mod tests;
