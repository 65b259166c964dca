//! Privileged actions and the questions asked of the trail.
//!
//! * `GET /admin/v1/users?query=&limit=&cursor=`: search by id, name or
//!   e-mail; e-mails masked for `support` as on the user screen.
//! * `POST /admin/v1/users/{id}/lock` and `/unlock` (`{"reason": "..."}`,
//!   10 to 500 characters): **admins only**; idempotent (locking a locked
//!   account answers its state, changing nothing); the reason goes into the
//!   audit record. `support` gets `403 auth.forbidden`, audited as denied.
//! * `GET /admin/v1/audit?actor=&target=&outcome=&since=&until=&limit=&cursor=`:
//!   **admins only**: the trail, newest first, filtered, a page at a time.
//!
//! Lists page with cursors sealed for the staff member (`bff_server::cursor`).
//!
//! Staff are scoped to customer markets (`uk`, `us`, `eu`: their token's
//! `tenants` claim, `*` for all): a customer outside them answers exactly
//! like no customer (`404`), on every screen and action, and is left out
//! of searches ([`sees`]).

use std::path::PathBuf;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bff_auth::Caller;
use bff_compose::Plan;
use bff_downstream::model::UserProfile;
use bff_error::{ApiError, Classify as _, ErrorCode};
use bff_server::extract::{Json, PathId, Query};
use bff_server::{Backbone, cursor};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditRecord, Outcome, Reason};
use crate::routes::mask_email;

/// Where this process's trail is (put on each request by a layer: the
/// handlers' state is the shared backbone).
#[derive(Debug, Clone)]
pub struct TrailPath(pub PathBuf);

/// Whether `caller` may see a customer of `market`: their token's
/// `tenants` claim lists it (space-separated) or says `*`. No claim, or no
/// market, sees nothing: staff are scoped, and a gap fails closed.
pub fn sees(caller: &Caller, market: Option<&str>) -> bool {
    let Some(tenants) = caller.claim("tenants") else { return false };
    tenants.split_whitespace().any(|tenant| tenant == "*" || Some(tenant) == market)
}

/// A customer outside the caller's tenants answers exactly like no customer.
pub(crate) fn in_scope(caller: &Caller, profile: &UserProfile) -> Result<(), ApiError> {
    if sees(caller, profile.market.as_deref()) {
        Ok(())
    } else {
        tracing::info!(subject = %caller.subject, "a customer outside the caller's tenants; answered as not found");
        Err(ApiError::new(ErrorCode::NotFound))
    }
}

fn admins_only(caller: &Caller, what: &'static str) -> Result<(), ApiError> {
    if caller.has_role("admin") {
        Ok(())
    } else {
        tracing::info!(subject = %caller.subject, what, "not an admin");
        Err(ApiError::new(ErrorCode::AuthForbidden).with_detail(what))
    }
}

/// One user in a search.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSummaryVm {
    /// User id.
    pub id: String,
    /// Name.
    pub display_name: String,
    /// E-mail: whole for `admin`, masked for `support`.
    pub email: Option<String>,
    /// Loyalty tier.
    pub tier: String,
}

/// A page of users.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSearchVm {
    /// The users of this page, by id.
    pub items: Vec<UserSummaryVm>,
    /// The fields masked for the caller's role.
    pub masked: Vec<&'static str>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
}

/// Query of `GET /admin/v1/users`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// Part of an id, name or e-mail (any case); empty lists everyone.
    #[param(max_length = 64)]
    pub query: Option<String>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u8>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,512}$")]
    pub cursor: Option<String>,
}

fn page_of(limit: Option<u8>, default: u8) -> Result<u8, ApiError> {
    let limit = limit.unwrap_or(default);
    if (1..=100).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("limit is 1 to 100"))
    }
}

fn offset_of(backbone: &Backbone, scope: &str, sealed: Option<&str>) -> Result<u64, ApiError> {
    match sealed {
        None => Ok(0),
        Some(sealed) => cursor::open(&backbone.cache, scope, sealed)?.parse().map_err(|_| {
            ApiError::new(ErrorCode::RequestInvalid).with_detail("cursor is not one this API gave")
        }),
    }
}

/// `GET /admin/v1/users`: search.
#[utoipa::path(
    get,
    path = "/admin/v1/users",
    tag = "users",
    operation_id = "searchUsers",
    summary = "Search users by id, name or e-mail (masked for support)",
    security(("bearer" = ["admin"])),
    params(UserSearch),
    responses(
        (status = 200, description = "A page of users.", body = UserSearchVm),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn search_users(
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
    Query(search): Query<UserSearch>,
) -> Result<axum::Json<UserSearchVm>, ApiError> {
    let limit = page_of(search.limit, 20)?;
    let query = search.query.unwrap_or_default();
    if query.chars().count() > 64 {
        return Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("query is at most 64 characters"));
    }
    // A cursor is for this staff member and this query only.
    let scope = format!("users:{}:{query}", caller.subject);
    let offset = u32::try_from(offset_of(&backbone, &scope, search.cursor.as_deref())?).unwrap_or(u32::MAX);
    let page = backbone
        .api
        .users
        .search(plan.cx().clone(), &query, offset, limit)
        .await
        .map_err(|error| ApiError::from_failure(error.failure()))?;
    let whole = caller.has_role("admin");
    let summary = |user: UserProfile| UserSummaryVm {
        email: user.email.as_deref().map(|e| if whole { e.to_owned() } else { mask_email(e) }),
        id: user.id,
        display_name: user.display_name,
        tier: user.tier,
    };
    Ok(axum::Json(UserSearchVm {
        next_cursor: page
            .next_offset
            .and_then(|next| cursor::seal(&backbone.cache, &scope, &next.to_string())),
        // Only the caller's tenants (a page may come back shorter).
        items: page.items.into_iter().filter(|u| sees(&caller, u.market.as_deref())).map(summary).collect(),
        masked: if whole { Vec::new() } else { vec!["email"] },
    }))
}

/// Body of a lock or an unlock.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockRequest {
    /// Why, for the audit trail: 10 to 500 characters.
    #[schema(min_length = 10, max_length = 500, examples("chargeback fraud, ticket SUP-1234"))]
    pub reason: String,
}

/// An account's lock state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockVm {
    /// User id.
    pub id: String,
    /// Whether the account is locked now.
    pub locked: bool,
    /// Why, while locked (the reason it was locked with).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

async fn set_lock(
    backbone: &Backbone,
    caller: &Caller,
    plan: &Plan,
    id: &str,
    body: LockRequest,
    lock: bool,
) -> Response {
    let reason = body.reason.trim().to_owned();
    let answer = async {
        admins_only(caller, "only admins lock or unlock accounts")?;
        if !(10..=500).contains(&reason.chars().count()) {
            return Err(
                ApiError::new(ErrorCode::RequestInvalid).with_detail("reason is 10 to 500 characters")
            );
        }
        // Only a customer of the caller's tenants (else: as if unknown).
        let profile = backbone
            .api
            .users
            .profile(plan.cx().clone(), id)
            .await
            .map_err(|error| ApiError::from_failure(error.failure()))?;
        in_scope(caller, &profile)?;
        let state = backbone
            .api
            .users
            .set_lock(plan.cx().clone(), id, lock, &reason)
            .await
            .map_err(|error| ApiError::from_failure(error.failure()))?;
        Ok(axum::Json(LockVm { id: state.id, locked: state.locked, reason: state.reason }))
    }
    .await;
    let mut response = answer.into_response();
    // The reason goes into the trail, allowed or denied.
    response.extensions_mut().insert(Reason(reason));
    response
}

/// `POST /admin/v1/users/{id}/lock`.
#[utoipa::path(
    post,
    path = "/admin/v1/users/{id}/lock",
    tag = "users",
    operation_id = "lockUser",
    summary = "Lock an account (admins; a reason is required and audited)",
    security(("bearer" = ["admin"])),
    params(("id" = String, Path, description = "User id, e.g. `u-1`.", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body(content = LockRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The account's state: locked (also when it already was).", body = LockVm),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::WriteTimeout),
    )
)]
pub async fn lock_user(
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
    PathId(id): PathId,
    Json(body): Json<LockRequest>,
) -> Response {
    set_lock(&backbone, &caller, &plan, &id, body, true).await
}

/// `POST /admin/v1/users/{id}/unlock`.
#[utoipa::path(
    post,
    path = "/admin/v1/users/{id}/unlock",
    tag = "users",
    operation_id = "unlockUser",
    summary = "Unlock an account (admins; a reason is required and audited)",
    security(("bearer" = ["admin"])),
    params(("id" = String, Path, description = "User id, e.g. `u-1`.", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body(content = LockRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The account's state: unlocked (also when it already was).", body = LockVm),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::WriteTimeout),
    )
)]
pub async fn unlock_user(
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
    PathId(id): PathId,
    Json(body): Json<LockRequest>,
) -> Response {
    set_lock(&backbone, &caller, &plan, &id, body, false).await
}

/// Query of `GET /admin/v1/audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only records by this staff member (`s-2`).
    pub actor: Option<String>,
    /// Only records about this target (`u-1`).
    pub target: Option<String>,
    /// Only this outcome: `allowed`, `denied`, `rejected` or `failed`.
    pub outcome: Option<String>,
    /// Only records at or after this time (RFC 3339, UTC: `2026-12-06T00:00:00Z`).
    pub since: Option<String>,
    /// Only records before this time (RFC 3339, UTC).
    pub until: Option<String>,
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u8>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,512}$")]
    pub cursor: Option<String>,
}

/// A page of the trail, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// The records, as written (each with its place in the hash chain).
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<AuditRecord>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
}

fn timestamp(value: Option<String>, name: &str) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        // The trail writes `YYYY-MM-DDTHH:MM:SS(.fff)Z`: such strings order as times.
        Some(v) if v.len() >= 20 && v.len() <= 35 && v.ends_with('Z') && v.as_bytes()[10] == b'T' => {
            Ok(Some(v))
        }
        Some(_) => {
            Err(ApiError::new(ErrorCode::RequestInvalid)
                .with_detail(format!("{name} is an RFC 3339 UTC time")))
        }
    }
}

/// `GET /admin/v1/audit`: the trail, filtered, newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/audit",
    tag = "audit",
    operation_id = "queryAudit",
    summary = "The audit trail, filtered and paged (admins)",
    description = "Newest first. Filters combine (all must hold). Reads the trail this instance writes.",
    security(("bearer" = ["admin"])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of records.", body = AuditPage),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
    )
)]
pub async fn audit(
    State(backbone): State<Backbone>,
    Extension(TrailPath(path)): Extension<TrailPath>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    admins_only(&caller, "only admins read the audit trail")?;
    let limit = page_of(query.limit, 50)?;
    let outcome = match query.outcome.as_deref() {
        None => None,
        Some("allowed") => Some(Outcome::Allowed),
        Some("denied") => Some(Outcome::Denied),
        Some("rejected") => Some(Outcome::Rejected),
        Some("failed") => Some(Outcome::Failed),
        Some(_) => {
            return Err(ApiError::new(ErrorCode::RequestInvalid)
                .with_detail("outcome is allowed, denied, rejected or failed"));
        }
    };
    let (since, until) = (timestamp(query.since, "since")?, timestamp(query.until, "until")?);
    let filters = format!("{:?}|{:?}|{:?}|{since:?}|{until:?}", query.actor, query.target, query.outcome);
    let scope = format!("audit:{}:{filters}", caller.subject);
    // The cursor is the sequence number to continue below: the trail grows
    // while a reader pages (this very query is recorded), and a position
    // counted from the newest end would shift.
    let before = match query.cursor.as_deref() {
        None => u64::MAX,
        Some(_) => offset_of(&backbone, &scope, query.cursor.as_deref())?,
    };
    // The trail is read whole: a back office's trail between rotations is
    // small; a search index is the next step if it is not.
    let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(&path)).await;
    let text = match read {
        Ok(Ok(text)) => text,
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot read the audit trail");
            return Err(ApiError::new(ErrorCode::Internal));
        }
        Err(error) => {
            tracing::error!(%error, "the audit trail reader failed");
            return Err(ApiError::new(ErrorCode::Internal));
        }
    };
    let matching: Vec<AuditRecord> = text
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<AuditRecord>(line).ok())
        .filter(|r| query.actor.as_ref().is_none_or(|actor| r.actor.as_ref() == Some(actor)))
        .filter(|r| query.target.as_ref().is_none_or(|target| r.target.as_ref() == Some(target)))
        .filter(|r| outcome.is_none_or(|outcome| r.outcome == outcome))
        .filter(|r| since.as_ref().is_none_or(|since| r.time.as_str() >= since.as_str()))
        .filter(|r| until.as_ref().is_none_or(|until| r.time.as_str() < until.as_str()))
        .filter(|r| r.seq < before)
        .take(usize::from(limit) + 1)
        .collect();
    let more = matching.len() > usize::from(limit);
    let records: Vec<AuditRecord> = matching.into_iter().take(usize::from(limit)).collect();
    let next_cursor = records
        .last()
        .filter(|_| more)
        .and_then(|last| cursor::seal(&backbone.cache, &scope, &last.seq.to_string()));
    Ok(axum::Json(AuditPage { records, next_cursor }))
}
