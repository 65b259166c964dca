//! The middleware on a minimal router, driven with `oneshot`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use bff_auth::Caller;
use bff_auth::session::{Origins, Sealer, Session, SessionAuth, require_csrf, require_session, set_cookie};
use tower::ServiceExt as _;

use crate::{claims, identity, jwks_server, verifier};

async fn whoami(caller: Caller) -> String {
    caller.subject
}

#[tokio::test]
async fn bearer_authentication_refuses_before_the_handler_and_admits_a_valid_token() {
    let identity = identity();
    let server = jwks_server(&identity).await;
    let verifier = Arc::new(verifier(&server));
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route_layer(from_fn_with_state(verifier, bff_auth::require_bearer));
    let send = |authorization: Option<String>| {
        let app = app.clone();
        async move {
            let mut request = Request::get("/whoami");
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            app.oneshot(request.body(Body::empty()).expect("request")).await.expect("response")
        }
    };
    let missing = send(None).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()[header::WWW_AUTHENTICATE], "Bearer");
    let basic = send(Some("Basic dTpw".to_owned())).await;
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert!(basic.headers()[header::WWW_AUTHENTICATE].to_str().is_ok_and(|v| v.contains("invalid_token")));
    let token = identity.sign(&claims(&identity)).expect("sign");
    let ok = send(Some(format!("Bearer {token}"))).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let body = axum::body::to_bytes(ok.into_body(), 1024).await.expect("body");
    assert_eq!(&body[..], b"u-1");
}

#[tokio::test]
async fn a_session_write_needs_an_allowed_origin_and_the_sessions_csrf_token() {
    let identity = identity();
    let server = jwks_server(&identity).await;
    let sealer = Sealer::from_base64(&"A".repeat(88)).expect("a 64-byte key");
    let token = identity.sign(&claims(&identity)).expect("sign");
    let session = Session { token, csrf: "csrf-1".to_owned(), expires_at: u64::MAX };
    let cookie = format!("__Host-session={}", sealer.seal("__Host-session", &session));
    let auth = SessionAuth { sealer, verifier: Arc::new(verifier(&server)) };
    let origins = Origins(Arc::new(vec!["https://shop.example".to_owned()]));
    let app = Router::new()
        .route("/write", post(|| async { "written" }))
        .route_layer(from_fn_with_state(origins, require_csrf))
        .route_layer(from_fn_with_state(auth, require_session));
    let send = |cookie: Option<&str>, origin: Option<&str>, csrf: Option<&str>| {
        let mut request = Request::post("/write");
        for (name, value) in [("cookie", cookie), ("origin", origin), ("x-csrf-token", csrf)] {
            if let Some(value) = value {
                request = request.header(name, value);
            }
        }
        app.clone().oneshot(request.body(Body::empty()).expect("request"))
    };
    let status = |response: Result<axum::response::Response, std::convert::Infallible>| {
        response.expect("response").status()
    };
    assert_eq!(
        status(send(None, Some("https://shop.example"), Some("csrf-1")).await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(send(Some(&cookie), None, Some("csrf-1")).await), StatusCode::FORBIDDEN);
    assert_eq!(
        status(send(Some(&cookie), Some("https://evil.example"), Some("csrf-1")).await),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(send(Some(&cookie), Some("https://shop.example"), Some("csrf-2")).await),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(send(Some(&cookie), Some("https://shop.example"), Some("csrf-1")).await),
        StatusCode::OK
    );
    assert!(set_cookie("n", "v", 1).contains("HttpOnly"), "cookies are never readable by scripts");
}
