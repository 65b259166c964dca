//! The performance regression guard (#11): heap allocations per composed
//! request, through the real stack, compared with a committed baseline.
//!
//! Wall-clock thresholds on a shared 2-core machine are noise; how many
//! times a request asks the allocator for memory is not (within a few
//! percent), and it moves with most of what costs CPU here (cloned state,
//! header maps, JSON handled twice, strings per call). So:
//!
//! * the mocks run on a thread of their own, the load client on another;
//! * mobile-bff runs alone on this thread, in a current-thread runtime, and
//!   only this thread's allocations are counted (`allocation-counter`), so
//!   neither the client nor the mocks are in the figure;
//! * logs are on as deployed (JSON at `info`), written to a sink;
//! * after a warm-up (tokens exchanged, parts cached, connections open),
//!   `REQUESTS` sequential requests per screen are counted, and the
//!   allocations per request must stay within `TOLERANCE` of
//!   `tests/allocations-baseline.json`.
//!
//! `ALLOCATIONS_BASELINE=update cargo test -p mobile-bff --test allocations`
//! rewrites the baseline (commit it with the change that moved it, and say
//! why). A figure far *below* the baseline is reported too: lock the gain in.
//!
//! Its own test binary (not a module of `it`): the counting allocator is
//! the process's global allocator, and this guard needs its threads to
//! itself.

use std::collections::BTreeMap;
use std::time::Duration;

use services_mock::Fleet;

/// Requests counted per screen.
const REQUESTS: u64 = 400;
/// How far above the baseline a screen may go before the guard fails: the
/// count repeats to 0.1 per request run after run, so 2% (~15 allocations
/// of a home request) is a change, not noise.
const TOLERANCE: f64 = 0.02;
/// The screens guarded.
const SCREENS: [&str; 2] = ["/v1/home", "/v1/product-page/p-1"];

fn main() {
    // Logs as deployed (JSON lines at `info`: the access log of every
    // request), written nowhere: their cost is part of a request's.
    bff_telemetry::init_to_writer(bff_telemetry::LogFormat::Json, "info", std::io::sink);
    let baseline_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/allocations-baseline.json");
    let measured = measure_screens();
    let update = std::env::var("ALLOCATIONS_BASELINE").is_ok_and(|v| v == "update");
    if update {
        let text = serde_json::to_string_pretty(&measured).expect("json") + "\n";
        std::fs::write(baseline_path, text).expect("writing the baseline");
        println!("allocations: baseline updated: {measured:?}");
        return;
    }
    let baseline: BTreeMap<String, f64> =
        serde_json::from_str(&std::fs::read_to_string(baseline_path).expect("the committed baseline"))
            .expect("a baseline of screen -> allocations per request");
    let mut failed = Vec::new();
    for (screen, per_request) in &measured {
        let Some(&expected) = baseline.get(screen) else {
            failed.push(format!("{screen}: no baseline (ALLOCATIONS_BASELINE=update)"));
            continue;
        };
        let change = per_request / expected - 1.0;
        println!(
            "allocations: {screen}: {per_request:.1} per request (baseline {expected:.1}, {:+.1}%)",
            change * 100.0
        );
        if change > TOLERANCE {
            failed.push(format!(
                "{screen}: {per_request:.1} allocations per request, {:+.1}% over the baseline {expected:.1} \
                 (tolerance {:.0}%)",
                change * 100.0,
                TOLERANCE * 100.0
            ));
        } else if change < -TOLERANCE {
            println!(
                "allocations: {screen} is well under its baseline: lock the gain in (ALLOCATIONS_BASELINE=update)"
            );
        }
    }
    assert!(failed.is_empty(), "allocation regression:\n  {}", failed.join("\n  "));
    println!("allocations: ok");
}

/// Allocations per request on the BFF's thread, by screen.
fn measure_screens() -> BTreeMap<String, f64> {
    // The mocks: a runtime on a thread of their own, alive until the end.
    let (fleet_tx, fleet_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mocks = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        runtime.block_on(async move {
            let fleet = Fleet::for_bff(mobile_bff::ENTRY).await.expect("mocks");
            let mut config = mobile_bff::bff().defaults();
            bff_testkit::wire(&fleet, &mut config);
            let token = fleet
                .identity()
                .user_token(mobile_bff::ENTRY, "u-1", Duration::from_secs(600))
                .expect("token");
            fleet_tx.send((config, token)).expect("the main thread waits");
            let _ = stop_rx.await;
            drop(fleet);
        });
    });
    let (config, token) = fleet_rx.recv().expect("the mocks started");

    // The BFF: this thread, a current-thread runtime.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(async move {
        mobile_bff::bff()
            .run(config, listener, async {
                let _ = shutdown_rx.await;
            })
            .await
    });

    let mut measured = BTreeMap::new();
    for screen in SCREENS {
        // The client: a thread of its own; it sends `count` requests when
        // told to and says when they are answered.
        let client = |count: u64| {
            let (url, token) = (format!("{base}{screen}"), token.clone());
            let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
                runtime.block_on(async move {
                    let http = reqwest::Client::new();
                    let _ = go_rx.await;
                    for _ in 0..count {
                        let reply = http.get(&url).bearer_auth(&token).send().await.expect("an answer");
                        assert_eq!(reply.status(), 200, "{url}");
                        reply.bytes().await.expect("a body");
                    }
                    let _ = done_tx.send(());
                });
            });
            (go_tx, done_rx, thread)
        };
        // Warm-up, not counted.
        let (go, done, thread) = client(50);
        let _ = go.send(());
        runtime.block_on(done).expect("the warm-up ends");
        thread.join().expect("the warm-up client");
        // Counted: only what this thread (the BFF) allocates meanwhile.
        let (go, done, thread) = client(REQUESTS);
        let info = allocation_counter::measure(|| {
            let _ = go.send(());
            runtime.block_on(done).expect("the run ends");
        });
        thread.join().expect("the client");
        measured.insert(screen.to_owned(), (info.count_total as f64 / REQUESTS as f64 * 10.0).round() / 10.0);
    }
    let _ = shutdown_tx.send(());
    let _ = runtime.block_on(server);
    let _ = stop_tx.send(());
    mocks.join().expect("the mocks' thread");
    measured
}
