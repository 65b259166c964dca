//! Caching of composed parts: in memory (moka) in front of Redis.
//!
//! A part declared `.stale_from_cache(&cache, key)` ([`StaleFromCache`]),
//! optional or critical, is served like this, by the age of its entry:
//!
//! | entry | what happens | status |
//! |---|---|---|
//! | fresh (younger than its TTL ± jitter) | served, no call | `ok` |
//! | stale, within the SWR grace | served at once; **one** background refresh per key | `ok` |
//! | older, within the keep window | the dependency is called; if it fails, the old value is served | `ok`, or `fallback` + `source: cache` + `ageMs` |
//! | none | concurrent misses share **one** call (moka `try_get_with`) | `ok`; on failure `fallback` + `source: default` (optional) or the request fails (critical) |
//!
//! **Safety by construction.** Only types that implement [`Cacheable`] can
//! be cached: catalog products, promotions, recommendations, review
//! summaries. The trait is implemented beside the models
//! (`bff_downstream::model`), where a `compile_fail` doctest shows that a
//! cart cannot be cached.
//!
//! The scope is part of the key type ([`CacheKey`]): global, per segment, or
//! per user. Per-user keys are a hash of tenant, user, locale and
//! experiment bucket (no personal data in key names). Every value is
//! sealed in Redis with AES-256-GCM under the configured key, the Redis key
//! bound in as associated data: a per-user entry never opens under another
//! user's key, and a shared (global or segment) entry that anyone who can
//! write to Redis forged, edited or moved is a miss, counted
//! ([`Cache::rejected_entries`]), never served to everyone. Keys rotate:
//! `previous_encryption_keys` still open, the first key seals. Keys and
//! values are never logged.
//!
//! Redis is optional and never a point of failure (`bff-redis`): when it is
//! down or slow, the cache is in-memory only.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bff_compose::{ComponentStatus, Critical, CriticalFailure, Optional, Part, PartHandle, Source};
use bff_error::{Classify, Failure};
use bff_redis::SharedRedis;
use bff_redis::redis::AsyncCommands as _;
use moka::Expiry;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::Instrument as _;

pub use bff_downstream::Cacheable;

/// The caller's marketing segment: what segment-scoped entries
/// ([`CacheKey::segment`]) are shared by. Read from the identity provider's
/// `segment` claim (so a screen can use segment-level content without first
/// fetching the profile); `all` when the token has none. An extractor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment(pub String);

impl Segment {
    /// The claim it is read from.
    pub const CLAIM: &'static str = "segment";

    /// The segment of `caller`.
    pub fn of(caller: &bff_auth::Caller) -> Segment {
        Segment(caller.claim(Self::CLAIM).unwrap_or("all").to_owned())
    }

    /// The segment's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Segment {
    type Rejection = bff_error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let caller = bff_auth::Caller::from_request_parts(parts, state).await?;
        Ok(Segment::of(&caller))
    }
}

/// Who an entry may be shared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everyone.
    Global,
    /// Everyone in a marketing segment.
    Segment(String),
    /// One user, in one locale and experiment bucket. Encrypted in Redis.
    User {
        /// Tenant of the user.
        tenant: String,
        /// The user.
        user: String,
        /// Their locale.
        locale: String,
        /// Their experiment bucket.
        bucket: String,
    },
}

/// What an entry is for: a scope and what distinguishes it within the
/// scope (e.g. `home` or a product id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    scope: Scope,
    discriminator: String,
}

impl CacheKey {
    /// An entry shared by everyone.
    pub fn global(discriminator: impl Into<String>) -> Self {
        CacheKey { scope: Scope::Global, discriminator: discriminator.into() }
    }

    /// An entry shared within a segment.
    pub fn segment(segment: impl Into<String>, discriminator: impl Into<String>) -> Self {
        CacheKey { scope: Scope::Segment(segment.into()), discriminator: discriminator.into() }
    }

    /// An entry of one user.
    pub fn user(
        tenant: &str,
        user: &str,
        locale: &str,
        bucket: &str,
        discriminator: impl Into<String>,
    ) -> Self {
        CacheKey {
            scope: Scope::User {
                tenant: tenant.to_owned(),
                user: user.to_owned(),
                locale: locale.to_owned(),
                bucket: bucket.to_owned(),
            },
            discriminator: discriminator.into(),
        }
    }

    /// The Redis key. Per-user keys are hashed: no personal data in key names.
    fn storage_key(&self, kind: &str) -> String {
        match &self.scope {
            Scope::Global => format!("bff:cache:{kind}:g:{}", self.discriminator),
            Scope::Segment(segment) => format!("bff:cache:{kind}:s:{segment}:{}", self.discriminator),
            Scope::User { tenant, user, locale, bucket } => {
                let digest = Sha256::digest(
                    [tenant.as_str(), user, locale, bucket, &self.discriminator].join("\u{0}").as_bytes(),
                );
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("bff:cache:{kind}:u:{hex}")
            }
        }
    }
}

/// How long entries of one component live.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachePolicy {
    /// Fresh for this long (± `jitter`), in seconds.
    pub ttl_secs: u64,
    /// Then served stale while one refresh runs, for this long, in seconds.
    pub swr_secs: u64,
    /// Kept this long in all, as the last good value for stale-if-error.
    pub keep_secs: u64,
    /// Share of the TTL randomly added or removed, so keys written together
    /// do not expire together.
    pub jitter: f64,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy { ttl_secs: 30, swr_secs: 30, keep_secs: 600, jitter: 0.1 }
    }
}

/// The lifetimes of one component, field by field; unset fields are the
/// `default_policy`'s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyOverride {
    /// See [`CachePolicy::ttl_secs`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// See [`CachePolicy::swr_secs`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swr_secs: Option<u64>,
    /// See [`CachePolicy::keep_secs`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_secs: Option<u64>,
    /// See [`CachePolicy::jitter`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
}

impl PolicyOverride {
    /// This override laid over `base`.
    pub fn over(&self, base: CachePolicy) -> CachePolicy {
        CachePolicy {
            ttl_secs: self.ttl_secs.unwrap_or(base.ttl_secs),
            swr_secs: self.swr_secs.unwrap_or(base.swr_secs),
            keep_secs: self.keep_secs.unwrap_or(base.keep_secs),
            jitter: self.jitter.unwrap_or(base.jitter),
        }
    }
}

impl From<CachePolicy> for PolicyOverride {
    /// Every field set.
    fn from(policy: CachePolicy) -> Self {
        PolicyOverride {
            ttl_secs: Some(policy.ttl_secs),
            swr_secs: Some(policy.swr_secs),
            keep_secs: Some(policy.keep_secs),
            jitter: Some(policy.jitter),
        }
    }
}

/// Cache settings of one BFF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// AES-256-GCM key that seals every entry in Redis: base64 of 32 bytes.
    /// The default is a public development key.
    pub encryption_key: String,
    /// Keys that still open entries but no longer seal new ones: the keys
    /// being rotated out (base64 of 32 bytes each).
    pub previous_encryption_keys: Vec<String>,
    /// Entries kept in memory.
    pub memory_capacity: u64,
    /// Lifetimes by component name; others get `default_policy`, and a
    /// field left out here is taken from `default_policy` too (so
    /// `POLICIES__RECOMMENDATIONS__TTL_SECS=30` alone is a whole policy).
    pub policies: BTreeMap<String, PolicyOverride>,
    /// Lifetimes of components not listed.
    pub default_policy: CachePolicy,
}

/// The development key. Deployments set their own.
pub const DEV_ENCRYPTION_KEY: &str = "q0m1kPZ6S3xv4ZJ0m9o0Hq0Jc1b9xQ2C7dXqz3K8n5w=";

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            encryption_key: DEV_ENCRYPTION_KEY.to_owned(),
            previous_encryption_keys: Vec::new(),
            memory_capacity: 10_000,
            policies: BTreeMap::new(),
            default_policy: CachePolicy::default(),
        }
    }
}

impl CacheConfig {
    /// The lifetimes of `component`'s entries.
    pub fn policy(&self, component: &str) -> CachePolicy {
        match self.policies.get(component) {
            Some(policy) => policy.over(self.default_policy),
            None => self.default_policy,
        }
    }

    /// Problems that make this configuration unusable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if cipher(&self.encryption_key).is_none() {
            problems.push("encryption_key must be base64 of exactly 32 bytes".to_owned());
        }
        for (n, key) in self.previous_encryption_keys.iter().enumerate() {
            if cipher(key).is_none() {
                problems.push(format!("previous_encryption_keys[{n}] must be base64 of exactly 32 bytes"));
            }
        }
        let policies = std::iter::once(("default_policy".to_owned(), self.default_policy))
            .chain(self.policies.keys().map(|name| (format!("policies.{name}"), self.policy(name))));
        for (name, policy) in policies {
            if policy.ttl_secs == 0 || policy.keep_secs < policy.ttl_secs + policy.swr_secs {
                problems.push(format!("{name}: ttl_secs > 0 and keep_secs >= ttl_secs + swr_secs"));
            }
            if !(0.0..0.5).contains(&policy.jitter) {
                problems.push(format!("{name}: jitter must be in [0, 0.5)"));
            }
        }
        problems
    }
}

fn cipher(key: &str) -> Option<Aes256Gcm> {
    let bytes = STANDARD.decode(key.trim()).ok()?;
    Aes256Gcm::new_from_slice(&bytes).ok()
}

/// Why the cache could not be built: its settings, each as `key: problem`.
#[derive(Debug, thiserror::Error)]
#[error("cache configuration: {}", .0.join("; "))]
pub struct CacheError(Vec<String>);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One entry, as stored (in memory, and sealed in Redis).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    json: String,
    stored_at_ms: u64,
    fresh_until_ms: u64,
    stale_until_ms: u64,
    keep_until_ms: u64,
}

/// Memory entries live until their keep time.
struct UntilKept;

impl Expiry<String, Arc<Stored>> for UntilKept {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Stored>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_millis(value.keep_until_ms.saturating_sub(now_ms())))
    }
}

struct Inner {
    memory: moka::future::Cache<String, Arc<Stored>>,
    redis: SharedRedis,
    /// The sealing key first, then the keys that only open.
    ciphers: Vec<Aes256Gcm>,
    /// Entries from Redis that no key opened.
    rejected: AtomicU64,
    config: CacheConfig,
    refreshing: Mutex<HashSet<String>>,
}

/// The two-tier cache. Cheap to clone; build one per BFF.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.inner.memory.entry_count())
            .field("redis", &self.inner.redis)
            .finish()
    }
}

impl Cache {
    /// A cache with `config`, sharing entries through `redis`.
    pub fn new(config: CacheConfig, redis: SharedRedis) -> Result<Self, CacheError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(CacheError(problems));
        }
        let ciphers: Vec<Aes256Gcm> = std::iter::once(&config.encryption_key)
            .chain(&config.previous_encryption_keys)
            .filter_map(|key| cipher(key))
            .collect();
        let memory = moka::future::Cache::builder()
            .max_capacity(config.memory_capacity)
            .expire_after(UntilKept)
            .build();
        Ok(Cache {
            inner: Arc::new(Inner {
                memory,
                redis,
                ciphers,
                rejected: AtomicU64::new(0),
                config,
                refreshing: Mutex::default(),
            }),
        })
    }

    /// Entries read from Redis that no key opened (forged, edited, moved to
    /// another key, or sealed with a key no longer configured): each was a
    /// miss.
    pub fn rejected_entries(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    fn policy(&self, component: &str) -> CachePolicy {
        self.inner.config.policy(component)
    }

    /// Stores `value`, computed ahead of requests (a background job), under
    /// `key` with the lifetimes of `component`: in memory and, when
    /// configured, in Redis, where other instances find it.
    pub async fn put<T: Cacheable>(&self, component: &str, key: &CacheKey, value: &T) {
        let policy = self.policy(component);
        self.store(&key.storage_key(T::KIND), value, policy).await;
    }

    /// The value kept under `key`, with its age; `stale` once it is past
    /// its TTL (the job that refreshes it has not, or failed). `None` when
    /// nothing is kept (a cold start, or past the keep window).
    pub async fn peek<T: Cacheable>(&self, key: &CacheKey) -> Option<bff_compose::Precomputed<T>> {
        let stored = self.lookup(&key.storage_key(T::KIND)).await?;
        let value = decode::<T>(&stored)?;
        let now = now_ms();
        Some(bff_compose::Precomputed {
            value,
            age: Duration::from_millis(now.saturating_sub(stored.stored_at_ms)),
            stale: now >= stored.fresh_until_ms,
        })
    }

    /// The entry for `key`: from memory, else from Redis (then remembered).
    async fn lookup(&self, key: &str) -> Option<Arc<Stored>> {
        if let Some(stored) = self.inner.memory.get(key).await {
            return Some(stored);
        }
        let raw: Option<Vec<u8>> =
            self.inner.redis.run(|mut redis| async move { redis.get(key).await }).await.flatten();
        let stored = self.decode_stored(key, &raw?)?;
        if stored.keep_until_ms <= now_ms() {
            return None;
        }
        let stored = Arc::new(stored);
        self.inner.memory.insert(key.to_owned(), Arc::clone(&stored)).await;
        Some(stored)
    }

    /// Opens an entry read from Redis, with any configured key; `None`
    /// (and counted) when none opens it or it is not an entry.
    fn decode_stored(&self, key: &str, raw: &[u8]) -> Option<Stored> {
        let opened = (raw.len() >= 12).then(|| raw.split_at(12)).and_then(|(nonce, sealed)| {
            self.inner.ciphers.iter().find_map(|cipher| {
                cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: key.as_bytes() }).ok()
            })
        });
        let stored = opened.and_then(|plain| serde_json::from_slice(&plain).ok());
        if stored.is_none() {
            self.inner.rejected.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(bff_telemetry::metrics::CACHE_REJECTED).increment(1);
            tracing::warn!("a cache entry in Redis failed authentication; treated as a miss");
        }
        stored
    }

    /// Stores `value` for `key` in memory and Redis; returns the entry.
    async fn store<T: Serialize>(&self, key: &str, value: &T, policy: CachePolicy) -> Arc<Stored> {
        let now = now_ms();
        let ttl_ms = (policy.ttl_secs * 1000) as f64;
        let jittered = ttl_ms * (1.0 + policy.jitter * (fastrand::f64() * 2.0 - 1.0));
        let fresh_until_ms = now + jittered.max(1.0) as u64;
        let stored = Arc::new(Stored {
            json: serde_json::to_string(value).unwrap_or_default(),
            stored_at_ms: now,
            fresh_until_ms,
            stale_until_ms: fresh_until_ms + policy.swr_secs * 1000,
            keep_until_ms: now + policy.keep_secs * 1000,
        });
        self.inner.memory.insert(key.to_owned(), Arc::clone(&stored)).await;
        if let Some(bytes) = self.encode_stored(key, &stored) {
            let ttl = policy.keep_secs.max(1);
            let _: Option<()> =
                self.inner.redis.run(|mut redis| async move { redis.set_ex(key, bytes, ttl).await }).await;
        }
        stored
    }

    /// Seals an entry for Redis with the first key, the Redis key as
    /// associated data.
    fn encode_stored(&self, key: &str, stored: &Stored) -> Option<Vec<u8>> {
        let plain = serde_json::to_vec(stored).ok()?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed =
            self.inner.ciphers.first()?.encrypt(&nonce, Payload { msg: &plain, aad: key.as_bytes() }).ok()?;
        Some([nonce.as_slice(), &sealed].concat())
    }

    /// Seals `plain` with this cache's first encryption key, bound to
    /// `context` (associated data): for other per-user records the BFF
    /// keeps in Redis (a write's stored answer). Opened by [`Cache::open`].
    pub fn seal(&self, context: &str, plain: &[u8]) -> Option<Vec<u8>> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .inner
            .ciphers
            .first()?
            .encrypt(&nonce, Payload { msg: plain, aad: context.as_bytes() })
            .ok()?;
        Some([nonce.as_slice(), &sealed].concat())
    }

    /// Opens what [`Cache::seal`] sealed for `context`, with any configured
    /// key; `None` when none opens it (forged, moved, or an old key).
    pub fn open(&self, context: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, sealed) = (sealed.len() >= 12).then(|| sealed.split_at(12))?;
        self.inner.ciphers.iter().find_map(|cipher| {
            cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: context.as_bytes() }).ok()
        })
    }

    /// Marks `key` as being refreshed; `false` if a refresh already runs.
    fn begin_refresh(&self, key: &str) -> bool {
        self.inner.refreshing.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned())
    }

    fn end_refresh(&self, key: &str) {
        self.inner.refreshing.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Adds `.stale_from_cache(..)` to optional parts.
pub trait StaleFromCache<Fut, T> {
    /// Serve this part from `cache` under `key` (see the crate docs for
    /// freshness, revalidation and fallback). The part's future must own its
    /// data (`'static`): it may run as a background refresh after the
    /// response has left.
    fn stale_from_cache(self, cache: &Cache, key: CacheKey) -> Cached<Fut, T>;
}

impl<Fut, T, E> StaleFromCache<Fut, T> for Optional<Fut>
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Cacheable + Default,
    E: Classify + Send + 'static,
{
    /// With nothing cached and the call failing, the part is `T::default()`
    /// (`fallback`, `source: default`).
    fn stale_from_cache(self, cache: &Cache, key: CacheKey) -> Cached<Fut, T> {
        let (handle, future) = self.into_handle();
        Cached::new(handle, future, cache, key, Some(T::default()))
    }
}

impl<Fut, T, E> StaleFromCache<Fut, T> for Critical<Fut>
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Cacheable,
    E: Classify + Send + 'static,
{
    /// With nothing cached and the call failing, the request fails as for
    /// any critical part; with a stale value, it is served instead.
    fn stale_from_cache(self, cache: &Cache, key: CacheKey) -> Cached<Fut, T> {
        let (handle, future) = self.into_handle();
        Cached::new(handle, future, cache, key, None)
    }
}

/// An optional part served through the cache. See [`StaleFromCache`].
#[must_use = "a part does nothing until passed to Plan::run"]
pub struct Cached<Fut, T> {
    handle: PartHandle,
    future: Fut,
    cache: Cache,
    storage_key: String,
    policy: CachePolicy,
    /// What an optional part shows when nothing is cached and the call
    /// fails; `None` for a critical part, which then fails the request.
    fallback: Option<T>,
}

impl<Fut, T: Cacheable> Cached<Fut, T> {
    fn new(handle: PartHandle, future: Fut, cache: &Cache, key: CacheKey, fallback: Option<T>) -> Self {
        let policy = cache.policy(handle.name());
        Cached {
            storage_key: key.storage_key(T::KIND),
            policy,
            handle,
            future,
            cache: cache.clone(),
            fallback,
        }
    }
}

impl<Fut, T> std::fmt::Debug for Cached<Fut, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key may name a segment; keep it out of debug output.
        f.debug_struct("Cached").field("component", &self.handle.name()).finish()
    }
}

fn decode<T: DeserializeOwned>(stored: &Stored) -> Option<T> {
    serde_json::from_str(&stored.json).ok()
}

impl<Fut, T, E> Part for Cached<Fut, T>
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Cacheable,
    E: Classify + Send + 'static,
{
    type Output = T;

    async fn resolve(self) -> Result<T, CriticalFailure> {
        // The whole part, lookup included, is the component's one span.
        let span = self.handle.span();
        self.resolve_in(span.clone()).instrument(span).await
    }
}

impl<Fut, T, E> Cached<Fut, T>
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Cacheable,
    E: Classify + Send + 'static,
{
    async fn resolve_in(self, span: tracing::Span) -> Result<T, CriticalFailure> {
        let Cached { handle, future, cache, storage_key: key, policy, fallback } = self;
        let component = handle.name();
        let looked_up = |result: &'static str| {
            metrics::counter!(bff_telemetry::metrics::CACHE_LOOKUPS, "component" => component, "result" => result)
                .increment(1);
            span.record("cache", result);
        };
        let now = now_ms();
        let entry = cache.lookup(&key).await;
        let cached =
            entry.as_ref().and_then(|stored| decode::<T>(stored).map(|value| (Arc::clone(stored), value)));
        match cached {
            Some((stored, value)) if now < stored.fresh_until_ms => {
                looked_up("fresh");
                handle.report(ComponentStatus::Ok);
                Ok(value)
            }
            Some((stored, value)) if now < stored.stale_until_ms => {
                // Stale-while-revalidate: answer now, refresh once in the background.
                if cache.begin_refresh(&key) {
                    let (cache, key) = (cache.clone(), key.clone());
                    tokio::spawn(async move {
                        if let Ok(fresh) = future.await {
                            cache.store(&key, &fresh, policy).await;
                        }
                        cache.end_refresh(&key);
                    });
                }
                looked_up("stale");
                handle.report(ComponentStatus::Ok);
                Ok(value)
            }
            Some((stored, value)) => match handle.execute_in(&span, future).await {
                Ok(fresh) => {
                    looked_up("miss");
                    cache.store(&key, &fresh, policy).await;
                    handle.report(ComponentStatus::Ok);
                    Ok(fresh)
                }
                Err(failure) => {
                    looked_up("stale_if_error");
                    // Stale-if-error: the last good value, and how old it is.
                    let age_ms = now.saturating_sub(stored.stored_at_ms);
                    handle.report(ComponentStatus::Fallback {
                        source: Source::Cache,
                        reason: failure.reason,
                        age_ms: Some(age_ms),
                    });
                    Ok(value)
                }
            },
            None => {
                // A miss: concurrent misses for this key share one call.
                let called = std::sync::atomic::AtomicBool::new(false);
                let load = async {
                    called.store(true, Ordering::Relaxed);
                    let fresh = handle.execute_in(&span, future).await?;
                    Ok::<_, Failure>(cache.store(&key, &fresh, policy).await)
                };
                let loaded = cache.inner.memory.try_get_with(key.clone(), load).await;
                if !called.load(Ordering::Relaxed) {
                    metrics::counter!(bff_telemetry::metrics::CACHE_COALESCED, "component" => component)
                        .increment(1);
                }
                looked_up(if loaded.is_ok() { "miss" } else { "error" });
                let failure = match loaded {
                    Ok(stored) => match decode::<T>(&stored) {
                        Some(value) => {
                            handle.report(ComponentStatus::Ok);
                            return Ok(value);
                        }
                        None => Failure::new(bff_error::ReasonCode::InvalidData),
                    },
                    Err(failure) => *failure,
                };
                match fallback {
                    Some(value) => {
                        handle.report(ComponentStatus::Fallback {
                            source: Source::Default,
                            reason: failure.reason,
                            age_ms: None,
                        });
                        Ok(value)
                    }
                    None => Err(handle.fail(failure)),
                }
            }
        }
    }
}
