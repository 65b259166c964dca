//! The identity provider mock.
//!
//! * `GET /.well-known/jwks.json`: two ES256 keys (rotation: tokens name
//!   theirs by `kid`); new tokens are signed with the first. The keys are the
//!   committed development keys (see `keys/README.md`).
//! * `GET /authorize`: the authorization-code flow with PKCE (S256 only).
//!   There is no login page: the user is the seeded id in `login_hint`
//!   (default `u-1`), and the browser is redirected straight back.
//! * `POST /oauth/token`: `authorization_code` (+ PKCE), `client_credentials`,
//!   RFC 8693 `token-exchange` and the RFC 8628 device code; errors are
//!   RFC 6749 / 8693 / 8628 bodies.
//! * `POST /oauth/device_authorization` and `POST /device`: the device
//!   authorization grant, and its approval (see [`crate::device`]).
//!
//! Its clients are in [`clients`]: a few seeded by hand, the rest derived
//! from the BFF registry. Every token is an RFC 9068 `at+jwt`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{MockState, Router};

/// The issuer (`iss`) the mock uses unless told otherwise. BFFs default to
/// trusting exactly this issuer.
pub const DEFAULT_ISSUER: &str = "http://localhost:7000";

/// The signing keys, newest first: `(kid, PKCS#8 PEM)`.
const KEYS: [(&str, &str); 2] = [
    ("dev-es256-1", include_str!("../keys/dev-es256-1.pem")),
    ("dev-es256-2", include_str!("../keys/dev-es256-2.pem")),
];

/// Lifetime of user and client access tokens.
const ACCESS_TOKEN_SECS: u64 = 900;
/// The same, for the grants implemented outside this module.
pub(crate) const ACCESS_TOKEN_SECS_PUBLIC: u64 = ACCESS_TOKEN_SECS;
/// Lifetime of exchanged (service) tokens: short, they are re-exchanged.
const SERVICE_TOKEN_SECS: u64 = 300;
/// Lifetime of an authorization code.
const CODE_SECS: u64 = 60;

/// The RFC 8693 token-exchange grant type.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The RFC 8693 token type of access tokens.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// What an OAuth client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Log users in with the authorization-code flow (PKCE required).
    AuthorizationCode,
    /// Get a token for itself with its secret.
    ClientCredentials,
    /// Exchange a token issued to it for a downstream service token.
    TokenExchange,
    /// Log users in on a device without a browser (RFC 8628).
    DeviceCode,
}

/// A registered OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// `client_id`.
    pub id: String,
    /// Secret of confidential clients; `None` for public (PKCE-only) clients.
    pub secret: Option<String>,
    /// Grants it may use.
    pub grants: Vec<Grant>,
    /// Audience of the tokens it obtains for users or itself: the BFF they are for.
    pub audience: String,
    /// Allowed redirect URIs. A public client's loopback URIs match on any
    /// port (RFC 8252 §7.3, native apps); a confidential client's match
    /// exactly.
    pub redirect_uris: Vec<String>,
    /// Scopes granted to its tokens.
    pub scope: String,
    /// Tenant of a partner client.
    pub tenant: Option<String>,
}

/// The scopes of a customer-facing app's tokens.
const APP_SCOPE: &str = "openid profile cart catalog orders";

/// Clients whose details are seeded by hand (redirect URIs of a native app,
/// partner tenants and secrets); the registry's other clients are derived
/// from their BFF's entry (see [`clients`]). Secrets are development
/// values, listed in the README.
fn seeded() -> Vec<OAuthClient> {
    let public = |id: &str, audience: &str, redirect_uris: &[&str], scope: &str| OAuthClient {
        id: id.to_owned(),
        secret: None,
        grants: vec![Grant::AuthorizationCode],
        audience: audience.to_owned(),
        redirect_uris: redirect_uris.iter().map(|uri| (*uri).to_owned()).collect(),
        scope: scope.to_owned(),
        tenant: None,
    };
    let partner = |id: &str, secret: &str, tenant: &str| OAuthClient {
        id: id.to_owned(),
        secret: Some(secret.to_owned()),
        grants: vec![Grant::ClientCredentials],
        audience: "partner-bff".to_owned(),
        redirect_uris: Vec::new(),
        scope: "catalog".to_owned(),
        tenant: Some(tenant.to_owned()),
    };
    vec![
        public(
            "mobile-app",
            "mobile-bff",
            &["com.example.shop:/oauth/callback", "http://127.0.0.1/callback"],
            APP_SCOPE,
        ),
        public("admin-console", "admin-bff", &["http://127.0.0.1/callback"], "openid admin"),
        partner("partner-acme", "acme-dev-secret", "acme"),
        partner("partner-globex", "globex-dev-secret", "globex"),
    ]
}

/// The clients a BFF's registry entry implies: the BFF itself (a
/// confidential client that exchanges tokens, secret `<name>-dev-secret`;
/// in `session` mode also the login client, redirecting to its
/// `/auth/callback`), and the client its callers use unless seeded by hand.
fn derived(bff: &bff_registry::Bff) -> Vec<OAuthClient> {
    use bff_registry::Auth;
    let session = bff.auth == Auth::Session;
    let mut clients = vec![OAuthClient {
        id: bff.name.to_owned(),
        secret: Some(format!("{}-dev-secret", bff.name)),
        // Token exchange for its callers; client credentials (with an
        // audience) for the work it does for itself.
        grants: if session {
            vec![Grant::AuthorizationCode, Grant::TokenExchange, Grant::ClientCredentials]
        } else {
            vec![Grant::TokenExchange, Grant::ClientCredentials]
        },
        audience: bff.name.to_owned(),
        redirect_uris: if session {
            vec![
                format!("http://127.0.0.1:{}/auth/callback", bff.port),
                format!("http://localhost:{}/auth/callback", bff.port),
            ]
        } else {
            Vec::new()
        },
        scope: if session { APP_SCOPE.to_owned() } else { String::new() },
        tenant: None,
    }];
    if !session {
        let (secret, grants, scope, tenant) = match bff.auth {
            Auth::ClientCredentials => (
                Some(format!("{}-dev-secret", bff.client)),
                vec![Grant::ClientCredentials],
                "catalog",
                Some(bff.client.to_owned()),
            ),
            Auth::Device => (None, vec![Grant::DeviceCode], APP_SCOPE, None),
            Auth::Staff => (None, vec![Grant::AuthorizationCode], "openid admin", None),
            Auth::Bearer | Auth::Session => (None, vec![Grant::AuthorizationCode], APP_SCOPE, None),
        };
        clients.push(OAuthClient {
            id: bff.client.to_owned(),
            secret,
            grants,
            audience: bff.name.to_owned(),
            redirect_uris: vec!["http://127.0.0.1/callback".to_owned()],
            scope: scope.to_owned(),
            tenant,
        });
    }
    clients
}

/// Every client the identity provider knows: the hand-seeded ones, then
/// those derived from every BFF of the registry (a new BFF's clients exist
/// with no edit here).
pub fn clients() -> &'static [OAuthClient] {
    static CLIENTS: std::sync::OnceLock<Vec<OAuthClient>> = std::sync::OnceLock::new();
    CLIENTS.get_or_init(|| {
        let mut clients = seeded();
        for bff in bff_registry::BFFS {
            for client in derived(bff) {
                if !clients.iter().any(|known| known.id == client.id) {
                    clients.push(client);
                }
            }
        }
        clients
    })
}

/// The client with `id`.
pub fn client(id: &str) -> Option<&'static OAuthClient> {
    clients().iter().find(|c| c.id == id)
}

/// A person who can log in: a customer (`u-N`, from the seed) or staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Subject id.
    pub id: String,
    /// Tenant: `shop` for customers, `staff` for staff.
    pub tenant: &'static str,
    /// Roles: `customer`, `admin` or `support`.
    pub roles: Vec<&'static str>,
}

/// Back-office staff: `(id, name, role)`.
pub const STAFF: &[(&str, &str, &str)] =
    &[("s-1", "Alice Admin", "admin"), ("s-2", "Sam Support", "support"), ("s-3", "Nia Nobody", "viewer")];

/// The customer markets (back-office tenants) each staff member may see,
/// space-separated (`*`: all), as their tokens' `tenants` claim: Sam
/// supports the UK and EU desks, not the US one.
pub fn staff_markets(id: &str) -> Option<&'static str> {
    match id {
        "s-1" => Some("*"),
        "s-2" => Some("uk eu"),
        "s-3" => Some(""),
        _ => None,
    }
}

/// The person with `id`, if seeded.
pub fn person(id: &str) -> Option<Person> {
    if let Some((id, _, role)) = STAFF.iter().find(|(staff, _, _)| *staff == id) {
        return Some(Person { id: (*id).to_owned(), tenant: "staff", roles: vec![role] });
    }
    // Exactly `u-<n>` as seeded: `u-01` and `u-+1` parse to 1 but are not u-1.
    let digits = id.strip_prefix("u-")?;
    let n: usize = digits.parse().ok()?;
    (n.to_string() == digits && (1..=crate::seed::Seed::shared().users.len()).contains(&n)).then(|| Person {
        id: id.to_owned(),
        tenant: "shop",
        roles: vec!["customer"],
    })
}

/// The domain services a BFF may exchange tokens for, and the scopes each accepts.
pub const SERVICE_SCOPES: &[(&str, &str)] = &[
    ("user", "user:read"),
    ("catalog", "catalog:read"),
    ("pricing", "pricing:read"),
    ("inventory", "inventory:read"),
    ("cart", "cart:read"),
    ("recommendations", "recommendations:read"),
    ("promotions", "promotions:read"),
    ("shipping", "shipping:read"),
    ("reviews", "reviews:read"),
    ("orders", "orders:read"),
];

/// The actor of an exchanged token (RFC 8693 `act`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The client that acts on the subject's behalf.
    pub sub: String,
}

/// The claims of every access token this provider issues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserClaims {
    /// Issuer.
    pub iss: String,
    /// Audience: the BFF (user and client tokens) or service (exchanged tokens).
    pub aud: String,
    /// The user id, or the client id of a client-credentials token.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Not before, seconds since the epoch.
    pub nbf: u64,
    /// Space-separated scopes.
    pub scope: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// Tenant of the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// For staff: the customer markets they may see, space-separated (`*`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<String>,
    /// Roles of the subject.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// On exchanged tokens: who acts for the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The customer's marketing segment (a custom claim): lets a BFF share
    /// cached, segment-level content without first fetching the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

struct SigningKey {
    kid: &'static str,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

/// An issued, not yet redeemed authorization code.
#[derive(Debug, Clone)]
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    user: String,
    expires: u64,
}

/// The identity provider's keys, issuer, pending authorization codes and
/// device authorizations.
pub struct Identity {
    issuer: String,
    keys: Vec<SigningKey>,
    codes: Mutex<HashMap<String, PendingCode>>,
    /// Redirect URIs registered at run time, by client id (see
    /// [`Identity::register_redirect_uri`]).
    registered: Mutex<Vec<(String, String)>>,
    pub(crate) devices: crate::device::Devices,
    /// Tokens already verified, by (token, audience): the mocks see the
    /// same service tokens over and over, and a load test should measure
    /// the BFF, not the mocks' signature checks. Bounded (cleared when
    /// full); an entry is never used from its `exp` on.
    verified: Mutex<HashMap<(String, String), UserClaims>>,
}

/// How many verified tokens the mocks remember.
const VERIFIED_ENTRIES: usize = 10_000;

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|k| k.kid).collect();
        f.debug_struct("Identity").field("issuer", &self.issuer).field("kids", &kids).finish()
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The PKCE S256 challenge of `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Identity {
    /// Loads the development keys.
    pub fn new(issuer: impl Into<String>) -> anyhow::Result<Self> {
        let keys = KEYS
            .iter()
            .map(|(kid, pem)| {
                let encoding =
                    EncodingKey::from_ec_pem(pem.as_bytes()).with_context(|| format!("loading key {kid}"))?;
                let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
                    .with_context(|| format!("public key of {kid}"))?;
                jwk.common.key_id = Some((*kid).to_owned());
                jwk.common.public_key_use = Some(PublicKeyUse::Signature);
                jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
                let decoding = DecodingKey::from_jwk(&jwk).with_context(|| format!("verifying key {kid}"))?;
                Ok(SigningKey { kid, encoding, decoding, jwk })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Identity {
            issuer: issuer.into(),
            keys,
            codes: Mutex::default(),
            registered: Mutex::default(),
            devices: Default::default(),
            verified: Mutex::default(),
        })
    }

    /// Registers `uri` as one of `client_id`'s redirect URIs, as a
    /// deployment registers its callback with a real identity provider.
    /// Tests run a session BFF on a free port: its confidential client's
    /// callback must then be registered exactly (no any-port rule for it).
    pub fn register_redirect_uri(&self, client_id: &str, uri: &str) {
        let mut registered = self.registered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        registered.push((client_id.to_owned(), uri.to_owned()));
    }

    /// Whether `uri` is one of `client`'s redirect URIs (see
    /// [`OAuthClient::redirect_uris`]).
    fn redirect_uri_allowed(&self, client: &OAuthClient, uri: &str) -> bool {
        let registered = self.registered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        registered.iter().any(|(id, allowed)| *id == client.id && allowed == uri)
            || redirect_uri_allowed(client, uri)
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The published key set.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.keys.iter().map(|k| k.jwk.clone()).collect() }
    }

    /// Signs any claims with the current key (ES256, `typ: at+jwt`, `kid`
    /// set). Tests use it to build tokens with chosen defects.
    pub fn sign<C: Serialize>(&self, claims: &C) -> anyhow::Result<String> {
        let kid = self.keys.first().map(|k| k.kid).context("no signing key")?;
        self.sign_with(kid, claims)
    }

    /// Signs with the key `kid` (the older key, to show rotation works).
    pub fn sign_with<C: Serialize>(&self, kid: &str, claims: &C) -> anyhow::Result<String> {
        self.sign_with_header(kid, |_| {}, claims)
    }

    /// Signs with the key `kid` after `edit` changed the header (a `crit`
    /// the verifier cannot understand, ...): a genuine signature over a
    /// header with a chosen defect.
    pub fn sign_with_header<C: Serialize>(
        &self,
        kid: &str,
        edit: impl FnOnce(&mut Header),
        claims: &C,
    ) -> anyhow::Result<String> {
        let key = self.keys.iter().find(|k| k.kid == kid).with_context(|| format!("no key {kid}"))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.to_owned());
        header.typ = Some("at+jwt".to_owned());
        edit(&mut header);
        jsonwebtoken::encode(&header, claims, &key.encoding).context("signing token")
    }

    /// The id of the key tokens are signed with now.
    pub fn current_kid(&self) -> Option<&'static str> {
        self.keys.first().map(|k| k.kid)
    }

    pub(crate) fn claims(&self, aud: &str, sub: &str, scope: &str, client_id: &str, ttl: u64) -> UserClaims {
        let now = now_secs();
        let person = person(sub);
        UserClaims {
            iss: self.issuer.clone(),
            aud: aud.to_owned(),
            sub: sub.to_owned(),
            exp: now + ttl,
            iat: now,
            nbf: now,
            scope: scope.to_owned(),
            client_id: client_id.to_owned(),
            tenant: person
                .as_ref()
                .map(|p| p.tenant.to_owned())
                .or_else(|| client(sub).and_then(|c| c.tenant.clone())),
            tenants: staff_markets(sub).map(str::to_owned),
            roles: person.map(|p| p.roles.iter().map(|r| (*r).to_owned()).collect()).unwrap_or_default(),
            act: None,
            segment: crate::seed::Seed::shared().user(sub).map(|u| u.segment.to_owned()),
        }
    }

    /// The claims of a fresh access token for `user` of the client that
    /// `bff`'s callers use, audience `bff` (for a client-credentials BFF,
    /// `user` is ignored: its tokens are the client's own).
    pub fn user_claims(&self, bff: &bff_registry::Bff, user: &str, ttl: Duration) -> UserClaims {
        let subject = if bff.auth == bff_registry::Auth::ClientCredentials { bff.client } else { user };
        let scope = client(bff.client).map(|c| c.scope.as_str()).unwrap_or_default();
        self.claims(bff.name, subject, scope, bff.client, ttl.as_secs())
    }

    /// A signed access token for `user` of the client `bff`'s callers use.
    pub fn user_token(&self, bff: &bff_registry::Bff, user: &str, ttl: Duration) -> anyhow::Result<String> {
        self.sign(&self.user_claims(bff, user, ttl))
    }

    /// A signed service token, as token exchange would issue it: `aud` the
    /// service, `sub` the user, `act` the BFF.
    pub fn service_token(&self, service: &str, user: &str, actor: &str) -> anyhow::Result<String> {
        let scope = SERVICE_SCOPES.iter().find(|(s, _)| *s == service).map(|(_, scope)| *scope).unwrap_or("");
        let mut claims = self.claims(service, user, scope, actor, SERVICE_TOKEN_SECS);
        claims.act = Some(Actor { sub: actor.to_owned() });
        self.sign(&claims)
    }

    /// Verifies a token issued here for `audience`: signature (by `kid`),
    /// issuer, audience, expiry.
    pub fn verify(&self, token: &str, audience: &str) -> Result<UserClaims, String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let key = (token.to_owned(), audience.to_owned());
        if let Some(claims) = self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
            && now < claims.exp
        {
            return Ok(claims.clone());
        }
        let claims = self.verify_in_full(token, audience)?;
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_ENTRIES {
            verified.clear();
        }
        verified.insert(key, claims.clone());
        Ok(claims)
    }

    fn verify_in_full(&self, token: &str, audience: &str) -> Result<UserClaims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        if header.alg != Algorithm::ES256 {
            return Err(format!("algorithm {:?} not accepted", header.alg));
        }
        let kid = header.kid.ok_or("no kid")?;
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or("unknown kid")?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        jsonwebtoken::decode::<UserClaims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

pub(crate) fn routes() -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .route("/oauth/device_authorization", post(crate::device::authorize))
        .route("/device", post(crate::device::decide))
}

async fn jwks(State(state): State<MockState>) -> Json<JwkSet> {
    Json(state.identity.jwks())
}

async fn discovery(State(state): State<MockState>) -> Json<serde_json::Value> {
    let issuer = state.identity.issuer();
    Json(serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "device_authorization_endpoint": format!("{issuer}/oauth/device_authorization"),
        "grant_types_supported": ["authorization_code", "client_credentials", TOKEN_EXCHANGE, crate::device::DEVICE_CODE],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

/// An OAuth error body (RFC 6749 section 5.2).
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response =
        (status, Json(serde_json::json!({ "error": error, "error_description": description })))
            .into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    }
    response
}

/// Whether `uri` is one of `client`'s seeded redirect URIs.
fn redirect_uri_allowed(client: &OAuthClient, uri: &str) -> bool {
    if client.secret.is_some() {
        // Confidential: the registered URI exactly (a BFF's callback sits at
        // a known address; the any-port rule is for native apps).
        return client.redirect_uris.iter().any(|allowed| allowed == uri);
    }
    let loopback_without_port = |u: &str| {
        for host in ["http://127.0.0.1", "http://localhost"] {
            if let Some(rest) = u.strip_prefix(host) {
                let path = rest
                    .strip_prefix(':')
                    .map_or(rest, |r| r.trim_start_matches(|c: char| c.is_ascii_digit()));
                return Some(format!("{host}{path}"));
            }
        }
        None
    };
    client.redirect_uris.iter().any(|allowed| {
        *allowed == uri
            || matches!((loopback_without_port(allowed), loopback_without_port(uri)), (Some(a), Some(b)) if a == b)
    })
}

/// Query of `GET /authorize`.
#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    state: Option<String>,
    login_hint: Option<String>,
}

/// Issues a code for the user in `login_hint` and redirects back. Errors
/// about the client or redirect URI are shown here (never redirected to an
/// unverified URI); the rest go back to the client as `?error=`.
async fn authorize(State(state): State<MockState>, Query(query): Query<AuthorizeQuery>) -> Response {
    let Some(client) = query.client_id.as_deref().and_then(client) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "unknown client_id");
    };
    let Some(redirect_uri) =
        query.redirect_uri.filter(|uri| state.identity.redirect_uri_allowed(client, uri))
    else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "redirect_uri is not registered");
    };
    let back = |params: &[(&str, &str)]| {
        let mut url = redirect_uri.clone();
        url.push(if url.contains('?') { '&' } else { '?' });
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect();
        url.push_str(&query.join("&"));
        Redirect::to(&url).into_response()
    };
    let state_param = query.state.clone().unwrap_or_default();
    if query.response_type.as_deref() != Some("code") || !client.grants.contains(&Grant::AuthorizationCode) {
        return back(&[("error", "unsupported_response_type"), ("state", &state_param)]);
    }
    let challenge = match (query.code_challenge, query.code_challenge_method.as_deref()) {
        (Some(challenge), Some("S256")) if (43..=128).contains(&challenge.len()) => challenge,
        _ => {
            return back(&[
                ("error", "invalid_request"),
                ("error_description", "PKCE S256 is required"),
                ("state", &state_param),
            ]);
        }
    };
    let user = query.login_hint.unwrap_or_else(|| "u-1".to_owned());
    if person(&user).is_none() {
        return back(&[
            ("error", "access_denied"),
            ("error_description", "unknown user"),
            ("state", &state_param),
        ]);
    }
    let code: String = std::iter::repeat_with(fastrand::alphanumeric).take(32).collect();
    let pending = PendingCode {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.clone(),
        challenge,
        user,
        expires: now_secs() + CODE_SECS,
    };
    state.identity.codes.lock().unwrap_or_else(|p| p.into_inner()).insert(code.clone(), pending);
    back(&[("code", &code), ("state", &state_param)])
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Form of `POST /oauth/token` (every grant's fields; each grant reads its own).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    device_code: Option<String>,
    client_secret: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    scope: Option<String>,
    subject_token: Option<String>,
    subject_token_type: Option<String>,
    audience: Option<String>,
}

/// A successful token response.
#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
}

pub(crate) fn issued(
    access_token: String,
    claims: &UserClaims,
    issued_token_type: Option<&'static str>,
) -> Response {
    let body = TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: claims.exp.saturating_sub(now_secs()),
        scope: claims.scope.clone(),
        issued_token_type,
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Authenticates the client: HTTP Basic or `client_secret_post`; public
/// clients present only their id.
pub(crate) fn authenticate_client(
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<&'static OAuthClient, Box<Response>> {
    let invalid =
        || Box::new(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed"));
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.split_once(':').map(|(id, secret)| (id.to_owned(), secret.to_owned())));
    let (id, secret) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (form.client_id.clone().ok_or_else(invalid)?, form.client_secret.clone()),
    };
    let client = client(&id).ok_or_else(invalid)?;
    match (client.secret.as_deref(), secret.as_deref()) {
        (Some(expected), Some(given)) if expected == given => Ok(client),
        (None, None) => Ok(client),
        _ => Err(invalid()),
    }
}

async fn token(
    State(state): State<MockState>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected an application/x-www-form-urlencoded body",
        );
    };
    let client = match authenticate_client(&headers, &form) {
        Ok(client) => client,
        Err(response) => return *response,
    };
    let identity = &state.identity;
    match form.grant_type.as_deref() {
        Some("authorization_code") if client.grants.contains(&Grant::AuthorizationCode) => {
            authorization_code(identity, client, &form)
        }
        Some("client_credentials") if client.grants.contains(&Grant::ClientCredentials) => {
            match form.audience.as_deref() {
                // A BFF acting for itself (background work): a short token
                // for one service, with the BFF as the subject.
                Some(audience) if client.grants.contains(&Grant::TokenExchange) => {
                    own_service_token(identity, client, audience, form.scope.as_deref())
                }
                Some(_) => oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_target",
                    "this client's tokens are for its own audience only",
                ),
                None => {
                    let claims = identity.claims(
                        &client.audience,
                        &client.id,
                        &client.scope,
                        &client.id,
                        ACCESS_TOKEN_SECS,
                    );
                    match identity.sign(&claims) {
                        Ok(token) => issued(token, &claims, None),
                        Err(_) => {
                            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed")
                        }
                    }
                }
            }
        }
        Some(TOKEN_EXCHANGE) if client.grants.contains(&Grant::TokenExchange) => {
            token_exchange(identity, client, &form)
        }
        Some(crate::device::DEVICE_CODE) if client.grants.contains(&Grant::DeviceCode) => {
            crate::device::poll(identity, client, form.device_code.as_deref())
        }
        Some("authorization_code" | "client_credentials" | TOKEN_EXCHANGE | crate::device::DEVICE_CODE) => {
            oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client", "the client may not use this grant")
        }
        Some(_) => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "unsupported grant_type"),
        None => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    }
}

fn authorization_code(identity: &Identity, client: &OAuthClient, form: &TokenForm) -> Response {
    let (Some(code), Some(redirect_uri), Some(verifier)) =
        (form.code.as_deref(), form.redirect_uri.as_deref(), form.code_verifier.as_deref())
    else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code, redirect_uri and code_verifier are required",
        );
    };
    // Single use: the code is gone whether or not the rest checks out.
    let pending = identity.codes.lock().unwrap_or_else(|p| p.into_inner()).remove(code);
    let Some(pending) = pending else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown or used code");
    };
    if pending.client_id != client.id || pending.redirect_uri != redirect_uri || pending.expires < now_secs()
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code does not match this client, redirect_uri or time",
        );
    }
    if pkce_challenge(verifier) != pending.challenge {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code_verifier does not match the challenge",
        );
    }
    let claims =
        identity.claims(&client.audience, &pending.user, &client.scope, &client.id, ACCESS_TOKEN_SECS);
    match identity.sign(&claims) {
        Ok(token) => issued(token, &claims, None),
        Err(_) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed"),
    }
}

/// Client credentials with an `audience` (RFC 8707's intent): a BFF's
/// token for one downstream service, acting for itself (`sub` is the BFF,
/// no `act`), narrowed to scopes that service accepts. For background work
/// no user asked for, e.g. precomputing a screen's rails.
fn own_service_token(
    identity: &Identity,
    client: &OAuthClient,
    audience: &str,
    scope: Option<&str>,
) -> Response {
    let Some((service, allowed)) = SERVICE_SCOPES.iter().find(|(service, _)| *service == audience) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_target", "audience is not a known service");
    };
    let requested = scope.unwrap_or(allowed);
    if requested.split_whitespace().any(|scope| !allowed.split_whitespace().any(|a| a == scope)) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope exceeds what the service accepts",
        );
    }
    let claims = identity.claims(service, &client.id, requested, &client.id, SERVICE_TOKEN_SECS);
    match identity.sign(&claims) {
        Ok(token) => issued(token, &claims, Some(ACCESS_TOKEN_TYPE)),
        Err(_) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed"),
    }
}

/// RFC 8693: a BFF trades a token issued *for it* (its own audience) for a
/// short-lived token for one service, with the user as `sub` and itself as
/// `act`, narrowed to scopes that service accepts.
fn token_exchange(identity: &Identity, client: &OAuthClient, form: &TokenForm) -> Response {
    let Some(subject_token) = form.subject_token.as_deref() else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "subject_token is required");
    };
    if form.subject_token_type.as_deref() != Some(ACCESS_TOKEN_TYPE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "subject_token_type must be an access token",
        );
    }
    let subject = match identity.verify(subject_token, &client.audience) {
        Ok(claims) => claims,
        Err(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "subject_token is invalid, expired or not issued to this client",
            );
        }
    };
    let Some((service, allowed)) =
        form.audience.as_deref().and_then(|aud| SERVICE_SCOPES.iter().find(|(service, _)| *service == aud))
    else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_target", "audience is not a known service");
    };
    let requested = form.scope.as_deref().unwrap_or(allowed);
    if requested.split_whitespace().any(|scope| !allowed.split_whitespace().any(|a| a == scope)) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope exceeds what the service accepts",
        );
    }
    let now = now_secs();
    let claims = UserClaims {
        iss: identity.issuer.clone(),
        aud: (*service).to_owned(),
        sub: subject.sub.clone(),
        exp: (now + SERVICE_TOKEN_SECS).min(subject.exp),
        iat: now,
        nbf: now,
        scope: requested.to_owned(),
        client_id: client.id.clone(),
        tenant: subject.tenant.clone(),
        tenants: subject.tenants.clone(),
        roles: subject.roles.clone(),
        act: Some(Actor { sub: client.id.clone() }),
        segment: subject.segment.clone(),
    };
    match identity.sign(&claims) {
        Ok(token) => issued(token, &claims, Some(ACCESS_TOKEN_TYPE)),
        Err(_) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_clients_loopback_redirects_match_on_any_port_others_exactly() {
        let app = client("mobile-app").expect("mobile-app");
        assert!(app.secret.is_none());
        assert!(redirect_uri_allowed(app, "http://127.0.0.1/callback"));
        assert!(redirect_uri_allowed(app, "http://127.0.0.1:41234/callback"));
        assert!(redirect_uri_allowed(app, "com.example.shop:/oauth/callback"));
        assert!(!redirect_uri_allowed(app, "http://127.0.0.1:41234/other"));
        assert!(!redirect_uri_allowed(app, "http://evil.example/callback"));
        assert!(!redirect_uri_allowed(app, "http://127.0.0.1.evil.example/callback"));
    }

    /// What the attacker's run found: web-bff, a confidential client,
    /// accepted its callback on any loopback port, so another local
    /// program could receive its codes.
    #[test]
    fn a_confidential_clients_redirect_uri_matches_exactly() {
        let identity = Identity::new(DEFAULT_ISSUER).expect("keys");
        let web = client("web-bff").expect("web-bff");
        assert!(web.secret.is_some());
        assert!(identity.redirect_uri_allowed(web, "http://127.0.0.1:8080/auth/callback"));
        assert!(identity.redirect_uri_allowed(web, "http://localhost:8080/auth/callback"));
        for refused in [
            "http://127.0.0.1:41234/auth/callback",
            "http://127.0.0.1/auth/callback",
            "http://127.0.0.1:8080/auth/callback/",
            "http://127.0.0.1:8080/auth/callback?x=1",
            "http://127.0.0.1:8080/other",
        ] {
            assert!(!identity.redirect_uri_allowed(web, refused), "{refused}");
        }
        identity.register_redirect_uri("web-bff", "http://127.0.0.1:41234/auth/callback");
        assert!(identity.redirect_uri_allowed(web, "http://127.0.0.1:41234/auth/callback"));
        assert!(!identity.redirect_uri_allowed(web, "http://127.0.0.1:41235/auth/callback"));
        let mobile = client("mobile-bff").expect("mobile-bff");
        assert!(!identity.redirect_uri_allowed(mobile, "http://127.0.0.1:41234/auth/callback"), "per client");
    }

    #[test]
    fn people_are_customers_or_staff() {
        assert_eq!(person("u-1").map(|p| p.roles), Some(vec!["customer"]));
        assert_eq!(person("s-2").map(|p| p.roles), Some(vec!["support"]));
        assert!(person("u-99").is_none());
        assert!(person("x").is_none());
        // The attacker's run minted tokens for these: not seeded names.
        for near_miss in ["u-01", "u-+1", "u-1 ", "u- 1", "u-0"] {
            assert!(person(near_miss).is_none(), "{near_miss:?}");
        }
    }
}
