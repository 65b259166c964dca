//! The OAuth 2.0 Device Authorization Grant (RFC 8628), for clients with
//! no browser and a remote control for a keyboard (the TV app).
//!
//! 1. The device asks `POST /oauth/device_authorization` (form:
//!    `client_id`, optional `scope`) and gets a `device_code`, a short
//!    `user_code` (`BCDF-GHJK`), the `verification_uri` a person opens on
//!    their phone, `expires_in` (600 s) and the polling `interval` (1 s
//!    here, to keep local runs quick).
//! 2. A person approves the user code. The mock has no login page: the
//!    approval is one documented call, `POST /device` with the form fields
//!    `user_code`, `login_hint` (the seeded user, e.g. `u-1`) and
//!    `action` (`approve`, the default, or `deny`).
//! 3. Meanwhile the device polls `POST /oauth/token` with
//!    `grant_type=urn:ietf:params:oauth:grant-type:device_code`,
//!    `device_code` and `client_id`, and gets, per RFC 8628 section 3.5:
//!    `authorization_pending` (400) until the approval, `slow_down` (400)
//!    when it polls faster than the interval (which then grows by 5 s),
//!    `access_denied` (400) after a denial, `expired_token` (400) after
//!    `expires_in`, and finally the access token (audience: the client's
//!    BFF). A device code is redeemed once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::MockState;
use crate::identity::{
    ACCESS_TOKEN_SECS_PUBLIC, Grant, Identity, OAuthClient, client, issued, oauth_error, person,
};

/// The grant type of RFC 8628.
pub const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Letters of user codes: consonants only (RFC 8628 section 6.1: no vowels,
/// so no words; no look-alikes).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// The polling interval handed out, in seconds.
const INTERVAL_SECS: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Pending,
    Approved { user: String },
    Denied,
}

#[derive(Debug, Clone)]
struct Pending {
    client_id: String,
    user_code: String,
    expires: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
    decision: Decision,
}

/// Device authorizations in progress, by device code.
#[derive(Debug)]
pub struct Devices {
    pending: Mutex<HashMap<String, Pending>>,
    lifetime_ms: AtomicU64,
}

impl Default for Devices {
    fn default() -> Self {
        Devices { pending: Mutex::default(), lifetime_ms: AtomicU64::new(600_000) }
    }
}

impl Identity {
    /// How long new device codes live (600 s unless a test shortens it to
    /// see `expired_token`).
    pub fn set_device_code_lifetime(&self, lifetime: Duration) {
        self.devices.lifetime_ms.store(lifetime.as_millis() as u64, Ordering::Relaxed);
    }
}

fn random_code(alphabet: &[u8], len: usize) -> String {
    std::iter::repeat_with(|| alphabet[fastrand::usize(..alphabet.len())] as char).take(len).collect()
}

/// Form of `POST /oauth/device_authorization`.
#[derive(Debug, Deserialize)]
pub(crate) struct AuthorizationForm {
    client_id: Option<String>,
    #[allow(dead_code)]
    scope: Option<String>,
}

/// `POST /oauth/device_authorization`: a device code and a user code.
pub(crate) async fn authorize(
    State(state): State<MockState>,
    form: Result<Form<AuthorizationForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "expected a form body");
    };
    let Some(client) = form.client_id.as_deref().and_then(client) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client_id");
    };
    if !client.grants.contains(&Grant::DeviceCode) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "the client may not use this grant",
        );
    }
    let devices = &state.identity.devices;
    let lifetime = Duration::from_millis(devices.lifetime_ms.load(Ordering::Relaxed));
    let device_code = random_code(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 40);
    let code = random_code(USER_CODE_ALPHABET, 8);
    let user_code = format!("{}-{}", &code[..4], &code[4..]);
    let pending = Pending {
        client_id: client.id.clone(),
        user_code: user_code.clone(),
        expires: Instant::now() + lifetime,
        interval: Duration::from_secs(INTERVAL_SECS),
        last_poll: None,
        decision: Decision::Pending,
    };
    let mut map = devices.pending.lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, p| p.expires + Duration::from_secs(60) > Instant::now());
    map.insert(device_code.clone(), pending);
    let issuer = state.identity.issuer();
    Json(serde_json::json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": format!("{issuer}/device"),
        "verification_uri_complete": format!("{issuer}/device?user_code={user_code}"),
        "expires_in": lifetime.as_secs().max(1),
        "interval": INTERVAL_SECS,
    }))
    .into_response()
}

/// Form of `POST /device`: a person's decision about a user code.
#[derive(Debug, Deserialize)]
pub(crate) struct DecisionForm {
    user_code: Option<String>,
    login_hint: Option<String>,
    action: Option<String>,
}

/// `POST /device`: approve (as the seeded user `login_hint`) or deny the
/// device showing `user_code`.
pub(crate) async fn decide(
    State(state): State<MockState>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "expected a form body");
    };
    let wanted = form.user_code.unwrap_or_default().trim().to_ascii_uppercase();
    let decision = match form.action.as_deref().unwrap_or("approve") {
        "approve" => {
            let user = form.login_hint.unwrap_or_else(|| "u-1".to_owned());
            if person(&user).is_none() {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "unknown user");
            }
            Decision::Approved { user }
        }
        "deny" => Decision::Denied,
        _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "action is approve or deny"),
    };
    let mut map = state.identity.devices.pending.lock().unwrap_or_else(|p| p.into_inner());
    let found = map
        .values_mut()
        .find(|p| p.user_code == wanted && p.decision == Decision::Pending && p.expires > Instant::now());
    match found {
        Some(pending) => {
            pending.decision = decision;
            Json(serde_json::json!({ "user_code": wanted, "decided": true })).into_response()
        }
        None => {
            oauth_error(StatusCode::NOT_FOUND, "invalid_request", "no pending device with this user code")
        }
    }
}

/// The device-code grant at the token endpoint (the client is
/// authenticated by the caller).
pub(crate) fn poll(identity: &Identity, client: &OAuthClient, device_code: Option<&str>) -> Response {
    let refuse = |error: &str, description: &str| oauth_error(StatusCode::BAD_REQUEST, error, description);
    let Some(device_code) = device_code else {
        return refuse("invalid_request", "device_code is required");
    };
    let mut map = identity.devices.pending.lock().unwrap_or_else(|p| p.into_inner());
    let Some(pending) = map.get_mut(device_code).filter(|p| p.client_id == client.id) else {
        return refuse("invalid_grant", "unknown device_code");
    };
    let now = Instant::now();
    if pending.expires <= now {
        map.remove(device_code);
        return refuse("expired_token", "the device code expired: start again");
    }
    if pending.last_poll.is_some_and(|last| now.duration_since(last) < pending.interval) {
        pending.interval += Duration::from_secs(5);
        pending.last_poll = Some(now);
        return refuse("slow_down", "polling too fast: wait the interval (now 5 s longer)");
    }
    pending.last_poll = Some(now);
    match pending.decision.clone() {
        Decision::Pending => refuse("authorization_pending", "the user has not decided yet"),
        Decision::Denied => {
            map.remove(device_code);
            refuse("access_denied", "the user denied the device")
        }
        Decision::Approved { user } => {
            map.remove(device_code);
            let claims =
                identity.claims(&client.audience, &user, &client.scope, &client.id, ACCESS_TOKEN_SECS_PUBLIC);
            match identity.sign(&claims) {
                Ok(token) => issued(token, &claims, None),
                Err(_) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed"),
            }
        }
    }
}
