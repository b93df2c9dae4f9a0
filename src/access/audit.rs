//! The audit trail: one JSON line per resolve, batch item, Jira credential hand-out and
//! denial, naming the caller, what it asked for and the outcome; never a value, never a
//! token. A request formats its line into a shared buffer; a writer thread of its own
//! takes the buffer and writes it, so a request never waits for the disk.
//!
//! The line is written by hand rather than through serde: it sits on every cache hit,
//! and serde_json's string escaping, a formatted timestamp per line and the record's
//! allocations cost more than the rest of the access check together (BENCHMARKS.md,
//! "Access rules, the audit trail and metrics").

use super::{Identity, SetupError};
use crate::config::{AuditConfig, AuditSink};
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;

/// Bytes of lines that may wait for the writer. A line is about 250 bytes, so this
/// holds about 65,000 lines; past it lines are counted as dropped rather than making
/// callers wait.
const MAX_PENDING: usize = 16 * 1024 * 1024;
/// How long the writer lets lines gather after the first one arrives, so a busy daemon
/// pays one wake-up and one `write` per batch rather than per line; a flush (at
/// shutdown, or by a test) cuts it short.
const LINGER: Duration = Duration::from_millis(20);
/// Pending bytes that wake the writer early.
const HIGH_WATER: usize = 1024 * 1024;

/// What a request was about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    Definition(&'a str),
    Connection(&'a str),
    /// Every definition the caller may read (`Invalidate` with `all`).
    AllDefinitions,
    /// Not known: the request was refused before it was read.
    Unnamed,
}

impl Target<'_> {
    pub(super) fn what(&self) -> &'static str {
        match self {
            Self::Definition(_) | Self::AllDefinitions | Self::Unnamed => "definition",
            Self::Connection(_) => "Jira connection",
        }
    }

    pub(super) fn name(&self) -> &str {
        match self {
            Self::Definition(name) | Self::Connection(name) => name,
            Self::AllDefinitions => "*",
            Self::Unnamed => "",
        }
    }
}

/// Clones share one writer: a reload that keeps the audit settings keeps writing
/// through it. The writer ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    handle: Arc<WriterHandle>,
}

/// The buffer the writer thread shares; dropped with the last clone of the log, which
/// tells the writer to write what is left and end.
#[derive(Debug)]
struct WriterHandle(Arc<Shared>);

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.wake.notify_one();
    }
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Pending {
    lines: Vec<u8>,
    flushes: Vec<oneshot::Sender<()>>,
    closed: bool,
    dropped: u64,
    clock: Clock,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while a line was formatted leaves at worst a partial line; the
        // trail goes on.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

enum Sink {
    File(std::io::BufWriter<std::fs::File>),
    /// Lines for stderr go through the daemon's log, under their own target, so they
    /// interleave whole with its other lines and can be filtered apart.
    Log,
}

impl AuditLog {
    pub(crate) fn start(config: &AuditConfig) -> Result<Option<Self>, SetupError> {
        let sink = match (config.sink, &config.file) {
            (AuditSink::Off, _) => return Ok(None),
            (AuditSink::Stderr, _) | (AuditSink::File, None) => Sink::Log,
            (AuditSink::File, Some(path)) => Sink::File(std::io::BufWriter::new(open(path)?)),
        };
        let shared = Arc::new(Shared::default());
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("vaultbridge-audit".into())
            .spawn(move || write_lines(&writer, sink))
            .map_err(|source| SetupError::AuditFile {
                path: "(writer thread)".into(),
                source,
            })?;
        Ok(Some(Self {
            handle: Arc::new(WriterHandle(shared)),
        }))
    }

    pub(super) fn record<'c>(
        &self,
        caller: &Identity,
        clients: impl Iterator<Item = &'c str>,
        rpc: &'static str,
        target: Target<'_>,
        code: tonic::Code,
        cache: Option<&'static str>,
    ) {
        let at = SystemTime::now();
        let shared = &self.handle.0;
        let mut pending = shared.lock();
        let before = pending.lines.len();
        if before >= MAX_PENDING {
            pending.dropped += 1;
            return;
        }
        let Pending { lines, clock, .. } = &mut *pending;
        clock.write(lines, at);
        write_line(lines, caller, clients, rpc, target, code, cache);
        let after = lines.len();
        drop(pending);
        // The writer waits for the first line of a batch, and lingers after it unless
        // the batch grows large; any other line needs no wake-up.
        if before == 0 || (before < HIGH_WATER && after >= HIGH_WATER) {
            shared.wake.notify_one();
        }
    }

    pub(super) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        let shared = &self.handle.0;
        shared.lock().flushes.push(done);
        shared.wake.notify_one();
        let _ = wait.await;
    }
}

fn open(path: &std::path::Path) -> Result<std::fs::File, SetupError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| SetupError::AuditFile {
            path: path.display().to_string(),
            source,
        })?;
    let mode = file
        .metadata()
        .map_err(|source| SetupError::AuditFile {
            path: path.display().to_string(),
            source,
        })?
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(SetupError::AuditFileMode {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(file)
}

fn write_lines(shared: &Shared, mut sink: Sink) {
    let mut batch = Vec::new();
    let mut reported = 0;
    loop {
        let mut pending = shared.lock();
        while pending.lines.is_empty() && pending.flushes.is_empty() && !pending.closed {
            pending = shared
                .wake
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let deadline = Instant::now() + LINGER;
        while pending.flushes.is_empty() && !pending.closed && pending.lines.len() < HIGH_WATER {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            pending = shared
                .wake
                .wait_timeout(pending, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut pending.lines, &mut batch);
        let flushes = std::mem::take(&mut pending.flushes);
        let closed = pending.closed;
        let dropped = pending.dropped;
        drop(pending);

        sink.write(&batch);
        batch.clear();
        for done in flushes {
            let _ = done.send(());
        }
        if dropped != reported {
            tracing::warn!(
                dropped = dropped - reported,
                "audit lines were dropped: the writer could not keep up"
            );
            reported = dropped;
        }
        if closed {
            return;
        }
    }
}

impl Sink {
    fn write(&mut self, batch: &[u8]) {
        match self {
            Self::File(file) => {
                if let Err(err) = file.write_all(batch).and_then(|()| file.flush()) {
                    tracing::error!(error = %err, "cannot write the audit trail");
                }
            }
            Self::Log => {
                for line in batch.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
                    let line = String::from_utf8_lossy(line);
                    tracing::info!(target: "vaultbridge::audit", "{line}");
                }
            }
        }
    }
}

/// The start of each line's `time`, formatted once a second rather than per line.
#[derive(Debug, Default)]
struct Clock {
    second: u64,
    /// `{"time":"2026-11-30T06:01:02.` for `second`.
    prefix: Vec<u8>,
}

impl Clock {
    fn write(&mut self, out: &mut Vec<u8>, at: SystemTime) {
        let since = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        if since.as_secs() != self.second || self.prefix.is_empty() {
            self.second = since.as_secs();
            let time = time::OffsetDateTime::UNIX_EPOCH
                + time::Duration::seconds(i64::try_from(self.second).unwrap_or(i64::MAX));
            self.prefix.clear();
            // Formatting into a Vec cannot fail; a year past 9999 is not this trail's.
            let _ = write!(
                self.prefix,
                "{{\"time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                time.year(),
                u8::from(time.month()),
                time.day(),
                time.hour(),
                time.minute(),
                time.second()
            );
        }
        out.extend_from_slice(&self.prefix);
        let millis = since.subsec_millis();
        out.extend_from_slice(&[
            b'0' + (millis / 100) as u8,
            b'0' + (millis / 10 % 10) as u8,
            b'0' + (millis % 10) as u8,
            b'Z',
            b'"',
        ]);
    }
}

/// The rest of the line after `time`, in the documented field order.
fn write_line<'c>(
    out: &mut Vec<u8>,
    caller: &Identity,
    clients: impl Iterator<Item = &'c str>,
    rpc: &'static str,
    target: Target<'_>,
    code: tonic::Code,
    cache: Option<&'static str>,
) {
    out.extend_from_slice(b",\"caller\":{\"kind\":");
    match caller {
        Identity::Unix { uid, gid, pid } => {
            out.extend_from_slice(b"\"unix\",\"uid\":");
            number(out, *uid);
            out.extend_from_slice(b",\"gid\":");
            number(out, *gid);
            if let Some(pid) = pid {
                out.extend_from_slice(b",\"pid\":");
                number(out, *pid);
            }
        }
        Identity::UnixUnknown => out.extend_from_slice(b"\"unix_unknown\""),
        Identity::Certificate { names } => {
            out.extend_from_slice(b"\"certificate\",\"names\":[");
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, name);
            }
            out.push(b']');
        }
        Identity::Token { client, source } => {
            out.extend_from_slice(b"\"token\",\"client\":");
            string(out, client);
            out.extend_from_slice(b",\"token\":");
            string(out, source);
        }
        Identity::Network { address } => {
            out.extend_from_slice(b"\"tcp\"");
            if let Some(address) = address {
                out.extend_from_slice(b",\"address\":\"");
                // An address needs no escaping.
                let _ = write!(out, "{address}");
                out.push(b'"');
            }
        }
    }
    out.push(b'}');
    let mut clients = clients.peekable();
    if clients.peek().is_some() {
        out.extend_from_slice(b",\"clients\":[");
        for (i, client) in clients.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, client);
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"rpc\":");
    known(out, rpc);
    match target {
        Target::Connection(name) => {
            out.extend_from_slice(b",\"jira_connection\":");
            string(out, name);
        }
        Target::Definition(_) | Target::AllDefinitions => {
            out.extend_from_slice(b",\"definition\":");
            string(out, target.name());
        }
        Target::Unnamed => {}
    }
    out.extend_from_slice(b",\"code\":");
    known(out, crate::status::code_name(code));
    if let Some(cache) = cache {
        out.extend_from_slice(b",\"cache\":");
        known(out, cache);
    }
    out.extend_from_slice(b"}\n");
}

fn number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// One of the daemon's own words (an RPC such as `Resolve` or `http.GetSecret`, a
/// code's name, a cache outcome): printable ASCII without `"` or `\`, which JSON takes
/// as it is.
fn known(out: &mut Vec<u8>, word: &'static str) {
    debug_assert!(
        word.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    );
    out.push(b'"');
    out.extend_from_slice(word.as_bytes());
    out.push(b'"');
}

/// A JSON string. Names are validated and rarely need escaping, so the common case is
/// one scan and one copy.
pub(super) fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escaped);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod clock_tests {
    use super::Clock;
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_time_has_milliseconds_and_follows_each_second() {
        let mut clock = Clock::default();
        let mut out = Vec::new();
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_022_062_045);
        clock.write(&mut out, at);
        clock.write(&mut out, at + Duration::from_millis(960));
        clock.write(&mut out, at + Duration::from_millis(86_400_000));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                r#"{"time":"2026-11-30T07:01:02.045Z""#,
                r#"{"time":"2026-11-30T07:01:03.005Z""#,
                r#"{"time":"2026-12-01T07:01:02.045Z""#,
            )
        );
    }
}
