//! Each authentication mode of the shell, on a one-route screen, over real
//! HTTP, with tokens from the identity mock (the only mock running).

use bff_auth::Caller;
use bff_server::{Backbone, Bff};
use bff_testkit::TestApp;
use services_mock::Fleet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Who is calling: the screen every mode is tested with.
#[utoipa::path(get, path = "/whoami", security(("bearer" = [])), responses((status = 200, body = String)))]
async fn whoami(caller: Caller) -> String {
    caller.subject
}

fn screens() -> OpenApiRouter<Backbone> {
    OpenApiRouter::new().routes(routes!(whoami))
}

/// The shell of `name`'s registry entry around the `whoami` screen.
async fn spawn(name: &str) -> TestApp {
    let bff: Bff = Bff::new(bff_registry::entry(name), "0.0.0").screens(screens);
    let identity_only = Fleet::start_only(&[]).await.expect("identity mock");
    bff_testkit::spawn_with_fleet(bff, identity_only, |_| {}).await
}

#[tokio::test]
async fn bearer_mode_admits_its_apps_tokens_only() {
    let app = spawn("mobile-bff").await;
    let reply = app.get("/whoami").await;
    assert_eq!((reply.status.as_u16(), reply.text.as_str()), (200, "u-1"));
    // A screen's answer is the caller's: never for a shared cache.
    assert_eq!(reply.header("cache-control"), Some("private, no-store"));
    let admin = app.token_for(bff_registry::entry("admin-bff"), "s-1");
    app.get_with("/whoami", Some(&admin), &[]).await.assert_problem(401, "auth.invalid_token");
    app.get_with("/whoami", None, &[]).await.assert_problem(401, "auth.invalid_token");
}

#[tokio::test]
async fn client_credentials_mode_admits_machines_and_refuses_people() {
    let app = spawn("partner-bff").await;
    let reply = app.get("/whoami").await;
    assert_eq!((reply.status.as_u16(), reply.text.as_str()), (200, "partner-acme"));
    assert_eq!(reply.header("cache-control"), Some("private, no-store"));
    let mut claims = app.fleet.identity().user_claims(app.bff, "u-1", std::time::Duration::from_secs(60));
    claims.sub = "u-1".to_owned();
    let user = app.fleet.identity().sign(&claims).expect("sign");
    app.get_with("/whoami", Some(&user), &[]).await.assert_problem(403, "auth.forbidden");
}

#[tokio::test]
async fn staff_mode_needs_a_role_and_knows_who_knocked_with_another_bffs_token() {
    let app = spawn("admin-bff").await;
    assert_eq!(app.get("/whoami").await.text, "s-1");
    let no_role = app.token("s-3");
    let reply = app.get_with("/whoami", Some(&no_role), &[]).await;
    let body = reply.assert_problem(403, "auth.forbidden");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("admin, support")), "{body}");
    let mobile = app.token_for(bff_registry::entry("mobile-bff"), "u-1");
    app.get_with("/whoami", Some(&mobile), &[]).await.assert_problem(403, "auth.forbidden");
}

#[tokio::test]
async fn device_mode_admits_its_devices_tokens() {
    let app = spawn("tv-bff").await;
    let reply = app.get("/whoami").await;
    assert_eq!((reply.status.as_u16(), reply.text.as_str()), (200, "u-1"));
    // A screen's answer is the caller's: never for a shared cache.
    assert_eq!(reply.header("cache-control"), Some("private, no-store"));
}

#[tokio::test]
async fn session_mode_logs_in_through_the_bff_and_documents_its_routes() {
    let app = spawn("web-bff").await;
    let reply = app.get("/whoami").await;
    assert_eq!((reply.status.as_u16(), reply.text.as_str()), (200, "u-1"), "with the cookie of a real login");
    app.get_with("/whoami", Some("a-bearer-token"), &[]).await.assert_problem(401, "auth.invalid_token");
    let doc =
        serde_json::to_value(Bff::<()>::new(app.bff, "0.0.0").screens(screens).openapi()).expect("json");
    for route in ["/auth/login", "/auth/callback", "/auth/session", "/auth/logout", "/whoami"] {
        assert!(doc["paths"].get(route).is_some(), "{route} documented");
    }
    assert!(doc["components"]["securitySchemes"].get("session").is_some());
    assert_eq!(doc["info"]["title"], "web-bff");
}
