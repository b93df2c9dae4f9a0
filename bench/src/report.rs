use crate::cli::Args;
use crate::refresh_ahead::AWS_BATCH;
use crate::stats::{Measurement, RefreshFigures};
use std::time::Duration;

pub(crate) fn report(
    args: &Args,
    results: &[Measurement],
    idle_rss: f64,
    large_rss: Option<(f64, f64)>,
    startup: Duration,
) {
    rows(args, results);
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
    refresh_tables(args, results);
    crate::plugin::table(results);
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
            "plugin_cpu_us_per_request": m.plugin_cpu_us_per_request,
            "vs_baseline": m.paired.map(|p| serde_json::json!({
                "requests_per_second": p.rate,
                "cpu_per_request": p.cpu,
                "cpu_per_request_range": [p.cpu_lowest, p.cpu_highest],
                "p50_added_us": p.p50_added_us.median,
                "cpu_added_us": p.cpu_added_us.median,
            })),
            "backend_calls_per_round": m.backend_calls_per_round.map(|(min, max)| [min, max]),
        });
        let line = match &m.refresh {
            Some(refresh) => with_refresh(line, refresh),
            None => line,
        };
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

/// The refresh-ahead scenarios' own figures: the reads' latency against the same
/// daemon's ttl-1h reading, and the backend calls per TTL window.
fn refresh_tables(args: &Args, results: &[Measurement]) {
    let rows: Vec<(&Measurement, &RefreshFigures)> = results
        .iter()
        .filter_map(|m| Some((m, m.refresh.as_ref()?)))
        .collect();
    let Some((_, first)) = rows.first() else {
        return;
    };
    let latency_ms = first.backend_latency.as_millis();
    println!(
        "| refresh ahead: steady reads, {} round{} of {:?}, backend {latency_ms} ms | transport | concurrency | reads | p50 µs | p99 µs | max µs | p99 vs ttl-1h hit (rounds' range), target ≤ 1.20 | reads slower than the backend (target 0) |",
        first.rounds,
        if first.rounds == 1 { "" } else { "s" },
        args.refresh_duration
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (m, r) in &rows {
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {} |",
            m.scenario,
            m.transport,
            m.concurrency,
            r.reads,
            m.p50_us,
            m.p99_us,
            r.max_us,
            r.p99_vs_reference.map_or_else(
                || "1.00 (the reference)".to_owned(),
                |(median, lowest, highest)| format!("{median:.2} ({lowest:.2}-{highest:.2})")
            ),
            r.slow_reads
        );
    }
    println!(
        "\n| backend calls under steady reads, all rounds | concurrency | TTL windows | GetSecretValue | BatchGetSecretValue (ids in them) | calls per window (target) | secrets fetched per definition per window (target 1) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (m, r) in rows.iter().filter(|(_, r)| r.p99_vs_reference.is_some()) {
        println!(
            "| {} definition{}, ttl {:?} | {} | {:.1} | {} | {} ({}) | {:.2} ({}) | {:.2} |",
            r.definitions,
            if r.definitions == 1 { "" } else { "s" },
            r.ttl,
            m.concurrency,
            r.windows,
            r.calls.get,
            r.calls.batch,
            r.calls.batched_ids,
            r.calls.total() as f64 / r.windows,
            calls_per_window_target(r.definitions),
            r.calls.secrets() as f64 / (r.definitions as f64 * r.windows),
        );
    }
    println!();
}

/// One call per TTL window for one definition; a batching backend needs one call per
/// `AWS_BATCH` definitions.
fn calls_per_window_target(definitions: usize) -> usize {
    definitions.div_ceil(AWS_BATCH)
}

fn with_refresh(mut line: serde_json::Value, r: &RefreshFigures) -> serde_json::Value {
    line["refresh_ahead"] = serde_json::json!({
        "definitions": r.definitions,
        "ttl_ms": r.ttl.as_millis(),
        "backend_latency_ms": r.backend_latency.as_millis(),
        "rounds": r.rounds,
        "reads": r.reads,
        "max_us": r.max_us,
        "reads_slower_than_backend": r.slow_reads,
        "p99_vs_ttl_1h_hit": r.p99_vs_reference.map(|(median, lowest, highest)| serde_json::json!({
            "median": median,
            "range": [lowest, highest],
        })),
        "backend_calls": {
            "get_secret_value": r.calls.get,
            "batch_get_secret_value": r.calls.batch,
            "batched_ids": r.calls.batched_ids,
            "other": r.calls.other,
        },
        "ttl_windows": r.windows,
        "calls_per_window": r.calls.total() as f64 / r.windows,
        "calls_per_window_target": calls_per_window_target(r.definitions),
        "secrets_per_definition_per_window": r.calls.secrets() as f64 / (r.definitions as f64 * r.windows),
    });
    line
}

/// The main table: every measurement, with its ratio to its baseline.
pub(crate) fn rows(args: &Args, results: &[Measurement]) {
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
            // Refresh-ahead rows are compared with the same daemon's ttl-1h reading, in
            // their own table; a ratio of medians to the baseline's would be unpaired.
            (None, Some(b)) if m.per_request == 1 && m.refresh.is_none() => (
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
}
