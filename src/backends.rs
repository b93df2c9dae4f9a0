//! The one place where a backend instance is built from its config.

use crate::config::{BackendConfig, Config};
use std::collections::BTreeMap;
use std::sync::Arc;
use vaultbridge_backend_core::Backend;
use vaultbridge_backend_env::EnvBackend;
use vaultbridge_backend_file::FileBackend;

pub fn build(config: &BackendConfig) -> Arc<dyn Backend> {
    match config {
        BackendConfig::Env(env) => Arc::new(EnvBackend::new(env.clone())),
        BackendConfig::File(file) => Arc::new(FileBackend::open(file.clone())),
    }
}

pub fn build_all(config: &Config) -> BTreeMap<String, Arc<dyn Backend>> {
    config
        .backends
        .iter()
        .map(|(name, backend)| (name.clone(), build(backend)))
        .collect()
}
