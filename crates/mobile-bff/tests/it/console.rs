//! The dev console (`services_mock::console`) in a real browser: Debian's
//! headless Chromium, driven over WebDriver by `chromedriver` through
//! `fantoccini`, against the real console, the real mobile-bff and the real
//! mocks on loopback. A person logs in as u-1 (picks the caller), opens the
//! mobile home, slows shipping down, breaks the cart, resets, and watches.
//! (`bff_testkit::browser` says why WebDriver.)
//!
//! Screenshots of each step go to `target/artifacts/console/` (CI keeps
//! them; README's picture is one of them).

use std::time::{Duration, Instant};

use bff_testkit::browser::fantoccini::{Client, Locator};
use bff_testkit::browser::{ChromeDriver, text_of};
use serde_json::Value;
use services_mock::Service;

use crate::helpers::spawn_app_with;

async fn screenshot(browser: &Client, name: &str) {
    bff_testkit::browser::screenshot(browser, "console", name).await;
}

/// Waits (up to 20 s) for an element matching `css`.
async fn wait_for(browser: &Client, css: &str) -> bff_testkit::browser::fantoccini::elements::Element {
    match browser.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css)).await {
        Ok(element) => element,
        Err(error) => {
            let summary = text_of(browser, "#summary").await;
            panic!("no `{css}` within 20 s ({error}); the console says: {summary}");
        }
    }
}

/// The tiles on screen, in order: `(component, status, reason, duration)`.
async fn tiles(browser: &Client) -> Vec<(String, String, String, String)> {
    let mut tiles = Vec::new();
    for tile in browser.find_all(Locator::Css("#tiles .tile")).await.expect("tiles") {
        let attr = |name: &'static str| {
            let tile = tile.clone();
            async move { tile.attr(name).await.ok().flatten().unwrap_or_default() }
        };
        let duration = match tile.find(Locator::Css("dd.duration")).await {
            Ok(cell) => cell.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        tiles.push((
            attr("data-component").await,
            attr("data-status").await,
            attr("data-reason").await,
            duration,
        ));
    }
    tiles
}

const HOME: [&str; 5] = ["profile", "cart", "recommendations", "promotions", "shipping"];

/// Sets a fault through a mock's panel, as a person would: open its
/// "faults", type the value, Apply.
async fn set_fault(browser: &Client, mock: &str, field: &str, value: &str) {
    browser
        .find(Locator::Css(&format!("[data-mock={mock}] summary")))
        .await
        .expect("the mock's panel")
        .click()
        .await
        .expect("open its faults");
    let input = wait_for(browser, &format!("[data-mock-form={mock}] input[name={field}]")).await;
    input.clear().await.expect("clear");
    input.send_keys(value).await.expect("type");
    browser
        .find(Locator::Css(&format!("[data-mock-form={mock}] button.apply")))
        .await
        .expect("Apply")
        .click()
        .await
        .expect("click Apply");
    wait_for(browser, &format!("[data-mock-form={mock}][data-applied=yes]")).await;
}

async fn click(browser: &Client, css: &str) {
    browser.find(Locator::Css(css)).await.expect(css).click().await.expect(css);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_watches_the_mobile_home_degrade_and_recover_in_a_real_browser() {
    let app = spawn_app_with(|config| {
        config.server.server_timing = true;
        // The test kit's budgets are generous (a debug build on a busy CI
        // machine); shipping's is 1 s here, so the panel's 2 s fault passes
        // it and a healthy shipping never does.
        config.downstream.services.get_mut("shipping").expect("configured").timeout_ms = 1_000;
    })
    .await;
    let console = app.console().await;

    let driver = ChromeDriver::start().await;
    let browser = driver.browser().await;
    browser.goto(&format!("{console}/?client=mobile")).await.expect("open the console");
    wait_for(&browser, "body[data-ready=yes]").await;

    // 1. Logged in as u-1 (the caller picker), the mobile home: every tile ok,
    //    each with its duration from Server-Timing.
    browser
        .find(Locator::Css("#caller"))
        .await
        .expect("caller picker")
        .select_by_value("u-1")
        .await
        .expect("pick u-1");
    assert_eq!(
        browser
            .find(Locator::Css("#path"))
            .await
            .expect("path")
            .prop("value")
            .await
            .ok()
            .flatten()
            .as_deref(),
        Some("/v1/home")
    );
    click(&browser, "#send").await;
    wait_for(&browser, "#summary[data-outcome=ok]").await;
    let seen = tiles(&browser).await;
    let names: Vec<&str> = seen.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, HOME, "one tile per component, in the screen's order");
    for (name, status, _, duration) in &seen {
        assert_eq!(status, "ok", "{name}");
        assert!(duration.ends_with(" ms"), "{name}: duration from Server-Timing, got `{duration}`");
    }
    assert!(
        text_of(&browser, "#summary").await.starts_with("200"),
        "{}",
        text_of(&browser, "#summary").await
    );
    // The mocks' panels show their /__stats.
    let stats = text_of(&browser, "[data-mock=cart] .stats").await;
    assert!(stats.contains("request") && stats.contains("in flight"), "{stats}");
    screenshot(&browser, "01-home-all-ok").await;

    // 2. Shipping 2 s slow: its tile is an error with `timeout`, the rest ok.
    set_fault(&browser, "shipping", "latencyMs", "2000").await;
    let faults: Value = reqwest::get(format!("{}/__faults", app.fleet.url(Service::Shipping)))
        .await
        .expect("faults")
        .json()
        .await
        .expect("json");
    assert_eq!(faults["latencyMs"], 2000, "the panel set the mock's fault: {faults}");
    click(&browser, "#send").await;
    wait_for(&browser, "[data-component=shipping][data-status=error][data-reason=timeout]").await;
    for (name, status, reason, _) in tiles(&browser).await {
        if name != "shipping" {
            assert_eq!(status, "ok", "{name} ({reason}) should be untouched by a slow shipping");
        }
    }
    screenshot(&browser, "02-shipping-timeout").await;

    // 3. The cart (critical) fails: the problem document, no tiles.
    set_fault(&browser, "cart", "errorRatio", "1").await;
    click(&browser, "#send").await;
    let problem = wait_for(&browser, "#problem[data-code='dependency.unavailable']").await;
    assert!(problem.is_displayed().await.expect("displayed"), "the problem document is shown");
    assert!(
        text_of(&browser, "#summary").await.starts_with("503"),
        "{}",
        text_of(&browser, "#summary").await
    );
    screenshot(&browser, "03-cart-fails-problem").await;

    // 4. Reset every fault, repeat every second: the screen recovers on its
    //    own (the cart's breaker, opened by the failures, closes again).
    click(&browser, "#reset-all").await;
    click(&browser, "#repeat").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = tiles(&browser).await;
        let hidden = browser.find(Locator::Css("#problem")).await.expect("problem box").is_displayed().await;
        if seen.len() == HOME.len() && seen.iter().all(|t| t.1 == "ok") && matches!(hidden, Ok(false)) {
            break;
        }
        assert!(Instant::now() < deadline, "not recovered within 20 s: {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !browser.find_all(Locator::Css("#history li.failed")).await.expect("history").is_empty(),
        "the history strip remembers the failures"
    );
    screenshot(&browser, "04-recovered").await;

    browser.close().await.expect("close the browser");
}
