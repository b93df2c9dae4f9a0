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
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
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
    fn revision_for_hit(&self) -> u64 {
        let interval = self.config.change_check_interval;
        if !interval.is_zero() {
            let elapsed = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
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

    fn revision(&self) -> Option<u64> {
        Some(self.inner.revision_for_hit())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;
    use std::time::Duration;
    use vaultbridge_backend_core::conformance::{Fixture, Seed, Update};
    use vaultbridge_backend_core::conformance_suite;

    struct FileFixture {
        dir: tempfile::TempDir,
        format: FileFormat,
        /// What the file holds now, which `update` edits and writes again.
        written: Mutex<Vec<(String, Seed)>>,
    }

    impl FileFixture {
        fn new(format: FileFormat) -> Self {
            Self {
                dir: tempfile::tempdir().expect("tempdir"),
                format,
                written: Mutex::new(Vec::new()),
            }
        }

        fn path(&self) -> PathBuf {
            self.dir.path().join(match self.format {
                FileFormat::Yaml => "secrets.yaml",
                FileFormat::Json => "secrets.json",
                FileFormat::Dotenv => ".env",
            })
        }

        /// Writes a new file and renames it over the old one, as editors that save
        /// atomically do: the new inode is a change whatever the clock's granularity.
        fn write(&self, secrets: &[(String, Seed)]) {
            let borrowed: Vec<(&str, Seed)> = secrets
                .iter()
                .map(|(id, seed)| (id.as_str(), seed.clone()))
                .collect();
            let staging = self.dir.path().join("staging");
            std::fs::write(&staging, render(self.format, &borrowed)).expect("write secrets");
            std::fs::rename(&staging, self.path()).expect("replace secrets file");
        }
    }

    fn json_string(bytes: &[u8]) -> String {
        let text = std::str::from_utf8(bytes).expect("text backend seeds are UTF-8");
        serde_json::Value::String(text.to_owned()).to_string()
    }

    fn dotenv_string(bytes: &[u8]) -> String {
        let text = std::str::from_utf8(bytes).expect("text backend seeds are UTF-8");
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                other => out.push(other),
            }
        }
        out.push('"');
        out
    }

    /// Writes the seeds in the fixture's format. JSON string syntax is also valid YAML
    /// double-quoted syntax, which gives exact YAML for any text.
    fn render(format: FileFormat, secrets: &[(&str, Seed)]) -> String {
        let mut out = String::new();
        match format {
            FileFormat::Yaml => {
                for (id, seed) in secrets {
                    match seed {
                        Seed::Value(bytes) => out += &format!("{id}: {}\n", json_string(bytes)),
                        Seed::Map(pairs) => {
                            out += &format!("{id}:\n");
                            for (key, value) in pairs {
                                out += &format!("  {key}: {}\n", json_string(value.as_bytes()));
                            }
                        }
                    }
                }
            }
            FileFormat::Json => {
                let mut object = serde_json::Map::new();
                for (id, seed) in secrets {
                    let value = match seed {
                        Seed::Value(bytes) => serde_json::Value::String(
                            String::from_utf8(bytes.clone()).expect("UTF-8 seed"),
                        ),
                        Seed::Map(pairs) => serde_json::Value::Object(
                            pairs
                                .iter()
                                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                                .collect(),
                        ),
                    };
                    object.insert((*id).to_owned(), value);
                }
                out = serde_json::Value::Object(object).to_string();
            }
            FileFormat::Dotenv => {
                for (id, seed) in secrets {
                    let value = match seed {
                        Seed::Value(bytes) => dotenv_string(bytes),
                        Seed::Map(pairs) => dotenv_string(Seed::map_as_json(pairs).as_bytes()),
                    };
                    out += &format!("{id}={value}\n");
                }
            }
        }
        out
    }

    /// The backend runs with the default change-check interval, as deployed; the revision
    /// case polls until the interval has passed.
    #[async_trait]
    impl Fixture for FileFixture {
        async fn backend(&self, secrets: &[(&str, Seed)]) -> Arc<dyn Backend> {
            let secrets: Vec<(String, Seed)> = secrets
                .iter()
                .map(|(id, seed)| ((*id).to_owned(), seed.clone()))
                .collect();
            self.write(&secrets);
            *self.written.lock().expect("test lock") = secrets;
            Arc::new(FileBackend::open(FileConfig::new(self.path(), self.format)))
        }

        async fn update(&self, id: &str, seed: Seed) -> Update {
            let mut written = self.written.lock().expect("test lock");
            match written.iter_mut().find(|(written_id, _)| written_id == id) {
                Some((_, value)) => *value = seed,
                None => written.push((id.to_owned(), seed)),
            }
            self.write(&written);
            Update::Applied
        }
    }

    conformance_suite!(conformance_yaml, FileFixture::new(FileFormat::Yaml));
    conformance_suite!(conformance_json, FileFixture::new(FileFormat::Json));
    conformance_suite!(conformance_dotenv, FileFixture::new(FileFormat::Dotenv));

    fn open(dir: &tempfile::TempDir, name: &str, body: &str) -> FileBackend {
        open_checking_every(dir, name, body, Duration::ZERO)
    }

    fn open_checking_every(
        dir: &tempfile::TempDir,
        name: &str,
        body: &str,
        change_check_interval: Duration,
    ) -> FileBackend {
        let path = dir.path().join(name);
        std::fs::write(&path, body).expect("write");
        FileBackend::open(FileConfig {
            format: FileFormat::from_path(&path).expect("known extension"),
            path,
            change_check_interval,
        })
    }

    fn rewrite(dir: &tempfile::TempDir, name: &str, body: &str) {
        // In place and the same size: only mtime/ctime tell the change.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(dir.path().join(name))
            .expect("open");
        file.write_all(body.as_bytes()).expect("write");
    }

    #[tokio::test]
    async fn within_the_change_check_interval_a_hit_keeps_its_revision_and_a_miss_reads_anew() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend =
            open_checking_every(&dir, "s.yaml", "a: \"one\"\n", Duration::from_secs(3600));
        let first = backend.revision();
        rewrite(&dir, "s.yaml", "a: \"two\"\n");
        assert_eq!(
            backend.revision(),
            first,
            "a hit does not stat within the interval"
        );
        assert_eq!(
            fetch(&backend, "a").await.unwrap(),
            b"two",
            "a miss always takes the signature"
        );
        assert_ne!(
            backend.revision(),
            first,
            "and the revision the miss saw is the one hits report"
        );
    }

    /// Polls `backend.revision()` (as cache hits do) until it moves from `first`, within
    /// a deadline, and returns how long after `checked` that was. The interval is on the
    /// real clock, so waiting is the behaviour under test; the loop ends when the change
    /// is seen, not after a guessed time.
    fn hit_sees_the_edit_after(
        backend: &FileBackend,
        first: Option<u64>,
        checked: Instant,
    ) -> Duration {
        let deadline = checked + Duration::from_secs(20);
        while backend.revision() == first {
            assert!(
                Instant::now() < deadline,
                "a hit did not see the edit within 20 s"
            );
            // Polling interval only; a hit within the interval costs two atomic loads.
            std::thread::sleep(Duration::from_millis(2));
        }
        checked.elapsed()
    }

    #[test]
    fn after_the_change_check_interval_a_hit_sees_the_edit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let interval = Duration::from_millis(50);
        let backend = open_checking_every(&dir, "s.yaml", "a: \"one\"\n", interval);
        // The first hit takes the signature and starts the interval, no sooner than this.
        let checked = Instant::now();
        let first = backend.revision();
        rewrite(&dir, "s.yaml", "a: \"two\"\n");
        let seen = hit_sees_the_edit_after(&backend, first, checked);
        assert!(seen >= interval, "seen after {seen:?}, within the interval");
    }

    /// The default (what `FileConfig::new` gives and an unset `change_check_interval`
    /// means): hits see an edit once a second has passed since their last check, and
    /// not before.
    #[test]
    fn by_default_a_hit_sees_an_edit_after_one_second_and_not_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.yaml");
        std::fs::write(&path, "a: \"one\"\n").expect("write");
        let backend = FileBackend::open(FileConfig::new(path, FileFormat::Yaml));
        let checked = Instant::now();
        let first = backend.revision();
        rewrite(&dir, "s.yaml", "a: \"two\"\n");
        let seen = hit_sees_the_edit_after(&backend, first, checked);
        assert!(
            seen >= Duration::from_secs(1),
            "seen after {seen:?}, within the default second"
        );
    }

    async fn fetch(backend: &FileBackend, id: &str) -> Result<Vec<u8>, BackendError> {
        backend
            .fetch(&SecretRef::new(id))
            .await
            .map(|fetched| fetched.value.expose().to_vec())
    }

    #[tokio::test]
    async fn an_edit_is_seen_by_the_next_fetch_and_moves_the_revision() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = open(&dir, "s.yaml", "a: \"one\"\n");
        let first = backend.revision();
        assert_eq!(fetch(&backend, "a").await.unwrap(), b"one");
        assert_eq!(backend.revision(), first, "no change, same revision");
        // Same size, written in place: caught by mtime/ctime even within one second.
        rewrite(&dir, "s.yaml", "a: \"two\"\n");
        assert_ne!(backend.revision(), first);
        assert_eq!(fetch(&backend, "a").await.unwrap(), b"two");
    }

    #[tokio::test]
    async fn a_whole_map_entry_comes_back_as_a_json_object() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = open(
            &dir,
            "s.yaml",
            "jira:\n  email: \"a@b.c\"\n  token: \"t\"\n",
        );
        let whole = fetch(&backend, "jira").await.unwrap();
        assert_eq!(whole, br#"{"email":"a@b.c","token":"t"}"#);
    }

    #[tokio::test]
    async fn a_missing_file_then_created_is_picked_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("later.json");
        let backend = FileBackend::open(FileConfig {
            path: path.clone(),
            format: FileFormat::Json,
            change_check_interval: Duration::ZERO,
        });
        let err = fetch(&backend, "a").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert!(err.to_string().contains("does not exist"), "{err}");
        std::fs::write(&path, r#"{"a":"now"}"#).expect("write");
        assert_eq!(fetch(&backend, "a").await.unwrap(), b"now");
    }

    #[tokio::test]
    async fn a_broken_file_reports_position_not_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = open(&dir, "s.json", "{\"a\": \"hunter2-value\", oops}");
        let err = fetch(&backend, "a").await.unwrap_err();
        let message = err.to_string();
        assert!(message.contains("not valid JSON at line 1"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn format_follows_the_file_name() {
        let of = |name: &str| FileFormat::from_path(Path::new(name));
        assert_eq!(of("/x/secrets.YML"), Some(FileFormat::Yaml));
        assert_eq!(of("a.json"), Some(FileFormat::Json));
        assert_eq!(of(".env"), Some(FileFormat::Dotenv));
        assert_eq!(of(".env.local"), Some(FileFormat::Dotenv));
        assert_eq!(of("prod.env"), Some(FileFormat::Dotenv));
        assert_eq!(of("secrets.txt"), None);
    }
}
