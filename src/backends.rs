//! The one place where a backend instance is built from its config.

use crate::config::{BackendConfig, Config};
use std::collections::BTreeMap;
use std::sync::Arc;
use vaultbridge_backend_core::{Backend, BackendError};
use vaultbridge_backend_env::EnvBackend;
use vaultbridge_backend_file::FileBackend;

/// Builds one backend. No network call is made: cloud clients connect on first use.
/// Errors are setup problems the config could not see (an unreadable CA file, an
/// unset client-secret variable).
pub async fn build(config: &BackendConfig) -> Result<Arc<dyn Backend>, BackendError> {
    Ok(match config {
        BackendConfig::Env(env) => Arc::new(EnvBackend::new(env.clone())),
        BackendConfig::File(file) => Arc::new(FileBackend::open(file.clone())),
        #[cfg(feature = "aws")]
        BackendConfig::Aws(aws) => {
            Arc::new(vaultbridge_backend_aws::AwsBackend::connect(aws).await)
        }
        #[cfg(feature = "azure")]
        BackendConfig::Azure(azure) => {
            Arc::new(vaultbridge_backend_azure::AzureBackend::connect(azure)?)
        }
    })
}

pub async fn build_all(config: &Config) -> Result<BTreeMap<String, Arc<dyn Backend>>, String> {
    let mut backends = BTreeMap::new();
    for (name, backend) in &config.backends {
        let built = build(backend)
            .await
            .map_err(|err| format!("backend `{name}` ({}): {err}", backend.type_name()))?;
        backends.insert(name.clone(), built);
    }
    Ok(backends)
}
