//! The `file` backend: a local YAML, JSON or dotenv file of `name -> value` or
//! `name -> {key: value}` entries, for laptops and simple deployments.
//!
//! The file is re-read when it changes on disk. Changes are detected by a stat
//! signature (device, inode, size, mtime, ctime), with no watcher thread to race. A
//! cache miss always takes the signature. A cache hit takes it at most once per
//! `change_check_interval` (default 1 s; zero: on every hit), because one `statx` per
//! hit was the largest part of the daemon's CPU cost per cache hit over the baseline
//! (about 1 µs of 11; see BENCHMARKS.md). An edit is seen within that interval.
#![forbid(unsafe_code)]

mod config;
mod parse;

pub use config::{FileConfig, RawFileConfig};
pub use parse::FileFormat;

use async_trait::async_trait;
use parse::{Entries, Entry};
use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use vaultbridge_backend_core::config::{BackendSettings, BackendType, Section};
use vaultbridge_backend_core::{
    Backend, BackendError, Capabilities, ErrorKind, Fetched, SecretRef, SecretValue, pick_json_key,
};
use zeroize::Zeroizing;

pub const KIND: &str = "file";

/// YAML, JSON and dotenv hold text, and a file has no versions.
pub const CAPABILITIES: Capabilities = Capabilities::text_only();

/// What identifies one version of the file on disk. Editors that replace the file
/// change the inode; in-place writes change size, mtime or ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

#[cfg(unix)]
fn signature(path: &Path) -> Option<Signature> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Signature {
        device: meta.dev(),
        inode: meta.ino(),
        size: meta.size(),
        modified: (meta.mtime(), meta.mtime_nsec()),
        changed: (meta.ctime(), meta.ctime_nsec()),
    })
}

#[cfg(not(unix))]
fn signature(path: &Path) -> Option<Signature> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| (d.as_secs() as i64, i64::from(d.subsec_nanos())))
        .unwrap_or_default();
    Some(Signature {
        device: 0,
        inode: 0,
        size: meta.len(),
        modified,
        changed: modified,
    })
}

type Loaded = Result<Arc<Entries>, (ErrorKind, String)>;

#[derive(Debug)]
struct State {
    signature: Option<Signature>,
    revision: u64,
    /// `None` until the current revision has been read.
    loaded: Option<Loaded>,
}

pub struct FileBackend {
    inner: Arc<Inner>,
}

/// Shared with the blocking-pool task that reads the file.
struct Inner {
    config: FileConfig,
    state: Mutex<State>,
    /// `State::revision`, readable without the lock on the cache-hit path.
    revision: AtomicU64,
    /// When a cache hit next takes the signature, in nanoseconds since `started`.
    next_check: AtomicU64,
    started: Instant,
}

impl fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBackend")
            .field("path", &self.inner.config.path)
            .field("format", &self.inner.config.format)
            .finish_non_exhaustive()
    }
}

impl FileBackend {
    /// Opens the backend and reads the file once, so that problems are reported at
    /// start: a file readable by group or others, a missing file, a file that does
    /// not parse. None of them stops the daemon; resolves report them until fixed.
    pub fn open(config: FileConfig) -> Self {
        let inner = Inner {
            config,
            state: Mutex::new(State {
                signature: None,
                revision: 0,
                loaded: None,
            }),
            revision: AtomicU64::new(0),
            next_check: AtomicU64::new(0),
            started: Instant::now(),
        };
        inner.warn_if_shared();
        if let Err((_, message)) = inner.entries() {
            tracing::warn!(file = %inner.config.path.display(), "{message}");
        }
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The entries of the current revision. A read happens on tokio's blocking pool:
    /// a file that blocks (a FIFO, a hung network mount) must not stall the runtime,
    /// which also serves other requests and watches for SIGTERM.
    async fn entries(&self) -> Loaded {
        self.inner.current_revision();
        if let Some(loaded) = self.inner.lock().loaded.clone() {
            return loaded;
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.entries())
            .await
            .unwrap_or_else(|err| {
                Err((
                    ErrorKind::Internal,
                    format!("reading the secrets file failed: {err}"),
                ))
            })
    }
}

impl Inner {
    #[cfg(unix)]
    fn warn_if_shared(&self) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&self.config.path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %self.config.path.display(),
                    mode = format!("{mode:04o}"),
                    "secrets file is accessible by group or others; run `chmod 600` on it"
                );
            }
        }
    }

    #[cfg(not(unix))]
    fn warn_if_shared(&self) {}

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written in a way
        // that matters: the worst case is a re-read.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current_revision(&self) -> u64 {
        let now = signature(&self.config.path);
        let mut state = self.lock();
        if state.signature != now {
            state.signature = now;
            state.revision += 1;
            state.loaded = None;
            self.revision.store(state.revision, Ordering::Release);
        }
        state.revision
    }

    /// The revision for a cache hit: the last one seen while the change-check interval
    /// runs, else a fresh signature. Concurrent hits at the interval's end may each take
    /// one; that is harmless.
    fn revision_for_hit(&self, now: Instant) -> u64 {
        let interval = self.config.change_check_interval;
        if !interval.is_zero() {
            let elapsed = now.saturating_duration_since(self.started).as_nanos();
            let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
            if elapsed < self.next_check.load(Ordering::Relaxed) {
                return self.revision.load(Ordering::Acquire);
            }
            let interval = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
            self.next_check
                .store(elapsed.saturating_add(interval), Ordering::Relaxed);
        }
        self.current_revision()
    }

    /// Blocking. The lock is not held while reading, so a slow read never blocks
    /// `revision()` on the async path; two concurrent first reads may both read.
    fn entries(&self) -> Loaded {
        let revision = self.current_revision();
        if let Some(loaded) = self.lock().loaded.clone() {
            return loaded;
        }
        let loaded = self.read();
        let mut state = self.lock();
        // A change between the stat above and this read is caught by the next stat,
        // which sees a signature this state does not hold and reads again.
        if state.revision == revision {
            state.loaded = Some(loaded.clone());
        }
        loaded
    }

    fn read(&self) -> Loaded {
        let path = self.config.path.display();
        let bytes = std::fs::read(&self.config.path).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => (
                ErrorKind::FailedPrecondition,
                format!("secrets file `{path}` does not exist"),
            ),
            std::io::ErrorKind::IsADirectory => (
                ErrorKind::FailedPrecondition,
                format!("secrets file `{path}` is a directory; `path` must name a file"),
            ),
            std::io::ErrorKind::PermissionDenied => (
                ErrorKind::PermissionDenied,
                format!("the daemon may not read secrets file `{path}`"),
            ),
            _ => (
                ErrorKind::Unavailable,
                format!("secrets file `{path}` could not be read: {err}"),
            ),
        })?;
        let text = Zeroizing::new(String::from_utf8(bytes).map_err(|_| {
            (
                ErrorKind::FailedPrecondition,
                format!("secrets file `{path}` is not UTF-8 text"),
            )
        })?);
        parse::parse(self.config.format, &text)
            .map(Arc::new)
            .map_err(|reason| {
                (
                    ErrorKind::FailedPrecondition,
                    format!(
                        "secrets file `{path}` is not valid {}: {reason}",
                        self.config.format.name()
                    ),
                )
            })
    }

    fn describe(&self, id: &str) -> String {
        format!(
            "entry `{id}` of secrets file `{}`",
            self.config.path.display()
        )
    }
}

#[async_trait]
impl Backend for FileBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn fetch(&self, secret: &SecretRef) -> Result<Fetched, BackendError> {
        secret.require_latest("secrets files")?;
        let entries = self.entries().await.map_err(|(kind, message)| {
            let err = BackendError::new(kind, message);
            // An editor may be half-way through writing the file.
            err.temporary(kind == ErrorKind::FailedPrecondition || kind == ErrorKind::Unavailable)
        })?;
        let entry = entries.get(&secret.id).ok_or_else(|| {
            BackendError::not_found(format!(
                "secrets file `{}` has no entry `{}`",
                self.inner.config.path.display(),
                secret.id
            ))
        })?;
        let value = match (entry, &secret.key) {
            (Entry::Value(value), None) => SecretValue::from(value.expose().to_vec()),
            (Entry::Value(value), Some(key)) => {
                pick_json_key(value, key, &self.inner.describe(&secret.id))?
            }
            (Entry::Map(map), Some(key)) => match map.get(key) {
                Some(value) => SecretValue::from(value.expose().to_vec()),
                None => {
                    return Err(BackendError::key_not_found(
                        &self.inner.describe(&secret.id),
                        key,
                        map.keys(),
                    ));
                }
            },
            (Entry::Map(map), None) => map_as_json(map),
        };
        Ok(Fetched::new(value))
    }

    fn revision(&self, now: Instant) -> Option<u64> {
        Some(self.inner.revision_for_hit(now))
    }
}

/// A whole key/value entry served without `key` comes back as a JSON object, the shape
/// the other backends store such secrets in.
fn map_as_json(map: &std::collections::BTreeMap<String, SecretValue>) -> SecretValue {
    let mut object = serde_json::Map::new();
    for (key, value) in map {
        let text = String::from_utf8_lossy(value.expose()).into_owned();
        object.insert(key.clone(), serde_json::Value::String(text));
    }
    let mut document = serde_json::Value::Object(object);
    let rendered = SecretValue::from(document.to_string());
    vaultbridge_backend_core::wipe_json(&mut document);
    rendered
}

impl BackendType for FileConfig {
    const KIND: &'static str = KIND;
    type Raw = RawFileConfig;

    fn check(raw: RawFileConfig, section: &mut Section<'_, '_>) -> Option<Self> {
        config::check(raw, section)
    }
}

#[async_trait]
impl BackendSettings for FileConfig {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn build(&self) -> Result<Arc<dyn Backend>, BackendError> {
        Ok(Arc::new(FileBackend::open(self.clone())))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests;

/// Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature); not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::parse::FileFormat;

    /// Parses a secrets file; `Ok` holds the number of entries, `Err` the message.
    pub fn parse(format: FileFormat, text: &str) -> Result<usize, String> {
        crate::parse::parse(format, text).map(|entries| entries.len())
    }
}
