//! The one place where a backend instance is built from its config.

use crate::config::{BackendConfig, Config};
use std::collections::BTreeMap;
use std::sync::Arc;
use vaultbridge_backend_core::Backend;
use vaultbridge_backend_env::EnvBackend;
use vaultbridge_backend_file::FileBackend;

/// Builds one backend. No network call is made: cloud clients connect on first use.
pub async fn build(config: &BackendConfig) -> Arc<dyn Backend> {
    match config {
        BackendConfig::Env(env) => Arc::new(EnvBackend::new(env.clone())),
        BackendConfig::File(file) => Arc::new(FileBackend::open(file.clone())),
        #[cfg(feature = "aws")]
        BackendConfig::Aws(aws) => {
            Arc::new(vaultbridge_backend_aws::AwsBackend::connect(aws).await)
        }
    }
}

pub async fn build_all(config: &Config) -> BTreeMap<String, Arc<dyn Backend>> {
    let mut backends = BTreeMap::new();
    for (name, backend) in &config.backends {
        backends.insert(name.clone(), build(backend).await);
    }
    backends
}
