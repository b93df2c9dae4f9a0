//! Who is calling and what they may read: the caller's identity from the listener (the
//! kernel's peer credentials on the Unix socket, a bearer token over TCP), the
//! `clients` rules, and the audit trail of who read what.
//!
//! Built only when `clients` or `audit` is configured; without them the services skip
//! all of this, so a cache hit pays nothing for a feature it does not use.

mod audit;
mod guard;
mod limits;
mod tokens;

pub(crate) use audit::{AuditLog, Target};
pub(crate) use guard::Guard;

use crate::config::{ClientConfig, ClientsConfig, Vars};
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use tokens::TokenStore;
use tonic::Request;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo};

#[derive(Debug, thiserror::Error)]
pub(crate) enum AccessError {
    #[error(
        "this daemon answers TCP callers that identify themselves: send `authorization: Bearer <token>` with a token of one of its `clients`, or a client certificate"
    )]
    NoToken,
    #[error("the bearer token matches no client of this daemon")]
    UnknownToken,
    // The same words whether or not `name` exists, so a denial tells nothing about what
    // the daemon holds.
    #[error("{caller} may not read {what} `{name}`")]
    Denied {
        caller: String,
        what: &'static str,
        name: String,
    },
    #[error(
        "{caller} made more than {per_second} calls a second (bursts up to {burst}); retry in {} ms",
        retry_after.as_millis().max(1)
    )]
    RateLimited {
        caller: String,
        per_second: u32,
        burst: u32,
        retry_after: std::time::Duration,
    },
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error(transparent)]
    Token(#[from] tokens::TokenError),
    #[error("cannot open the audit file `{path}`: {source}")]
    AuditFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the audit file `{path}` can be read by other users (mode {mode:04o}); it records who read which secret: `chmod 600` it"
    )]
    AuditFileMode { path: String, mode: u32 },
}

/// Who sent a request, as far as the listener can tell.
#[derive(Debug, Clone)]
pub(crate) enum Identity {
    /// A Unix-socket peer, as the kernel reports it.
    Unix {
        uid: u32,
        gid: u32,
        pid: Option<i32>,
    },
    /// A Unix-socket peer whose credentials the kernel did not give.
    UnixUnknown,
    /// A TCP caller whose client certificate (checked against the client CA) names
    /// these identities: SAN URIs, then DNS names.
    Certificate { names: Arc<[String]> },
    /// A TCP caller whose bearer token belongs to `client`.
    Token { client: Arc<str>, source: Arc<str> },
    /// A TCP caller without a token, where none is needed.
    Network { address: Option<SocketAddr> },
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix { uid, gid, pid } => {
                write!(f, "the caller with uid {uid} and gid {gid}")?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid})")?;
                }
                Ok(())
            }
            Self::UnixUnknown => f.write_str("a Unix-socket caller of unknown uid"),
            Self::Certificate { names } => match names.first() {
                Some(name) => write!(f, "the client certificate of `{name}`"),
                None => f.write_str("a client certificate with no name"),
            },
            Self::Token { client, .. } => write!(f, "client `{client}`"),
            Self::Network {
                address: Some(address),
            } => write!(f, "the TCP caller at {address}"),
            Self::Network { address: None } => f.write_str("a TCP caller"),
        }
    }
}

/// A caller and the client entries it matched.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub identity: Identity,
    /// Indices into the access rules' clients; `None` when there are no rules.
    clients: Option<Vec<usize>>,
}

/// What a listener knows of a request's sender, whatever the protocol.
#[derive(Debug, Default)]
pub(crate) struct Peer<'a> {
    /// `Some` on a Unix socket: the kernel's uid, gid and pid, when it gave them.
    pub unix: Option<Option<(u32, u32, Option<i32>)>>,
    /// The names a verified client certificate proves.
    pub certificate: Option<Vec<String>>,
    /// The `authorization` header when sent: `None` inside when it is not text.
    pub authorization: Option<Option<&'a str>>,
    /// The AWS agent's token (the HTTP face's agent routes over TCP): it identifies a
    /// client that lists it among its tokens, when no `authorization` header is sent.
    pub agent_token: Option<&'a str>,
    pub address: Option<SocketAddr>,
}

impl<'a> Peer<'a> {
    fn of<T>(request: &'a Request<T>) -> Self {
        let unix = request.extensions().get::<UdsConnectInfo>().map(|info| {
            info.peer_cred
                .map(|cred| (cred.uid(), cred.gid(), cred.pid()))
        });
        let certificate = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs)
            .and_then(|chain| chain.first().map(crate::tls::certificate_names));
        Self {
            unix,
            certificate,
            authorization: request
                .metadata()
                .get("authorization")
                .map(|value| value.to_str().ok()),
            agent_token: None,
            address: request.remote_addr(),
        }
    }
}

/// Names a client may use: exact names and glob patterns.
#[derive(Debug)]
struct Grants {
    exact: HashSet<String>,
    patterns: Vec<glob::Pattern>,
}

impl Grants {
    fn new(names: &[String]) -> Self {
        let mut exact = HashSet::new();
        let mut patterns = Vec::new();
        for name in names {
            match glob::Pattern::new(name) {
                // A pattern without wildcards is an exact name; a set lookup is cheaper.
                Ok(pattern) if pattern.as_str().contains(['*', '?', '[']) => patterns.push(pattern),
                _ => {
                    exact.insert(name.clone());
                }
            }
        }
        Self { exact, patterns }
    }

    fn allows(&self, name: &str) -> bool {
        self.exact.contains(name) || self.patterns.iter().any(|pattern| pattern.matches(name))
    }
}

#[derive(Debug)]
struct Client {
    name: Arc<str>,
    uids: Vec<u32>,
    gids: Vec<u32>,
    certificates: Vec<String>,
    definitions: Grants,
    jira_connections: Grants,
}

impl Client {
    fn new(config: &ClientConfig) -> Self {
        Self {
            name: Arc::from(config.name.as_str()),
            uids: config.uids.clone(),
            gids: config.gids.clone(),
            certificates: config.certificates.clone(),
            definitions: Grants::new(&config.definitions),
            jira_connections: Grants::new(&config.jira_connections),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Access {
    /// `None`: no `clients` section; every caller may read everything.
    clients: Option<Vec<Client>>,
    tokens: TokenStore,
    audit: Option<AuditLog>,
    limits: limits::RateLimits,
}

impl Access {
    /// The access rules and audit trail for `config`, or `None` when neither is
    /// configured.
    pub(crate) fn new(
        config: &ClientsConfig,
        vars: &dyn Vars,
    ) -> Result<Option<Arc<Self>>, SetupError> {
        Self::with_audit(config, vars, AuditLog::start(&config.audit)?)
    }

    /// [`Access::new`] writing its audit trail through `audit`, an existing writer or
    /// one just started for `config.audit`.
    pub(crate) fn with_audit(
        config: &ClientsConfig,
        vars: &dyn Vars,
        audit: Option<AuditLog>,
    ) -> Result<Option<Arc<Self>>, SetupError> {
        let limits = limits::RateLimits::new(
            config.rate_limit,
            config
                .clients
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(index, client)| client.rate_limit.map(|limit| (index, limit))),
        );
        if config.clients.is_none() && audit.is_none() && limits.is_empty() {
            return Ok(None);
        }
        let tokens = TokenStore::load(config.clients.as_deref().unwrap_or_default(), vars)?;
        Ok(Some(Arc::new(Self {
            clients: config
                .clients
                .as_ref()
                .map(|clients| clients.iter().map(Client::new).collect()),
            tokens,
            audit,
            limits,
        })))
    }

    /// Forgets the rate-limit state of callers who went quiet, until `stop`.
    pub(crate) fn spawn_limit_upkeep(
        self: &Arc<Self>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        (!self.limits.is_empty()).then(|| {
            let access = self.clone();
            tokio::spawn(async move { access.limits.forget_idle(stop).await })
        })
    }

    /// Re-reads token files that changed, until `stop`.
    pub(crate) fn spawn_token_watch(
        self: &Arc<Self>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.tokens.has_files().then(|| {
            let access = self.clone();
            tokio::spawn(async move { access.tokens.watch(stop).await })
        })
    }

    /// Who sent `request`, and which clients that makes it; a caller that cannot be
    /// identified, or is over its rate limit, is refused and the refusal recorded.
    pub(crate) fn caller<T>(
        &self,
        request: &Request<T>,
        rpc: &'static str,
    ) -> Result<Caller, AccessError> {
        self.caller_of(&Peer::of(request), rpc)
    }

    /// [`Self::caller`] for what any listener knows of the sender (the HTTP face's too).
    pub(crate) fn caller_of(
        &self,
        peer: &Peer<'_>,
        rpc: &'static str,
    ) -> Result<Caller, AccessError> {
        let identity = match self.identify(peer) {
            Ok(identity) => identity,
            Err(err) => {
                self.record_refusal(peer.address, rpc);
                return Err(err);
            }
        };
        let clients = self.clients_of(&identity);
        if let Err(exhausted) = self.limits.admit(&identity, clients.as_deref()) {
            let caller = Caller { identity, clients };
            self.record(
                &caller,
                rpc,
                Target::Unnamed,
                tonic::Code::ResourceExhausted,
                None,
            );
            return Err(AccessError::RateLimited {
                caller: caller.identity.to_string(),
                per_second: exhausted.limit.per_second.get(),
                burst: exhausted.limit.burst.get(),
                retry_after: exhausted.retry_after,
            });
        }
        Ok(Caller { identity, clients })
    }

    /// The client entries `identity` matches; `None` when there are no rules.
    fn clients_of(&self, identity: &Identity) -> Option<Vec<usize>> {
        self.clients.as_ref().map(|clients| match identity {
            Identity::Unix { uid, gid, .. } => clients
                .iter()
                .enumerate()
                .filter(|(_, client)| client.uids.contains(uid) || client.gids.contains(gid))
                .map(|(index, _)| index)
                .collect(),
            Identity::Certificate { names } => clients
                .iter()
                .enumerate()
                .filter(|(_, client)| names.iter().any(|name| client.certificates.contains(name)))
                .map(|(index, _)| index)
                .collect(),
            Identity::Token { client, .. } => clients
                .iter()
                .position(|known| known.name == *client)
                .into_iter()
                .collect(),
            Identity::UnixUnknown | Identity::Network { .. } => Vec::new(),
        })
    }

    fn identify(&self, peer: &Peer<'_>) -> Result<Identity, AccessError> {
        if let Some(cred) = peer.unix {
            return Ok(match cred {
                Some((uid, gid, pid)) => Identity::Unix { uid, gid, pid },
                None => Identity::UnixUnknown,
            });
        }
        if let Some(names) = &peer.certificate {
            return Ok(Identity::Certificate {
                names: names.clone().into(),
            });
        }
        match peer.authorization {
            Some(value) => {
                let token = value
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .ok_or(AccessError::UnknownToken)?;
                self.tokens
                    .client_of(token.trim().as_bytes())
                    .map(|(client, source)| Identity::Token { client, source })
                    .ok_or(AccessError::UnknownToken)
            }
            None if self.clients.is_some() => match peer.agent_token {
                Some(token) => self
                    .tokens
                    .client_of(token.trim().as_bytes())
                    .map(|(client, source)| Identity::Token { client, source })
                    .ok_or(AccessError::UnknownToken),
                None => Err(AccessError::NoToken),
            },
            None => Ok(Identity::Network {
                address: peer.address,
            }),
        }
    }

    fn allows(&self, caller: &Caller, pick: impl Fn(&Client) -> &Grants, name: &str) -> bool {
        match (&self.clients, &caller.clients) {
            (Some(clients), Some(indices)) => indices.iter().any(|&index| {
                clients
                    .get(index)
                    .is_some_and(|client| pick(client).allows(name))
            }),
            _ => true,
        }
    }

    pub(crate) fn may_read(&self, caller: &Caller, definition: &str) -> bool {
        self.allows(caller, |client| &client.definitions, definition)
    }

    pub(crate) fn may_use(&self, caller: &Caller, connection: &str) -> bool {
        self.allows(caller, |client| &client.jira_connections, connection)
    }

    /// Whether the caller may read every definition (the rules give no narrower view).
    pub(crate) fn reads_everything(&self, caller: &Caller) -> bool {
        caller.clients.is_none()
    }

    pub(crate) fn denied(&self, caller: &Caller, target: Target<'_>) -> AccessError {
        AccessError::Denied {
            caller: caller.identity.to_string(),
            what: target.what(),
            name: target.name().to_owned(),
        }
    }

    /// Records one line of the audit trail, off the request's task.
    pub(crate) fn record(
        &self,
        caller: &Caller,
        rpc: &'static str,
        target: Target<'_>,
        code: tonic::Code,
        cache: Option<&'static str>,
    ) {
        if let Some(audit) = &self.audit {
            let all = self.clients.as_deref().unwrap_or_default();
            let indices = caller.clients.as_deref().unwrap_or_default();
            let names = indices
                .iter()
                .filter_map(|&index| all.get(index).map(|client| &*client.name));
            audit.record(&caller.identity, names, rpc, target, code, cache);
        }
    }

    /// Records a request refused before its caller was known (no token, a wrong one).
    fn record_refusal(&self, address: Option<SocketAddr>, rpc: &'static str) {
        if let Some(audit) = &self.audit {
            let caller = Identity::Network { address };
            audit.record(
                &caller,
                std::iter::empty(),
                rpc,
                Target::Unnamed,
                tonic::Code::Unauthenticated,
                None,
            );
        }
    }

    /// The audit trail's writer, to share with the access rules of a reloaded config.
    pub(crate) fn audit(&self) -> Option<AuditLog> {
        self.audit.clone()
    }

    /// Writes out every audit line recorded so far.
    pub(crate) async fn flush(&self) {
        if let Some(audit) = &self.audit {
            audit.flush().await;
        }
    }
}

#[cfg(test)]
mod tests;
