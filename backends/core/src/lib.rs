//! The contract between the vaultbridge daemon and its secret backends.
//!
//! This crate knows no daemon and no cloud: it holds the [`Backend`] trait, the
//! [`SecretValue`] type that carries secret bytes (redacted when printed, zeroized on
//! drop), the [`BackendError`] every backend maps its own errors into, and, behind the
//! `conformance` feature, the behaviour suite every backend runs from its own tests;
//! and, in [`config`], what a backend needs to own its config.
#![forbid(unsafe_code)]

pub mod config;
mod error;
mod keyed;
mod value;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{BackendError, ErrorKind, describe_chain, find_cause};
pub use keyed::{pick_json_key, wipe_json};
pub use value::SecretValue;

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

/// Which version of a secret a definition asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum VersionSelector {
    /// Whatever the backend considers current.
    #[default]
    Latest,
    /// A version pinned by the backend's own version id.
    Id(String),
    /// A version selected by a label such as AWS's `AWSPREVIOUS`.
    Stage(String),
}

/// What a secret definition asks of its backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    /// The secret's name, path or id, as the backend understands it.
    pub id: String,
    /// One field of a key/value secret, when only that field is wanted.
    pub key: Option<String>,
    pub version: VersionSelector,
}

impl SecretRef {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            key: None,
            version: VersionSelector::Latest,
        }
    }

    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// For backends without versions: refuses a pinned version. Config validation
    /// refuses it first; this keeps a backend honest when used on its own.
    pub fn require_latest(&self, backend_things: &str) -> Result<(), BackendError> {
        if self.version == VersionSelector::Latest {
            Ok(())
        } else {
            Err(BackendError::invalid_config(format!(
                "{backend_things} have no versions; remove the version from the definition"
            )))
        }
    }
}

/// A secret as a backend returned it: raw bytes, untouched (trimming is the daemon's
/// policy, not the backend's), plus what the backend knows about the version.
#[derive(Debug)]
#[non_exhaustive]
pub struct Fetched {
    pub value: SecretValue,
    /// The backend's id for the version served, when it has versions.
    pub version: Option<String>,
    /// Facts about the secret that are not secret (`version_stages`, `content_type`).
    pub metadata: BTreeMap<String, String>,
}

impl Fetched {
    pub fn new(value: SecretValue) -> Self {
        Self {
            value,
            version: None,
            metadata: BTreeMap::new(),
        }
    }

    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// What a backend can do; config validation and the conformance suite read this
/// instead of special-casing backend types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// Versions can be pinned by id.
    pub version_ids: bool,
    /// Versions can be selected by stage label.
    pub version_stages: bool,
    /// Values may be arbitrary bytes, not only UTF-8 text.
    pub binary: bool,
    /// Values may contain NUL bytes (environment variables cannot).
    pub nul_bytes: bool,
}

impl Capabilities {
    pub const fn text_only() -> Self {
        Self {
            version_ids: false,
            version_stages: false,
            binary: false,
            nul_bytes: false,
        }
    }

    /// Versions by id and by stage, arbitrary bytes.
    pub const fn versioned_binary() -> Self {
        Self {
            version_ids: true,
            version_stages: true,
            binary: true,
            nul_bytes: true,
        }
    }

    #[must_use]
    pub const fn with_binary(mut self, nul_bytes: bool) -> Self {
        self.binary = true;
        self.nul_bytes = nul_bytes;
        self
    }
}

/// A source of secrets.
///
/// Implementations return values exactly as stored and put no secret value into any
/// error message; the conformance suite checks both.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// The backend type as written in config (`env`, `file`, ...).
    fn kind(&self) -> &'static str;

    fn capabilities(&self) -> Capabilities;

    async fn fetch(&self, secret: &SecretRef) -> Result<Fetched, BackendError>;

    /// How many secrets [`Backend::fetch_many`] can usefully take at once. Above 1,
    /// the resolver hands a batch's misses for this backend to `fetch_many`.
    fn max_batch(&self) -> usize {
        1
    }

    /// Fetches several secrets, one result per entry of `secrets`, in order. Backends
    /// with a batch API override this to make fewer calls, and to fetch once for
    /// several keys of the same secret and version.
    async fn fetch_many(&self, secrets: &[SecretRef]) -> Vec<Result<Fetched, BackendError>> {
        let mut results = Vec::with_capacity(secrets.len());
        for secret in secrets {
            results.push(self.fetch(secret).await);
        }
        results
    }

    /// A cheap marker that changes whenever the backend's data may have changed, for
    /// backends that can tell (a file on disk). The resolver drops a cached value whose
    /// marker no longer matches, so an edit is seen on the next resolve rather than
    /// after the TTL. `None` means the backend cannot tell and the TTL alone applies.
    ///
    /// `now` is the caller's reading of the monotonic clock: a cache hit reads the
    /// clock once for the value's age, and a backend that looks for changes at an
    /// interval measures it with that reading rather than a second one of its own.
    fn revision(&self, _now: Instant) -> Option<u64> {
        None
    }

    /// Stops what the backend runs, and waits for it: the daemon calls this once at
    /// shutdown, before its runtime ends (a process the backend started would otherwise
    /// be killed without a chance to clean up). Fetches after it may fail. Most
    /// backends run nothing of their own.
    async fn shutdown(&self) {}
}
