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
    let backend = open_checking_every(&dir, "s.yaml", "a: \"one\"\n", Duration::from_secs(3600));
    let first = backend.revision(Instant::now());
    rewrite(&dir, "s.yaml", "a: \"two\"\n");
    assert_eq!(
        backend.revision(Instant::now()),
        first,
        "a hit does not stat within the interval"
    );
    assert_eq!(
        fetch(&backend, "a").await.unwrap(),
        b"two",
        "a miss always takes the signature"
    );
    assert_ne!(
        backend.revision(Instant::now()),
        first,
        "and the revision the miss saw is the one hits report"
    );
}

/// `first` still answered by a hit just before the interval since `checked` ends, and
/// a fresh signature (the edit) once it has: the clock is the caller's, so the
/// boundary is tested exactly, without waiting for it.
fn assert_hits_see_the_edit_at(
    backend: &FileBackend,
    first: Option<u64>,
    checked: Instant,
    interval: Duration,
) {
    let just_before = checked + interval - Duration::from_nanos(1);
    assert_eq!(
        backend.revision(just_before),
        first,
        "a hit within the interval does not stat"
    );
    assert_ne!(
        backend.revision(checked + interval),
        first,
        "a hit once the interval has passed sees the edit"
    );
}

#[test]
fn after_the_change_check_interval_a_hit_sees_the_edit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let interval = Duration::from_millis(50);
    let backend = open_checking_every(&dir, "s.yaml", "a: \"one\"\n", interval);
    // The first hit takes the signature and starts the interval.
    let checked = Instant::now();
    let first = backend.revision(checked);
    rewrite(&dir, "s.yaml", "a: \"two\"\n");
    assert_hits_see_the_edit_at(&backend, first, checked, interval);
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
    let first = backend.revision(checked);
    rewrite(&dir, "s.yaml", "a: \"two\"\n");
    assert_hits_see_the_edit_at(&backend, first, checked, Duration::from_secs(1));
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
    let first = backend.revision(Instant::now());
    assert_eq!(fetch(&backend, "a").await.unwrap(), b"one");
    assert_eq!(
        backend.revision(Instant::now()),
        first,
        "no change, same revision"
    );
    // Same size, written in place: caught by mtime/ctime even within one second.
    rewrite(&dir, "s.yaml", "a: \"two\"\n");
    assert_ne!(backend.revision(Instant::now()), first);
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
