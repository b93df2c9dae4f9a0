//! `serve --watch-config`: a reload each time the config file's content changes.
//!
//! The path is polled rather than watched with inotify. A Kubernetes ConfigMap volume
//! changes a file by swapping the directory's `..data` symlink, which a watch on the
//! file never reports and a watch on the directory reports as several events; a stat
//! through the path's symlinks sees that swap, an edit in place and a rename alike,
//! needs no extra dependency, and works on network filesystems inotify cannot watch.
//! The content is read only when the file's identity (device, inode, size, times)
//! changed, and a reload happens only when its hash differs from the last one seen, so
//! one change is one reload and a `touch` is none.

use super::Reloader;
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often the file is looked at: a change is applied within this. kubelet itself
/// takes up to a minute to update a ConfigMap volume.
const POLL: Duration = Duration::from_secs(1);

type Stamp = (u64, u64, u64, i64, i64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    ))
}

async fn digest(path: &Path) -> Option<[u8; 32]> {
    let content = tokio::fs::read(path).await.ok()?;
    Some(Sha256::digest(&content).into())
}

/// Reloads through `reloader` whenever the content at `path` changes, until `stop`.
pub(crate) async fn watch_config(
    reloader: Arc<Reloader>,
    path: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tracing::info!(config = %path.display(), "watching the config file for changes");
    let mut seen = stamp(&path);
    let mut content = digest(&path).await;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = tick.tick() => {}
        }
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        seen = now;
        // Missing for a moment (a swap under way): the next look finds the new file.
        let Some(new) = digest(&path).await else {
            continue;
        };
        if content == Some(new) {
            continue;
        }
        content = Some(new);
        reloader.reload("the config file changed").await;
    }
}
