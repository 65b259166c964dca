//! Each BFF's OpenAPI 3.1 document, generated from its handlers.
//!
//! A BFF registers every route through `utoipa_axum`'s `OpenApiRouter`
//! (`.routes(routes!(handler))`), so a handler cannot be routed without being
//! documented, and the document is split off the same router that serves
//! traffic. This module supplies what every document shares:
//!
//! * [`document`]: the skeleton — `info`, the security scheme of the BFF's
//!   callers, the `Problem` schema and the reusable error responses of
//!   [`bff_error::openapi`];
//! * [`finish`]: adds the responses the edge stack can give on *any*
//!   operation (`500`, `503 overloaded`), so each handler lists only its own;
//! * [`to_json`]: the one rendering, used both for `GET /openapi.json`
//!   ([`route`]) and for the committed `openapi/<bff>.json` that
//!   `cargo xtask contracts` checks for drift.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr};

/// The path every BFF serves its document on.
pub const PATH: &str = "/openapi.json";

/// The skeleton of a BFF's document: `title` and `version` (the crate's),
/// a `description` for client teams, and the security schemes its callers
/// use, by name (`("bearer", bearer_jwt("..."))`).
pub fn document<'a>(
    title: &str,
    version: &str,
    description: &str,
    schemes: impl IntoIterator<Item = (&'a str, SecurityScheme)>,
) -> OpenApi {
    let mut components = ComponentsBuilder::new().build();
    bff_error::openapi::register(&mut components);
    for (name, scheme) in schemes {
        components.add_security_scheme(name, scheme);
    }
    OpenApiBuilder::new()
        .info(InfoBuilder::new().title(title).version(version).description(Some(description)))
        .components(Some(components))
        .build()
}

/// An OAuth 2 access token (a JWT) in `Authorization: Bearer`.
pub fn bearer_jwt(description: &str) -> SecurityScheme {
    let mut http = Http::new(HttpAuthScheme::Bearer);
    http.bearer_format = Some("JWT".to_owned());
    http.description = Some(description.to_owned());
    SecurityScheme::Http(http)
}

/// A credential carried in a cookie (the web BFF's sealed session).
pub fn cookie(name: &str, description: &str) -> SecurityScheme {
    SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(name, description)))
}

/// A credential carried in a request header (e.g. a CSRF token).
pub fn header_key(name: &str, description: &str) -> SecurityScheme {
    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, description)))
}

/// Adds the responses the shell can give on any operation where a handler
/// did not list them: `500` (a caught panic) and `503` (load shed) on every
/// one, `403` on one whose security requirement lists scopes (the shell
/// refuses a token without them).
pub fn finish(mut doc: OpenApi) -> OpenApi {
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            // utoipa keeps a requirement's scopes private: read them as JSON.
            let lists_scopes = serde_json::to_value(&operation.security).is_ok_and(|security| {
                security.as_array().into_iter().flatten().any(|requirement| {
                    requirement
                        .as_object()
                        .into_iter()
                        .flatten()
                        .any(|(_, scopes)| scopes.as_array().is_some_and(|scopes| !scopes.is_empty()))
                })
            });
            let responses = &mut operation.responses.responses;
            let scoped = lists_scopes.then_some(("403", "Forbidden"));
            for (status, name) in [("500", "Internal"), ("503", "Unavailable")].into_iter().chain(scoped) {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))));
            }
        }
    }
    doc
}

/// Adds `429` to every secured operation of `doc` where the handler did
/// not list it: the shell counts each authenticated request against its
/// caller's quota (applied to a BFF's screens, before the session routes,
/// which are not counted, join the document).
pub fn rate_limited(mut doc: OpenApi) -> OpenApi {
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            if operation.security.as_ref().is_some_and(|security| !security.is_empty()) {
                operation
                    .responses
                    .responses
                    .entry("429".to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::new("#/components/responses/RateLimited")));
            }
        }
    }
    doc
}

/// The document as committed and served: pretty JSON, keys in a stable
/// order, one trailing newline.
pub fn to_json(doc: &OpenApi) -> String {
    let mut json = doc.to_pretty_json().unwrap_or_else(|error| {
        // Serializing maps of strings cannot fail; answer something valid
        // rather than panic if it ever does.
        tracing::error!(%error, "cannot serialize the OpenAPI document");
        "{}".to_owned()
    });
    json.push('\n');
    json
}

/// `GET /openapi.json`, public (no credentials): the document rendered once.
pub fn route<S: Clone + Send + Sync + 'static>(doc: &OpenApi) -> Router<S> {
    let body = to_json(doc);
    Router::new().route(
        PATH,
        get(move || {
            let body = body.clone();
            async move {
                ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
            }
        }),
    )
}
