//! The conformance suite against a plugin served over a real Unix socket by a small
//! in-process plugin (a map of secrets behind the generated server).

use super::*;
use crate::proto::v1::backend_server::{Backend as PluginService, BackendServer};
use crate::proto::v1::{self};
use std::collections::HashMap;
use std::sync::Mutex;
use tonic::{Request, Response, Status};
use vaultbridge_backend_core::conformance::{Fixture, Seed, Unreachable, Update};
use vaultbridge_backend_core::conformance_suite;

#[derive(Default)]
struct Store {
    secrets: HashMap<String, Vec<u8>>,
    revision: u64,
}

#[derive(Clone)]
struct MapPlugin {
    store: Arc<Mutex<Store>>,
    max_batch: u32,
}

impl MapPlugin {
    fn answer(&self, secret: Option<v1::SecretRef>) -> Result<v1::FetchResponse, Status> {
        let secret = secret.ok_or_else(|| Status::invalid_argument("no secret"))?;
        let store = self.store.lock().expect("test lock");
        match store.secrets.get(&secret.id) {
            Some(value) => Ok(v1::FetchResponse {
                value: value.clone(),
                ..Default::default()
            }),
            None => Err(Status::not_found(format!("no secret `{}`", secret.id))),
        }
    }
}

#[tonic::async_trait]
impl PluginService for MapPlugin {
    async fn describe(
        &self,
        _: Request<v1::DescribeRequest>,
    ) -> Result<Response<v1::DescribeResponse>, Status> {
        Ok(Response::new(v1::DescribeResponse {
            name: "map".into(),
            capabilities: Some(v1::Capabilities {
                binary: true,
                nul_bytes: true,
                max_batch: self.max_batch,
                revisions: true,
                ..Default::default()
            }),
        }))
    }

    async fn configure(
        &self,
        request: Request<v1::ConfigureRequest>,
    ) -> Result<Response<v1::ConfigureResponse>, Status> {
        let config = request.into_inner().config.unwrap_or_default();
        match config.fields.get("mode") {
            Some(prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue(mode)),
            }) if mode == "test" => Ok(Response::new(v1::ConfigureResponse {})),
            _ => Err(Status::invalid_argument("`mode: test` expected")),
        }
    }

    async fn fetch(
        &self,
        request: Request<v1::FetchRequest>,
    ) -> Result<Response<v1::FetchResponse>, Status> {
        self.answer(request.into_inner().secret).map(Response::new)
    }

    async fn fetch_many(
        &self,
        request: Request<v1::FetchManyRequest>,
    ) -> Result<Response<v1::FetchManyResponse>, Status> {
        let secrets = request.into_inner().secrets;
        if secrets.len() > self.max_batch as usize {
            return Err(Status::invalid_argument("more than max_batch"));
        }
        let results = secrets
            .into_iter()
            .map(|secret| v1::FetchResult {
                result: Some(match self.answer(Some(secret)) {
                    Ok(answer) => v1::fetch_result::Result::Secret(answer),
                    Err(status) => v1::fetch_result::Result::Error(v1::Error {
                        code: status.code() as i32,
                        message: status.message().to_owned(),
                        kind: String::new(),
                    }),
                }),
            })
            .collect();
        Ok(Response::new(v1::FetchManyResponse { results }))
    }

    async fn revision(
        &self,
        _: Request<v1::RevisionRequest>,
    ) -> Result<Response<v1::RevisionResponse>, Status> {
        let revision = self.store.lock().expect("test lock").revision;
        Ok(Response::new(v1::RevisionResponse { revision }))
    }
}

/// Serves `plugin` with a health service on `socket` until the runtime ends.
fn serve(plugin: MapPlugin, socket: &std::path::Path) {
    let listener = tokio::net::UnixListener::bind(socket).expect("bind the plugin socket");
    let (reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(BackendServer::new(plugin))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
            .await
            .expect("the test plugin serves");
    });
}

fn seed_bytes(seed: &Seed) -> Vec<u8> {
    match seed {
        Seed::Value(bytes) => bytes.clone(),
        Seed::Map(pairs) => Seed::map_as_json(pairs).into_bytes(),
    }
}

struct PluginFixture {
    dir: tempfile::TempDir,
    max_batch: u32,
    store: Mutex<Option<Arc<Mutex<Store>>>>,
}

impl PluginFixture {
    fn new(max_batch: u32) -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            max_batch,
            store: Mutex::new(None),
        }
    }

    fn config(socket: std::path::PathBuf) -> PluginConfig {
        let mut config = PluginConfig::socket(socket);
        config.plugin_config.insert("mode".into(), "test".into());
        config.timeout = Duration::from_secs(2);
        config.start_timeout = Duration::from_secs(10);
        config.revision_interval = Duration::from_millis(20);
        config
    }
}

use std::time::Duration;

#[async_trait]
impl Fixture for PluginFixture {
    async fn backend(&self, secrets: &[(&str, Seed)]) -> Arc<dyn Backend> {
        let store = Arc::new(Mutex::new(Store::default()));
        for (id, seed) in secrets {
            let mut guard = store.lock().expect("test lock");
            guard.secrets.insert((*id).to_owned(), seed_bytes(seed));
        }
        *self.store.lock().expect("test lock") = Some(store.clone());
        let socket = tempfile::Builder::new()
            .prefix("p")
            .suffix(".sock")
            .tempfile_in(self.dir.path())
            .expect("a socket name")
            .into_temp_path()
            .to_path_buf();
        let _ = std::fs::remove_file(&socket);
        serve(
            MapPlugin {
                store,
                max_batch: self.max_batch,
            },
            &socket,
        );
        let backend = PluginBackend::start(Self::config(socket)).expect("start");
        backend.ready().await.expect("the test plugin is ready");
        backend
    }

    async fn update(&self, id: &str, seed: Seed) -> Update {
        let store = self.store.lock().expect("test lock").clone();
        let store = store.expect("update after backend");
        let mut guard = store.lock().expect("test lock");
        guard.secrets.insert(id.to_owned(), seed_bytes(&seed));
        guard.revision += 1;
        Update::Applied
    }

    async fn unreachable(&self) -> Option<Unreachable> {
        let socket = self.dir.path().join("nobody-listens.sock");
        let backend = PluginBackend::start(Self::config(socket)).expect("start");
        let service = backend.name().to_owned();
        Some(Unreachable { backend, service })
    }
}

conformance_suite!(PluginFixture::new(3));
conformance_suite!(conformance_without_batches, PluginFixture::new(1));

#[tokio::test]
async fn a_plugin_that_rejects_its_config_is_invalid_config() {
    let fixture = PluginFixture::new(1);
    let _ = fixture.backend(&[]).await;
    let socket = fixture.dir.path().join("reject.sock");
    serve(
        MapPlugin {
            store: Arc::default(),
            max_batch: 1,
        },
        &socket,
    );
    let backend = PluginBackend::start(PluginConfig::socket(socket)).expect("start");
    let err = backend
        .fetch(&vaultbridge_backend_core::SecretRef::new("any"))
        .await
        .expect_err("configure fails");
    assert_eq!(
        err.kind(),
        vaultbridge_backend_core::ErrorKind::InvalidConfig,
        "{err}"
    );
}
