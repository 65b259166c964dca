//! RFC 8725-hardened verification, one defect at a time.

use bff_auth::{AuthConfig, AuthError, JwtVerifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::{calls, claims, identity, jwks_server, verifier};

#[tokio::test]
async fn a_valid_token_gives_its_caller_and_private_claims_uninterpreted() {
    let identity = identity();
    let server = jwks_server(&identity).await;
    let verifier = verifier(&server);
    let caller = verifier.verify(&identity.sign(&claims(&identity)).expect("sign")).await.expect("valid");
    assert_eq!(caller.subject, "u-1");
    assert_eq!(caller.client_id.as_deref(), Some("mobile-app"));
    assert_eq!(caller.claim("segment"), Some("frequent"), "a private claim, passed on as is");
    assert_eq!(caller.claim("iss"), None, "registered claims are not 'other' claims");
}

#[tokio::test]
async fn each_defect_is_refused_with_its_own_reason() {
    let identity = identity();
    let server = jwks_server(&identity).await;
    let verifier = verifier(&server);
    let sign = |edit: &dyn Fn(&mut services_mock::identity::UserClaims)| {
        let mut claims = claims(&identity);
        edit(&mut claims);
        identity.sign(&claims).expect("sign")
    };
    let expired = sign(&|c| {
        c.exp = 1_000;
        c.iat = 900;
        c.nbf = 900;
    });
    assert!(matches!(verifier.verify(&expired).await, Err(AuthError::Expired)));
    let foreign = sign(&|c| c.aud = "admin-bff".to_owned());
    match verifier.verify(&foreign).await {
        Err(error @ AuthError::WrongAudience { .. }) => assert_eq!(error.foreign_subject(), Some("u-1")),
        other => panic!("expected a wrong audience, got {other:?}"),
    }
    let other_issuer = sign(&|c| c.iss = "https://evil.example".to_owned());
    assert!(matches!(verifier.verify(&other_issuer).await, Err(AuthError::WrongIssuer)));

    let good = identity.sign(&claims(&identity)).expect("sign");
    let (head, rest) = good.split_once('.').expect("a JWT");
    let (body, signature) = rest.split_once('.').expect("a JWT");
    let mut bad_signature = signature.chars().collect::<Vec<_>>();
    bad_signature[5] = if bad_signature[5] == 'A' { 'B' } else { 'A' };
    let forged = format!("{head}.{body}.{}", bad_signature.into_iter().collect::<String>());
    assert!(matches!(verifier.verify(&forged).await, Err(AuthError::BadSignature)));

    // HS256 signed with the public JWKS as the secret: refused by algorithm.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("dev-es256-1".to_owned());
    header.typ = Some("at+jwt".to_owned());
    let hmac = jsonwebtoken::encode(&header, &claims(&identity), &EncodingKey::from_secret(b"public"))
        .expect("encode");
    assert!(matches!(verifier.verify(&hmac).await, Err(AuthError::DisallowedAlgorithm(Algorithm::HS256))));
    assert!(matches!(verifier.verify("not.a.jwt").await, Err(AuthError::Malformed(_))));
}

#[tokio::test]
async fn unknown_key_ids_refresh_the_jwks_at_most_once_per_cooldown() {
    let identity = identity();
    let server = jwks_server(&identity).await;
    let verifier = verifier(&server);
    verifier.refresh().await.expect("keys");
    assert_eq!(calls(&server, "/jwks.json").await, 1);
    // A real token whose header names a key the JWKS does not have.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = identity.sign(&claims(&identity)).expect("sign");
    let (head, rest) = token.split_once('.').expect("a JWT");
    let mut header: serde_json::Value =
        serde_json::from_slice(&b64.decode(head).expect("b64")).expect("json");
    header["kid"] = "rotated-away".into();
    let unknown = format!("{}.{rest}", b64.encode(serde_json::to_vec(&header).expect("json")));
    for _ in 0..5 {
        assert!(matches!(verifier.verify(&unknown).await, Err(AuthError::UnknownKey(_))));
    }
    assert_eq!(calls(&server, "/jwks.json").await, 1, "within the cool-down no refresh is repeated");
}

#[tokio::test]
async fn a_header_with_critical_extensions_is_refused_though_signed() {
    let identity = identity();
    let server = jwks_server(&identity).await;
    let verifier = verifier(&server);
    let kid = identity.current_kid().expect("a key");
    for critical in [vec!["exp-ext".to_owned()], vec![]] {
        let token = identity
            .sign_with_header(kid, |header| header.crit = Some(critical.clone()), &claims(&identity))
            .expect("sign");
        match verifier.verify(&token).await {
            Err(AuthError::CriticalExtension(named)) => assert_eq!(named, critical),
            other => panic!("expected the crit header to be refused, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_token_meant_to_outlive_the_maximum_is_refused() {
    let identity = identity();
    let server = jwks_server(&identity).await;
    let verifier = verifier(&server);
    let max = AuthConfig::default().max_token_lifetime_secs;
    // A year-long token, and one with no `iat` to measure from.
    let mut year = claims(&identity);
    year.exp = year.iat + 365 * 24 * 3600;
    let token = identity.sign(&year).expect("sign");
    match verifier.verify(&token).await {
        Err(AuthError::TooLongLived { lifetime_secs, max_secs }) => {
            assert_eq!((lifetime_secs, max_secs), (365 * 24 * 3600, max));
        }
        other => panic!("expected a too-long-lived token to be refused, got {other:?}"),
    }
    let mut no_iat = serde_json::to_value(claims(&identity)).expect("json");
    no_iat["exp"] = (year.iat + 2 * max).into();
    no_iat.as_object_mut().expect("object").remove("iat");
    let token = identity.sign(&no_iat).expect("sign");
    assert!(matches!(verifier.verify(&token).await, Err(AuthError::TooLongLived { .. })));
    // Exactly the maximum is fine.
    let mut longest = claims(&identity);
    longest.exp = longest.iat + max;
    assert!(verifier.verify(&identity.sign(&longest).expect("sign")).await.is_ok());
}

#[tokio::test]
async fn a_token_for_several_audiences_is_refused_unless_allowed() {
    let identity = identity();
    let server = jwks_server(&identity).await;
    let mut shared = serde_json::to_value(claims(&identity)).expect("json");
    shared["aud"] = serde_json::json!(["mobile-bff", "web-bff"]);
    let token = identity.sign(&shared).expect("sign");
    assert!(matches!(verifier(&server).verify(&token).await, Err(AuthError::SeveralAudiences(2))));
    let lenient = JwtVerifier::new(AuthConfig {
        jwks_url: format!("{}/jwks.json", server.uri()),
        allow_multiple_audiences: true,
        ..AuthConfig::local("mobile-bff")
    })
    .expect("valid settings");
    assert_eq!(lenient.verify(&token).await.expect("allowed").subject, "u-1");
    // A one-element list is one audience.
    shared["aud"] = serde_json::json!(["mobile-bff"]);
    let token = identity.sign(&shared).expect("sign");
    assert!(verifier(&server).verify(&token).await.is_ok());
}

/// `bff_auth_token_verifications_total{result}` so far (the recorder is
/// shared by this binary's tests: compare growth).
fn verifications(result: &str) -> f64 {
    let text = bff_telemetry::metrics::render();
    let prefix = format!("bff_auth_token_verifications_total{{result=\"{result}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)?.parse().ok()).unwrap_or(0.0)
}

/// A token seen before is answered from memory (same caller), and a forged
/// copy of it is not: other bytes, a full check, a bad signature.
#[tokio::test]
async fn a_verified_token_is_remembered_and_a_forged_copy_is_not() {
    bff_telemetry::metrics::install();
    let identity = identity();
    let server = jwks_server(&identity).await;
    let verifier = verifier(&server);
    verifier.refresh().await.expect("keys, as at start-up");
    let token = identity.sign(&claims(&identity)).expect("sign");
    let first = verifier.verify(&token).await.expect("valid");
    let cached_before = verifications("cached");
    let again = verifier.verify(&token).await.expect("still valid");
    assert_eq!(again, first);
    assert!(
        verifications("cached") >= cached_before + 1.0,
        "the second check is answered from memory: {}",
        bff_telemetry::metrics::render()
    );

    let (rest, signature) = token.rsplit_once('.').expect("a JWT");
    let mut bad = signature.chars().collect::<Vec<_>>();
    bad[5] = if bad[5] == 'A' { 'B' } else { 'A' };
    let forged = format!("{rest}.{}", bad.into_iter().collect::<String>());
    assert!(matches!(verifier.verify(&forged).await, Err(AuthError::BadSignature)));
}

/// A remembered token is never accepted from its `exp` on.
#[tokio::test]
async fn a_remembered_token_expires_at_its_exp() {
    let identity = identity();
    let server = jwks_server(&identity).await;
    let config = AuthConfig {
        jwks_url: format!("{}/jwks.json", server.uri()),
        leeway_secs: 0,
        ..AuthConfig::local("mobile-bff")
    };
    let verifier = JwtVerifier::new(config).expect("valid settings");
    verifier.refresh().await.expect("keys, as at start-up");
    let mut short = claims(&identity);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    short.exp = now + 1;
    let token = identity.sign(&short).expect("sign");
    verifier.verify(&token).await.expect("valid now");
    verifier.verify(&token).await.expect("remembered");
    // A full check accepts the second of `exp` itself; from the next one
    // on, only a cache that ignored `exp` would still say yes.
    while std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
        < now + 2
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let after = verifier.verify(&token).await;
    assert!(matches!(after, Err(AuthError::Expired)), "expired, though remembered: {after:?}");
}

/// Rotating a key away (or revoking it) and fetching the key set again
/// forgets every verification made with it.
#[tokio::test]
async fn a_key_rotated_away_takes_its_remembered_tokens_with_it() {
    let identity = identity();
    let server = jwks_server(&identity).await;
    let verifier = verifier(&server);
    let token = identity.sign(&claims(&identity)).expect("sign");
    verifier.verify(&token).await.expect("valid");
    // The provider now publishes another key only.
    let mut rotated = serde_json::to_value(identity.jwks()).expect("json");
    for key in rotated["keys"].as_array_mut().expect("keys") {
        key["kid"] = "dev-es256-next".into();
    }
    server.reset().await;
    wiremock::Mock::given(wiremock::matchers::path("/jwks.json"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(rotated))
        .mount(&server)
        .await;
    verifier.refresh().await.expect("the new key set");
    assert!(matches!(verifier.verify(&token).await, Err(AuthError::UnknownKey(_))), "not served from memory");
}
