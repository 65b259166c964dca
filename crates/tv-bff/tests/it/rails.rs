//! One rail at a time, for scrolling: opaque cursors, pages, refusals.

use std::collections::BTreeSet;

use services_mock::Service;

use crate::{browse_when_precomputed, spawn_app_with};

#[tokio::test]
async fn a_rail_is_walked_page_by_page_with_its_cursor_and_nothing_is_repeated() {
    let app = spawn_app_with(|_| {}).await;
    browse_when_precomputed(&app).await;
    let mut seen = BTreeSet::new();
    let mut path = "/tv/v1/rails/category-shoes?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let reply = app.get(&path).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = reply.json();
        pages += 1;
        for item in body["data"]["items"].as_array().expect("items") {
            assert!(seen.insert(item["id"].as_str().expect("id").to_owned()), "repeated: {item}");
        }
        match body["data"]["nextCursor"].as_str() {
            Some(cursor) => path = format!("/tv/v1/rails/category-shoes?limit=3&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10, "the cursor must end");
    }
    assert_eq!((pages, seen.len()), (3, 8), "8 shoes in pages of 3");
}

#[tokio::test]
async fn foreign_tampered_or_out_of_range_requests_are_400_and_unknown_rails_404() {
    let app = spawn_app_with(|_| {}).await;
    let body = browse_when_precomputed(&app).await.json();
    let shoes = body["data"]["rails"].as_array().and_then(|r| r.iter().find(|r| r["id"] == "category-shoes"));
    let cursor = shoes.and_then(|s| s["nextCursor"].as_str()).expect("a cursor").to_owned();
    for bad in [
        format!("/tv/v1/rails/on-sale?cursor={cursor}"),
        "/tv/v1/rails/category-shoes?cursor=bm90LWEtY3Vyc29y".to_owned(),
        "/tv/v1/rails/category-shoes?limit=0".to_owned(),
        "/tv/v1/rails/category-shoes?limit=25".to_owned(),
        // A query that does not parse is a problem too, not axum's plain
        // text (schema-driven fuzzing found `limit=null&limit=null`).
        "/tv/v1/rails/category-shoes?limit=abc".to_owned(),
        "/tv/v1/rails/category-shoes?limit=null&limit=null".to_owned(),
        "/tv/v1/rails/Category_Shoes".to_owned(),
    ] {
        app.get(&bad).await.assert_problem(400, "request.invalid");
    }
    app.get("/tv/v1/rails/category-hats").await.assert_problem(404, "resource.not_found");
}

#[tokio::test]
async fn a_user_rail_page_makes_one_call_and_a_precomputed_one_none() {
    let app = spawn_app_with(|_| {}).await;
    browse_when_precomputed(&app).await;
    app.fleet.reset_stats(Service::Recommendations).await.expect("reset");
    app.fleet.reset_stats(Service::Catalog).await.expect("reset");
    let reply = app.get("/tv/v1/rails/for-you?limit=4").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["data"]["items"].as_array().map(Vec::len), Some(4));
    assert_eq!(app.fleet.requests(Service::Recommendations).await.expect("stats"), 1);
    let reply = app.get("/tv/v1/rails/popular").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        app.fleet.requests(Service::Recommendations).await.expect("stats"),
        1,
        "popular is precomputed"
    );
    assert_eq!(app.fleet.requests(Service::Catalog).await.expect("stats"), 0);
}
