//! Per-operation scopes, enforced from the BFF's own OpenAPI document.
//!
//! A screen declares what its caller's token must grant where client teams
//! read it, in its operation's security requirement:
//!
//! ```ignore
//! #[utoipa::path(get, path = "/v1/home", security(("bearer" = ["profile"])), ...)]
//! ```
//!
//! The shell reads those requirements back from the finished document
//! ([`RouteScopes::from_document`]) and checks each request against its
//! matched route ([`require_scopes`], just inside authentication). The
//! document is therefore the one place a scope is written: what it
//! promises is what is enforced, and a route cannot need a scope its
//! document does not show.
//!
//! Semantics are OpenAPI's: the requirement objects of an operation are
//! alternatives (any one suffices); within one, every scope listed for
//! every scheme is needed. An operation with no requirement, or with an
//! alternative that lists no scope, needs none. A token without what is
//! needed is `403 auth.forbidden`; a bearer caller also gets RFC 6750's
//! `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use bff_auth::Caller;
use bff_error::{ApiError, ErrorCode};
use bff_ratelimit::Limiter;
use utoipa::openapi::OpenApi;

/// An operation's alternatives, each the set of scopes it needs.
type Alternatives = Vec<BTreeSet<String>>;

/// What each operation of a document needs, by `(method, path template)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteScopes(Arc<HashMap<(Method, String), Alternatives>>);

impl RouteScopes {
    /// The scopes every operation of `doc` declares.
    pub(crate) fn from_document(doc: &OpenApi) -> Self {
        // Read through JSON: utoipa keeps a requirement's scopes private.
        let doc = serde_json::to_value(doc).unwrap_or_default();
        let mut rules = HashMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else { continue };
                let Some(requirements) = operation["security"].as_array() else { continue };
                let alternatives: Alternatives = requirements
                    .iter()
                    .map(|requirement| {
                        requirement
                            .as_object()
                            .into_iter()
                            .flatten()
                            .flat_map(|(_, scopes)| scopes.as_array().into_iter().flatten())
                            .filter_map(|scope| scope.as_str().map(str::to_owned))
                            .collect()
                    })
                    .collect();
                if !alternatives.is_empty() && alternatives.iter().all(|needed| !needed.is_empty()) {
                    rules.insert((method, path.clone()), alternatives);
                }
            }
        }
        RouteScopes(Arc::new(rules))
    }

    /// The alternatives `method path` needs, if it needs any scope.
    fn needed(&self, method: &Method, path: &str) -> Option<&[BTreeSet<String>]> {
        // axum answers HEAD with the GET route.
        let method = if method == Method::HEAD { &Method::GET } else { method };
        self.0.get(&(method.clone(), path.to_owned())).map(Vec::as_slice)
    }

    /// Whether no operation needs a scope.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What is checked of every authenticated caller, just inside
/// authentication: its quota, then the operation's scopes.
#[derive(Clone)]
pub(crate) struct CallerChecks {
    /// The scopes each operation needs.
    pub(crate) scopes: RouteScopes,
    /// The per-caller rate limit (cluster-wide through Redis).
    pub(crate) limiter: Arc<Limiter>,
}

/// The checks, as a route layer inside authentication: the [`Caller`] is
/// known. Every authenticated request counts against its caller's quota
/// (what its operation costs); every answer carries `RateLimit-Policy` and
/// `RateLimit`; over quota is `429 rate_limited` with `Retry-After`. A
/// route that needs scopes but has no caller fails closed (`401`).
pub(crate) async fn check_caller(
    State(checks): State<CallerChecks>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let Some(subject) = request.extensions().get::<Caller>().map(|caller| caller.subject.clone()) else {
        return require_scopes(&checks.scopes, matched.as_ref(), request, next).await;
    };
    let cost = matched
        .as_ref()
        .map_or(1, |m| checks.limiter.config().cost_of(request.method().as_str(), m.as_str()));
    let decision = checks.limiter.check_cost(&subject, cost).await;
    let mut response = if decision.allowed {
        require_scopes(&checks.scopes, matched.as_ref(), request, next).await
    } else {
        tracing::info!(%subject, cost, "over quota");
        ApiError::new(ErrorCode::RateLimited)
            .with_detail("this caller's request quota is used up")
            .into_response()
    };
    for (name, value) in decision.headers() {
        response.headers_mut().insert(name, value);
    }
    response
}

/// The scope check of one request.
async fn require_scopes(
    rules: &RouteScopes,
    matched: Option<&MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let Some(alternatives) = matched.and_then(|m| rules.needed(request.method(), m.as_str())) else {
        return next.run(request).await;
    };
    let Some(caller) = request.extensions().get::<Caller>() else {
        tracing::error!("a route that needs scopes has no authenticated caller");
        return ApiError::new(ErrorCode::AuthInvalidToken).with_challenge("Bearer").into_response();
    };
    if alternatives.iter().any(|needed| needed.iter().all(|scope| caller.has_scope(scope))) {
        return next.run(request).await;
    }
    // The first alternative is the one to ask for.
    let wanted: Vec<&str> = alternatives[0].iter().map(String::as_str).collect();
    let missing: Vec<&str> = wanted.iter().copied().filter(|scope| !caller.has_scope(scope)).collect();
    tracing::info!(subject = %caller.subject, missing = %missing.join(" "), "token lacks a scope");
    let bearer = request.headers().contains_key(header::AUTHORIZATION);
    let mut response = ApiError::new(ErrorCode::AuthForbidden)
        .with_detail(format!(
            "this token does not grant the scope this operation needs: {}",
            missing.join(" ")
        ))
        .into_response();
    if bearer {
        let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{}\"", wanted.join(" "));
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(security: serde_json::Value) -> RouteScopes {
        let doc = serde_json::json!({
            "openapi": "3.1.0",
            "info": { "title": "t", "version": "1" },
            "paths": { "/v1/x/{id}": { "get": { "responses": {}, "security": security } } }
        });
        RouteScopes::from_document(&serde_json::from_value(doc).expect("a document"))
    }

    fn needed(rules: &RouteScopes, method: Method) -> Option<Vec<Vec<&str>>> {
        rules
            .needed(&method, "/v1/x/{id}")
            .map(|alts| alts.iter().map(|a| a.iter().map(String::as_str).collect()).collect())
    }

    #[test]
    fn requirements_are_alternatives_of_scope_sets() {
        let found = rules(
            serde_json::json!([{ "bearer": ["cart", "profile"] }, { "session": ["cart"], "csrf": [] }]),
        );
        assert_eq!(needed(&found, Method::GET), Some(vec![vec!["cart", "profile"], vec!["cart"]]));
        assert_eq!(needed(&found, Method::HEAD), needed(&found, Method::GET), "HEAD is GET's route");
        assert_eq!(needed(&found, Method::POST), None);
    }

    #[test]
    fn an_alternative_without_scopes_means_none_are_needed() {
        assert!(rules(serde_json::json!([{ "bearer": [] }])).is_empty());
        assert!(rules(serde_json::json!([{ "bearer": ["cart"] }, {}])).is_empty());
        assert!(rules(serde_json::json!([])).is_empty());
    }
}
