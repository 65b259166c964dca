//! What a phone does not download: unchanged screens (ETag/304) and
//! uncompressed bytes (gzip).

use serde_json::json;
use services_mock::Service;

use crate::helpers::spawn_app;

#[tokio::test]
async fn an_unchanged_screen_is_a_304_without_a_body() {
    let app = spawn_app().await;
    let token = app.token("u-1");
    let first = app.get_with("/v1/home", Some(&token), &[]).await;
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    assert_eq!(first.header("cache-control"), Some("private, no-cache"));

    let again = app.get_with("/v1/home", Some(&token), &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.text.is_empty(), "no body on a 304");
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    // The screen changes (no delivery banner): a full answer with a new tag.
    app.fleet.set_faults(Service::Shipping, json!({"errorRatio": 1.0})).await.expect("faults");
    let changed = app.get_with("/v1/home", Some(&token), &[("if-none-match", &etag)]).await;
    assert_eq!(changed.status, 200);
    assert_ne!(changed.header("etag"), Some(etag.as_str()));

    // Errors are never tagged.
    let anonymous = app.get_with("/v1/home", None, &[("if-none-match", &etag)]).await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.header("etag").is_none());
}

#[tokio::test]
async fn screens_are_gzipped_for_apps_that_accept_it() {
    let app = spawn_app().await;
    let token = app.token("u-1");
    let zipped = app.get_with("/v1/home", Some(&token), &[("accept-encoding", "gzip")]).await;
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    let plain = app.get_with("/v1/home", Some(&token), &[]).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("content-type"), Some("application/json"));
}
