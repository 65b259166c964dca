//! bff-auth on its own: the verifier against a JWKS, the middleware on a
//! minimal router (`oneshot`, no network), token exchange and the identity
//! provider's guard against a token endpoint that answers exactly what a
//! test needs (`wiremock`). Tokens are signed with the identity mock's real
//! development keys.

mod exchange;
mod middleware;
mod verifier;

use std::time::Duration;

use bff_auth::{AuthConfig, JwtVerifier};
use services_mock::identity::{DEFAULT_ISSUER, Identity, UserClaims};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The identity mock's keys, to sign tokens with.
pub(crate) fn identity() -> Identity {
    Identity::new(DEFAULT_ISSUER).expect("development keys")
}

/// Fresh claims of a mobile user token (audience `mobile-bff`).
pub(crate) fn claims(identity: &Identity) -> UserClaims {
    identity.user_claims(bff_registry::entry("mobile-bff"), "u-1", Duration::from_secs(300))
}

/// A JWKS endpoint serving the identity mock's keys, counting its calls.
pub(crate) async fn jwks_server(identity: &Identity) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(identity.jwks()))
        .mount(&server)
        .await;
    server
}

/// A verifier for `mobile-bff` against `server`'s JWKS.
pub(crate) fn verifier(server: &MockServer) -> JwtVerifier {
    let config = AuthConfig {
        jwks_url: format!("{}/jwks.json", server.uri()),
        jwks_refresh_cooldown_secs: 60,
        ..AuthConfig::local("mobile-bff")
    };
    JwtVerifier::new(config).expect("valid settings")
}

/// How many requests `server` received for `route`.
pub(crate) async fn calls(server: &MockServer, route: &str) -> usize {
    server.received_requests().await.unwrap_or_default().iter().filter(|r| r.url.path() == route).count()
}
