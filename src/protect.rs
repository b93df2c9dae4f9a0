//! Keeping a failing or slow backend from being hammered: a limit on calls in flight,
//! and a circuit breaker that stops calling after consecutive temporary failures, for a
//! cool-down that doubles (with jitter) up to a cap, then lets one probe call through.
//!
//! The breaker counts only temporary failures: a not-found or a denial is an answer,
//! and proves the backend is up.

use crate::metrics::{BackendMeter, BreakerState, Operation};
use async_trait::async_trait;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use vaultbridge_backend_core::config::{Section, Text};
use vaultbridge_backend_core::{Backend, BackendError, Capabilities, Fetched, SecretRef};

/// A backend's protection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Protection {
    /// Calls in flight at once; more wait their turn.
    pub max_in_flight: usize,
    /// Temporary failures in a row that open the breaker. Zero: no breaker.
    pub breaker_failures: u32,
    /// The first cool-down; each failed probe doubles it.
    pub breaker_cooldown: Duration,
    pub breaker_max_cooldown: Duration,
}

impl Protection {
    pub(crate) const DEFAULT: Self = Self {
        max_in_flight: 16,
        breaker_failures: 5,
        breaker_cooldown: Duration::from_secs(1),
        breaker_max_cooldown: Duration::from_secs(60),
    };
}

#[derive(Debug, Clone, Copy)]
enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        cooldown: Duration,
    },
    /// One call is let through to see whether the backend is back.
    Probing {
        cooldown: Duration,
    },
}

/// Whether a call may go ahead, and whether it is the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Normal,
    Probe,
}

pub(crate) struct Protected {
    name: Arc<str>,
    inner: Arc<dyn Backend>,
    settings: Protection,
    permits: Semaphore,
    breaker: Mutex<Breaker>,
    jitter: std::collections::hash_map::RandomState,
    meter: BackendMeter,
}

impl std::fmt::Debug for Protected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protected")
            .field("name", &self.name)
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Protected {
    pub(crate) fn new(name: Arc<str>, inner: Arc<dyn Backend>, settings: Protection) -> Self {
        Self {
            name,
            inner,
            settings,
            permits: Semaphore::new(settings.max_in_flight.max(1)),
            breaker: Mutex::new(Breaker::Closed { failures: 0 }),
            jitter: std::collections::hash_map::RandomState::new(),
            meter: BackendMeter::default(),
        }
    }

    /// Counts this backend's calls and breaker state into `meter`.
    pub(crate) fn metered(mut self, meter: BackendMeter) -> Self {
        self.meter = meter;
        self
    }

    fn admit(&self) -> Result<Admission, BackendError> {
        if self.settings.breaker_failures == 0 {
            return Ok(Admission::Normal);
        }
        let mut breaker = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
        match *breaker {
            Breaker::Closed { .. } => Ok(Admission::Normal),
            Breaker::Open { until, cooldown } => {
                let now = Instant::now();
                if now < until {
                    Err(self.open_error(until - now))
                } else {
                    *breaker = Breaker::Probing { cooldown };
                    self.meter.breaker(BreakerState::HalfOpen);
                    Ok(Admission::Probe)
                }
            }
            Breaker::Probing { cooldown } => {
                Err(self.open_error(cooldown.min(Duration::from_secs(1))))
            }
        }
    }

    fn open_error(&self, retry_in: Duration) -> BackendError {
        BackendError::unavailable(format!(
            "backend `{}` failed {} times in a row for temporary reasons; vaultbridge stops calling it for a while (circuit breaker) and tries again in {} ms",
            self.name,
            self.settings.breaker_failures,
            retry_in.as_millis().max(1),
        ))
        .temporary(true)
    }

    /// `failed`: the call failed for a temporary reason.
    fn record(&self, admission: Admission, failed: bool) {
        if self.settings.breaker_failures == 0 {
            return;
        }
        let mut breaker = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
        let next = match (*breaker, failed) {
            (_, false) => {
                if admission == Admission::Probe {
                    tracing::info!(backend = %self.name, "the backend answered the probe call; closing the circuit breaker");
                }
                Breaker::Closed { failures: 0 }
            }
            (Breaker::Closed { failures }, true) => {
                let failures = failures + 1;
                if failures >= self.settings.breaker_failures {
                    let cooldown = self.settings.breaker_cooldown;
                    tracing::warn!(backend = %self.name, failures, cooldown_ms = cooldown.as_millis() as u64, "opening the circuit breaker: no calls to this backend until the cool-down ends");
                    self.open(cooldown)
                } else {
                    Breaker::Closed { failures }
                }
            }
            (Breaker::Probing { cooldown }, true) if admission == Admission::Probe => {
                let cooldown = cooldown
                    .saturating_mul(2)
                    .min(self.settings.breaker_max_cooldown);
                tracing::warn!(backend = %self.name, cooldown_ms = cooldown.as_millis() as u64, "the probe call failed; the circuit breaker stays open");
                self.open(cooldown)
            }
            // A call admitted before the breaker opened, failing late: already counted.
            (state, true) => state,
        };
        *breaker = next;
        self.meter.breaker(match next {
            Breaker::Closed { .. } => BreakerState::Closed,
            Breaker::Open { .. } => BreakerState::Open,
            Breaker::Probing { .. } => BreakerState::HalfOpen,
        });
    }

    /// Open for `cooldown`, shortened by up to a tenth at random so that daemons that
    /// opened together do not probe together.
    fn open(&self, cooldown: Duration) -> Breaker {
        let random = self.jitter.hash_one(Instant::now());
        #[allow(
            clippy::cast_precision_loss,
            reason = "a fraction of the cool-down; the lost low bits do not matter"
        )]
        let fraction = (random % 1_000) as f64 / 10_000.0;
        Breaker::Open {
            until: Instant::now() + cooldown.mul_f64(1.0 - fraction),
            cooldown,
        }
    }
}

#[async_trait]
impl Backend for Protected {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn fetch(&self, secret: &SecretRef) -> Result<Fetched, BackendError> {
        let admission = self.admit().inspect_err(|_| self.meter.rejected())?;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| BackendError::internal("the backend's call limit was closed"))?;
        let call = self.meter.call(Operation::Fetch);
        let result = self.inner.fetch(secret).await;
        call.end(result.as_ref().map(|_| ()));
        self.record(admission, matches!(&result, Err(err) if err.is_temporary()));
        result
    }

    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await;
    }

    async fn fetch_many(&self, secrets: &[SecretRef]) -> Vec<Result<Fetched, BackendError>> {
        let admission = match self.admit() {
            Ok(admission) => admission,
            Err(err) => {
                self.meter.rejected();
                return secrets
                    .iter()
                    .map(|_| Err(BackendError::new(err.kind(), err.message()).temporary(true)))
                    .collect();
            }
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return secrets
                .iter()
                .map(|_| {
                    Err(BackendError::internal(
                        "the backend's call limit was closed",
                    ))
                })
                .collect();
        };
        let call = self.meter.call(Operation::FetchMany);
        let results = self.inner.fetch_many(secrets).await;
        call.end(
            results
                .iter()
                .find_map(|result| result.as_ref().err())
                .map_or(Ok(()), Err),
        );
        // One answer of any kind proves the backend is up.
        let failed = !results.is_empty()
            && results
                .iter()
                .all(|result| matches!(result, Err(err) if err.is_temporary()));
        self.record(admission, failed);
        results
    }

    fn revision(&self, now: Instant) -> Option<u64> {
        self.inner.revision(now)
    }
}

/// Protection settings as written, each optional (a backend's override only some).
#[derive(Debug, Default)]
pub(crate) struct RawProtection {
    pub max_in_flight: Option<Text>,
    pub breaker_failures: Option<Text>,
    pub breaker_cooldown: Option<Text>,
    pub breaker_max_cooldown: Option<Text>,
}

impl RawProtection {
    /// The field names, for sections that read them beside their own.
    pub(crate) const FIELDS: [&'static str; 4] = [
        "max_in_flight",
        "breaker_failures",
        "breaker_cooldown",
        "breaker_max_cooldown",
    ];
}

/// The settings written, over the ones that apply otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ProtectionOverrides {
    max_in_flight: Option<usize>,
    breaker_failures: Option<u32>,
    breaker_cooldown: Option<Duration>,
    breaker_max_cooldown: Option<Duration>,
}

impl ProtectionOverrides {
    pub(crate) fn over(self, base: Protection) -> Protection {
        Protection {
            max_in_flight: self.max_in_flight.unwrap_or(base.max_in_flight),
            breaker_failures: self.breaker_failures.unwrap_or(base.breaker_failures),
            breaker_cooldown: self.breaker_cooldown.unwrap_or(base.breaker_cooldown),
            breaker_max_cooldown: self
                .breaker_max_cooldown
                .unwrap_or(base.breaker_max_cooldown),
        }
    }

    /// Checks the settings as written, recording every problem in `section`.
    pub(crate) fn check(raw: &RawProtection, section: &mut Section<'_, '_>) -> Self {
        let mut overrides = Self::default();
        if let Some(value) = &raw.max_in_flight
            && let Some(text) = section.text(value, "max_in_flight")
        {
            match text.trim().parse::<usize>() {
                Ok(limit @ 1..=10_000) => overrides.max_in_flight = Some(limit),
                _ => section.expected(value, "max_in_flight", "a number of calls from 1 to 10000"),
            }
        }
        if let Some(value) = &raw.breaker_failures
            && let Some(text) = section.text(value, "breaker_failures")
        {
            match text.trim().parse::<u32>() {
                Ok(failures @ 0..=1_000) => overrides.breaker_failures = Some(failures),
                _ => section.expected(
                    value,
                    "breaker_failures",
                    "a number of failures in a row from 1 to 1000 (0 turns the breaker off)",
                ),
            }
        }
        let mut cooldown = Protection::DEFAULT.breaker_cooldown;
        if let Some(value) = &raw.breaker_cooldown {
            section.timeout(Some(value), "breaker_cooldown", &mut cooldown);
            overrides.breaker_cooldown = Some(cooldown);
        }
        let mut max_cooldown = Protection::DEFAULT.breaker_max_cooldown;
        if let Some(value) = &raw.breaker_max_cooldown {
            section.timeout(Some(value), "breaker_max_cooldown", &mut max_cooldown);
            overrides.breaker_max_cooldown = Some(max_cooldown);
            if let Some(cooldown) = overrides.breaker_cooldown
                && max_cooldown < cooldown
            {
                section.problem(
                    value,
                    "breaker_max_cooldown",
                    "the longest cool-down cannot be shorter than `breaker_cooldown`",
                );
            }
        }
        overrides
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use vaultbridge_backend_core::SecretValue;

    /// Counts calls and the most that were in flight at once; fails on command.
    #[derive(Debug, Default)]
    struct Flaky {
        calls: AtomicUsize,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        down: AtomicBool,
        gone: AtomicBool,
        /// Calls wait here while it holds `false`.
        gate: Option<tokio::sync::watch::Sender<bool>>,
    }

    #[async_trait]
    impl Backend for Flaky {
        fn kind(&self) -> &'static str {
            "flaky"
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities::text_only()
        }

        async fn fetch(&self, _secret: &SecretRef) -> Result<Fetched, BackendError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                let _ = gate.subscribe().wait_for(|open| *open).await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(BackendError::unavailable("connection refused"));
            }
            if self.gone.load(Ordering::SeqCst) {
                return Err(BackendError::not_found("no such secret"));
            }
            Ok(Fetched::new(SecretValue::from("v")))
        }
    }

    fn settings(failures: u32, cooldown: Duration) -> Protection {
        Protection {
            max_in_flight: 16,
            breaker_failures: failures,
            breaker_cooldown: cooldown,
            breaker_max_cooldown: cooldown * 8,
        }
    }

    fn protected(backend: &Arc<Flaky>, settings: Protection) -> Protected {
        Protected::new("vault".into(), backend.clone(), settings)
    }

    async fn fetch(protected: &Protected) -> Result<Fetched, BackendError> {
        protected.fetch(&SecretRef::new("s")).await
    }

    #[tokio::test]
    async fn the_breaker_opens_after_consecutive_temporary_failures_and_stops_calling() {
        let backend = Arc::new(Flaky::default());
        backend.down.store(true, Ordering::SeqCst);
        let protected = protected(&backend, settings(3, Duration::from_secs(3600)));
        for _ in 0..3 {
            let err = fetch(&protected).await.expect_err("down");
            assert_eq!(err.message(), "connection refused");
        }
        for _ in 0..10 {
            let err = fetch(&protected).await.expect_err("open");
            assert!(err.is_temporary());
            assert_eq!(err.kind(), vaultbridge_backend_core::ErrorKind::Unavailable);
            assert!(
                err.message()
                    .starts_with("backend `vault` failed 3 times in a row"),
                "{err}"
            );
        }
        assert_eq!(
            backend.calls.load(Ordering::SeqCst),
            3,
            "no call while open"
        );
    }

    #[tokio::test]
    async fn answers_of_any_kind_keep_the_breaker_closed() {
        let backend = Arc::new(Flaky::default());
        let protected = protected(&backend, settings(2, Duration::from_secs(3600)));
        for round in 0..5 {
            backend.down.store(true, Ordering::SeqCst);
            fetch(&protected).await.expect_err("down once");
            backend.down.store(false, Ordering::SeqCst);
            backend.gone.store(round % 2 == 0, Ordering::SeqCst);
            // A not-found is an answer: the backend is up.
            let _ = fetch(&protected).await;
        }
        assert_eq!(backend.calls.load(Ordering::SeqCst), 10, "never opened");
    }

    /// The cool-down is real time (the breaker reads the monotonic clock), so the test
    /// waits for the probe to be let through, with a deadline.
    #[tokio::test]
    async fn after_the_cooldown_one_probe_goes_through_and_its_answer_decides() {
        let backend = Arc::new(Flaky::default());
        backend.down.store(true, Ordering::SeqCst);
        let cooldown = Duration::from_millis(50);
        let protected = protected(&backend, settings(1, cooldown));
        fetch(&protected).await.expect_err("down: opens");
        let probe_after = |protected: &Protected| {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match protected.admit() {
                    Ok(admission) => return admission,
                    Err(_) => {
                        assert!(Instant::now() < deadline, "no probe within 30 s");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        };
        let opened = Instant::now();
        assert_eq!(probe_after(&protected), Admission::Probe);
        assert!(
            opened.elapsed() >= cooldown.mul_f64(0.8),
            "probed before the cool-down"
        );
        // While the probe is out, other calls still fail fast.
        assert!(protected.admit().is_err());
        protected.record(Admission::Probe, true);
        // A failed probe doubles the cool-down; a good one closes the breaker.
        let Breaker::Open {
            cooldown: doubled, ..
        } = *protected.breaker.lock().unwrap()
        else {
            panic!("a failed probe leaves the breaker open")
        };
        assert_eq!(doubled, cooldown * 2);
        assert_eq!(probe_after(&protected), Admission::Probe);
        protected.record(Admission::Probe, false);
        backend.down.store(false, Ordering::SeqCst);
        fetch(&protected).await.expect("closed again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_max_in_flight_calls_reach_the_backend() {
        let gate = tokio::sync::watch::Sender::new(false);
        let backend = Arc::new(Flaky {
            gate: Some(gate.clone()),
            ..Flaky::default()
        });
        let mut limited = settings(0, Duration::from_secs(1));
        limited.max_in_flight = 2;
        let protected = Arc::new(protected(&backend, limited));
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let protected = protected.clone();
            calls.spawn(async move { fetch(&protected).await });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while backend.in_flight.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "the first calls never arrived");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        gate.send_replace(true);
        while let Some(result) = calls.join_next().await {
            result.expect("task").expect("answered");
        }
        assert_eq!(backend.calls.load(Ordering::SeqCst), 6);
        assert_eq!(backend.most_in_flight.load(Ordering::SeqCst), 2);
    }
}
