//! The cache through the composition engine, with a real Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bff_cache::{Cache, CacheConfig, CacheKey, CachePolicy, StaleFromCache};
use bff_compose::{ComponentStatus, ComposeConfig, Plan, Source};
use bff_downstream::model::{Recommendation, Recommendations};
use bff_error::{Failure, ReasonCode};
use bff_redis::redis::AsyncCommands as _;
use bff_redis::{RedisConfig, SharedRedis};
use bff_telemetry::RequestContext;
use bff_testkit::RedisServer;

fn recommendations(name: &str) -> Recommendations {
    Recommendations {
        items: vec![Recommendation {
            product_id: "p-1".to_owned(),
            name: name.to_owned(),
            image_url: "https://img.example.com/p-1/1.jpg".to_owned(),
            price: bff_downstream::model::Money { amount_minor: 100, currency: "EUR".to_owned() },
        }],
    }
}

fn cache(redis: Option<&RedisServer>, policy: CachePolicy) -> Cache {
    let config = RedisConfig { url: redis.map(RedisServer::url), ..RedisConfig::default() };
    let mut cache_config = CacheConfig::default();
    cache_config.policies.insert("recommendations".to_owned(), policy.into());
    Cache::new(cache_config, SharedRedis::new(&config)).expect("valid cache config")
}

fn plan() -> Plan {
    Plan::new(
        RequestContext::detached(),
        Arc::new(ComposeConfig { request_deadline_ms: 5_000, ..ComposeConfig::default() }),
    )
}

/// Resolves one cached "recommendations" part; the dependency answers
/// `answer` after `delay` and counts its calls.
async fn resolve(
    cache: &Cache,
    key: CacheKey,
    calls: &Arc<AtomicU32>,
    answer: Result<&str, ReasonCode>,
) -> (Recommendations, ComponentStatus) {
    let plan = plan();
    let calls = Arc::clone(calls);
    let answer = answer.map(str::to_owned);
    let (value,) = plan
        .run((plan
            .optional("recommendations", move |_cx| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                answer.map(|name| recommendations(&name)).map_err(Failure::new)
            })
            .stale_from_cache(cache, key),))
        .await
        .expect("optional parts never fail the plan");
    let status = plan.envelope(()).status("recommendations").expect("reported");
    (value, status)
}

fn name(value: &Recommendations) -> &str {
    value.items.first().map(|i| i.name.as_str()).unwrap_or("<empty>")
}

#[tokio::test]
async fn a_thousand_concurrent_misses_make_one_call() {
    let redis = RedisServer::start();
    let cache = cache(Some(&redis), CachePolicy::default());
    let calls = Arc::new(AtomicU32::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1_000 {
        let (cache, calls) = (cache.clone(), Arc::clone(&calls));
        tasks.spawn(async move {
            resolve(&cache, CacheKey::segment("frequent", "home"), &calls, Ok("first")).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        let (value, status) = result.expect("task");
        assert_eq!(name(&value), "first");
        assert_eq!(status, ComponentStatus::Ok);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one downstream call for 1,000 concurrent misses");
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let policy = CachePolicy { ttl_secs: 1, swr_secs: 60, keep_secs: 120, jitter: 0.0 };
    let cache = cache(None, policy);
    let calls = Arc::new(AtomicU32::new(0));
    let key = || CacheKey::global("home");
    resolve(&cache, key(), &calls, Ok("old")).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let mut stale_reads = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (cache, calls) = (cache.clone(), Arc::clone(&calls));
        stale_reads.spawn(async move { resolve(&cache, key(), &calls, Ok("new")).await });
    }
    while let Some(result) = stale_reads.join_next().await {
        let (value, status) = result.expect("task");
        assert_eq!(name(&value), "old", "stale is served at once, not after the refresh");
        assert_eq!(status, ComponentStatus::Ok);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "ten stale reads, one background refresh");
    let (value, _) = resolve(&cache, key(), &calls, Ok("newer")).await;
    assert_eq!(name(&value), "new", "the refreshed value is served fresh");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn stale_if_error_serves_the_last_good_value_with_its_age() {
    let policy = CachePolicy { ttl_secs: 1, swr_secs: 0, keep_secs: 120, jitter: 0.0 };
    let cache = cache(None, policy);
    let calls = Arc::new(AtomicU32::new(0));
    resolve(&cache, CacheKey::global("home"), &calls, Ok("good")).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (value, status) = resolve(&cache, CacheKey::global("home"), &calls, Err(ReasonCode::Timeout)).await;
    assert_eq!(name(&value), "good");
    match status {
        ComponentStatus::Fallback {
            source: Source::Cache,
            reason: ReasonCode::Timeout,
            age_ms: Some(age),
        } => {
            assert!(age >= 1_000, "age {age}");
        }
        other => panic!("expected a fallback from cache, got {other:?}"),
    }
    // With nothing cached, a failure falls back to the default, not to an error.
    let (empty, status) =
        resolve(&cache, CacheKey::global("other"), &calls, Err(ReasonCode::Unavailable)).await;
    assert!(empty.items.is_empty());
    assert!(matches!(status, ComponentStatus::Fallback { source: Source::Default, .. }));
}

#[tokio::test]
async fn per_user_entries_are_encrypted_in_redis_and_never_shared() {
    let redis = RedisServer::start();
    let cache = cache(Some(&redis), CachePolicy::default());
    let calls = Arc::new(AtomicU32::new(0));
    let ada = || CacheKey::user("shop", "u-1", "en-GB", "b", "home");
    let grace = || CacheKey::user("shop", "u-2", "en-US", "b", "home");
    resolve(&cache, ada(), &calls, Ok("only-for-ada")).await;
    let (value, _) = resolve(&cache, grace(), &calls, Ok("only-for-grace")).await;
    assert_eq!(name(&value), "only-for-grace", "another user's entry is never served");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let client = bff_redis::redis::Client::open(redis.url()).expect("client");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
    let keys: Vec<String> = connection.keys("bff:cache:*").await.expect("keys");
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in &keys {
        assert!(!key.contains("u-1") && !key.contains("u-2"), "no user id in key names: {key}");
        let raw: Vec<u8> = connection.get(key).await.expect("value");
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("only-for"), "values are not readable without the key");
    }

    // A second instance with the same key reads them; one with another key cannot.
    let same_key = cache_with_key(&redis, bff_cache::DEV_ENCRYPTION_KEY);
    let (value, _) = resolve(&same_key, ada(), &calls, Ok("refetched")).await;
    assert_eq!(name(&value), "only-for-ada");
    let other_key = cache_with_key(&redis, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    let (value, _) = resolve(&other_key, ada(), &calls, Ok("refetched")).await;
    assert_eq!(name(&value), "refetched", "without the key the entry is useless");
}

fn cache_with_key(redis: &RedisServer, key: &str) -> Cache {
    let config = CacheConfig { encryption_key: key.to_owned(), ..CacheConfig::default() };
    Cache::new(config, SharedRedis::new(&RedisConfig { url: Some(redis.url()), ..RedisConfig::default() }))
        .expect("cache")
}

#[tokio::test]
async fn a_dead_or_frozen_redis_leaves_the_memory_tier_working() {
    let mut redis = RedisServer::start();
    let cache = cache(Some(&redis), CachePolicy::default());
    let calls = Arc::new(AtomicU32::new(0));
    redis.pause();
    let started = std::time::Instant::now();
    let (value, status) = resolve(&cache, CacheKey::global("a"), &calls, Ok("v")).await;
    assert_eq!((name(&value), status), ("v", ComponentStatus::Ok));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a frozen Redis held the call: {:?}",
        started.elapsed()
    );
    redis.kill();
    let (value, _) = resolve(&cache, CacheKey::global("a"), &calls, Ok("w")).await;
    assert_eq!(name(&value), "v", "served from memory");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_shared_entry_forged_or_edited_in_redis_is_a_counted_miss_never_served() {
    let redis = RedisServer::start();
    let calls = Arc::new(AtomicU32::new(0));
    let global = || CacheKey::global("home");
    let writer = cache(Some(&redis), CachePolicy::default());
    resolve(&writer, global(), &calls, Ok("genuine")).await;

    // Anyone who can write to Redis: a readable forgery, then the genuine
    // entry with one byte flipped.
    let client = bff_redis::redis::Client::open(redis.url()).expect("client");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
    let keys: Vec<String> = connection.keys("bff:cache:*").await.expect("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let genuine: Vec<u8> = connection.get(&keys[0]).await.expect("value");
    assert!(!String::from_utf8_lossy(&genuine).contains("genuine"), "shared entries are sealed too");
    // A well-formed entry, fresh for ages, as the cache wrote shared entries
    // before they were sealed: served to everyone then.
    let forever = 99_999_999_999_999_u64;
    let forged = serde_json::to_vec(&serde_json::json!({
        "json": serde_json::to_string(&recommendations("poisoned")).expect("json"),
        "stored_at_ms": 0,
        "fresh_until_ms": forever,
        "stale_until_ms": forever,
        "keep_until_ms": forever,
    }))
    .expect("json");
    let mut flipped = genuine.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    for (n, tampered) in [forged, flipped].into_iter().enumerate() {
        let () = connection.set(&keys[0], tampered).await.expect("tamper");
        // A fresh instance: its memory tier is empty, so it reads Redis.
        let reader = cache(Some(&redis), CachePolicy::default());
        let (value, _) = resolve(&reader, global(), &calls, Ok("refetched")).await;
        assert_eq!(name(&value), "refetched", "tampered entry {n} was served");
        assert_eq!(reader.rejected_entries(), 1, "tampered entry {n} was not counted");
    }
}

#[tokio::test]
async fn rotated_keys_still_open_entries_and_the_new_key_seals() {
    let redis = RedisServer::start();
    let calls = Arc::new(AtomicU32::new(0));
    let global = || CacheKey::global("home");
    const NEW: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let old = cache_with_key(&redis, bff_cache::DEV_ENCRYPTION_KEY);
    resolve(&old, global(), &calls, Ok("sealed-with-the-old-key")).await;
    let rotating = Cache::new(
        CacheConfig {
            encryption_key: NEW.to_owned(),
            previous_encryption_keys: vec![bff_cache::DEV_ENCRYPTION_KEY.to_owned()],
            ..CacheConfig::default()
        },
        SharedRedis::new(&RedisConfig { url: Some(redis.url()), ..RedisConfig::default() }),
    )
    .expect("cache");
    let (value, _) = resolve(&rotating, global(), &calls, Ok("refetched")).await;
    assert_eq!(name(&value), "sealed-with-the-old-key", "a previous key still opens");
    assert_eq!(rotating.rejected_entries(), 0);
    // What the rotating instance writes, only the new key opens.
    let user = || CacheKey::user("shop", "u-1", "en-GB", "b", "home");
    resolve(&rotating, user(), &calls, Ok("sealed-with-the-new-key")).await;
    let (value, _) = resolve(&cache_with_key(&redis, NEW), user(), &calls, Ok("refetched")).await;
    assert_eq!(name(&value), "sealed-with-the-new-key");
    let stale_reader = cache_with_key(&redis, bff_cache::DEV_ENCRYPTION_KEY);
    let (value, _) = resolve(&stale_reader, user(), &calls, Ok("refetched")).await;
    assert_eq!(name(&value), "refetched");
    assert_eq!(stale_reader.rejected_entries(), 1);
}

/// Redis over TLS (`rediss://`): with the authority that signed Redis's
/// certificate (`redis.ca_file`) commands go through; with another
/// authority, the system's roots, or plain `redis://` to the TLS port,
/// none does, and the BFF falls back rather than fails.
#[tokio::test]
async fn redis_over_tls_is_used_only_with_a_trusted_certificate() {
    use bff_testkit::TestCertificates;
    let certificates = TestCertificates::generate();
    let redis = RedisServer::start_tls(&certificates);
    assert!(redis.url().starts_with("rediss://localhost:"), "{}", redis.url());
    let config = |url: String, ca: Option<&TestCertificates>| RedisConfig {
        url: Some(url),
        ca_file: ca.map(|c| c.ca.display().to_string()),
        // The first command also connects (TCP, then the TLS handshake).
        timeout_ms: 2_000,
        connect_timeout_ms: 2_000,
        ..RedisConfig::default()
    };
    let get = |redis: SharedRedis| async move {
        redis.run(|mut c| async move { c.get::<_, Option<String>>("bff:tls").await }).await
    };

    let trusted = SharedRedis::new(&config(redis.url(), Some(&certificates)));
    assert!(config(redis.url(), Some(&certificates)).problems().is_empty());
    let set = trusted.run(|mut c| async move { c.set::<_, _, ()>("bff:tls", "over tls").await }).await;
    assert_eq!(set, Some(()), "a command over TLS");
    assert_eq!(get(trusted).await, Some(Some("over tls".to_owned())));

    let other = TestCertificates::generate();
    assert_eq!(get(SharedRedis::new(&config(redis.url(), Some(&other)))).await, None, "another authority");
    assert_eq!(get(SharedRedis::new(&config(redis.url(), None))).await, None, "the system's roots");
    let plain = redis.url().replace("rediss://", "redis://");
    assert_eq!(get(SharedRedis::new(&config(plain, None))).await, None, "plain text to the TLS port");
}
