//! Sessions for browsers, which never see a token. After login the BFF keeps the user's
//! access token in a **sealed** cookie (AES-256-GCM via the `cookie` crate's
//! private jar: encrypted and authenticated, the cookie name bound in), so
//! the server stays stateless: no session store.
//!
//! Cookies are `__Host-` prefixed (`Secure`, `Path=/`, no `Domain`: browsers
//! then refuse them from subdomains or plain HTTP), `HttpOnly` (no script
//! can read them) and `SameSite=Lax` (not sent on cross-site sub-requests,
//! and still sent on the top-level redirect back from the identity provider).
//!
//! Writes need two more things (see [`require_csrf`]): an `Origin` from the
//! allow-list and an `X-CSRF-Token` header equal to the session's token,
//! which a page on another site can neither read nor guess.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_error::{ApiError, ErrorCode};
use cookie::{Cookie, CookieJar, Key};
use sha2::{Digest as _, Sha256};

use crate::{AuthError, JwtVerifier, Principal};
use serde::{Deserialize, Serialize};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "__Host-session";
/// Name of the short-lived cookie that carries the login state across the
/// identity provider round trip.
pub const LOGIN_COOKIE: &str = "__Host-login";
/// The header a write must carry, equal to the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What the session cookie holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// The user's access token (audience `web-bff`), exchanged for service
    /// tokens on each downstream call, never sent to the browser in clear.
    pub token: String,
    /// The CSRF token of this session.
    pub csrf: String,
    /// When the session ends (the token's `exp`), seconds since the epoch.
    pub expires_at: u64,
}

/// What the login cookie holds between `/auth/login` and `/auth/callback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginState {
    /// The OAuth `state`, compared on the way back (CSRF on login).
    pub state: String,
    /// The PKCE verifier; only its S256 challenge left the BFF.
    pub verifier: String,
    /// Where to send the user after login (a local path).
    pub return_to: String,
}

/// Seals and opens cookies with the configured key; keys being rotated out
/// still open cookies they sealed ([`Sealer::with_previous`]).
#[derive(Clone)]
pub struct Sealer {
    key: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key redacted>)")
    }
}

impl Sealer {
    /// A sealer from a base64 key of at least 64 bytes.
    pub fn from_base64(key: &str) -> Result<Self, AuthError> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|e| AuthError::Config(vec![format!("cookie_key is not base64: {e}")]))?;
        let key = Key::try_from(bytes.as_slice())
            .map_err(|_| AuthError::Config(vec!["cookie_key must be at least 64 bytes".to_owned()]))?;
        Ok(Sealer { key, previous: Vec::new() })
    }

    /// This sealer, also opening cookies sealed with `previous` keys (base64,
    /// at least 64 bytes each): rotate a key without logging everyone out.
    /// New cookies are always sealed with the first key.
    pub fn with_previous(mut self, previous: &[impl AsRef<str>]) -> Result<Self, AuthError> {
        for (n, key) in previous.iter().enumerate() {
            let opened = Sealer::from_base64(key.as_ref()).map_err(|error| match error {
                AuthError::Config(found) => AuthError::Config(
                    found
                        .into_iter()
                        .map(|f| f.replace("cookie_key", &format!("previous_cookie_keys[{n}]")))
                        .collect(),
                ),
                other => other,
            })?;
            self.previous.push(opened.key);
        }
        Ok(self)
    }

    /// The sealed value of cookie `name` holding `value` as JSON.
    pub fn seal<T: Serialize>(&self, name: &'static str, value: &T) -> String {
        let json = serde_json::to_string(value).unwrap_or_default();
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key).add(Cookie::new(name, json));
        jar.get(name).map(|cookie| cookie.value().to_owned()).unwrap_or_default()
    }

    /// Opens cookie `name` from the request headers; `None` if absent,
    /// tampered with, sealed under another name or key, or not `T`.
    pub fn open<T: for<'de> Deserialize<'de>>(&self, headers: &HeaderMap, name: &'static str) -> Option<T> {
        let raw = cookie_value(headers, name)?;
        let jar = CookieJar::new();
        let opened = std::iter::once(&self.key)
            .chain(&self.previous)
            .find_map(|key| jar.private(key).decrypt(Cookie::new(name, raw.clone())))?;
        serde_json::from_str(opened.value()).ok()
    }
}

/// The raw value of cookie `name` in the request's `Cookie` headers.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value with the attributes every cookie of ours has.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64) -> String {
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}")
}

/// What the session middleware needs.
#[derive(Debug, Clone)]
pub struct SessionAuth {
    /// Opens session cookies.
    pub sealer: Sealer,
    /// Verifies the token inside.
    pub verifier: Arc<JwtVerifier>,
}

/// Authenticates by session cookie. The token inside is verified like a
/// bearer token (signature, issuer, audience, expiry), so a session never
/// outlives its token. On success the request carries the
/// [`crate::Caller`], its `Arc<Principal>` and the [`Session`].
pub async fn require_session(State(auth): State<SessionAuth>, mut request: Request, next: Next) -> Response {
    let unauthenticated = |detail: &'static str| {
        ApiError::new(ErrorCode::AuthInvalidToken)
            .with_detail(detail)
            .with_challenge("Cookie")
            .into_response()
    };
    let Some(session) = auth.sealer.open::<Session>(request.headers(), SESSION_COOKIE) else {
        return unauthenticated("a valid session is required: log in at /auth/login");
    };
    match auth.verifier.verify(&session.token).await {
        Ok(caller) => {
            let principal = Arc::new(Principal::new(caller.subject.clone(), session.token.clone()));
            request.extensions_mut().insert(caller);
            request.extensions_mut().insert(principal);
            request.extensions_mut().insert(session);
            next.run(request).await
        }
        Err(error) => {
            tracing::info!(reason = %error, "session token rejected");
            unauthenticated("the session expired: log in again")
        }
    }
}

/// Allowed origins of browser requests (CSRF check and CORS).
#[derive(Debug, Clone)]
pub struct Origins(pub Arc<Vec<String>>);

/// CSRF defence for state-changing methods: the `Origin` must be allowed
/// and `X-CSRF-Token` must equal the session's token. Run it after
/// [`require_session`]. Safe methods pass untouched.
pub async fn require_csrf(State(origins): State<Origins>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let forbidden = |detail: &'static str| {
        tracing::warn!(detail, "CSRF check failed");
        ApiError::new(ErrorCode::AuthForbidden).with_detail(detail).into_response()
    };
    let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !origin.is_some_and(|origin| origins.0.iter().any(|allowed| allowed == origin)) {
        return forbidden("the request's Origin is not allowed");
    }
    let expected = request.extensions().get::<Session>().map(|s| s.csrf.as_str());
    let given = request.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match (expected, given) {
        (Some(expected), Some(given)) if constant_time_eq(expected.as_bytes(), given.as_bytes()) => {
            next.run(request).await
        }
        _ => forbidden("a matching X-CSRF-Token header is required"),
    }
}

/// Compares without an early exit, so timing says nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A random token from the OS CSPRNG (two v4 UUIDs: 244 random bits), in hex.
pub fn random_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The PKCE S256 challenge of `verifier` (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const KEY: &str =
        "UrQ03kXFDjAlvlRRfzlom13snX5Se+J7XHvN3wDmAX3Z4fRNu9FpmMDS2pTJLhr7qLyqjrpKIY8zJVMY1sAuEw==";

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {name}={value}")).expect("ascii"),
        );
        headers
    }

    #[test]
    fn sealed_cookies_round_trip_and_resist_tampering_and_renaming() {
        let sealer = Sealer::from_base64(KEY).expect("key");
        let session = Session { token: "t".to_owned(), csrf: "c".to_owned(), expires_at: 1 };
        let sealed = sealer.seal(SESSION_COOKIE, &session);
        assert!(!sealed.contains("\"token\""), "the value is encrypted");
        let opened: Session = sealer.open(&headers(SESSION_COOKIE, &sealed), SESSION_COOKIE).expect("opens");
        assert_eq!(opened.token, "t");

        let mut tampered = sealed.clone().into_bytes();
        tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert!(sealer.open::<Session>(&headers(SESSION_COOKIE, &tampered), SESSION_COOKIE).is_none());
        assert!(
            sealer.open::<Session>(&headers(LOGIN_COOKIE, &sealed), LOGIN_COOKIE).is_none(),
            "a value sealed under one name does not open under another"
        );
        let other_key = Sealer::from_base64(&STANDARD.encode([7u8; 64])).expect("key");
        assert!(other_key.open::<Session>(&headers(SESSION_COOKIE, &sealed), SESSION_COOKIE).is_none());
    }

    #[test]
    fn a_rotated_key_still_opens_its_cookies_and_the_new_key_seals() {
        let old = Sealer::from_base64(KEY).expect("key");
        let session = Session { token: "t".to_owned(), csrf: "c".to_owned(), expires_at: 1 };
        let sealed_before = old.seal(SESSION_COOKIE, &session);
        let new_key = STANDARD.encode([7u8; 64]);
        let rotating = Sealer::from_base64(&new_key).and_then(|s| s.with_previous(&[KEY])).expect("keys");
        let opened: Option<Session> = rotating.open(&headers(SESSION_COOKIE, &sealed_before), SESSION_COOKIE);
        assert_eq!(opened.map(|s| s.token).as_deref(), Some("t"), "a previous key still opens");
        let sealed_after = rotating.seal(SESSION_COOKIE, &session);
        let only_new = Sealer::from_base64(&new_key).expect("key");
        assert!(only_new.open::<Session>(&headers(SESSION_COOKIE, &sealed_after), SESSION_COOKIE).is_some());
        assert!(
            old.open::<Session>(&headers(SESSION_COOKIE, &sealed_after), SESSION_COOKIE).is_none(),
            "new cookies are sealed with the first key"
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Sealer::from_base64(&STANDARD.encode([1u8; 32])).is_err());
        let rotated = Sealer::from_base64(&STANDARD.encode([9u8; 64]))
            .and_then(|s| s.with_previous(&[STANDARD.encode([1u8; 32])]))
            .map(|_| ())
            .expect_err("a short previous key is refused");
        assert!(rotated.to_string().contains("previous_cookie_keys[0]"), "{rotated}");
        assert!(Sealer::from_base64("not base64!").is_err());
    }
}
