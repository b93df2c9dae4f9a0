//! The `vaultbridge.v1.Admin` gRPC service: `Reload`, for `vaultbridge reload`.
//!
//! Only a caller that could send the daemon SIGHUP may reload it: the daemon's own user
//! or root, over the Unix socket, as the kernel reports the peer. TCP callers never may,
//! whatever they authenticate with: a reload re-reads a file on the daemon's host, which
//! is the host's business. The `clients` rules do not widen this; a caller they let read
//! every definition still may not reload.

use crate::access::{Guard, Target};
use crate::proto::v1::{self as pb, admin_server::Admin};
use crate::reload::{Outcome, Reloader, Report};
use std::sync::Arc;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    #[error(
        "reload is accepted only over the daemon's Unix socket, from the daemon's own user or root (or send the daemon SIGHUP)"
    )]
    NotOverUnixSocket,
    #[error(
        "only the daemon's own user (uid {daemon}) or root may reload it; this caller is uid {caller}"
    )]
    OtherUser { caller: u32, daemon: u32 },
    #[error(
        "the kernel did not say which user is calling; only the daemon's own user or root may reload it"
    )]
    UnknownUser,
}

#[derive(Debug, Clone)]
pub(crate) struct AdminService {
    reloader: Arc<Reloader>,
}

impl AdminService {
    pub(crate) fn new(reloader: Arc<Reloader>) -> Self {
        Self { reloader }
    }
}

fn authorize<T>(request: &Request<T>) -> Result<(), AdminError> {
    let info = request
        .extensions()
        .get::<UdsConnectInfo>()
        .ok_or(AdminError::NotOverUnixSocket)?;
    let caller = info.peer_cred.ok_or(AdminError::UnknownUser)?.uid();
    let daemon = rustix::process::geteuid().as_raw();
    if caller == daemon || caller == 0 {
        Ok(())
    } else {
        Err(AdminError::OtherUser { caller, daemon })
    }
}

pub(crate) fn report_to_proto(report: &Report) -> pb::ReloadResponse {
    let summary = &report.summary;
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    pb::ReloadResponse {
        outcome: match report.outcome {
            Outcome::Applied => pb::ReloadOutcome::Applied,
            Outcome::Rejected => pb::ReloadOutcome::Rejected,
        } as i32,
        problems: report.problems.clone(),
        warnings: report.warnings.clone(),
        summary: (report.outcome == Outcome::Applied).then(|| pb::ReloadSummary {
            definitions_added: count(summary.definitions_added),
            definitions_removed: count(summary.definitions_removed),
            definitions_changed: count(summary.definitions_changed),
            definitions_kept: count(summary.definitions_kept),
            backends_kept: count(summary.backends_kept),
            backends_built: count(summary.backends_built),
            backends_removed: count(summary.backends_removed),
            generation: summary.generation,
        }),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn reload(
        &self,
        request: Request<pb::ReloadRequest>,
    ) -> Result<Response<pb::ReloadResponse>, Status> {
        let runtime = self.reloader.live().load();
        let guard = Guard::of(runtime.access.as_ref(), &request, "Reload")?;
        if let Err(err) = authorize(&request) {
            tracing::warn!(error = %err, "reload refused");
            let status = Status::from(err);
            if let Some(guard) = &guard {
                guard.record("Reload", Target::Unnamed, status.code(), None);
            }
            return Err(status);
        }
        drop(runtime);
        let report = self.reloader.reload("vaultbridge reload").await;
        if let Some(guard) = &guard {
            guard.record("Reload", Target::Unnamed, tonic::Code::Ok, None);
        }
        Ok(Response::new(report_to_proto(&report)))
    }
}
