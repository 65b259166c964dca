//! `cargo bench -p bff-cache`: what the cache costs and what it saves.
//!
//! 1. Hit path: resolving one cached part through a `Plan` when the entry is
//!    fresh in memory (no call, no Redis). Reports p50/p99/mean per part.
//! 2. Redis hit path (only with `REDIS_URL` set): a second instance whose
//!    memory is cold reads the entry from Redis.
//! 3. Coalescing: waves of concurrent requests for one cold key against a
//!    dependency that takes 5 ms; reports downstream calls per request.
//!
//! Numbers and how they were taken: PERFORMANCE.md at the repository root.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bff_cache::{Cache, CacheConfig, CacheKey, StaleFromCache};
use bff_compose::{ComposeConfig, Plan};
use bff_downstream::model::{Money, Recommendation, Recommendations};
use bff_error::Failure;
use bff_redis::{RedisConfig, SharedRedis};
use bff_telemetry::RequestContext;

fn value() -> Recommendations {
    Recommendations {
        items: (1..=6)
            .map(|n| Recommendation {
                product_id: format!("p-{n}"),
                name: format!("Product {n}"),
                image_url: format!("https://img.example.com/p-{n}/1.jpg"),
                price: Money { amount_minor: 1_999, currency: "EUR".to_owned() },
            })
            .collect(),
    }
}

async fn resolve(cache: &Cache, config: &Arc<ComposeConfig>, key: &str, calls: &Arc<AtomicU64>) {
    let plan = Plan::new(RequestContext::detached(), Arc::clone(config));
    let calls = Arc::clone(calls);
    let part = plan
        .optional("recommendations", move |_cx| async move {
            calls.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, Failure>(value())
        })
        .stale_from_cache(cache, CacheKey::segment("bench", key));
    let _ = plan.run((part,)).await;
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    (at(0.5), at(0.99), mean)
}

fn cache(redis: &RedisConfig) -> Cache {
    Cache::new(CacheConfig::default(), SharedRedis::new(redis)).expect("cache")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let compose = Arc::new(ComposeConfig { request_deadline_ms: 10_000, ..ComposeConfig::default() });
    let calls = Arc::new(AtomicU64::new(0));
    let no_redis = RedisConfig { url: None, ..RedisConfig::default() };

    // 1. Memory hit path.
    let memory = cache(&no_redis);
    resolve(&memory, &compose, "hot", &calls).await;
    let iterations = 100_000;
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        resolve(&memory, &compose, "hot", &calls).await;
        samples.push(started.elapsed());
    }
    let (p50, p99, mean) = percentiles(samples);
    println!(
        "memory hit, one part through a Plan ({iterations} runs): p50 {p50:?}, p99 {p99:?}, mean {mean:?}"
    );

    // 2. Redis hit path, when a Redis is given.
    if let Ok(url) = std::env::var("REDIS_URL") {
        let with_redis = RedisConfig { url: Some(url), timeout_ms: 1_000, ..RedisConfig::default() };
        let writer = cache(&with_redis);
        let runs = 2_000;
        let mut samples = Vec::with_capacity(runs);
        for n in 0..runs {
            let key = format!("redis-{n}");
            resolve(&writer, &compose, &key, &calls).await;
            resolve(&writer, &compose, &format!("warm-{n}"), &calls).await;
            // Cold memory, so the hit comes from Redis; its connection is
            // opened first (on another key), so only the read is timed.
            let reader = cache(&with_redis);
            resolve(&reader, &compose, &format!("warm-{n}"), &calls).await;
            let started = Instant::now();
            resolve(&reader, &compose, &key, &calls).await;
            samples.push(started.elapsed());
        }
        let (p50, p99, mean) = percentiles(samples);
        println!("redis hit, cold memory ({runs} runs): p50 {p50:?}, p99 {p99:?}, mean {mean:?}");
    } else {
        println!("redis hit: skipped (set REDIS_URL to measure it)");
    }

    // 3. Coalescing under concurrent load.
    let coalescing = cache(&no_redis);
    let (waves, per_wave) = (20, 1_000);
    calls.store(0, Ordering::Relaxed);
    let started = Instant::now();
    for wave in 0..waves {
        let key = format!("cold-{wave}");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..per_wave {
            let (cache, compose, calls, key) =
                (coalescing.clone(), Arc::clone(&compose), Arc::clone(&calls), key.clone());
            tasks.spawn(async move { resolve(&cache, &compose, &key, &calls).await });
        }
        while tasks.join_next().await.is_some() {}
    }
    let requests = waves * per_wave;
    let downstream = calls.load(Ordering::Relaxed);
    println!(
        "coalescing: {requests} requests in {waves} waves of {per_wave} concurrent cold reads -> {downstream} downstream calls ({:.4} per request) in {:?}",
        downstream as f64 / requests as f64,
        started.elapsed()
    );
}
