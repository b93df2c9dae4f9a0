use crate::cli::Args;
use crate::stats::Measurement;
use std::time::Duration;

pub(crate) fn report(
    args: &Args,
    results: &[Measurement],
    idle_rss: f64,
    large_rss: Option<(f64, f64)>,
    startup: Duration,
) {
    let baseline_for = |m: &Measurement| {
        results.iter().find(|b| {
            b.scenario == "baseline" && b.transport == m.transport && b.concurrency == m.concurrency
        })
    };
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    println!(
        "duration {:?} per run, {} connections, {}-byte secret, {cores} cores, {} tokio workers per server\n",
        args.duration,
        args.connections,
        args.payload,
        args.server_workers.unwrap_or(cores)
    );
    println!(
        "| scenario | transport | concurrency | req/s | secrets/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/req | CPU µs/secret | req/s vs baseline | CPU vs baseline (runs' range) | RSS MB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in results {
        let (rate_ratio, cpu_ratio) = match (m.paired, baseline_for(m)) {
            (Some(paired), _) => (
                format!("{:.2}", paired.rate),
                format!(
                    "{:.2} ({:.2}-{:.2})",
                    paired.cpu, paired.cpu_lowest, paired.cpu_highest
                ),
            ),
            (None, Some(b)) if m.per_request == 1 => (
                format!("{:.2}", m.rate() / b.rate()),
                format!("{:.2}", m.cpu_us_per_request / b.cpu_us_per_request),
            ),
            (None, _) => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {} | {:.1} |",
            m.scenario,
            m.transport,
            m.concurrency,
            m.rate(),
            m.rate() * m.per_request as f64,
            m.p50_us,
            m.p99_us,
            m.p999_us,
            m.cpu_us_per_request,
            m.cpu_us_per_request / m.per_request as f64,
            rate_ratio,
            cpu_ratio,
            m.rss_mb
        );
    }
    println!("\n| coalescing, memory and startup | value |\n|---|---:|");
    for m in results {
        if let Some((fewest, most)) = m.backend_calls_per_round {
            println!(
                "| backend calls per round of {} cold resolves (must be 1) | {} |",
                m.concurrency,
                if fewest == most {
                    fewest.to_string()
                } else {
                    format!("{fewest} to {most}")
                }
            );
        }
    }
    println!("| RSS idle (1,000 definitions configured) | {idle_rss:.1} MB |");
    match large_rss {
        Some((loaded, cached)) => {
            println!(
                "| RSS with 100,000 definitions loaded, nothing resolved yet | {loaded:.1} MB |"
            );
            println!("| RSS with 100,000 cached definitions of 64-byte values | {cached:.1} MB |");
        }
        None => println!("| RSS with 100,000 cached definitions | skipped |"),
    }
    println!(
        "| startup to SERVING, example config (median of 5) | {:.1} ms |\n",
        startup.as_secs_f64() * 1e3
    );
    for m in results {
        let line = serde_json::json!({
            "scenario": m.scenario,
            "transport": m.transport,
            "concurrency": m.concurrency,
            "requests_per_second": m.rate(),
            "secrets_per_request": m.per_request,
            "p50_us": m.p50_us,
            "p99_us": m.p99_us,
            "p999_us": m.p999_us,
            "cpu_us_per_request": m.cpu_us_per_request,
            "rss_mb": m.rss_mb,
            "vs_baseline": m.paired.map(|p| serde_json::json!({
                "requests_per_second": p.rate,
                "cpu_per_request": p.cpu,
                "cpu_per_request_range": [p.cpu_lowest, p.cpu_highest],
            })),
            "backend_calls_per_round": m.backend_calls_per_round.map(|(min, max)| [min, max]),
        });
        println!("{line}");
    }
    println!(
        "{}",
        serde_json::json!({
            "scenario": "memory and startup",
            "rss_idle_mb": idle_rss,
            "rss_100k_loaded_mb": large_rss.map(|(loaded, _)| loaded),
            "rss_100k_mb": large_rss.map(|(_, cached)| cached),
            "startup_ms": startup.as_secs_f64() * 1e3,
        })
    );
}
