//! The audit trail: one JSON line per resolve, batch item, Jira credential hand-out and
//! denial, naming the caller, what it asked for and the outcome; never a value, never a
//! token. Lines are handed to a writer thread over a bounded queue, so a request never
//! waits for the disk.

use super::{Identity, SetupError};
use crate::config::{AuditConfig, AuditSink};
use serde::Serialize;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use tokio::sync::{mpsc, oneshot};

/// Lines that may wait for the writer. A line is about 250 bytes, so a full queue holds
/// about 16 MB; past it lines are counted as dropped rather than making callers wait.
const QUEUE: usize = 65_536;

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

#[derive(Debug)]
struct Record {
    at: SystemTime,
    caller: Identity,
    clients: Vec<Arc<str>>,
    rpc: &'static str,
    connection: bool,
    name: String,
    code: tonic::Code,
    cache: Option<&'static str>,
}

#[derive(Debug)]
enum Message {
    Record(Box<Record>),
    Flush(oneshot::Sender<()>),
}

/// Clones share one writer: a reload that keeps the audit settings keeps writing
/// through it.
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    queue: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    pub(crate) fn start(config: &AuditConfig) -> Result<Option<Self>, SetupError> {
        let out: Box<dyn Write + Send> = match (config.sink, &config.file) {
            (AuditSink::Off, _) => return Ok(None),
            (AuditSink::Stderr, _) | (AuditSink::File, None) => Box::new(TracingLines),
            (AuditSink::File, Some(path)) => Box::new(std::io::BufWriter::new(open(path)?)),
        };
        let (queue, receiver) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        std::thread::Builder::new()
            .name("vaultbridge-audit".into())
            .spawn(move || write_lines(receiver, out, &counter))
            .map_err(|source| SetupError::AuditFile {
                path: "(writer thread)".into(),
                source,
            })?;
        Ok(Some(Self { queue, dropped }))
    }

    pub(super) fn record(
        &self,
        caller: &Identity,
        clients: Vec<Arc<str>>,
        rpc: &'static str,
        target: Target<'_>,
        code: tonic::Code,
        cache: Option<&'static str>,
    ) {
        let record = Record {
            at: SystemTime::now(),
            caller: caller.clone(),
            clients,
            rpc,
            connection: matches!(target, Target::Connection(_)),
            name: target.name().to_owned(),
            code,
            cache,
        };
        if self
            .queue
            .try_send(Message::Record(Box::new(record)))
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
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

/// Lines for stderr go through the daemon's log, under their own target, so they
/// interleave whole with its other lines and can be filtered apart.
struct TracingLines;

impl Write for TracingLines {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(line);
        tracing::info!(target: "vaultbridge::audit", "{}", line.trim_end());
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn write_lines(
    mut receiver: mpsc::Receiver<Message>,
    mut out: Box<dyn Write + Send>,
    dropped: &AtomicU64,
) {
    let mut reported = 0;
    while let Some(message) = receiver.blocking_recv() {
        let mut next = Some(message);
        // Everything already queued, then one flush.
        while let Some(message) = next.take() {
            match message {
                Message::Record(record) => {
                    let mut line = serde_json::to_vec(&Line::from(&*record)).unwrap_or_default();
                    line.push(b'\n');
                    if let Err(err) = out.write_all(&line) {
                        tracing::error!(error = %err, "cannot write the audit trail");
                    }
                }
                Message::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            next = receiver.try_recv().ok();
        }
        let _ = out.flush();
        let now = dropped.load(Ordering::Relaxed);
        if now != reported {
            tracing::warn!(
                dropped = now - reported,
                "audit lines were dropped: the writer could not keep up"
            );
            reported = now;
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    caller: CallerLine<'a>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    clients: Vec<&'a str>,
    rpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    definition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jira_connection: Option<&'a str>,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum CallerLine<'a> {
    Unix {
        uid: u32,
        gid: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        pid: Option<i32>,
    },
    UnixUnknown,
    Certificate {
        names: &'a [String],
    },
    Token {
        client: &'a str,
        token: &'a str,
    },
    Tcp {
        #[serde(skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
}

impl<'a> From<&'a Record> for Line<'a> {
    fn from(record: &'a Record) -> Self {
        let time = time::OffsetDateTime::from(record.at)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let caller = match &record.caller {
            Identity::Unix { uid, gid, pid } => CallerLine::Unix {
                uid: *uid,
                gid: *gid,
                pid: *pid,
            },
            Identity::UnixUnknown => CallerLine::UnixUnknown,
            Identity::Certificate { names } => CallerLine::Certificate { names },
            Identity::Token { client, source } => CallerLine::Token {
                client,
                token: source,
            },
            Identity::Network { address } => CallerLine::Tcp {
                address: address.map(|address| address.to_string()),
            },
        };
        Self {
            time,
            caller,
            clients: record.clients.iter().map(|client| &**client).collect(),
            rpc: record.rpc,
            definition: (!record.connection && !record.name.is_empty())
                .then_some(record.name.as_str()),
            jira_connection: record.connection.then_some(record.name.as_str()),
            code: crate::status::code_name(record.code),
            cache: record.cache,
        }
    }
}
