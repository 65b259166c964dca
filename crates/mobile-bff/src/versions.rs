//! Old app versions: the app says which version it is (`X-App-Version:
//! 5.2.1`, `MAJOR.MINOR.PATCH`); below `app_versions.minimum` every request
//! is `426 client.upgrade_required` (a `Link` to the upgrade notes), below
//! `app_versions.deprecated_below` it is answered as usual with
//! `Deprecation`, `Sunset` and `Link` (RFC 9745, RFC 8594). The policy is
//! in the README ("Mobile app versions").
//!
//! A request without the header is answered as usual: every release since
//! the header was introduced sends it, and tools (curl, the load tool,
//! probes) do not. A malformed one is `400 request.invalid`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse as _, Response};
use bff_error::{ApiError, ErrorCode};
use bff_server::deprecation::Notice;
use bff_server::{Backbone, Section, ShellError, WrapApp};
use serde::{Deserialize, Serialize};

/// The header the app sends.
pub const HEADER: &str = "x-app-version";

/// This BFF's own section, `app_versions`
/// (`MOBILE_BFF__APP_VERSIONS__MINIMUM=4.0.0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppVersions {
    /// The oldest version served; older is `426`.
    pub minimum: String,
    /// Versions below this (and at least `minimum`) are deprecated: served,
    /// with `Deprecation`, `Sunset` and `Link`.
    pub deprecated_below: String,
    /// What the deprecated versions are told.
    pub notice: Notice,
}

impl Default for AppVersions {
    fn default() -> Self {
        AppVersions {
            minimum: "4.0.0".to_owned(),
            deprecated_below: "5.0.0".to_owned(),
            notice: Notice {
                since: "2026-11-01".to_owned(),
                sunset: "2027-03-31".to_owned(),
                link: "https://developer.example.com/mobile/supported-versions".to_owned(),
            },
        }
    }
}

impl Section for AppVersions {
    const KEY: &'static str = "app_versions";

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let minimum = Version::parse(&self.minimum);
        let deprecated = Version::parse(&self.deprecated_below);
        if minimum.is_none() {
            problems.push(format!("minimum: `{}` is not MAJOR.MINOR.PATCH", self.minimum));
        }
        if deprecated.is_none() {
            problems.push(format!("deprecated_below: `{}` is not MAJOR.MINOR.PATCH", self.deprecated_below));
        }
        if let (Some(minimum), Some(deprecated)) = (minimum, deprecated)
            && deprecated < minimum
        {
            problems.push("deprecated_below: below `minimum`".to_owned());
        }
        problems.extend(self.notice.problems().into_iter().map(|p| format!("notice.{p}")));
        problems
    }
}

/// `MAJOR.MINOR.PATCH`, compared numerically (a pre-release or build
/// suffix after `-` or `+` is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(u32, u32, u32);

impl Version {
    /// `5.2.1`, `5.2`, `5` (missing parts are 0); `None` for anything else.
    pub fn parse(text: &str) -> Option<Version> {
        let core = text.split(['-', '+']).next()?;
        if core.is_empty() || core.len() > 32 {
            return None;
        }
        let mut parts = core.split('.').map(|part| {
            (!part.is_empty() && part.len() <= 9 && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u32>().ok())
                .flatten()
        });
        let major = parts.next()??;
        let minor = parts.next().unwrap_or(Some(0))?;
        let patch = parts.next().unwrap_or(Some(0))?;
        if parts.next().is_some() {
            return None;
        }
        Some(Version(major, minor, patch))
    }
}

/// The policy, parsed once.
#[derive(Debug)]
struct Policy {
    minimum: Version,
    deprecated_below: Version,
    notice: Vec<(axum::http::HeaderName, HeaderValue)>,
    link: Option<HeaderValue>,
}

/// The `around_edge` hook: every request, before routing and authentication
/// (an app too old to be served is told so whatever else is wrong).
pub(crate) fn layer(config: &AppVersions, _: &Backbone) -> Result<WrapApp, ShellError> {
    let (Some(minimum), Some(deprecated_below)) =
        (Version::parse(&config.minimum), Version::parse(&config.deprecated_below))
    else {
        return Err(ShellError::InvalidConfig(config.problems()));
    };
    let notice = config.notice.headers();
    let link = notice.iter().find(|(name, _)| name == header::LINK).map(|(_, value)| value.clone());
    let policy = Arc::new(Policy { minimum, deprecated_below, notice, link });
    let layer = CheckVersionLayer(policy);
    Ok(Box::new(move |app| app.layer(layer)))
}

/// A tower layer rather than `middleware::from_fn`, which clones the
/// stack below it for every request: from_fn cost 30 allocations a
/// request (the allocation guard), this one 16 (home 840 -> 856: the rest
/// is axum applying an app-wide layer to each route), for one boxed future.
#[derive(Clone)]
struct CheckVersionLayer(Arc<Policy>);

impl<S> tower::Layer<S> for CheckVersionLayer {
    type Service = CheckVersion<S>;

    fn layer(&self, inner: S) -> CheckVersion<S> {
        CheckVersion { policy: Arc::clone(&self.0), inner }
    }
}

#[derive(Clone)]
struct CheckVersion<S> {
    policy: Arc<Policy>,
    inner: S,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> tower::Service<Request> for CheckVersion<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Answer {
        let Some(value) = request.headers().get(HEADER) else {
            return Box::pin(self.inner.call(request));
        };
        let Some(version) = value.to_str().ok().and_then(Version::parse) else {
            let refused = ApiError::new(ErrorCode::RequestInvalid)
                .with_detail("X-App-Version is MAJOR.MINOR.PATCH, e.g. 5.2.1")
                .into_response();
            return Box::pin(std::future::ready(Ok(refused)));
        };
        if version < self.policy.minimum {
            let mut response = ApiError::new(ErrorCode::ClientUpgradeRequired).into_response();
            if let Some(link) = &self.policy.link {
                response.headers_mut().insert(header::LINK, link.clone());
            }
            return Box::pin(std::future::ready(Ok(response)));
        }
        let answer = self.inner.call(request);
        if version >= self.policy.deprecated_below {
            return Box::pin(answer);
        }
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let mut response = answer.await?;
            for (name, value) in &policy.notice {
                // Appended: a `Link` of the answer's own stays.
                response.headers_mut().append(name.clone(), value.clone());
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically_and_junk_is_refused() {
        let v = |s| Version::parse(s).unwrap_or_else(|| panic!("{s}"));
        assert!(v("4.10.0") > v("4.9.9"));
        assert_eq!(v("5"), v("5.0.0"));
        assert_eq!(v("5.2.1-beta.3+77"), v("5.2.1"));
        for junk in ["", "v5", "5..1", "5.2.1.0", "a.b.c", "99999999999", "5.-1"] {
            assert_eq!(Version::parse(junk), None, "{junk:?}");
        }
        assert!(AppVersions::default().problems().is_empty());
    }
}
