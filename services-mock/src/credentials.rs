//! Credentials to call a BFF as one of its callers, minted the way each
//! authentication mode's real clients get them: `services-mock token` and
//! the dev console ([`crate::console`]) both use this module.
//!
//! | mode | caller | how |
//! |---|---|---|
//! | bearer, staff | a seeded customer `u-N` / staff `s-N` | signed here with the development key (as the identity mock would after a login) |
//! | client-credentials | a seeded partner client | the `client_credentials` grant against the running identity mock, with the client's development secret |
//! | session | a customer | web-bff's own login flow (login, identity mock, callback): a `__Host-session` cookie, never a token |
//! | device | a customer | the device authorization grant (RFC 8628), approved through the mock's `/device` call |
//!
//! Everything here signs with, or logs in at, the *development* identity
//! provider: it is local-development tooling only.

use std::time::Duration;

use anyhow::{Context as _, bail};
use bff_registry::{Auth, Bff};

use crate::identity::{Grant, Identity};
use crate::seed::Seed;

/// How a request to a BFF carries its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Cookie: __Host-session=<sealed>` (session BFFs).
    Cookie(String),
}

impl Credential {
    /// The request header that carries it: `(name, value)`.
    pub fn header(&self) -> (&'static str, String) {
        match self {
            Credential::Bearer(token) => ("authorization", format!("Bearer {token}")),
            Credential::Cookie(pair) => ("cookie", pair.clone()),
        }
    }
}

/// Someone a BFF can be called as, for pickers (the dev console).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Caller {
    /// The id to pass to [`mint`] (`u-1`, `s-2`, `partner-acme`).
    pub id: String,
    /// Who that is, for people.
    pub label: String,
}

/// The seeded callers of `bff`, its registry smoke caller first when seeded.
pub fn callers(bff: &Bff) -> Vec<Caller> {
    let mut callers: Vec<Caller> = match bff.auth {
        Auth::Staff => crate::identity::STAFF
            .iter()
            .map(|(id, name, role)| Caller { id: (*id).to_owned(), label: format!("{name} ({role})") })
            .collect(),
        Auth::ClientCredentials => crate::identity::clients()
            .iter()
            // A partner is a tenant's client (the BFF's own client, which
            // exchanges tokens, is not a caller).
            .filter(|c| {
                c.audience == bff.name && c.tenant.is_some() && c.grants.contains(&Grant::ClientCredentials)
            })
            .map(|c| Caller {
                id: c.id.clone(),
                label: format!("partner {}", c.tenant.as_deref().unwrap_or("?")),
            })
            .collect(),
        Auth::Bearer | Auth::Session | Auth::Device => Seed::shared()
            .users
            .iter()
            .map(|u| Caller {
                id: u.id.clone(),
                label: format!("{} ({}, {})", u.display_name, u.country, u.segment),
            })
            .collect(),
    };
    if let Some(at) = callers.iter().position(|c| c.id == bff.smoke.caller) {
        let smoke = callers.remove(at);
        callers.insert(0, smoke);
    }
    callers
}

/// Where the flows that need a running service find it.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The BFF, e.g. `http://127.0.0.1:8080` (session logins go through it).
    pub bff: String,
    /// The identity mock, e.g. `http://127.0.0.1:7000`.
    pub identity: String,
}

/// A credential for `caller` of `bff`: see the module's table. `identity`
/// signs the tokens that are signed locally (the development key, as
/// `services-mock token` does); they live `ttl`.
pub async fn mint(
    bff: &Bff,
    caller: &str,
    endpoints: &Endpoints,
    identity: &Identity,
    ttl: Duration,
) -> anyhow::Result<Credential> {
    if !callers(bff).iter().any(|c| c.id == caller) {
        bail!("`{caller}` is not a seeded caller of {}", bff.name);
    }
    Ok(match bff.auth {
        Auth::Bearer | Auth::Staff => Credential::Bearer(identity.user_token(bff, caller, ttl)?),
        Auth::ClientCredentials => {
            let client = crate::identity::client(caller).context("no such client")?;
            let secret = client.secret.as_deref().context("a partner client has a secret")?;
            Credential::Bearer(client_credentials(&endpoints.identity, caller, secret).await?)
        }
        Auth::Session => Credential::Cookie(web_session(&endpoints.bff, caller).await?),
        Auth::Device => Credential::Bearer(device_flow(&endpoints.identity, bff.client, caller).await?),
    })
}

/// The `client_credentials` grant at the identity provider: a partner's own token.
pub async fn client_credentials(identity: &str, client_id: &str, secret: &str) -> anyhow::Result<String> {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{identity}/oauth/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .with_context(|| format!("is the identity mock running at {identity}?"))?
        .error_for_status()
        .context("the identity provider refused the client credentials")?
        .json()
        .await?;
    answer["access_token"].as_str().map(str::to_owned).context("no access_token in the answer")
}

/// Runs web-bff's login flow (login, identity provider, callback) like a
/// browser would and returns the `__Host-session=...` cookie pair.
pub async fn web_session(web: &str, user: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let cookie = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
    };
    let location = |response: &reqwest::Response| {
        response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    let login = http
        .get(format!("{web}/auth/login"))
        .query(&[("login_hint", user)])
        .send()
        .await
        .with_context(|| format!("is web-bff running at {web}? (cargo xtask dev)"))?;
    let login_cookie = cookie(&login, "__Host-login").context("web-bff set no login cookie")?;
    let to_identity = location(&login).context("web-bff did not redirect to the identity provider")?;
    let authorized = http.get(&to_identity).send().await.context("identity provider unreachable")?;
    let back = location(&authorized).context("the identity provider did not redirect back")?;
    let callback = http.get(&back).header(reqwest::header::COOKIE, login_cookie).send().await?;
    match cookie(&callback, "__Host-session") {
        Some(session) => Ok(session),
        None => bail!("login failed: {} {}", callback.status(), callback.text().await.unwrap_or_default()),
    }
}

/// Runs the device authorization grant (RFC 8628) as a TV would, with the
/// person's approval made through the mock's documented call, and returns
/// the access token.
pub async fn device_flow(identity: &str, client_id: &str, user: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let started: serde_json::Value = http
        .post(format!("{identity}/oauth/device_authorization"))
        .form(&[("client_id", client_id)])
        .send()
        .await
        .with_context(|| format!("is the identity mock running at {identity}? (cargo xtask dev)"))?
        .error_for_status()?
        .json()
        .await?;
    let field = |name: &str| started[name].as_str().map(str::to_owned).with_context(|| format!("no {name}"));
    let (device_code, user_code) = (field("device_code")?, field("user_code")?);
    let mut interval = Duration::from_secs(started["interval"].as_u64().unwrap_or(5));
    eprintln!("device: user code {user_code}; approving it as {user} (POST {identity}/device)");
    http.post(format!("{identity}/device"))
        .form(&[("user_code", user_code.as_str()), ("login_hint", user), ("action", "approve")])
        .send()
        .await?
        .error_for_status()
        .context("the approval was refused")?;
    for _ in 0..60 {
        tokio::time::sleep(interval).await;
        let answer = http
            .post(format!("{identity}/oauth/token"))
            .form(&[
                ("grant_type", crate::device::DEVICE_CODE),
                ("device_code", device_code.as_str()),
                ("client_id", client_id),
            ])
            .send()
            .await?;
        let body: serde_json::Value = answer.json().await?;
        if let Some(token) = body["access_token"].as_str() {
            return Ok(token.to_owned());
        }
        match body["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += Duration::from_secs(5),
            other => bail!("device flow failed: {}", other.unwrap_or("unreadable answer")),
        }
    }
    bail!("device flow: no token after 60 polls")
}
