//! Bearer tokens: read from files or environment variables, kept only as SHA-256
//! digests, compared in constant time, and re-read from their files when they change so
//! a token can be rotated without a restart.

use crate::config::{ClientConfig, TokenSource, Vars};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

/// How often token files are looked at for a change. A rotation writes the new token
/// beside the old one first (clients list several), so a second's delay loses nothing.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("client `{client}`: cannot read its token from {source_name}: {error}")]
    Unreadable {
        client: String,
        source_name: String,
        error: String,
    },
    #[error("client `{client}`: its token from {source_name} is empty")]
    Empty { client: String, source_name: String },
    #[error(
        "clients `{first}` and `{second}` have the same token ({first_source} and {second_source}); each client needs its own, or a caller could not be told apart"
    )]
    Shared {
        first: String,
        first_source: String,
        second: String,
        second_source: String,
    },
}

/// What identifies a file's contents without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    // Follows symlinks: Kubernetes mounts a Secret as links it swaps on update.
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

#[derive(Debug)]
struct Token {
    client: Arc<str>,
    /// How the token is named in the audit trail and in messages.
    source: Arc<str>,
    file: Option<PathBuf>,
    stamp: Option<Stamp>,
    digest: [u8; 32],
}

struct NoVars;

impl Vars for NoVars {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    tokens: RwLock<Vec<Token>>,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// A token as written in its file or variable, without surrounding whitespace (a
/// trailing newline is what `echo` and editors leave).
fn read(source: &TokenSource, client: &str, vars: &dyn Vars) -> Result<[u8; 32], TokenError> {
    let unreadable = |error: String| TokenError::Unreadable {
        client: client.to_owned(),
        source_name: source.to_string(),
        error,
    };
    let text = match source {
        TokenSource::File(path) => {
            std::fs::read(path).map_err(|err| unreadable(err.to_string()))?
        }
        TokenSource::Env(name) => vars
            .var(name)
            .ok_or_else(|| unreadable("it is not set".into()))?
            .into_bytes(),
    };
    let trimmed = text.trim_ascii();
    if trimmed.is_empty() {
        return Err(TokenError::Empty {
            client: client.to_owned(),
            source_name: source.to_string(),
        });
    }
    let digest = digest(trimmed);
    let mut text = text;
    zeroize::Zeroize::zeroize(&mut text);
    Ok(digest)
}

impl TokenStore {
    pub(crate) fn load(clients: &[ClientConfig], vars: &dyn Vars) -> Result<Self, TokenError> {
        let mut tokens: Vec<Token> = Vec::new();
        for client in clients {
            for source in &client.tokens {
                let (file, stamp) = match source {
                    TokenSource::File(path) => (Some(path.clone()), stamp(path)),
                    TokenSource::Env(_) => (None, None),
                };
                let digest = read(source, &client.name, vars)?;
                if let Some(other) = tokens
                    .iter()
                    .find(|other| other.digest == digest && *other.client != *client.name)
                {
                    return Err(TokenError::Shared {
                        first: other.client.to_string(),
                        first_source: other.source.to_string(),
                        second: client.name.clone(),
                        second_source: source.to_string(),
                    });
                }
                tokens.push(Token {
                    client: Arc::from(client.name.as_str()),
                    source: Arc::from(source.to_string()),
                    file,
                    stamp,
                    digest,
                });
            }
        }
        Ok(Self {
            tokens: RwLock::new(tokens),
        })
    }

    pub(crate) fn has_files(&self) -> bool {
        self.tokens
            .read()
            .is_ok_and(|tokens| tokens.iter().any(|token| token.file.is_some()))
    }

    /// The client a presented token belongs to, and the token's source. Every known
    /// token is compared, in constant time, so the time taken tells nothing about which
    /// token came close.
    pub(crate) fn client_of(&self, presented: &[u8]) -> Option<(Arc<str>, Arc<str>)> {
        let presented = digest(presented);
        let tokens = self.tokens.read().ok()?;
        let mut found = None;
        for token in tokens.iter() {
            if bool::from(token.digest.ct_eq(&presented)) {
                found = Some((token.client.clone(), token.source.clone()));
            }
        }
        found
    }

    /// Looks at each token file every [`CHECK_INTERVAL`] and takes a changed token. A
    /// file that cannot be read keeps its last token, with a warning once per change.
    pub(crate) async fn watch(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                _ = tick.tick() => {}
            }
            self.reload_changed();
        }
    }

    pub(super) fn reload_changed(&self) {
        let Ok(mut tokens) = self.tokens.write() else {
            return;
        };
        for token in tokens.iter_mut() {
            let Some(path) = &token.file else { continue };
            let now = stamp(path);
            if now == token.stamp {
                continue;
            }
            token.stamp = now;
            // Files only: a variable cannot change under a running process.
            match read(&TokenSource::File(path.clone()), &token.client, &NoVars) {
                Ok(digest) => {
                    if digest != token.digest {
                        token.digest = digest;
                        tracing::info!(client = %token.client, source = %token.source, "token changed; the new one is in use");
                    }
                }
                Err(err) => tracing::warn!(
                    error = %err,
                    "keeping the client's previous token until its file can be read"
                ),
            }
        }
    }
}
