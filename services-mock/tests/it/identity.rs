//! The identity provider's grants and the services' token checks.

use reqwest::StatusCode;
use serde_json::Value;
use services_mock::identity::{ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE, UserClaims, pkce_challenge};
use services_mock::{Fleet, Service};

async fn token_request(fleet: &Fleet, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/oauth/token", fleet.url(Service::Identity)))
        .form(form)
        .send()
        .await
        .expect("identity reachable");
    let status = response.status();
    (status, response.json().await.expect("json body"))
}

fn claims(fleet: &Fleet, token: &str, audience: &str) -> UserClaims {
    fleet.identity().verify(token, audience).expect("a valid token")
}

#[tokio::test]
async fn client_credentials_issue_a_partner_token_and_bad_secrets_are_invalid_client() {
    let fleet = Fleet::start().await.expect("fleet");
    let (status, body) = token_request(
        &fleet,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "partner-acme"),
            ("client_secret", "acme-dev-secret"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = claims(&fleet, body["access_token"].as_str().expect("token"), "partner-bff");
    assert_eq!((token.sub.as_str(), token.tenant.as_deref()), ("partner-acme", Some("acme")));

    let (status, body) = token_request(
        &fleet,
        &[("grant_type", "client_credentials"), ("client_id", "partner-acme"), ("client_secret", "nope")],
    )
    .await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (401, Some("invalid_client")));

    let (status, body) =
        token_request(&fleet, &[("grant_type", "password"), ("client_id", "mobile-app")]).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("unsupported_grant_type")));
}

#[tokio::test]
async fn token_exchange_narrows_to_one_service_with_the_bff_as_actor() {
    let fleet = Fleet::start().await.expect("fleet");
    let user_token = fleet
        .identity()
        .user_token(bff_registry::entry("mobile-bff"), "u-2", std::time::Duration::from_secs(60))
        .expect("token");
    let exchange = |audience: &'static str, subject: String, client: &'static str, secret: &'static str| {
        let fleet = &fleet;
        async move {
            token_request(
                fleet,
                &[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("client_id", client),
                    ("client_secret", secret),
                    ("subject_token", &subject),
                    ("subject_token_type", ACCESS_TOKEN_TYPE),
                    ("audience", audience),
                ],
            )
            .await
        }
    };

    let (status, body) = exchange("cart", user_token.clone(), "mobile-bff", "mobile-bff-dev-secret").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN_TYPE);
    let token = claims(&fleet, body["access_token"].as_str().expect("token"), "cart");
    assert_eq!(token.sub, "u-2");
    assert_eq!(token.act.map(|a| a.sub), Some("mobile-bff".to_owned()));
    assert_eq!(token.scope, "cart:read");

    let (_, body) = exchange("billing", user_token.clone(), "mobile-bff", "mobile-bff-dev-secret").await;
    assert_eq!(body["error"], "invalid_target");
    let (_, body) = exchange("cart", user_token.clone(), "web-bff", "web-bff-dev-secret").await;
    assert_eq!(body["error"], "invalid_grant", "a BFF may only exchange tokens issued to it");
    let (_, body) = exchange("cart", "garbage".to_owned(), "mobile-bff", "mobile-bff-dev-secret").await;
    assert_eq!(body["error"], "invalid_grant");
    let (_, body) = exchange("cart", user_token, "partner-acme", "acme-dev-secret").await;
    assert_eq!(body["error"], "unauthorized_client");
}

#[tokio::test]
async fn authorization_code_with_pkce_round_trip_and_single_use_codes() {
    let fleet = Fleet::start().await.expect("fleet");
    let no_redirects =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let verifier = "a-verifier-that-is-long-enough-to-be-valid-0123456789";
    // web-bff is a confidential client: its callback must be registered
    // exactly, port included.
    let authorize = || {
        no_redirects
            .get(format!("{}/authorize", fleet.url(Service::Identity)))
            .query(&[
                ("response_type", "code"),
                ("client_id", "web-bff"),
                ("redirect_uri", "http://127.0.0.1:9999/auth/callback"),
                ("code_challenge", &pkce_challenge(verifier)),
                ("code_challenge_method", "S256"),
                ("state", "xyz"),
                ("login_hint", "u-3"),
            ])
            .send()
    };
    let unregistered = authorize().await.expect("authorize");
    assert_eq!(unregistered.status(), 400, "never redirected to an unregistered callback");
    fleet.identity().register_redirect_uri("web-bff", "http://127.0.0.1:9999/auth/callback");
    let authorize = authorize().await.expect("authorize");
    assert_eq!(authorize.status(), 303);
    let location = authorize.headers()["location"].to_str().expect("location").to_owned();
    assert!(location.starts_with("http://127.0.0.1:9999/auth/callback?code="), "{location}");
    assert!(location.ends_with("&state=xyz"));
    let code =
        location.split("code=").nth(1).and_then(|rest| rest.split('&').next()).expect("code").to_owned();

    let form = |verifier: &'static str, code: String| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("client_id", "web-bff".to_owned()),
            ("client_secret", "web-bff-dev-secret".to_owned()),
            ("redirect_uri", "http://127.0.0.1:9999/auth/callback".to_owned()),
            ("code", code),
            ("code_verifier", verifier.to_owned()),
        ]
    };
    let wrong = form("wrong-verifier-wrong-verifier-wrong-verifier-wrong", code.clone());
    let pairs: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = token_request(&fleet, &pairs).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")));

    // The failed attempt burnt the code: a correct verifier is now too late.
    let right = form(verifier, code);
    let pairs: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, body) = token_request(&fleet, &pairs).await;
    assert_eq!(body["error"], "invalid_grant");

    let rejected = no_redirects
        .get(format!("{}/authorize", fleet.url(Service::Identity)))
        .query(&[
            ("response_type", "code"),
            ("client_id", "web-bff"),
            ("redirect_uri", "http://evil.example/cb"),
        ])
        .send()
        .await
        .expect("authorize");
    assert_eq!(rejected.status(), 400, "never redirect to an unregistered URI");
}

#[tokio::test]
async fn services_accept_only_tokens_issued_for_them() {
    let fleet = Fleet::start().await.expect("fleet");
    let http = reqwest::Client::new();
    let url = format!("{}/products/p-1", fleet.url(Service::Catalog));
    let user_token = fleet
        .identity()
        .user_token(bff_registry::entry("mobile-bff"), "u-1", std::time::Duration::from_secs(60))
        .expect("token");
    let cases = [
        ("no token", None),
        ("the user's own token", Some(user_token)),
        ("a token for another service", Some(fleet.service_token(Service::Pricing, "u-1", "mobile-bff"))),
    ];
    for (case, token) in cases {
        let mut request = http.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.expect("reachable").status(), 401, "{case}");
    }
    let ok =
        http.get(&url).bearer_auth(fleet.service_token(Service::Catalog, "u-1", "mobile-bff")).send().await;
    assert_eq!(ok.expect("reachable").status(), 200);
}

async fn form_post(fleet: &Fleet, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", fleet.url(Service::Identity)))
        .form(form)
        .send()
        .await
        .expect("identity reachable");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Starts a device authorization for `tv-app`: `(device_code, user_code)`.
async fn start_device(fleet: &Fleet) -> (String, String) {
    let (status, body) = form_post(fleet, "/oauth/device_authorization", &[("client_id", "tv-app")]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["verification_uri"].as_str().is_some_and(|u| u.ends_with("/device")), "{body}");
    assert_eq!(body["interval"], 1);
    let code = |name: &str| body[name].as_str().expect(name).to_owned();
    (code("device_code"), code("user_code"))
}

async fn poll(fleet: &Fleet, device_code: &str) -> (u16, Value) {
    let grant = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
        ("client_id", "tv-app"),
    ];
    token_request_status(fleet, &grant).await
}

async fn token_request_status(fleet: &Fleet, form: &[(&str, &str)]) -> (u16, Value) {
    let (status, body) = token_request(fleet, form).await;
    (status.as_u16(), body)
}

#[tokio::test]
async fn the_device_grant_is_pending_slows_fast_polling_down_and_issues_once_approved() {
    let fleet = Fleet::start_only(&[]).await.expect("identity");
    let (device_code, user_code) = start_device(&fleet).await;
    assert_eq!(user_code.len(), 9, "XXXX-XXXX: {user_code}");
    assert!(user_code.chars().all(|c| c == '-' || "BCDFGHJKLMNPQRSTVWXZ".contains(c)), "{user_code}");

    let (status, body) = poll(&fleet, &device_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("authorization_pending")));
    let (status, body) = poll(&fleet, &device_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("slow_down")), "polled faster than the interval");

    // Another TV, approved before its first poll.
    let (device_code, user_code) = start_device(&fleet).await;
    let approve = [("user_code", user_code.as_str()), ("login_hint", "u-2")];
    assert_eq!(form_post(&fleet, "/device", &approve).await.0, 200);
    let (status, body) = poll(&fleet, &device_code).await;
    assert_eq!(status, 200, "{body}");
    let token = claims(&fleet, body["access_token"].as_str().expect("token"), "tv-bff");
    assert_eq!((token.sub.as_str(), token.client_id.as_str()), ("u-2", "tv-app"));

    let (status, body) = poll(&fleet, &device_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "redeemed once");
}

#[tokio::test]
async fn a_denied_or_expired_device_code_is_refused_with_its_reason() {
    let fleet = Fleet::start_only(&[]).await.expect("identity");
    let (device_code, user_code) = start_device(&fleet).await;
    let deny = [("user_code", user_code.as_str()), ("action", "deny")];
    assert_eq!(form_post(&fleet, "/device", &deny).await.0, 200);
    let (status, body) = poll(&fleet, &device_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("access_denied")));

    fleet.identity().set_device_code_lifetime(std::time::Duration::from_millis(50));
    let (device_code, user_code) = start_device(&fleet).await;
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    let (status, body) = poll(&fleet, &device_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("expired_token")));
    let late = [("user_code", user_code.as_str()), ("login_hint", "u-1")];
    assert_eq!(form_post(&fleet, "/device", &late).await.0, 404, "an expired code cannot be approved");

    let (status, body) =
        form_post(&fleet, "/oauth/device_authorization", &[("client_id", "mobile-app")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
}

#[tokio::test]
async fn a_bff_gets_its_own_service_token_and_a_partner_cannot_pick_an_audience() {
    let fleet = Fleet::start_only(&[]).await.expect("identity");
    let (status, body) = token_request_status(
        &fleet,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "tv-bff"),
            ("client_secret", "tv-bff-dev-secret"),
            ("audience", "catalog"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = claims(&fleet, body["access_token"].as_str().expect("token"), "catalog");
    assert_eq!((token.sub.as_str(), token.scope.as_str()), ("tv-bff", "catalog:read"));
    assert!(token.act.is_none(), "nobody acts for anybody: the BFF is the subject");

    let (status, body) = token_request_status(
        &fleet,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "partner-acme"),
            ("client_secret", "acme-dev-secret"),
            ("audience", "catalog"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")));
}
