//! RFC 8725-hardened verification, one defect at a time.

use bff_auth::AuthError;
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
