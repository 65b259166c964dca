//! The browse screen: precomputed rails served from the cache with their
//! age, user rails at one call each, cold starts and failed refreshes.

use std::time::Duration;

use bff_cache::CachePolicy;
use bff_testkit::status_of;
use serde_json::json;
use services_mock::{Fleet, Service};

use crate::{browse_when_precomputed, rail_ids, spawn_app_with};

#[tokio::test]
async fn a_browse_shows_every_rails_first_page_with_its_age() {
    let app = spawn_app_with(|_| {}).await;
    let body = browse_when_precomputed(&app).await.json();
    assert_eq!(body["degraded"], false, "{body}");
    let ids = rail_ids(&body);
    assert_eq!(&ids[..5], ["continue", "for-you", "popular", "deals", "on-sale"], "{ids:?}");
    for category in ["shoes", "jackets", "bags", "watches", "headphones", "kitchen"] {
        assert!(ids.contains(&format!("category-{category}")), "{ids:?}");
    }
    for rail in body["data"]["rails"].as_array().expect("rails") {
        let items = rail["items"].as_array().expect("items").len();
        assert!(items <= 6, "a page is at most page_size items: {rail}");
        assert_eq!(rail["stale"], false, "{rail}");
        assert!(rail["ageSecs"].is_u64(), "{rail}");
    }
    // u-1 has 3 cart lines: every tile named from the catalog snapshot.
    let continue_rail = &body["data"]["rails"][0];
    assert_eq!(continue_rail["items"].as_array().map(Vec::len), Some(3));
    assert!(continue_rail["items"][0]["price"]["formatted"].is_string(), "{continue_rail}");
    // Shoes: 8 products, pages of 6: a cursor to the rest.
    let shoes = body["data"]["rails"].as_array().and_then(|r| r.iter().find(|r| r["id"] == "category-shoes"));
    assert!(shoes.is_some_and(|shoes| shoes["nextCursor"].is_string()), "{shoes:?}");
}

#[tokio::test]
async fn a_browse_makes_one_call_per_user_rail_and_none_for_precomputed_ones() {
    let app = spawn_app_with(|_| {}).await;
    browse_when_precomputed(&app).await;
    for service in
        [Service::Catalog, Service::Pricing, Service::Cart, Service::Recommendations, Service::Promotions]
    {
        app.fleet.reset_stats(service).await.expect("reset");
    }
    let reply = app.get("/tv/v1/browse").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(app.fleet.requests(Service::Cart).await.expect("stats"), 1, "continue shopping: one call");
    assert_eq!(app.fleet.requests(Service::Recommendations).await.expect("stats"), 1, "for you: one call");
    for precomputed in [Service::Catalog, Service::Pricing, Service::Promotions] {
        assert_eq!(app.fleet.requests(precomputed).await.expect("stats"), 0, "{precomputed} is precomputed");
    }
}

#[tokio::test]
async fn a_cold_start_serves_the_user_rails_and_says_the_others_are_missing() {
    let fleet = Fleet::for_bff(tv_bff::ENTRY).await.expect("mocks");
    // Nothing can be precomputed: catalog and promotions are down.
    fleet.set_faults(Service::Catalog, json!({"errorRatio": 1.0})).await.expect("faults");
    fleet.set_faults(Service::Promotions, json!({"errorRatio": 1.0})).await.expect("faults");
    let app = bff_testkit::spawn_with_fleet(tv_bff::bff(), fleet, |_| {}).await;
    let reply = app.get("/tv/v1/browse").await;
    assert_eq!(reply.status, 200, "a cold TV still browses: {}", reply.text);
    let body = reply.json();
    assert_eq!(body["degraded"], true);
    for precomputed in ["catalog", "segment"] {
        assert_eq!(status_of(&body, precomputed)["status"], "error", "{body}");
        assert_eq!(status_of(&body, precomputed)["reasonCode"], "unavailable", "{body}");
    }
    assert_eq!(rail_ids(&body), ["continue", "for-you"]);
    // Without the catalog snapshot the cart's tiles are bare ids, not errors.
    assert_eq!(body["data"]["rails"][0]["items"][0]["title"], body["data"]["rails"][0]["items"][0]["id"]);
    let rail = app.get("/tv/v1/rails/category-shoes").await;
    rail.assert_problem(503, "dependency.unavailable");
    assert!(rail.header("retry-after").is_some());
}

#[tokio::test]
async fn a_failed_refresh_keeps_serving_the_last_rails_marked_stale_with_their_age() {
    let app = spawn_app_with(|config| {
        config.own.refresh_secs = 1;
        let short = CachePolicy { ttl_secs: 1, swr_secs: 0, keep_secs: 600, jitter: 0.0 };
        config.cache.policies.insert("catalog".to_owned(), short.into());
    })
    .await;
    browse_when_precomputed(&app).await;
    app.fleet.set_faults(Service::Catalog, json!({"errorRatio": 1.0})).await.expect("faults");
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        last = app.get("/tv/v1/browse").await.json();
        if status_of(&last, "catalog")["status"] == "fallback" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let catalog = status_of(&last, "catalog");
    assert_eq!(catalog["status"], "fallback", "{last}");
    assert_eq!(catalog["source"], "cache");
    assert!(catalog["ageMs"].as_u64().is_some_and(|age| age >= 1_000), "{catalog}");
    assert_eq!(last["degraded"], true);
    let shoes = last["data"]["rails"].as_array().and_then(|r| r.iter().find(|r| r["id"] == "category-shoes"));
    let shoes = shoes.expect("the last good rails are still served");
    assert_eq!(shoes["stale"], true, "{shoes}");
    assert!(shoes["items"].as_array().is_some_and(|items| !items.is_empty()));
}

#[tokio::test]
async fn the_rails_settings_are_validated_at_start_up() {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    let bff = tv_bff::bff();
    let error = bff
        .load_from(Figment::from(Toml::string(
            "[rails]\nrefresh_secs = 0\nsegments = [\"new\"]\npage_size = 40\n",
        )))
        .expect_err("invalid rails settings");
    let message = error.to_string();
    for key in ["rails.refresh_secs", "rails.segments", "rails.page_size"] {
        assert!(message.contains(key), "{message}");
    }
    let tuned = bff.load_from(Figment::from(Toml::string("[rails]\nrefresh_secs = 20\n"))).expect("valid");
    assert_eq!(tuned.own.refresh_secs, 20);
}
