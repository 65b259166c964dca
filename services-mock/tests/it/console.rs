//! The dev console's own API over real HTTP, against the real mocks: what
//! it refuses (other hosts, escaping paths, unknown callers and mocks, the
//! production environment) and that its fault panel reaches the mocks.
//! Calling a BFF through it is tested from the BFFs' crates (mobile-bff in
//! a real browser, web-bff's session and partner-bff's client credentials).

use serde_json::{Value, json};
use services_mock::console::{Targets, app};
use services_mock::{Fleet, Service};

/// The console for `fleet` (and an orders mock that does not run),
/// pointed at a mobile-bff that does not run (port 9).
async fn console(fleet: &Fleet) -> String {
    let mut mocks: Vec<_> =
        Service::ALL.iter().filter(|s| fleet.runs(**s)).map(|s| (*s, fleet.url(*s))).collect();
    // One mock that is not running.
    mocks.push((Service::Orders, "http://127.0.0.1:9".to_owned()));
    let mobile = bff_registry::entry("mobile-bff");
    let targets = Targets {
        identity: fleet.url(Service::Identity),
        mocks,
        bffs: vec![(mobile, "http://127.0.0.1:9".to_owned())],
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(services_mock::serve(listener, app(targets).expect("console"), std::future::pending()));
    url
}

/// What `service`'s `/__faults` holds now.
async fn faults_of(fleet: &Fleet, service: Service) -> Value {
    let response = reqwest::get(format!("{}/__faults", fleet.url(service))).await.expect("mock up");
    response.json().await.expect("json")
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("console reachable");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_fault_panel_reaches_the_mocks_and_passes_their_refusals_on() {
    let fleet = Fleet::start_only(&[Service::Shipping, Service::Cart]).await.expect("mocks");
    let console = console(&fleet).await;
    let http = reqwest::Client::new();

    let (status, _) =
        send(http.put(format!("{console}/api/mocks/shipping/faults")).json(&json!({"latencyMs": 1500})))
            .await;
    assert_eq!(status, 200);
    let faults = faults_of(&fleet, Service::Shipping).await;
    assert_eq!(faults["latencyMs"], 1500, "{faults}");

    // The mock's own explanation of a bad fault comes back as it is.
    let (status, body) =
        send(http.put(format!("{console}/api/mocks/cart/faults")).json(&json!({"errorRatio": 2}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("errorRatio must be between 0 and 1"), "{body}");

    let (status, mocks) = send(http.get(format!("{console}/api/mocks"))).await;
    assert_eq!(status, 200);
    let shipping =
        mocks["mocks"].as_array().and_then(|m| m.iter().find(|m| m["name"] == "shipping")).cloned();
    let shipping = shipping.expect("shipping listed");
    assert_eq!(shipping["up"], true);
    assert_eq!(shipping["faults"]["latencyMs"], 1500);
    assert!(shipping["stats"]["total"].is_u64() && shipping["stats"]["inFlight"].is_u64(), "{shipping}");
    // A mock of the list that does not run is shown as down, not an error.
    let orders = mocks["mocks"].as_array().and_then(|m| m.iter().find(|m| m["name"] == "orders")).cloned();
    assert_eq!(orders.map(|o| o["up"].clone()), Some(json!(false)), "{mocks}");

    let (status, _) = send(http.delete(format!("{console}/api/mocks/shipping/faults"))).await;
    assert_eq!(status, 204);
    let faults = faults_of(&fleet, Service::Shipping).await;
    assert_eq!(faults["latencyMs"], 0, "reset: {faults}");
}

#[tokio::test]
async fn the_console_refuses_what_it_must_not_do() {
    let fleet = Fleet::start_only(&[Service::Shipping]).await.expect("mocks");
    let console = console(&fleet).await;
    let http = reqwest::Client::new();
    let call = |body: Value| http.post(format!("{console}/api/call")).json(&body);

    // A page on another site that rebinds its name to 127.0.0.1 still sends its name.
    let (status, body) =
        send(http.get(format!("{console}/api/clients")).header("host", "evil.example:7100")).await;
    assert_eq!(status, 403, "{body}");
    // Writes are JSON only: a cross-site form cannot send it without a preflight.
    let (status, _) = send(
        http.put(format!("{console}/api/mocks/shipping/faults"))
            .header("content-type", "text/plain")
            .body(r#"{"latencyMs": 100}"#),
    )
    .await;
    assert_eq!(status, 415);
    let (status, _) = send(http.put(format!("{console}/api/mocks/nope/faults")).json(&json!({}))).await;
    assert_eq!(status, 404);

    for path in ["//evil.example/x", "http://evil.example/", "v1/home"] {
        let (status, body) = send(call(json!({"client": "mobile", "caller": "u-1", "path": path}))).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    let (status, body) = send(call(json!({"client": "mobile", "caller": "s-1", "path": "/v1/home"}))).await;
    assert_eq!(status, 400, "staff are not mobile callers: {body}");
    let (status, _) = send(call(json!({"client": "nope", "caller": "u-1", "path": "/v1/home"}))).await;
    assert_eq!(status, 404);
    // The BFF is not running: said plainly, as a gateway error.
    let (status, body) = send(call(json!({"client": "mobile", "caller": "u-1", "path": "/v1/home"}))).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("mobile-bff did not answer")), "{body}");

    let (status, clients) = send(http.get(format!("{console}/api/clients"))).await;
    assert_eq!(status, 200);
    let mobile = &clients["clients"][0];
    assert_eq!(mobile["short"], "mobile");
    assert_eq!(mobile["callers"][0]["id"], "u-1", "the registry's smoke caller first: {mobile}");
}

#[test]
fn neither_mocks_nor_console_start_under_production() {
    for args in [&["console"][..], &["all"][..], &["token", "--client", "mobile"][..]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_services-mock"))
            .args(args)
            .env("BFF_ENV", "production")
            .output()
            .expect("the binary runs");
        assert!(!output.status.success(), "{args:?} started under production");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("refused under BFF_ENV=production"), "{args:?}: {stderr}");
    }
}
