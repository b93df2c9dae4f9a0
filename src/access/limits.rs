//! Per-caller rate limits: a token bucket (GCRA, from `governor`) per caller identity, so
//! one caller in a loop cannot take the daemon from the others. Refusals are
//! RESOURCE_EXHAUSTED with the time after which a retry is admitted.

use super::Identity;
use crate::config::RateLimit;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How often the state of callers who stopped calling is dropped, so a stream of new
/// TCP addresses cannot grow it without bound.
const FORGET_INTERVAL: Duration = Duration::from_secs(60);

/// What a bucket belongs to: one per kernel-vouched uid, token client, certificate or
/// TCP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CallerKey {
    Uid(u32),
    UnknownUnix,
    Certificate(Arc<[String]>),
    Token(Arc<str>),
    Address(Option<IpAddr>),
}

impl From<&Identity> for CallerKey {
    fn from(identity: &Identity) -> Self {
        match identity {
            Identity::Unix { uid, .. } => Self::Uid(*uid),
            Identity::UnixUnknown => Self::UnknownUnix,
            Identity::Certificate { names } => Self::Certificate(names.clone()),
            Identity::Token { client, .. } => Self::Token(client.clone()),
            Identity::Network { address } => Self::Address(address.map(|address| address.ip())),
        }
    }
}

#[derive(Debug)]
struct Limiter {
    limit: RateLimit,
    buckets: DefaultKeyedRateLimiter<CallerKey>,
}

impl Limiter {
    fn new(limit: RateLimit) -> Self {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        Self {
            limit,
            buckets: DefaultKeyedRateLimiter::dashmap(quota),
        }
    }
}

/// A refusal: the limit that applied and when a call will be admitted again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exhausted {
    pub limit: RateLimit,
    pub retry_after: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct RateLimits {
    default: Option<Limiter>,
    /// Per client entry (by index), for clients with a limit of their own.
    clients: HashMap<usize, Limiter>,
}

impl RateLimits {
    pub(crate) fn new(
        default: Option<RateLimit>,
        clients: impl Iterator<Item = (usize, RateLimit)>,
    ) -> Self {
        Self {
            default: default.map(Limiter::new),
            clients: clients
                .map(|(index, limit)| (index, Limiter::new(limit)))
                .collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.default.is_none() && self.clients.is_empty()
    }

    /// Admits one call of `identity`, which matched `clients`: the first of them with a
    /// limit of its own decides, else the server's default.
    pub(crate) fn admit(
        &self,
        identity: &Identity,
        clients: Option<&[usize]>,
    ) -> Result<(), Exhausted> {
        let limiter = clients
            .into_iter()
            .flatten()
            .find_map(|index| self.clients.get(index))
            .or(self.default.as_ref());
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter
            .buckets
            .check_key(&CallerKey::from(identity))
            .map_err(|not_until| Exhausted {
                limit: limiter.limit,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }

    /// Drops buckets that are full again (their callers went quiet) until `stop`.
    pub(crate) async fn forget_idle(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(FORGET_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                _ = tick.tick() => {}
            }
            for limiter in self.default.iter().chain(self.clients.values()) {
                limiter.buckets.retain_recent();
                limiter.buckets.shrink_to_fit();
            }
        }
    }
}
