//! Admin screens. What a role may see is decided here, per field.

use axum::extract::State;
use bff_auth::Caller;
use bff_compose::{Envelope, Plan};
use bff_downstream::model::{Money, Orders};
use bff_error::ApiError;
use bff_server::Backbone;
use bff_server::extract::PathId;
use serde::Serialize;

/// Money as the back office shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoneyVm {
    /// Minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
}

impl From<&Money> for MoneyVm {
    fn from(money: &Money) -> Self {
        MoneyVm { amount_minor: money.amount_minor, currency: money.currency.clone() }
    }
}

/// One order in the back office.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderVm {
    /// Order id.
    pub id: String,
    /// When.
    pub placed_at: String,
    /// Status.
    pub status: String,
    /// Units.
    pub item_count: u32,
    /// Total.
    pub total: MoneyVm,
}

/// The user's response (named for the OpenAPI document).
pub type UserEnvelope = Envelope<UserVm>;

/// `GET /admin/v1/users/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserVm {
    /// User id.
    pub id: String,
    /// Name.
    pub display_name: String,
    /// E-mail: whole for `admin`, masked for `support` (`a***@example.com`).
    #[schema(examples("a***@example.com"))]
    pub email: Option<String>,
    /// Loyalty tier.
    pub tier: String,
    /// Locale.
    pub locale: String,
    /// Up to ten most recent orders.
    pub recent_orders: Vec<OrderVm>,
    /// The fields masked for the caller's role, so the UI can say so.
    #[schema(examples(json!(["email"])))]
    pub masked: Vec<&'static str>,
}

/// `a***@example.com`: the first character of the local part, the domain.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// `GET /admin/v1/users/{id}`: the profile is critical, orders optional.
#[utoipa::path(
    get,
    path = "/admin/v1/users/{id}",
    tag = "users",
    operation_id = "getUser",
    summary = "A user's profile and recent orders, masked by the caller's role",
    security(("bearer" = ["admin"])),
    params(("id" = String, Path, description = "User id, e.g. `u-1`.", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "The user; `masked` names the fields hidden from the caller's role.",
            body = UserEnvelope),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn user(
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
    PathId(id): PathId,
) -> Result<Envelope<UserVm>, ApiError> {
    let (api, id) = (&backbone.api, id.as_str());
    let (profile, orders) = plan
        .run((
            plan.critical("profile", |cx| api.users.profile(cx, id)),
            plan.optional("orders", |cx| api.orders.for_user(cx, id)).or(Orders::default()),
        ))
        .await?;
    // Another tenant's customer answers exactly like an unknown one.
    crate::actions::in_scope(&caller, &profile)?;
    let whole = caller.has_role("admin");
    let masked = if whole { Vec::new() } else { vec!["email"] };
    let email = profile.email.as_deref().map(|e| if whole { e.to_owned() } else { mask_email(e) });
    Ok(plan.envelope(UserVm {
        id: profile.id,
        display_name: profile.display_name,
        email,
        tier: profile.tier,
        locale: profile.locale,
        // The service lists newest first.
        recent_orders: orders
            .orders
            .iter()
            .take(10)
            .map(|o| OrderVm {
                id: o.id.clone(),
                placed_at: o.placed_at.clone(),
                status: o.status.clone(),
                item_count: o.item_count,
                total: MoneyVm::from(&o.total),
            })
            .collect(),
        masked,
    }))
}

#[cfg(test)]
mod tests {
    use super::mask_email;

    #[test]
    fn emails_keep_one_letter_and_the_domain() {
        assert_eq!(mask_email("ada@example.com"), "a***@example.com");
        assert_eq!(mask_email("@example.com"), "***@example.com");
        assert_eq!(mask_email("not-an-email"), "***");
    }
}
