//! The `vaultbridge.v1.Secrets` gRPC service.

use crate::proto::v1::{self as pb, secrets_server::Secrets};
use crate::resolver::{CacheOutcome, Freshness, Resolved, Resolver};
use crate::status::{RequestError, code_and_message};
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Most names one `ResolveBatch` may ask for.
pub(crate) const MAX_BATCH: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct SecretsService {
    resolver: Arc<Resolver>,
}

impl SecretsService {
    pub(crate) fn new(resolver: Arc<Resolver>) -> Self {
        Self { resolver }
    }
}

/// `name` is the requested name, moved in rather than copied from the definition (the
/// lookup is exact, so they are equal).
fn to_proto(resolved: &Resolved, name: String) -> pb::Secret {
    let secret = &resolved.secret;
    let value = secret.value.expose();
    pb::Secret {
        name,
        value: value.to_vec(),
        text: secret.value.expose_str().map(str::to_owned),
        backend: resolved.definition.backend_name.to_string(),
        version_id: secret.version.clone(),
        fetched_at: Some(prost_types::Timestamp::from(secret.fetched_at)),
        cache: match resolved.cache {
            CacheOutcome::Hit => pb::CacheOutcome::Hit,
            CacheOutcome::Miss => pb::CacheOutcome::Miss,
            CacheOutcome::Stale => pb::CacheOutcome::Stale,
        } as i32,
        stale: resolved.cache == CacheOutcome::Stale,
        age: prost_types::Duration::try_from(secret.age()).ok(),
        stale_reason: resolved.stale_reason.as_ref().map(ToString::to_string),
        trimmed: secret.trimmed,
        metadata: secret
            .metadata
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect::<HashMap<_, _>>(),
    }
}

/// A request's freshness, checked.
fn freshness(request: &pb::ResolveRequest) -> Result<Freshness, Status> {
    let max_age = match request.max_age {
        None => None,
        Some(max_age) => {
            Some(std::time::Duration::try_from(max_age).map_err(|_| RequestError::NegativeMaxAge)?)
        }
    };
    Ok(Freshness {
        max_age,
        refresh: request.refresh,
    })
}

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        let request = request.into_inner();
        let freshness = freshness(&request)?;
        let name = request.name;
        let resolved = self.resolver.resolve_with(&name, freshness).await?;
        Ok(Response::new(pb::ResolveResponse {
            secret: Some(to_proto(&resolved, name)),
        }))
    }

    async fn resolve_batch(
        &self,
        request: Request<pb::ResolveBatchRequest>,
    ) -> Result<Response<pb::ResolveBatchResponse>, Status> {
        let request = request.into_inner();
        let requests: Vec<(String, Freshness)> =
            match (request.names.is_empty(), request.items.is_empty()) {
                (_, true) => request
                    .names
                    .into_iter()
                    .map(|name| (name, Freshness::default()))
                    .collect(),
                (true, false) => request
                    .items
                    .into_iter()
                    .map(|item| Ok((freshness(&item)?, item.name)))
                    .map(|item: Result<_, Status>| item.map(|(freshness, name)| (name, freshness)))
                    .collect::<Result<_, Status>>()?,
                (false, false) => return Err(RequestError::NamesAndItems.into()),
            };
        if requests.len() > MAX_BATCH {
            return Err(RequestError::BatchTooLarge {
                size: requests.len(),
                max: MAX_BATCH,
            }
            .into());
        }
        // Duplicate names coalesce in the resolver's single-flight.
        let resolved = self.resolver.resolve_many(&requests).await;
        let results = requests
            .into_iter()
            .map(|(name, _)| name)
            .zip(resolved)
            .map(|(name, result)| {
                let outcome = match result {
                    Ok(resolved) => {
                        pb::resolve_result::Outcome::Secret(to_proto(&resolved, name.clone()))
                    }
                    Err(err) => {
                        let (code, message) = code_and_message(&err);
                        pb::resolve_result::Outcome::Error(pb::ResolveError {
                            code: code as i32,
                            message,
                        })
                    }
                };
                pb::ResolveResult {
                    name,
                    outcome: Some(outcome),
                }
            })
            .collect();
        Ok(Response::new(pb::ResolveBatchResponse { results }))
    }

    async fn list_definitions(
        &self,
        _request: Request<pb::ListDefinitionsRequest>,
    ) -> Result<Response<pb::ListDefinitionsResponse>, Status> {
        let definitions = self
            .resolver
            .definitions()
            .iter()
            .map(|definition| pb::Definition {
                name: definition.name.to_string(),
                backend: definition.backend_name.to_string(),
                backend_type: definition.backend.kind().to_owned(),
                description: definition.description.clone(),
                trim: if definition.trim {
                    pb::TrimPolicy::Trim
                } else {
                    pb::TrimPolicy::None
                } as i32,
                secret: definition.secret.id.clone(),
                key: definition.secret.key.clone(),
                ttl_seconds: definition.policy.ttl.as_secs(),
            })
            .collect();
        Ok(Response::new(pb::ListDefinitionsResponse { definitions }))
    }

    async fn invalidate(
        &self,
        request: Request<pb::InvalidateRequest>,
    ) -> Result<Response<pb::InvalidateResponse>, Status> {
        match request.into_inner().target {
            Some(pb::invalidate_request::Target::Name(name)) => {
                self.resolver.invalidate(&name).await?;
                tracing::info!(definition = %name, "cache entry invalidated");
            }
            Some(pb::invalidate_request::Target::All(true)) => {
                self.resolver.invalidate_all();
                tracing::info!("all cache entries invalidated");
            }
            Some(pb::invalidate_request::Target::All(false)) => {
                return Err(RequestError::InvalidateAllFalse.into());
            }
            None => return Err(RequestError::NoInvalidateTarget.into()),
        }
        Ok(Response::new(pb::InvalidateResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolver::Definition;
    use async_trait::async_trait;
    use std::time::Duration;
    use tokio::sync::Barrier;
    use vaultbridge_backend_core::{
        Backend, BackendError, Capabilities, Fetched, SecretRef, SecretValue,
    };

    /// Answers only once `parties` fetches are waiting at the same time, so a batch
    /// resolved one name after another would never finish.
    #[derive(Debug)]
    struct RendezvousBackend {
        barrier: Barrier,
    }

    #[async_trait]
    impl Backend for RendezvousBackend {
        fn kind(&self) -> &'static str {
            "rendezvous"
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities::text_only()
        }

        async fn fetch(&self, secret: &SecretRef) -> Result<Fetched, BackendError> {
            self.barrier.wait().await;
            Ok(Fetched::new(SecretValue::from(secret.id.as_str())))
        }
    }

    #[tokio::test]
    async fn a_batch_resolves_its_names_concurrently() {
        let backend = Arc::new(RendezvousBackend {
            barrier: Barrier::new(3),
        });
        let definitions = ["a", "b", "c"].map(|name| {
            Arc::new(Definition {
                name: Arc::from(name),
                backend_name: "r".into(),
                backend: backend.clone(),
                secret: SecretRef::new(name),
                policy: crate::config::CachePolicy::ttl_only(Duration::from_secs(60)),
                trim: true,
                description: String::new(),
            })
        });
        let service = SecretsService::new(Arc::new(Resolver::from_definitions(definitions, 10)));
        let request = Request::new(pb::ResolveBatchRequest {
            names: vec!["a".into(), "b".into(), "c".into()],
            ..Default::default()
        });
        // The timeout only turns a deadlock (sequential resolution) into a failure.
        let response =
            tokio::time::timeout(Duration::from_secs(30), service.resolve_batch(request))
                .await
                .expect("the three fetches met, so they ran concurrently")
                .unwrap()
                .into_inner();
        let values: Vec<Vec<u8>> = response
            .results
            .into_iter()
            .map(|result| match result.outcome {
                Some(pb::resolve_result::Outcome::Secret(secret)) => secret.value,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(values, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }
}
