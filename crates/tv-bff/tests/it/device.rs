//! A TV logs in with the device authorization grant (RFC 8628) and
//! browses with the token; tokens for other BFFs are refused.

use std::time::Duration;

use serde_json::Value;
use services_mock::Service;

use crate::spawn_app_with;

async fn post(url: String, form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new().post(url).form(form).send().await.expect("identity reachable");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_tv_logs_in_with_a_user_code_and_browses_with_the_token() {
    let app = spawn_app_with(|_| {}).await;
    let identity = app.fleet.url(Service::Identity);
    let (status, started) =
        post(format!("{identity}/oauth/device_authorization"), &[("client_id", "tv-app")]).await;
    assert_eq!(status, 200, "{started}");
    let device_code = started["device_code"].as_str().expect("device_code").to_owned();
    let user_code = started["user_code"].as_str().expect("user_code").to_owned();

    // The person approves the code on their phone (the mock's documented call).
    let (status, _) = post(
        format!("{identity}/device"),
        &[("user_code", &user_code), ("login_hint", "u-3"), ("action", "approve")],
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(started["interval"].as_u64().unwrap_or(1))).await;
    let grant = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code.as_str()),
        ("client_id", "tv-app"),
    ];
    let (status, issued) = post(format!("{identity}/oauth/token"), &grant).await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["access_token"].as_str().expect("a token").to_owned();

    let reply = app.get_with("/tv/v1/browse", Some(&token), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let stats = app.fleet.stats(Service::Cart).await.expect("stats");
    let last = stats["recent"].as_array().and_then(|r| r.last()).cloned().unwrap_or_default();
    assert_eq!(last["token"]["sub"], "u-3", "the cart was read for the person who approved the code: {last}");
    assert_eq!(last["token"]["act"]["sub"], "tv-bff", "{last}");

    // A device code is redeemed once.
    let (status, again) = post(format!("{identity}/oauth/token"), &grant).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn tokens_for_other_bffs_are_refused() {
    let app = spawn_app_with(|_| {}).await;
    for other in ["mobile-bff", "partner-bff"] {
        let token = app.token_for(bff_registry::entry(other), "u-1");
        let reply = app.get_with("/tv/v1/browse", Some(&token), &[]).await;
        reply.assert_problem(401, "auth.invalid_token");
    }
}
