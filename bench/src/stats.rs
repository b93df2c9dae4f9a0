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
    /// Plugin rows only: the plugin process's CPU time over the run, per request.
    pub(crate) plugin_cpu_us_per_request: Option<f64>,
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
    /// What a run adds to its pair in µs (median, lowest, highest of the rounds): the
    /// p50 latency, and the server's CPU per request. A ratio hides a fixed cost such
    /// as a round trip to another process; a difference shows it.
    pub(crate) p50_added_us: Spread,
    pub(crate) cpu_added_us: Spread,
}

/// The median of some rounds' figures, with the lowest and the highest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) lowest: f64,
    pub(crate) highest: f64,
}

impl Spread {
    pub(crate) fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self {
            median: values.get(values.len() / 2).copied().unwrap_or(0.0),
            lowest: values.first().copied().unwrap_or(0.0),
            highest: values.last().copied().unwrap_or(0.0),
        }
    }
}

impl Paired {
    /// Medians of the rounds' ratios, so that one disturbed round does not move them;
    /// the CPU ratios' range goes beside them to show how far the rounds spread.
    pub(crate) fn of(runs: &[Measurement], baselines: &[Measurement]) -> Self {
        let pairs = || runs.iter().zip(baselines);
        let rate = Spread::of(pairs().map(|(run, b)| run.rate() / b.rate()).collect());
        let cpu = Spread::of(
            pairs()
                .map(|(run, b)| run.cpu_us_per_request / b.cpu_us_per_request)
                .collect(),
        );
        Self {
            rate: rate.median,
            cpu: cpu.median,
            cpu_lowest: cpu.lowest,
            cpu_highest: cpu.highest,
            p50_added_us: Spread::of(pairs().map(|(run, b)| run.p50_us - b.p50_us).collect()),
            cpu_added_us: Spread::of(
                pairs()
                    .map(|(run, b)| run.cpu_us_per_request - b.cpu_us_per_request)
                    .collect(),
            ),
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
            plugin_cpu_us_per_request: None,
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
    if result.plugin_cpu_us_per_request.is_some() {
        result.plugin_cpu_us_per_request =
            Some(middle(|m| m.plugin_cpu_us_per_request.unwrap_or(0.0)));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::{Measurement, Paired, Spread};

    fn run(requests: u64, p50_us: f64, cpu_us_per_request: f64) -> Measurement {
        Measurement {
            scenario: String::new(),
            transport: "uds",
            concurrency: 1,
            per_request: 1,
            requests,
            seconds: 1.0,
            p50_us,
            p99_us: p50_us,
            p999_us: p50_us,
            cpu_us_per_request,
            rss_mb: 0.0,
            plugin_cpu_us_per_request: None,
            backend_calls_per_round: None,
            paired: None,
            refresh: None,
        }
    }

    #[test]
    fn pairs_take_the_median_of_the_rounds_ratios_and_differences() {
        let references = [
            run(100, 50.0, 20.0),
            run(80, 60.0, 25.0),
            run(90, 55.0, 30.0),
        ];
        let runs = [
            run(50, 100.0, 30.0),
            run(80, 80.0, 25.0),
            run(45, 95.0, 60.0),
        ];
        let paired = Paired::of(&runs, &references);
        assert_eq!(paired.rate, 0.5);
        assert_eq!(
            (paired.cpu, paired.cpu_lowest, paired.cpu_highest),
            (1.5, 1.0, 2.0)
        );
        let spread = |median, lowest, highest| Spread {
            median,
            lowest,
            highest,
        };
        assert_eq!(paired.p50_added_us, spread(40.0, 20.0, 50.0));
        assert_eq!(paired.cpu_added_us, spread(10.0, 0.0, 30.0));
    }
}
