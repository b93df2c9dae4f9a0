//! The `env` backend: a definition names an environment variable, read from the daemon's
//! own environment (optionally behind a prefix set on the backend instance).
#![forbid(unsafe_code)]

mod config;

pub use config::{EnvConfig, RawEnvConfig};

use async_trait::async_trait;
use config::validate_variable_name;
use std::any::Any;
use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;
use vaultbridge_backend_core::config::{BackendSettings, BackendType, Section};
use vaultbridge_backend_core::{
    Backend, BackendError, Capabilities, Fetched, SecretRef, SecretValue, pick_json_key,
};

pub const KIND: &str = "env";

/// Unix environment strings are bytes, but C strings: no NUL.
pub const CAPABILITIES: Capabilities = Capabilities::text_only().with_binary(false);

/// Where variables come from. The process environment in production; a map in tests,
/// because changing the real environment of a running test process is not safe.
pub(crate) trait VarSource: Send + Sync + 'static {
    fn var(&self, name: &str) -> Option<OsString>;
}

/// The daemon's own environment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcessEnv;

impl VarSource for ProcessEnv {
    #[allow(
        clippy::disallowed_methods,
        reason = "reading the daemon's environment is what this backend is for"
    )]
    fn var(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
}

pub struct EnvBackend {
    config: EnvConfig,
    vars: Arc<dyn VarSource>,
}

impl fmt::Debug for EnvBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvBackend")
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

impl EnvBackend {
    pub fn new(config: EnvConfig) -> Self {
        Self::with_source(config, Arc::new(ProcessEnv))
    }

    pub(crate) fn with_source(config: EnvConfig, vars: Arc<dyn VarSource>) -> Self {
        Self { config, vars }
    }

    fn variable_name(&self, id: &str) -> String {
        format!("{}{id}", self.config.prefix)
    }
}

#[async_trait]
impl Backend for EnvBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn fetch(&self, secret: &SecretRef) -> Result<Fetched, BackendError> {
        secret.require_latest("environment variables")?;
        let name = self.variable_name(&secret.id);
        let raw = self.vars.var(&name).ok_or_else(|| {
            BackendError::not_found(format!(
                "environment variable `{name}` is not set in the daemon's environment"
            ))
        })?;
        let value = SecretValue::new(os_string_bytes(raw));
        let value = match &secret.key {
            None => value,
            Some(key) => pick_json_key(&value, key, &format!("environment variable `{name}`"))?,
        };
        Ok(Fetched::new(value))
    }
}

#[cfg(unix)]
fn os_string_bytes(raw: OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    raw.into_vec()
}

#[cfg(not(unix))]
fn os_string_bytes(raw: OsString) -> Vec<u8> {
    raw.to_string_lossy().into_owned().into_bytes()
}

impl BackendType for EnvConfig {
    const KIND: &'static str = KIND;
    type Raw = RawEnvConfig;

    fn check(raw: RawEnvConfig, section: &mut Section<'_, '_>) -> Option<Self> {
        config::check(raw, section)
    }
}

#[async_trait]
impl BackendSettings for EnvConfig {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn check_secret_id(&self, id: &str) -> Result<(), String> {
        validate_variable_name(id)
    }

    async fn build(&self) -> Result<Arc<dyn Backend>, BackendError> {
        Ok(Arc::new(EnvBackend::new(self.clone())))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use vaultbridge_backend_core::conformance::{Fixture, Seed, Update};
    use vaultbridge_backend_core::conformance_suite;

    #[derive(Default)]
    struct MapEnv(Mutex<HashMap<String, OsString>>);

    impl VarSource for MapEnv {
        fn var(&self, name: &str) -> Option<OsString> {
            self.0.lock().expect("test lock").get(name).cloned()
        }
    }

    struct EnvFixture {
        prefix: &'static str,
        /// The variables of the backend made last, which `update` changes.
        vars: Mutex<Option<Arc<MapEnv>>>,
    }

    impl EnvFixture {
        fn new(prefix: &'static str) -> Self {
            Self {
                prefix,
                vars: Mutex::new(None),
            }
        }

        fn set(&self, vars: &MapEnv, id: &str, seed: &Seed) {
            let value = match seed {
                Seed::Value(bytes) => bytes.clone(),
                Seed::Map(pairs) => Seed::map_as_json(pairs).into_bytes(),
            };
            #[cfg(unix)]
            let value = {
                use std::os::unix::ffi::OsStringExt;
                OsString::from_vec(value)
            };
            vars.0
                .lock()
                .expect("test lock")
                .insert(format!("{}{id}", self.prefix), value);
        }
    }

    #[async_trait]
    impl Fixture for EnvFixture {
        async fn backend(&self, secrets: &[(&str, Seed)]) -> Arc<dyn Backend> {
            let vars = Arc::new(MapEnv::default());
            for (id, seed) in secrets {
                self.set(&vars, id, seed);
            }
            *self.vars.lock().expect("test lock") = Some(vars.clone());
            let config = EnvConfig {
                prefix: self.prefix.to_owned(),
            };
            Arc::new(EnvBackend::with_source(config, vars))
        }

        /// The environment the backend reads changes under it, as a variable set by the
        /// daemon's own code would.
        async fn update(&self, id: &str, seed: Seed) -> Update {
            let vars = self.vars.lock().expect("test lock").clone();
            self.set(&vars.expect("update after backend"), id, &seed);
            Update::Applied
        }
    }

    conformance_suite!(EnvFixture::new(""));
    conformance_suite!(conformance_with_prefix, EnvFixture::new("APP_"));

    #[tokio::test]
    async fn prefix_is_prepended_and_named_in_errors() {
        let backend = EnvFixture::new("APP_")
            .backend(&[("TOKEN", Seed::text("v"))])
            .await;
        let err = backend
            .fetch(&SecretRef::new("OTHER"))
            .await
            .expect_err("unset");
        assert!(err.to_string().contains("`APP_OTHER`"), "{err}");
    }

    #[test]
    fn variable_names_with_equals_or_nul_are_rejected() {
        assert!(validate_variable_name("JIRA_TOKEN").is_ok());
        assert!(validate_variable_name("").is_err());
        assert!(validate_variable_name("A=B").is_err());
        assert!(validate_variable_name("A\0B").is_err());
    }
}
