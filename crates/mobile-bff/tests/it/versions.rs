//! Old app versions: `X-App-Version` below the minimum is 426 before
//! anything else happens; a deprecated one is served with RFC 9745/8594
//! headers; a current one without them.

use crate::helpers::spawn_app;

#[tokio::test]
async fn an_app_below_the_minimum_is_told_to_upgrade_and_nothing_is_called() {
    let app = spawn_app().await;
    let token = app.token("u-1");
    let old = app.get_with("/v1/home", Some(&token), &[("x-app-version", "3.9.9")]).await;
    old.assert_problem(426, "client.upgrade_required");
    assert_eq!(
        old.header("link"),
        Some("<https://developer.example.com/mobile/supported-versions>; rel=\"deprecation\"")
    );
    // Told before authentication: an old app with an expired token still learns why.
    app.get_with("/v1/home", None, &[("x-app-version", "2.0")])
        .await
        .assert_problem(426, "client.upgrade_required");
    assert_eq!(app.fleet.domain_requests().await.expect("stats"), 0, "nothing reached a service");

    app.get_with("/v1/home", Some(&token), &[("x-app-version", "five")])
        .await
        .assert_problem(400, "request.invalid");
}

#[tokio::test]
async fn a_deprecated_app_is_served_with_its_sunset_and_a_current_one_plainly() {
    let app = spawn_app().await;
    let token = app.token("u-1");
    let deprecated = app.get_with("/v1/home", Some(&token), &[("x-app-version", "4.7.2")]).await;
    assert_eq!(deprecated.status, 200, "{}", deprecated.text);
    assert_eq!(deprecated.header("deprecation"), Some("@1793491200"), "2026-11-01, RFC 9745");
    assert_eq!(deprecated.header("sunset"), Some("Wed, 31 Mar 2027 00:00:00 GMT"), "RFC 8594");
    assert!(deprecated.header("link").is_some_and(|l| l.ends_with("rel=\"deprecation\"")));

    for current in ["5.0.0", "5.2.1-beta.1", "12.0"] {
        let reply = app.get_with("/v1/home", Some(&token), &[("x-app-version", current)]).await;
        assert_eq!(reply.status, 200, "{current}: {}", reply.text);
        assert_eq!(reply.header("deprecation"), None, "{current}");
        assert_eq!(reply.header("sunset"), None, "{current}");
    }
    // Tools that send no version are served as usual.
    assert_eq!(app.get_with("/v1/home", Some(&token), &[]).await.status, 200);
}
