//! Bearer-token authentication: every bad token is a 401 problem with a
//! challenge, and nothing reaches any downstream service.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use services_mock::Service;
use services_mock::identity::now_secs;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const ATTACKER_KEY: &str = include_str!("fixtures/attacker-es256.pem");

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

fn valid_claims(app: &TestApp) -> Value {
    let claims =
        app.fleet.identity().user_claims(mobile_bff::ENTRY, "u-1", std::time::Duration::from_secs(300));
    serde_json::to_value(claims).expect("claims")
}

/// Signs `claims` with the real key (so only the defect under test is wrong).
fn signed(app: &TestApp, claims: &Value) -> String {
    app.fleet.identity().sign(claims).expect("sign")
}

fn signed_with(key: &EncodingKey, header: Header, claims: &Value) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn es256_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    header.typ = Some("at+jwt".to_owned());
    header
}

async fn assert_rejected(app: &TestApp, case: &str, token: Option<&str>, headers: &[(&str, &str)]) {
    let reply = app.get_with("/v1/home", token, headers).await;
    assert_eq!(reply.status, 401, "{case}: {}", reply.text);
    reply.assert_problem(401, "auth.invalid_token");
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{case}: challenge {challenge:?}");
}

#[tokio::test]
async fn bad_tokens_are_refused_and_nothing_is_forwarded() {
    let app = spawn_app().await;
    let now = now_secs();
    let claims = valid_claims(&app);
    let with = |patch: Value| {
        let mut claims = claims.clone();
        for (key, value) in patch.as_object().expect("object") {
            if value.is_null() {
                claims.as_object_mut().expect("object").remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        claims
    };

    assert_rejected(&app, "missing", None, &[]).await;
    assert_rejected(&app, "not bearer", None, &[("authorization", "Basic dTE6cGFzcw==")]).await;
    assert_rejected(&app, "garbage", Some("not.a.jwt"), &[]).await;

    let expired = signed(&app, &with(json!({"exp": now - 120, "iat": now - 600, "nbf": now - 600})));
    assert_rejected(&app, "expired beyond leeway", Some(&expired), &[]).await;
    let future = signed(&app, &with(json!({"nbf": now + 600})));
    assert_rejected(&app, "nbf in the future", Some(&future), &[]).await;
    let no_exp = signed(&app, &with(json!({"exp": null})));
    assert_rejected(&app, "missing exp", Some(&no_exp), &[]).await;
    let wrong_issuer = signed(&app, &with(json!({"iss": "http://evil.example"})));
    assert_rejected(&app, "wrong issuer", Some(&wrong_issuer), &[]).await;
    let web_token = app
        .fleet
        .identity()
        .user_token(bff_registry::entry("web-bff"), "u-1", std::time::Duration::from_secs(300))
        .expect("token");
    assert_rejected(&app, "wrong audience (a web-bff token)", Some(&web_token), &[]).await;

    let attacker = EncodingKey::from_ec_pem(ATTACKER_KEY.as_bytes()).expect("attacker key");
    let forged = signed_with(&attacker, es256_header("dev-es256-1"), &claims);
    assert_rejected(&app, "signed by another key under our kid", Some(&forged), &[]).await;

    let valid = signed(&app, &claims);
    let mut parts: Vec<&str> = valid.split('.').collect();
    let tampered_payload = b64(&with(json!({"sub": "u-2"})));
    parts[1] = &tampered_payload;
    assert_rejected(&app, "payload changed after signing", Some(&parts.join(".")), &[]).await;

    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(&json!({"alg": alg, "typ": "at+jwt", "kid": "dev-es256-1"}));
        let token = format!("{header}.{}.", b64(&claims));
        assert_rejected(&app, &format!("alg {alg}"), Some(&token), &[]).await;
    }

    // HS256 "signed" with the public key: the classic algorithm confusion.
    let jwks = app.fleet.identity().jwks();
    let public = serde_json::to_vec(&jwks.keys[0]).expect("jwk");
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("dev-es256-1".to_owned());
    hs_header.typ = Some("at+jwt".to_owned());
    let confused = signed_with(&EncodingKey::from_secret(&public), hs_header, &claims);
    assert_rejected(&app, "HS256 with the public key", Some(&confused), &[]).await;

    let mut jku = es256_header("dev-es256-1");
    jku.jku = Some(format!("{}/.well-known/jwks.json", app.fleet.url(Service::Catalog)));
    let with_jku = signed_with(&attacker, jku, &claims);
    assert_rejected(&app, "jku pointing at loopback", Some(&with_jku), &[]).await;

    let long_kid = signed_with(&attacker, es256_header(&"k".repeat(500)), &claims);
    assert_rejected(&app, "oversized kid", Some(&long_kid), &[]).await;
    let path_kid = signed_with(&attacker, es256_header("../../etc/passwd"), &claims);
    assert_rejected(&app, "path-like kid", Some(&path_kid), &[]).await;

    assert_eq!(app.fleet.domain_requests().await.expect("stats"), 0, "a rejected caller reached a service");
}

#[tokio::test]
async fn unknown_key_ids_refresh_the_jwks_at_most_once_per_cooldown() {
    let app = spawn_app_with(|config| config.auth.jwks_refresh_cooldown_secs = 1).await;
    // The start-up fetch is done once a request passes; let its cool-down end.
    assert_eq!(app.get("/v1/home").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let jwks_fetches = || async {
        let stats = app.fleet.stats(Service::Identity).await.expect("stats");
        stats["routes"]["GET /.well-known/jwks.json"].as_u64().unwrap_or(0)
    };
    let before = jwks_fetches().await;
    let attacker = EncodingKey::from_ec_pem(ATTACKER_KEY.as_bytes()).expect("attacker key");
    let claims = valid_claims(&app);
    for n in 0..10 {
        let token = signed_with(&attacker, es256_header(&format!("unknown-{n}")), &claims);
        assert_rejected(&app, "unknown kid", Some(&token), &[]).await;
    }
    let fetches = jwks_fetches().await - before;
    assert_eq!(fetches, 1, "10 unknown kids within the cool-down cause exactly one JWKS refresh");
}

#[tokio::test]
async fn tokens_signed_with_either_published_key_are_accepted() {
    let app = spawn_app().await;
    let claims = valid_claims(&app);
    let rotated = app.fleet.identity().sign_with("dev-es256-2", &claims).expect("sign with the second key");
    let reply = app.get_with("/v1/home", Some(&rotated), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}
