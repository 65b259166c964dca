//! The identity provider mock: publishes a JWKS and mints ES256 user access
//! tokens with the committed development keys (see `keys/README.md`).
//!
//! Token exchange, client credentials and the authorization-code flow are
//! built on this in a later issue; the key handling here already supports
//! rotation (two published keys, selected by `kid`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::{MockState, Router};

/// The issuer (`iss`) the mock uses unless told otherwise. BFFs default to
/// trusting exactly this issuer.
pub const DEFAULT_ISSUER: &str = "http://localhost:7000";

/// The signing keys, newest first: `(kid, PKCS#8 PEM)`.
const KEYS: [(&str, &str); 2] = [
    ("dev-es256-1", include_str!("../keys/dev-es256-1.pem")),
    ("dev-es256-2", include_str!("../keys/dev-es256-2.pem")),
];

/// The client applications the identity provider knows, one per BFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// The mobile app (PKCE public client), audience `mobile-bff`.
    Mobile,
    /// The web app, audience `web-bff`.
    Web,
    /// A partner integration, audience `partner-bff`.
    Partner,
    /// The back-office app, audience `admin-bff`.
    Admin,
}

impl ClientKind {
    /// Every client kind.
    pub const ALL: [ClientKind; 4] =
        [ClientKind::Mobile, ClientKind::Web, ClientKind::Partner, ClientKind::Admin];

    /// The name used on the command line (`--client mobile`).
    pub const fn name(self) -> &'static str {
        match self {
            ClientKind::Mobile => "mobile",
            ClientKind::Web => "web",
            ClientKind::Partner => "partner",
            ClientKind::Admin => "admin",
        }
    }

    /// The OAuth client id.
    pub const fn client_id(self) -> &'static str {
        match self {
            ClientKind::Mobile => "mobile-app",
            ClientKind::Web => "web-app",
            ClientKind::Partner => "partner-app",
            ClientKind::Admin => "admin-console",
        }
    }

    /// The audience (`aud`) of its tokens: the BFF that serves it.
    pub const fn audience(self) -> &'static str {
        match self {
            ClientKind::Mobile => "mobile-bff",
            ClientKind::Web => "web-bff",
            ClientKind::Partner => "partner-bff",
            ClientKind::Admin => "admin-bff",
        }
    }

    /// The scopes granted to its user tokens.
    pub const fn scope(self) -> &'static str {
        match self {
            ClientKind::Mobile | ClientKind::Web => "openid profile cart catalog orders",
            ClientKind::Partner => "catalog",
            ClientKind::Admin => "openid admin",
        }
    }
}

impl std::str::FromStr for ClientKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| format!("unknown client `{s}` (expected mobile, web, partner or admin)"))
    }
}

/// The claims of a user access token.
#[derive(Debug, Clone, Serialize)]
pub struct UserClaims {
    /// Issuer.
    pub iss: String,
    /// Audience: the BFF the token is for.
    pub aud: String,
    /// The user id.
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
}

struct SigningKey {
    kid: &'static str,
    encoding: EncodingKey,
    jwk: Jwk,
}

/// The identity provider's keys and issuer.
pub struct Identity {
    issuer: String,
    keys: Vec<SigningKey>,
}

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
                Ok(SigningKey { kid, encoding, jwk })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Identity { issuer: issuer.into(), keys })
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The published key set.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.keys.iter().map(|k| k.jwk.clone()).collect() }
    }

    /// Signs any claims with the current key (ES256, `kid` set). Tests use it
    /// to build tokens with chosen defects.
    pub fn sign<C: Serialize>(&self, claims: &C) -> anyhow::Result<String> {
        let key = self.keys.first().context("no signing key")?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.to_owned());
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding).context("signing token")
    }

    /// The claims of a fresh access token for `user` of `client`.
    pub fn user_claims(&self, client: ClientKind, user: &str, ttl: Duration) -> UserClaims {
        let now = now_secs();
        UserClaims {
            iss: self.issuer.clone(),
            aud: client.audience().to_owned(),
            sub: user.to_owned(),
            exp: now + ttl.as_secs(),
            iat: now,
            nbf: now,
            scope: client.scope().to_owned(),
            client_id: client.client_id().to_owned(),
        }
    }

    /// A signed access token for `user` of `client`.
    pub fn user_token(&self, client: ClientKind, user: &str, ttl: Duration) -> anyhow::Result<String> {
        self.sign(&self.user_claims(client, user, ttl))
    }
}

pub(crate) fn routes() -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
}

async fn jwks(State(state): State<MockState>) -> Json<JwkSet> {
    Json(state.identity.jwks())
}

async fn discovery(State(state): State<MockState>) -> Json<serde_json::Value> {
    let issuer = state.identity.issuer();
    Json(serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post"],
    }))
}
