use crate::fake_secrets_manager::Calls;
use crate::server::Server;
use std::time::Duration;

/// One measured run.
#[derive(Debug, Clone)]
pub(crate) struct Measurement {
    pub(crate) scenario: String,
    pub(crate) transport: &'static str,
    pub(crate) concurrency: usize,
    /// Secrets per request (10 for ResolveBatch of 10).
    pub(crate) per_request: usize,
    pub(crate) requests: u64,
    pub(crate) seconds: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p999_us: f64,
    pub(crate) cpu_us_per_request: f64,
    pub(crate) rss_mb: f64,
    /// Cold misses only: the fewest and the most backend calls in one round.
    pub(crate) backend_calls_per_round: Option<(u64, u64)>,
    /// Against the baseline run just before each run: the medians of those ratios.
    pub(crate) paired: Option<Paired>,
    /// Refresh-ahead runs only; their figures are compared with the same daemon's
    /// ttl-1h reading, not with the baseline server.
    pub(crate) refresh: Option<RefreshFigures>,
}

/// What one contender of the refresh-ahead scenarios saw over all its rounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefreshFigures {
    /// How many definitions the readers read in turn, each with `ttl`.
    pub(crate) definitions: usize,
    pub(crate) ttl: Duration,
    pub(crate) backend_latency: Duration,
    pub(crate) rounds: usize,
    pub(crate) reads: u64,
    /// The slowest read of all rounds, in µs.
    pub(crate) max_us: f64,
    /// Reads that took longer than one backend call: they must have waited for one.
    pub(crate) slow_reads: u64,
    /// The backend calls made during the measured runs, all rounds together.
    pub(crate) calls: Calls,
    /// TTL windows in the measured runs, all rounds together: their seconds over the TTL.
    pub(crate) windows: f64,
    /// The p99 over the p99 of the ttl-1h reference run of the same round: the median
    /// of the rounds' ratios, the lowest and the highest. None for the reference.
    pub(crate) p99_vs_reference: Option<(f64, f64, f64)>,
}

/// Ratios of a run to the baseline run of the same round. Pairing runs that are
/// seconds apart cancels most of the machine's drift, which a ratio of two medians
/// does not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paired {
    pub(crate) rate: f64,
    pub(crate) cpu: f64,
    pub(crate) cpu_lowest: f64,
    pub(crate) cpu_highest: f64,
}

impl Paired {
    /// Medians of the rounds' ratios, so that one disturbed round does not move them;
    /// the CPU ratios' range goes beside them to show how far the rounds spread.
    pub(crate) fn of(runs: &[Measurement], baselines: &[Measurement]) -> Self {
        let mut rates: Vec<f64> = Vec::new();
        let mut cpus: Vec<f64> = Vec::new();
        for (run, baseline) in runs.iter().zip(baselines) {
            rates.push(run.rate() / baseline.rate());
            cpus.push(run.cpu_us_per_request / baseline.cpu_us_per_request);
        }
        rates.sort_by(f64::total_cmp);
        cpus.sort_by(f64::total_cmp);
        Self {
            rate: rates[rates.len() / 2],
            cpu: cpus[cpus.len() / 2],
            cpu_lowest: cpus[0],
            cpu_highest: cpus[cpus.len() - 1],
        }
    }
}

impl Measurement {
    pub(crate) fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// The figures of calls that took `latencies` (µs) within `seconds`, while the
    /// server used `cpu`; the caller names the scenario.
    pub(crate) fn of_calls(
        latencies: &mut [u32],
        seconds: f64,
        cpu: Duration,
        server: &Server,
    ) -> Self {
        let [p50_us, p99_us, p999_us] = percentiles(latencies, [0.50, 0.99, 0.999]);
        let requests = latencies.len() as u64;
        Self {
            scenario: String::new(),
            transport: "",
            concurrency: 0,
            per_request: 1,
            requests,
            seconds,
            p50_us,
            p99_us,
            p999_us,
            cpu_us_per_request: cpu.as_secs_f64() * 1e6 / requests.max(1) as f64,
            rss_mb: server.rss_mb(),
            backend_calls_per_round: None,
            paired: None,
            refresh: None,
        }
    }
}

fn percentiles<const N: usize>(latencies: &mut [u32], points: [f64; N]) -> [f64; N] {
    latencies.sort_unstable();
    points.map(|p| {
        let index =
            ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len().max(1)) - 1;
        latencies.get(index).copied().unwrap_or(0) as f64
    })
}

/// Every figure is the median of the runs' figures (each taken on its own).
pub(crate) fn median(runs: Vec<Measurement>) -> Measurement {
    let middle = |figure: fn(&Measurement) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    let rate = middle(Measurement::rate);
    let mut result = runs.first().cloned().expect("at least one run");
    result.requests = rate.round() as u64;
    result.seconds = 1.0;
    result.p50_us = middle(|m| m.p50_us);
    result.p99_us = middle(|m| m.p99_us);
    result.p999_us = middle(|m| m.p999_us);
    result.cpu_us_per_request = middle(|m| m.cpu_us_per_request);
    result.rss_mb = middle(|m| m.rss_mb);
    result
}
