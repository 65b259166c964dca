//! web-bff integration tests: the whole login flow over real HTTP against
//! the identity mock, sealed cookies, CSRF and CORS.

mod pacts;

use bff_testkit::{Reply, TestApp};
use serde_json::Value;
use services_mock::Service;

const ORIGIN: &str = "http://127.0.0.1:8080";

async fn spawn_app() -> TestApp {
    bff_testkit::spawn(web_bff::bff(), |_| {}).await
}

fn set_cookies(reply: &Reply) -> Vec<String> {
    reply.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
}

/// `name=value` of the Set-Cookie for `name`.
fn cookie_pair(reply: &Reply, name: &str) -> String {
    set_cookies(reply)
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", set_cookies(reply)))
}

async fn get(app: &TestApp, url: &str, cookie: Option<&str>) -> Reply {
    let mut request = app.http.get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    Reply::read(request.send().await.expect("reachable")).await
}

/// Logs `user` in through the real flow; returns the session cookie pair.
async fn log_in(app: &TestApp, user: &str) -> String {
    let callback = log_in_to(app, user, "/account").await;
    assert_eq!(callback.header("location"), Some("/account"));
    cookie_pair(&callback, "__Host-session")
}

/// The real flow with `return_to` (as it appears in the query string);
/// returns the callback's answer.
async fn log_in_to(app: &TestApp, user: &str, return_to: &str) -> Reply {
    let login =
        get(app, &format!("{}/auth/login?return_to={return_to}&login_hint={user}", app.base), None).await;
    assert_eq!(login.status, 303, "{}", login.text);
    let to_identity = login.header("location").expect("redirect to the identity provider").to_owned();
    assert!(
        to_identity.starts_with(&format!("{}/authorize?", app.fleet.url(Service::Identity))),
        "{to_identity}"
    );
    assert!(to_identity.contains("code_challenge_method=S256") && to_identity.contains("client_id=web-bff"));
    let login_cookie = cookie_pair(&login, "__Host-login");

    let at_identity = get(app, &to_identity, None).await;
    assert_eq!(at_identity.status, 303, "{}", at_identity.text);
    let back = at_identity.header("location").expect("redirect back").to_owned();
    assert!(back.starts_with(&format!("{}/auth/callback?code=", app.base)), "{back}");

    let callback = get(app, &back, Some(&login_cookie)).await;
    assert_eq!(callback.status, 303, "{}", callback.text);
    callback
}

#[tokio::test]
async fn a_login_lands_on_a_real_page_that_names_the_user_not_on_a_404() {
    let app = spawn_app().await;
    let callback = log_in_to(&app, "u-2", "").await;
    assert_eq!(callback.header("location"), Some("/"), "no return_to: the landing page");
    let session = cookie_pair(&callback, "__Host-session");

    let page = get(&app, &format!("{}/", app.base), Some(&session)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.header("cache-control").is_some_and(|c| c.contains("no-store")), "it names the user");
    assert!(page.text.contains(r#"Signed in as <span id="subject">u-2</span>"#), "{}", page.text);
    assert!(page.text.contains(r#"href="/v1/home""#), "{}", page.text);
    // Local development (a loopback BFF): the dev console is one click away.
    assert!(page.text.contains("http://127.0.0.1:7100/?client=web"), "{}", page.text);

    // No session, an expired or a forged one: the page says so, never a 500.
    let anonymous = get(&app, &format!("{}/", app.base), None).await;
    assert_eq!(anonymous.status, 200, "{}", anonymous.text);
    assert!(anonymous.text.contains("Not signed in") && anonymous.text.contains(r#"href="/auth/login""#));
    let forged = get(&app, &format!("{}/", app.base), Some("__Host-session=not-sealed-by-us")).await;
    assert_eq!(forged.status, 200, "{}", forged.text);
    assert!(forged.text.contains("Not signed in"), "{}", forged.text);
}

#[tokio::test]
async fn a_deployed_landing_page_says_nothing_of_local_tooling() {
    // Production, with every development value replaced (else it would not start).
    let app = bff_testkit::spawn(web_bff::bff(), |config| {
        config.server.environment = Some(bff_server::Environment::Production);
        config.auth.issuer = "https://id.example.test".to_owned();
        config.auth.exchange.client_secret = bff_auth::Secret::new("a-deployed-secret-of-some-length");
        // 64 bytes (0, 1, ..., 63): a key of the right shape, not the public development one.
        config.session.cookie_key = bff_auth::Secret::new(
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==",
        );
        config.cache.encryption_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned();
    })
    .await;
    let page = get(&app, &format!("{}/", app.base), None).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Not signed in"), "{}", page.text);
    assert!(!page.text.contains("7100") && !page.text.contains("xtask"), "{}", page.text);
}

#[tokio::test]
async fn a_login_never_returns_to_another_origin() {
    let app = spawn_app().await;
    // The attacker's run: `/%09/evil.example` came back as `Location: /\t/evil.example`,
    // which a browser reads as `//evil.example`; with `%0d` there was no Location at all.
    for return_to in [
        "/%09/evil.example",
        "/%0d%0aevil",
        "/%252F%252Fevil.example",
        "/.//evil.example",
        "%2F%2Fevil.example",
    ] {
        let callback = log_in_to(&app, "u-2", return_to).await;
        assert_eq!(callback.header("location"), Some("/"), "return_to={return_to}");
        cookie_pair(&callback, "__Host-session");
    }
    let callback = log_in_to(&app, "u-2", "/orders%3Fpage%3D2").await;
    assert_eq!(callback.header("location"), Some("/orders?page=2"));
}

#[tokio::test]
async fn login_round_trip_sets_an_exact_sealed_cookie_that_opens_the_home_page() {
    let app = spawn_app().await;
    let login = get(&app, &format!("{}/auth/login", app.base), None).await;
    let login_cookie =
        set_cookies(&login).into_iter().find(|c| c.starts_with("__Host-login=")).expect("login cookie");
    let attributes: Vec<&str> = login_cookie.split("; ").skip(1).collect();
    assert_eq!(attributes, ["Path=/", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age=600"]);

    let session = log_in(&app, "u-2").await;
    let value = session.trim_start_matches("__Host-session=");
    // A JWT starts with its header, `{"typ":"at+jwt",...` in base64url. (Only
    // that long prefix: three random base64 characters such as `eyJ` turn
    // up in a sealed value now and then.)
    assert!(!value.contains("eyJ0eXAiOiJhdCtqd3Qi"), "the token must not be readable in the cookie");

    let home = get(&app, &format!("{}/v1/home", app.base), Some(&session)).await;
    assert_eq!(home.status, 200, "{}", home.text);
    assert_eq!(home.header("cache-control"), Some("private, no-store"), "a personal page");
    let body = home.json();
    assert_eq!(body["degraded"], false, "{body}");
    assert_eq!(body["data"]["greeting"], "Welcome back, Grace");
    assert_eq!(body["data"]["recommendations"].as_array().map(Vec::len), Some(12));
    assert_eq!(body["data"]["recentOrders"].as_array().map(Vec::len), Some(1));
    for component in ["profile", "cart", "recommendations", "promotions", "shipping", "orders"] {
        assert_eq!(body["components"][component]["status"], "ok", "{component}");
    }

    // Downstream got exchanged tokens for the user, acted by web-bff.
    let stats = app.fleet.stats(Service::Cart).await.expect("stats");
    assert_eq!(stats["recent"][0]["token"]["sub"], "u-2");
    assert_eq!(stats["recent"][0]["token"]["act"]["sub"], "web-bff");
    assert_eq!(stats["recent"][0]["token"]["aud"], "cart");
}

#[tokio::test]
async fn the_callback_sets_the_session_cookie_with_exact_attributes_and_clears_the_login() {
    let app = spawn_app().await;
    let login = get(&app, &format!("{}/auth/login", app.base), None).await;
    let login_cookie = cookie_pair(&login, "__Host-login");
    let at_identity = get(&app, login.header("location").expect("location"), None).await;
    let callback = get(&app, at_identity.header("location").expect("location"), Some(&login_cookie)).await;
    let cookies = set_cookies(&callback);
    let session = cookies.iter().find(|c| c.starts_with("__Host-session=")).expect("session cookie");
    let attributes: Vec<&str> = session.split("; ").skip(1).collect();
    assert_eq!(attributes[..4], ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"]);
    let max_age: u64 = attributes[4].strip_prefix("Max-Age=").and_then(|v| v.parse().ok()).expect("Max-Age");
    assert!((800..=900).contains(&max_age), "the session lasts as long as the token: {max_age}");
    assert!(!session.contains("Domain="), "__Host- cookies have no Domain");
    assert!(cookies.iter().any(|c| c == "__Host-login=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"));
}

#[tokio::test]
async fn tampered_missing_or_foreign_sessions_are_401() {
    let app = spawn_app().await;
    let session = log_in(&app, "u-1").await;
    let mut bytes = session.into_bytes();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).expect("ascii");
    let url = format!("{}/v1/home", app.base);
    get(&app, &url, Some(&tampered)).await.assert_problem(401, "auth.invalid_token");
    get(&app, &url, None).await.assert_problem(401, "auth.invalid_token");
    // A bearer token is not a session: the browser path takes cookies only.
    let bearer = app.get_with("/v1/home", Some(&app.token("u-1")), &[]).await;
    bearer.assert_problem(401, "auth.invalid_token");
    assert_eq!(app.fleet.domain_requests().await.expect("stats"), 0);
}

#[tokio::test]
async fn a_forged_or_replayed_callback_is_refused() {
    let app = spawn_app().await;
    let login = get(&app, &format!("{}/auth/login", app.base), None).await;
    let login_cookie = cookie_pair(&login, "__Host-login");
    let at_identity = get(&app, login.header("location").expect("location"), None).await;
    let back = at_identity.header("location").expect("location").to_owned();
    let wrong_state = back.split("&state=").next().map(|b| format!("{b}&state=forged")).expect("url");
    get(&app, &wrong_state, Some(&login_cookie)).await.assert_problem(400, "request.invalid");
    get(&app, &back, None).await.assert_problem(400, "request.invalid");
}

async fn logout(app: &TestApp, session: &str, origin: Option<&str>, csrf: Option<&str>) -> Reply {
    let mut request = app.http.post(format!("{}/auth/logout", app.base)).header("cookie", session);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    Reply::read(request.send().await.expect("reachable")).await
}

#[tokio::test]
async fn writes_need_an_allowed_origin_and_the_session_csrf_token() {
    let app = spawn_app().await;
    let session = log_in(&app, "u-1").await;
    let info = get(&app, &format!("{}/auth/session", app.base), Some(&session)).await.json();
    let csrf = info["csrfToken"].as_str().expect("csrf token").to_owned();

    logout(&app, &session, Some(ORIGIN), None).await.assert_problem(403, "auth.forbidden");
    logout(&app, &session, Some(ORIGIN), Some("guess")).await.assert_problem(403, "auth.forbidden");
    logout(&app, &session, Some("https://evil.example"), Some(&csrf))
        .await
        .assert_problem(403, "auth.forbidden");
    logout(&app, &session, None, Some(&csrf)).await.assert_problem(403, "auth.forbidden");

    let done = logout(&app, &session, Some(ORIGIN), Some(&csrf)).await;
    assert_eq!(done.status, 204, "{}", done.text);
    assert_eq!(set_cookies(&done), ["__Host-session=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"]);
}

#[tokio::test]
async fn cors_allows_listed_origins_with_credentials_and_nobody_else() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, format!("{}/v1/home", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let allowed = Reply::read(preflight(ORIGIN).await.expect("reachable")).await;
    assert_eq!(allowed.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(allowed.header("access-control-allow-credentials"), Some("true"));
    let foreign = Reply::read(preflight("https://evil.example").await.expect("reachable")).await;
    assert_eq!(foreign.header("access-control-allow-origin"), None);
}

/// `POST /v1/cart/items` with a session, the allowed Origin and its CSRF token.
async fn add_to_cart(app: &TestApp, session: &str, csrf: &str, key: Option<&str>, body: &str) -> Reply {
    let mut request = app
        .http
        .post(format!("{}/v1/cart/items", app.base))
        .header("cookie", session)
        .header("origin", ORIGIN)
        .header("x-csrf-token", csrf)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    Reply::read(request.send().await.expect("reachable")).await
}

async fn cart_writes(app: &TestApp) -> u64 {
    let stats = app.fleet.stats(Service::Cart).await.expect("stats");
    stats["routes"]["POST /carts/{user}/items"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn adding_to_the_cart_is_idempotent_per_key_and_refuses_a_reused_key() {
    let app = spawn_app().await;
    let session = log_in(&app, "u-2").await;
    let info = get(&app, &format!("{}/auth/session", app.base), Some(&session)).await.json();
    let csrf = info["csrfToken"].as_str().expect("csrf token").to_owned();
    let one = r#"{"productId":"p-1","quantity":1}"#;

    let added = add_to_cart(&app, &session, &csrf, Some("key-0000-0001"), one).await;
    assert_eq!(added.status, 201, "{}", added.text);
    // u-2's seeded cart has two lines; the answer has the new one too.
    assert_eq!(added.json()["lineCount"], 3);

    // A retry with the same key and body gets the same answer, and says so.
    let retried = add_to_cart(&app, &session, &csrf, Some("key-0000-0001"), one).await;
    assert_eq!((retried.status, retried.json()), (added.status, added.json()));
    assert_eq!(retried.header("idempotent-replayed"), Some("true"));

    // The same key for another write is refused, and says why.
    let other = r#"{"productId":"p-3","quantity":2}"#;
    add_to_cart(&app, &session, &csrf, Some("key-0000-0001"), other)
        .await
        .assert_problem(422, "idempotency.key_reused");
    // The BFF answered the replay and the reused key itself.
    assert_eq!(cart_writes(&app).await, 1, "one write reached the cart service");
}

/// `POST /v1/orders` with a session, the allowed Origin and its CSRF token.
async fn place_order(app: &TestApp, session: &str, csrf: &str, key: &str, body: &str) -> Reply {
    let request = app
        .http
        .post(format!("{}/v1/orders", app.base))
        .header("cookie", session)
        .header("origin", ORIGIN)
        .header("x-csrf-token", csrf)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_owned());
    Reply::read(request.send().await.expect("reachable")).await
}

#[tokio::test]
async fn an_order_placed_on_the_web_is_its_shoppers_alone() {
    let app = spawn_app().await;
    let (ada, grace) = (log_in(&app, "u-2").await, log_in(&app, "u-3").await);
    let csrf_of = |info: Value| info["csrfToken"].as_str().expect("csrf token").to_owned();
    let ada_csrf = csrf_of(get(&app, &format!("{}/auth/session", app.base), Some(&ada)).await.json());
    let order = r#"{"items":[{"productId":"p-2","quantity":1}]}"#;

    let placed = place_order(&app, &ada, &ada_csrf, "web-order-0001", order).await;
    assert_eq!(placed.status, 201, "{}", placed.text);
    let id = placed.json()["id"].as_str().expect("id").to_owned();
    let replay = place_order(&app, &ada, &ada_csrf, "web-order-0001", order).await;
    assert_eq!((replay.status, replay.json()["id"].clone()), (placed.status, placed.json()["id"].clone()));
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let stats = app.fleet.stats(Service::Orders).await.expect("stats");
    assert_eq!(stats["routes"]["POST /orders"], 1, "one order reached the service");

    // Newest first: the placed order heads Ada's history and her home page.
    let history = get(&app, &format!("{}/v1/orders?limit=1", app.base), Some(&ada)).await;
    assert_eq!(history.status, 200, "{}", history.text);
    assert_eq!(history.json()["orders"][0]["id"], id.as_str());
    assert!(history.json()["nextCursor"].is_string(), "u-2 has a seeded order too");
    let home = get(&app, &format!("{}/v1/home", app.base), Some(&ada)).await;
    assert_eq!(home.json()["data"]["recentOrders"][0]["id"], id.as_str());

    // Grace, another real shopper, cannot tell Ada's order from no order.
    let mine = get(&app, &format!("{}/v1/orders/{id}", app.base), Some(&ada)).await;
    assert_eq!(mine.status, 200);
    let hers = get(&app, &format!("{}/v1/orders/{id}", app.base), Some(&grace)).await;
    let none = get(&app, &format!("{}/v1/orders/ord-999999", app.base), Some(&grace)).await;
    hers.assert_problem(404, "resource.not_found");
    assert_eq!((hers.status, &hers.text), (none.status, &none.text), "the same answer");
    // Nor use Ada's cursor.
    let cursor = history.json()["nextCursor"].as_str().expect("cursor").to_owned();
    get(&app, &format!("{}/v1/orders?cursor={cursor}", app.base), Some(&grace))
        .await
        .assert_problem(400, "request.invalid");
}

#[tokio::test]
async fn a_bad_write_is_refused_before_reaching_the_cart() {
    let app = spawn_app().await;
    let session = log_in(&app, "u-2").await;
    let info = get(&app, &format!("{}/auth/session", app.base), Some(&session)).await.json();
    let csrf = info["csrfToken"].as_str().expect("csrf token").to_owned();
    let one = r#"{"productId":"p-1","quantity":1}"#;

    add_to_cart(&app, &session, &csrf, None, one).await.assert_problem(400, "idempotency.key_missing");
    add_to_cart(&app, &session, &csrf, Some("short"), one).await.assert_problem(400, "request.invalid");
    for body in [
        "{not json",
        r#"{"productId":"p-1"}"#,
        r#"{"productId":"p-1","quantity":0}"#,
        r#"{"productId":"p-1","quantity":100}"#,
        r#"{"productId":"../p-1","quantity":1}"#,
        r#"{"productId":"p-1","quantity":1,"price":1}"#,
        r#"{"productId":"p-1","quantity":1.5}"#,
        r#"{"productId":"p-1","quantity":"1"}"#,
    ] {
        add_to_cart(&app, &session, &csrf, Some("key-0000-0002"), body)
            .await
            .assert_problem(400, "request.invalid");
    }
    add_to_cart(&app, &session, "guess", Some("key-0000-0003"), one)
        .await
        .assert_problem(403, "auth.forbidden");
    assert_eq!(cart_writes(&app).await, 0);

    // An unknown product is the cart service's answer: 404.
    add_to_cart(&app, &session, &csrf, Some("key-0000-0004"), r#"{"productId":"p-999","quantity":1}"#)
        .await
        .assert_problem(404, "resource.not_found");
}

/// What schema-driven fuzzing found: `22.0` is an `integer` to JSON
/// Schema, so the document allows it; it was refused with a 400.
#[tokio::test]
async fn a_quantity_written_with_a_zero_fraction_is_the_integer_it_says() {
    let app = spawn_app().await;
    let session = log_in(&app, "u-2").await;
    let info = get(&app, &format!("{}/auth/session", app.base), Some(&session)).await.json();
    let csrf = info["csrfToken"].as_str().expect("csrf token").to_owned();
    let added =
        add_to_cart(&app, &session, &csrf, Some("key-0000-0022"), r#"{"productId":"p-1","quantity":22.0}"#)
            .await;
    assert_eq!(added.status, 201, "{}", added.text);
    // u-2's seeded cart holds 2 items; 22 more.
    assert_eq!(added.json()["itemCount"], 24, "{}", added.text);
}

/// The scopes the document lists hold for sessions too: a session whose
/// token grants `profile` but not `cart` opens the home page and cannot
/// write to the cart.
#[tokio::test]
async fn a_session_without_the_cart_scope_cannot_write_to_the_cart() {
    use bff_auth::session::{SESSION_COOKIE, Sealer, Session};
    let app = spawn_app().await;
    let identity = app.fleet.identity();
    let mut claims = identity.user_claims(app.bff, "u-2", std::time::Duration::from_secs(300));
    claims.scope = "openid profile".to_owned();
    let session = Session {
        token: identity.sign(&claims).expect("a token"),
        csrf: "c".repeat(64),
        expires_at: claims.exp,
    };
    // Sealed as the BFF would, with its (development) cookie key.
    let sealer = Sealer::from_base64(bff_server::session::DEV_COOKIE_KEY).expect("the key");
    let cookie = format!("{SESSION_COOKIE}={}", sealer.seal(SESSION_COOKIE, &session));

    let home = get(&app, &format!("{}/v1/home", app.base), Some(&cookie)).await;
    assert_eq!(home.status, 200, "{}", home.text);
    let refused = add_to_cart(
        &app,
        &cookie,
        &session.csrf,
        Some("key-0000-0030"),
        r#"{"productId":"p-1","quantity":1}"#,
    )
    .await;
    let problem = refused.assert_problem(403, "auth.forbidden");
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("cart")), "{problem}");
    assert_eq!(cart_writes(&app).await, 0, "nothing reached the cart service");
}

#[tokio::test]
async fn conforms_to_the_shell() {
    bff_testkit::conformance(web_bff::bff, |_| {}).await;
}

#[tokio::test]
async fn the_product_page_is_richer_than_mobiles_and_degrades_part_by_part() {
    let app = spawn_app().await;
    let session = log_in(&app, "u-2").await;
    let page = get(&app, &format!("{}/v1/product-page/p-1", app.base), Some(&session)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let body = page.json();
    assert_eq!(body["degraded"], false, "{body}");
    let data = &body["data"];
    assert_eq!(data["recommendations"].as_array().map(Vec::len), Some(12));
    assert!(data["reviews"].as_array().is_some_and(|r| !r.is_empty() && r.len() <= 5), "{data}");
    assert!(data["rating"].is_string() && data["delivery"].is_string(), "{data}");
    assert_eq!(data["images"].as_array().map(Vec::len), Some(4), "the whole gallery");

    app.fleet.set_faults(Service::Reviews, serde_json::json!({"errorRatio": 1.0})).await.expect("faults");
    let degraded = get(&app, &format!("{}/v1/product-page/p-1", app.base), Some(&session)).await.json();
    assert_eq!(degraded["degraded"], true);
    assert_eq!(degraded["data"]["reviews"], serde_json::json!([]));
    assert!(degraded["data"].get("rating").is_none());
    assert_eq!(degraded["data"]["recommendations"].as_array().map(Vec::len), Some(12), "the rest stands");
    get(&app, &format!("{}/v1/product-page/p-999", app.base), Some(&session))
        .await
        .assert_problem(404, "resource.not_found");
}

#[tokio::test]
async fn widgets_serve_one_part_each() {
    let app = spawn_app().await;
    let session = log_in(&app, "u-2").await;
    let widget = get(
        &app,
        &format!("{}/v1/widgets/recommendations?context=product:p-3&limit=4", app.base),
        Some(&session),
    )
    .await;
    assert_eq!(widget.status, 200, "{}", widget.text);
    assert_eq!(widget.json()["data"]["items"].as_array().map(Vec::len), Some(4));
    let stats = app.fleet.stats(Service::Recommendations).await.expect("stats");
    assert_eq!(stats["total"], 1, "one call for the widget");
    get(&app, &format!("{}/v1/widgets/recommendations?context=cart", app.base), Some(&session))
        .await
        .assert_problem(400, "request.invalid");

    app.fleet
        .set_faults(Service::Recommendations, serde_json::json!({"errorRatio": 1.0}))
        .await
        .expect("faults");
    let empty = get(&app, &format!("{}/v1/widgets/recommendations", app.base), Some(&session)).await;
    assert_eq!(empty.status, 200, "never a failure for want of suggestions");
    assert_eq!(empty.json()["data"]["items"], serde_json::json!([]));

    let cart = get(&app, &format!("{}/v1/widgets/cart-summary", app.base), Some(&session)).await;
    assert_eq!(cart.status, 200, "{}", cart.text);
    assert_eq!(cart.json()["lineCount"], 2, "u-2's seeded cart");
}

#[tokio::test]
async fn the_categories_are_public_and_cacheable_and_nothing_personal_is_marked_public() {
    let app = spawn_app().await;
    let anonymous = get(&app, &format!("{}/v1/categories", app.base), None).await;
    assert_eq!(anonymous.status, 200, "{}", anonymous.text);
    assert_eq!(anonymous.header("cache-control"), Some(web_bff::shop::CATEGORIES_CACHE_CONTROL));
    let etag = anonymous.header("etag").expect("an ETag").to_owned();
    assert!(anonymous.json()["categories"].as_array().is_some_and(|c| !c.is_empty()));
    // Called on the BFF's own behalf: nobody's token reached the catalog.
    let stats = app.fleet.stats(Service::Catalog).await.expect("stats");
    assert_eq!(stats["recent"][0]["token"]["sub"], "web-bff");
    let unchanged = Reply::read(
        app.http
            .get(format!("{}/v1/categories", app.base))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("reachable"),
    )
    .await;
    assert_eq!(unchanged.status, 304);
    assert!(unchanged.text.is_empty());

    // Every authenticated GET of the document answers private, never public.
    let session = log_in(&app, "u-2").await;
    let document = get(&app, &format!("{}/openapi.json", app.base), None).await.json();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        let Some(operation) = item.get("get") else { continue };
        if operation["security"].as_array().is_none_or(Vec::is_empty) || path.starts_with("/auth/") {
            continue;
        }
        let url = format!("{}{}", app.base, path.replace("{id}", "p-1"));
        let reply = get(&app, &url, Some(&session)).await;
        let cache_control = reply.header("cache-control").unwrap_or_default().to_owned();
        assert!(
            cache_control.starts_with("private") && !cache_control.contains("public"),
            "{path}: {} {cache_control:?}",
            reply.status
        );
        checked += 1;
    }
    assert!(checked >= 6, "{checked} personal GETs checked");
}

#[tokio::test]
async fn the_dev_console_calls_web_screens_with_a_real_session() {
    let app = bff_testkit::spawn(web_bff::bff(), |config| config.server.server_timing = true).await;
    // It logs in through the app's own login flow, as `cargo xtask token --client web` does.
    let console = app.console().await;
    let answer: Value = reqwest::Client::new()
        .post(format!("{console}/api/call"))
        .json(&serde_json::json!({"client": "web", "caller": "u-2", "path": "/v1/home"}))
        .send()
        .await
        .expect("console")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["status"], 200, "{answer}");
    let body: Value = serde_json::from_str(answer["bodyText"].as_str().expect("text")).expect("json body");
    assert_eq!(body["data"]["greeting"], "Welcome back, Grace", "logged in as u-2 by the session flow");
    let timing = answer["serverTiming"].as_array().expect("Server-Timing entries");
    assert!(timing.iter().any(|t| t["name"] == "profile" && t["durMs"].is_f64()), "{timing:?}");
}

/// The README's login link in a real browser (headless Chromium): it
/// follows the redirects through the identity mock, keeps the
/// `__Host-session` cookie on http://127.0.0.1, and lands on a page that
/// names the user; the home screen then answers with the same cookie.
#[tokio::test(flavor = "multi_thread")]
async fn in_a_real_browser_the_login_link_lands_on_a_page_naming_the_user() {
    use bff_testkit::browser::fantoccini::Locator;
    use bff_testkit::browser::{ChromeDriver, screenshot, text_of};

    let app = spawn_app().await;
    let driver = ChromeDriver::start().await;
    let browser = driver.browser().await;
    browser.goto(&format!("{}/auth/login?login_hint=u-1", app.base)).await.expect("the login link");
    let subject = browser
        .wait()
        .at_most(std::time::Duration::from_secs(20))
        .for_element(Locator::Css("#subject"))
        .await
        .expect("a page naming the signed-in user");
    assert_eq!(subject.text().await.expect("text"), "u-1");
    assert_eq!(browser.current_url().await.expect("url").as_str(), format!("{}/", app.base));
    assert!(text_of(&browser, "h1").await.starts_with("Signed in as"));
    screenshot(&browser, "web", "01-login-landing").await;

    browser
        .find(Locator::Css("a[href='/v1/home']"))
        .await
        .expect("the home link")
        .click()
        .await
        .expect("click");
    let page = browser.source().await.expect("page source");
    assert!(page.contains(r#""greeting":"Welcome back, Ada""#), "the home screen, as u-1: {page}");
    browser.close().await.expect("close the browser");
}
