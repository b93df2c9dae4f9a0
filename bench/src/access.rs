//! What access rules and the audit trail cost a cache hit: the same daemon config with
//! a `clients` section (a uid rule for the socket, a token for TCP) and an audit file,
//! paired run by run against the daemon without them.

use crate::cli::Args;
use crate::daemon::{start_daemon, write_config};
use crate::load::{Work, interleaved};
use crate::server::{Server, Transport};
use crate::stats::Measurement;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

const TOKEN: &str = "bench-token-0123456789abcdef";

pub(crate) async fn measure(
    args: &Args,
    dir: &Path,
    secrets: &Path,
    plain: &Server,
) -> Vec<Measurement> {
    let socket = dir.join("guarded.sock");
    let config = write_config(dir, "guarded.yaml", secrets, 1000, &socket);
    let uid = std::fs::metadata(dir).expect("the bench directory").uid();
    std::fs::write(dir.join("bench.token"), TOKEN).expect("token file");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "clients:\n  bench:\n    uids: [{uid}]\n    tokens:\n      - file: {}\n    definitions: [bench, \"s*\"]\naudit:\n  file: {}\n",
        dir.join("bench.token").display(),
        dir.join("audit.jsonl").display()
    ));
    std::fs::write(&config, text).expect("config");
    let (guarded, _) = start_daemon(args, &config, &socket).await;
    let plain_work = Arc::new(Work::Resolve("bench".to_owned()));
    let mut results = Vec::new();
    let uds = [
        (
            plain,
            "cache hit, reference for the access rows",
            plain_work.clone(),
        ),
        (
            &guarded,
            "cache hit, uid rule + audit file (vs reference)",
            plain_work.clone(),
        ),
    ];
    let tcp = [
        (
            plain,
            "cache hit, reference for the access rows",
            plain_work.clone(),
        ),
        (
            &guarded,
            "cache hit, bearer token + audit file (vs reference)",
            Arc::new(Work::ResolveWithToken {
                name: "bench".to_owned(),
                token: TOKEN.to_owned(),
            }),
        ),
    ];
    for concurrency in [1, 16] {
        results.extend(interleaved(&uds, Transport::Uds, concurrency, args).await);
    }
    results.extend(interleaved(&tcp, Transport::Tcp, 16, args).await);
    let lines = std::fs::read_to_string(dir.join("audit.jsonl"))
        .map(|text| text.lines().count())
        .unwrap_or(0);
    eprintln!("access rows: the guarded daemon wrote {lines} audit lines");
    results
}
