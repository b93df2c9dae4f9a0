//! The `plugin` backend: a backend in another process, in any language, reached over
//! gRPC on a Unix socket (`proto/vaultbridge/plugin/v1/backend.proto`). vaultbridge
//! either connects to a plugin someone else runs or starts the plugin itself and keeps
//! it running. A plugin that is down is a temporary failure, never a crash.
#![forbid(unsafe_code)]

mod client;
mod config;
mod errors;
mod process;
pub mod proto;

pub use client::PluginBackend;
pub use config::{Launch, PluginConfig, RawPluginConfig};
pub use process::{LIFELINE_VAR, SOCKET_VAR};

use async_trait::async_trait;
use std::any::Any;
use std::sync::Arc;
use vaultbridge_backend_core::config::{BackendSettings, BackendType, Section};
use vaultbridge_backend_core::{Backend, BackendError, Capabilities};

pub const KIND: &str = "plugin";

impl BackendType for PluginConfig {
    const KIND: &'static str = KIND;
    type Raw = RawPluginConfig;

    fn check(raw: RawPluginConfig, section: &mut Section<'_, '_>) -> Option<Self> {
        config::check(raw, section)
    }
}

#[async_trait]
impl BackendSettings for PluginConfig {
    /// A plugin says what it can do only once it runs, after the config was checked,
    /// so definitions are not refused at load; a definition asking for a version the
    /// plugin lacks is refused on fetch as invalid config.
    fn capabilities(&self) -> Capabilities {
        Capabilities::versioned_binary()
    }

    /// Starts the plugin when vaultbridge runs it; connects lazily otherwise.
    async fn build(&self) -> Result<Arc<dyn Backend>, BackendError> {
        let backend = PluginBackend::start(self.clone())?;
        backend.announce_when_ready();
        Ok(backend)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests;
