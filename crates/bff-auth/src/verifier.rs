//! JWT verification against a cached JWKS.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::time::Instant;

use crate::{AuthConfig, AuthError, Caller};

/// Algorithms a verifier may accept: asymmetric only.
pub(crate) fn parse_allowed_algorithm(name: &str) -> Result<Algorithm, String> {
    let algorithm: Algorithm = name.parse().map_err(|_| format!("unknown algorithm `{name}`"))?;
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            Err(format!("`{name}` is symmetric: with a public JWKS it would let anyone sign tokens"))
        }
        other => Ok(other),
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    /// Every other claim; [`Caller::claims`] keeps the private string ones.
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// Registered claims (RFC 7519 section 4.1) and the ones read above: never
/// passed on as "other" claims.
const REGISTERED: [&str; 8] = ["iss", "aud", "exp", "nbf", "iat", "jti", "typ", "act"];

type KeyMap = HashMap<String, (DecodingKey, Algorithm)>;

/// Verifies access tokens for one audience. Share it (`Arc`) across requests.
pub struct JwtVerifier {
    config: AuthConfig,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: RwLock<Arc<KeyMap>>,
    /// When the last refresh was attempted; held across the fetch so
    /// concurrent misses wait for one refresh instead of each starting one.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Tokens already verified, by SHA-256 of the token (`None`: off).
    verified: Option<moka::future::Cache<[u8; 32], Arc<Verified>>>,
    /// Bumped by every successful JWKS fetch: a remembered verification
    /// made under another generation of keys is not trusted.
    generation: std::sync::atomic::AtomicU64,
}

/// A token whose signature and claims were checked: what it gives, until when.
#[derive(Debug)]
struct Verified {
    caller: Caller,
    /// The token's `exp` (Unix seconds): never served at or after it.
    exp: u64,
    /// The key set it was verified with.
    generation: u64,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .field("keys", &self.key_count())
            .finish()
    }
}

/// Longest token we look at; anything bigger is refused unparsed.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest `kid` we accept.
const MAX_KID_BYTES: usize = 64;

impl JwtVerifier {
    /// A verifier with no keys yet; call [`JwtVerifier::refresh`] at start-up.
    pub fn new(config: AuthConfig) -> Result<Self, AuthError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(AuthError::Config(problems));
        }
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| parse_allowed_algorithm(a))
            .collect::<Result<_, _>>()
            .map_err(|problem| AuthError::Config(vec![problem]))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.jwks_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AuthError::Config(vec![format!("JWKS client: {e}")]))?;
        // Entries also expire after the longest lifetime a token may have,
        // so memory is returned even for tokens never seen again.
        let verified = (config.verified_cache_entries > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(config.verified_cache_entries)
                .time_to_live(Duration::from_secs(config.max_token_lifetime_secs.max(1)))
                .build()
        });
        Ok(JwtVerifier {
            config,
            algorithms,
            http,
            keys: RwLock::new(Arc::default()),
            last_refresh: tokio::sync::Mutex::new(None),
            verified,
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Number of usable keys cached.
    pub fn key_count(&self) -> usize {
        self.keys.read().map(|k| k.len()).unwrap_or(0)
    }

    fn key(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        self.keys.read().ok().and_then(|keys| keys.get(kid).cloned())
    }

    /// Fetches the JWKS now, whatever the cool-down, replacing the cache on
    /// success. On failure the cached keys stay.
    pub async fn refresh(&self) -> Result<usize, AuthError> {
        let mut last = self.last_refresh.lock().await;
        *last = Some(Instant::now());
        self.fetch().await
    }

    /// Refreshes unless a refresh happened within the cool-down (one second
    /// while no key has ever been loaded, so a cold start recovers quickly).
    async fn refresh_if_due(&self) {
        let mut last = self.last_refresh.lock().await;
        let cooldown = if self.key_count() == 0 {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(self.config.jwks_refresh_cooldown_secs)
        };
        if last.is_some_and(|at| at.elapsed() < cooldown) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(error) = self.fetch().await {
            tracing::warn!(error = %error, "JWKS refresh failed; keeping cached keys");
        }
    }

    async fn fetch(&self) -> Result<usize, AuthError> {
        let unavailable = |e: &dyn std::fmt::Display| AuthError::KeysUnavailable(e.to_string());
        let response = self.http.get(&self.config.jwks_url).send().await.map_err(|e| unavailable(&e))?;
        let response = response.error_for_status().map_err(|e| unavailable(&e))?;
        let set: JwkSet = response.json().await.map_err(|e| unavailable(&e))?;
        let mut keys = KeyMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else { continue };
            if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
                continue;
            }
            let Some(algorithm) = jwk_algorithm(jwk) else { continue };
            if !self.algorithms.contains(&algorithm) {
                continue;
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, (key, algorithm));
                }
                Err(error) => tracing::warn!(%kid, %error, "skipping unusable JWK"),
            }
        }
        if keys.is_empty() {
            return Err(AuthError::KeysUnavailable("JWKS holds no usable key".to_owned()));
        }
        let count = keys.len();
        if let Ok(mut slot) = self.keys.write() {
            *slot = Arc::new(keys);
        }
        // A key may have been rotated away or revoked: forget every
        // verification made with the previous set.
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if let Some(verified) = &self.verified {
            verified.invalidate_all();
        }
        tracing::info!(keys = count, "JWKS loaded");
        Ok(count)
    }

    /// Verifies `token` and returns its caller. A token verified before
    /// (same bytes, same key set, before its `exp`) is answered from memory
    /// without checking its signature again; any other is verified in full,
    /// and only successes are remembered.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        use sha2::Digest as _;
        let Some(verified) = &self.verified else { return self.verify_in_full(token).await };
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return self.verify_in_full(token).await;
        }
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
        if let Some(known) = verified.get(&key).await
            && known.generation == generation
            && unix_now() < known.exp
        {
            metrics::counter!(bff_telemetry::metrics::TOKEN_VERIFICATIONS, "result" => "cached").increment(1);
            return Ok(known.caller.clone());
        }
        let (caller, exp) = self.verify_with_expiry(token).await?;
        verified.insert(key, Arc::new(Verified { caller: caller.clone(), exp, generation })).await;
        Ok(caller)
    }

    async fn verify_in_full(&self, token: &str) -> Result<Caller, AuthError> {
        self.verify_with_expiry(token).await.map(|(caller, _)| caller)
    }

    /// The whole check, counted; the caller and the token's `exp`.
    async fn verify_with_expiry(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        let result = self.check(token).await;
        let outcome = if result.is_ok() { "verified" } else { "refused" };
        metrics::counter!(bff_telemetry::metrics::TOKEN_VERIFICATIONS, "result" => outcome).increment(1);
        result
    }

    async fn check(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed(format!("length {}", token.len())));
        }
        // `decode_header` fails on any `alg` outside jsonwebtoken's enum,
        // which has no `none` in any casing.
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        // RFC 7515 §4.1.11: extensions marked critical must be understood,
        // and we understand none (an empty list is invalid too).
        if let Some(critical) = header.crit {
            return Err(AuthError::CriticalExtension(critical));
        }
        if !self.algorithms.contains(&header.alg) {
            return Err(AuthError::DisallowedAlgorithm(header.alg));
        }
        match header.typ.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("at+jwt" | "application/at+jwt") => {}
            other => return Err(AuthError::Malformed(format!("typ {other:?} is not at+jwt"))),
        }
        let kid = header.kid.ok_or_else(|| AuthError::Malformed("no kid".to_owned()))?;
        if kid.is_empty()
            || kid.len() > MAX_KID_BYTES
            || !kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(AuthError::Malformed("unacceptable kid".to_owned()));
        }
        let (key, key_algorithm) = match self.key(&kid) {
            Some(found) => found,
            None => {
                self.refresh_if_due().await;
                match self.key(&kid) {
                    Some(found) => found,
                    None if self.key_count() == 0 => {
                        return Err(AuthError::KeysUnavailable("no JWKS loaded".to_owned()));
                    }
                    None => return Err(AuthError::UnknownKey(kid)),
                }
            }
        };
        if key_algorithm != header.alg {
            return Err(AuthError::AlgorithmMismatch { kid, key: key_algorithm, token: header.alg });
        }
        let mut validation = Validation::new(key_algorithm);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience {
                subject: jsonwebtoken::dangerous::insecure_decode::<Claims>(token).ok().map(|d| d.claims.sub),
            },
            ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
            _ => AuthError::Malformed(e.to_string()),
        })?;
        let claims = data.claims;
        if claims.sub.is_empty() {
            return Err(AuthError::MissingClaim("sub".to_owned()));
        }
        let exp = self.check_lifetime(&claims)?;
        if let Some(serde_json::Value::Array(audiences)) = claims.other.get("aud")
            && audiences.len() > 1
            && !self.config.allow_multiple_audiences
        {
            return Err(AuthError::SeveralAudiences(audiences.len()));
        }
        let caller = Caller {
            subject: claims.sub,
            client_id: claims.client_id,
            scopes: claims.scope.unwrap_or_default().split_whitespace().map(str::to_owned).collect(),
            tenant: claims.tenant,
            roles: claims.roles,
            claims: claims
                .other
                .into_iter()
                .filter(|(name, _)| !REGISTERED.contains(&name.as_str()))
                .filter_map(|(name, value)| match value {
                    serde_json::Value::String(text) => Some((name, text)),
                    _ => None,
                })
                .collect(),
        };
        Ok((caller, exp))
    }
}

impl JwtVerifier {
    /// Refuses a token meant to live longer than `max_token_lifetime_secs`:
    /// from its `iat` when it has one, and from now in any case (a token
    /// without `iat` cannot dodge the cap). The leeway applies to the second.
    /// Returns the token's `exp`.
    fn check_lifetime(&self, claims: &Claims) -> Result<u64, AuthError> {
        let max_secs = self.config.max_token_lifetime_secs;
        let seconds = |name: &str| claims.other.get(name).and_then(serde_json::Value::as_u64);
        let Some(exp) = seconds("exp") else {
            return Err(AuthError::MissingClaim("exp".to_owned()));
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let issued = seconds("iat").map_or(0, |iat| exp.saturating_sub(iat));
        let remaining = exp.saturating_sub(now);
        if issued > max_secs || remaining > max_secs + self.config.leeway_secs {
            return Err(AuthError::TooLongLived { lifetime_secs: issued.max(remaining), max_secs });
        }
        Ok(exp)
    }
}

/// The algorithm a JWK is for: its `alg`, or the only one its curve allows.
fn jwk_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    match jwk.common.key_algorithm {
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::ES384) => Some(Algorithm::ES384),
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::RS384) => Some(Algorithm::RS384),
        Some(KeyAlgorithm::RS512) => Some(Algorithm::RS512),
        Some(KeyAlgorithm::PS256) => Some(Algorithm::PS256),
        Some(KeyAlgorithm::PS384) => Some(Algorithm::PS384),
        Some(KeyAlgorithm::PS512) => Some(Algorithm::PS512),
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        Some(_) => None,
        None => match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                Some(Algorithm::ES256)
            }
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P384 => {
                Some(Algorithm::ES384)
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_unknown_algorithms_are_refused_in_config() {
        assert!(parse_allowed_algorithm("ES256").is_ok());
        assert!(parse_allowed_algorithm("HS256").is_err());
        assert!(parse_allowed_algorithm("none").is_err());
        let config = AuthConfig { algorithms: vec!["HS256".to_owned()], ..AuthConfig::local("x") };
        assert!(JwtVerifier::new(config).is_err());
    }
}
