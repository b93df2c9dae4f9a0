//! What a service does with the access rules for one request: who the caller is, whether
//! it may have what it asks for, and the audit line for the outcome.

use super::{Access, Caller, Target};
use crate::resolver::{ResolveError, Resolved};
use std::sync::Arc;
use tonic::{Code, Request, Status};

/// The caller of one request under the daemon's access rules.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    access: Arc<Access>,
    caller: Caller,
}

impl Guard {
    /// `None` when no rules and no audit are configured: the request goes on unchecked.
    /// A caller that cannot be identified is refused, and the refusal recorded.
    pub(crate) fn of<T>(
        access: Option<&Arc<Access>>,
        request: &Request<T>,
        rpc: &'static str,
    ) -> Result<Option<Self>, Status> {
        let Some(access) = access else {
            return Ok(None);
        };
        let caller = access.caller(request, rpc)?;
        Ok(Some(Self {
            access: access.clone(),
            caller,
        }))
    }

    /// [`Self::of`] for what any listener knows of the sender (the HTTP face).
    pub(crate) fn of_peer(
        access: Option<&Arc<Access>>,
        peer: &super::Peer<'_>,
        rpc: &'static str,
    ) -> Result<Option<Self>, Status> {
        let Some(access) = access else {
            return Ok(None);
        };
        let caller = access.caller_of(peer, rpc)?;
        Ok(Some(Self {
            access: access.clone(),
            caller,
        }))
    }

    pub(crate) fn may_read(&self, definition: &str) -> bool {
        self.access.may_read(&self.caller, definition)
    }

    pub(crate) fn may_use(&self, connection: &str) -> bool {
        self.access.may_use(&self.caller, connection)
    }

    pub(crate) fn reads_everything(&self) -> bool {
        self.access.reads_everything(&self.caller)
    }

    /// Ok when the caller may have `target`; otherwise the denial, recorded.
    pub(crate) fn check(&self, rpc: &'static str, target: Target<'_>) -> Result<(), Status> {
        let allowed = match target {
            Target::Definition(name) => self.may_read(name),
            Target::Connection(name) => self.may_use(name),
            Target::AllDefinitions | Target::Unnamed => true,
        };
        if allowed {
            Ok(())
        } else {
            Err(self.deny(rpc, target))
        }
    }

    /// The denial of `target`, recorded.
    pub(crate) fn deny(&self, rpc: &'static str, target: Target<'_>) -> Status {
        self.record(rpc, target, Code::PermissionDenied, None);
        self.access.denied(&self.caller, target).into()
    }

    pub(crate) fn record(
        &self,
        rpc: &'static str,
        target: Target<'_>,
        code: Code,
        cache: Option<&'static str>,
    ) {
        self.access.record(&self.caller, rpc, target, code, cache);
    }

    /// Records the outcome of resolving `name`.
    pub(crate) fn resolved(
        &self,
        rpc: &'static str,
        name: &str,
        result: Result<&Resolved, &ResolveError>,
    ) {
        let (code, cache) = match result {
            Ok(resolved) => (Code::Ok, Some(resolved.cache.name())),
            Err(err) => (crate::status::code_of(err), None),
        };
        self.record(rpc, Target::Definition(name), code, cache);
    }

    /// Records the outcome of a call about a Jira connection.
    pub(crate) fn used<T>(&self, rpc: &'static str, connection: &str, result: &Result<T, Status>) {
        let code = match result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        self.record(rpc, Target::Connection(connection), code, None);
    }
}
