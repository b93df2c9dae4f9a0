//! Figures read when Prometheus scrapes, not kept up to date on every request: the
//! cache's size and the Jira connections' state.

use crate::jira::verify::ConnectionStatus;
use crate::reload::Live;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;
use std::sync::Arc;

/// How many values are cached and their size, counted at each scrape (a walk over the
/// cache: a few milliseconds for 100,000 entries, paid by the scraper, not by callers).
/// The cache of the config being served: a reload starts a new one.
#[derive(Debug)]
pub(crate) struct CacheCollector(pub Arc<Live>);

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (entries, bytes) = self.0.load().resolver.cache_usage();
        let entries = ConstGauge::new(i64::try_from(entries).unwrap_or(i64::MAX));
        entries.encode(encoder.encode_descriptor(
            "cache_entries",
            "Values in the cache, fresh or kept to be served stale",
            None,
            MetricType::Gauge,
        )?)?;
        let bytes = ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX));
        bytes.encode(encoder.encode_descriptor(
            "cache_values",
            "The cached values' size (the secret bytes only)",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

const STATUSES: [(ConnectionStatus, &str); 5] = [
    (ConnectionStatus::Unknown, "unknown"),
    (ConnectionStatus::Connected, "connected"),
    (
        ConnectionStatus::NeedsReauthorization,
        "needs_reauthorization",
    ),
    (ConnectionStatus::Failed, "failed"),
    (ConnectionStatus::Unreachable, "unreachable"),
];

/// Each configured Jira connection's status and the days left until its token's
/// recorded expiry.
#[derive(Debug)]
pub(crate) struct JiraCollector(pub Arc<Live>);

impl Collector for JiraCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let runtime = self.0.load();
        let jira = &runtime.jira;
        let connections = jira.connections();
        if connections.is_empty() {
            return Ok(());
        }
        {
            let mut family = encoder.encode_descriptor(
                "jira_connection_state",
                "1 for each Jira connection's current status, 0 for the others",
                None,
                MetricType::Gauge,
            )?;
            for name in connections.keys() {
                let status = jira.state(name).status;
                for (each, label) in STATUSES {
                    let set = [("connection", name.as_str()), ("state", label)];
                    ConstGauge::new(i64::from(each == status))
                        .encode(family.encode_family(&set)?)?;
                }
            }
        }
        let today = crate::jira::service::today();
        let days = Unit::Other("days".to_owned());
        let mut family = encoder.encode_descriptor(
            "jira_token_expiry",
            "Days until a Jira connection's token expires (its recorded expires_at); negative once expired",
            Some(&days),
            MetricType::Gauge,
        )?;
        for (name, connection) in connections {
            if let Some(expires) = connection.expires_at {
                let set = [("connection", name.as_str())];
                ConstGauge::new((expires - today).whole_days())
                    .encode(family.encode_family(&set)?)?;
            }
        }
        Ok(())
    }
}
