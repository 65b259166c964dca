//! Extractors whose rejections are [`ApiError`]s (problem+json), replacing
//! axum's plain-text rejections.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bff_error::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;

/// A JSON body. Malformed JSON, a wrong content type or a wrong shape is
/// `400 request.invalid`; a body over the limit is `413 request.too_large`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(ErrorCode::RequestTooLarge);
    }
    ApiError::new(ErrorCode::RequestInvalid).with_detail(rejection.body_text())
}

/// Path parameters. A parameter that does not parse is `400 request.invalid`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    ApiError::new(ErrorCode::RequestInvalid).with_detail(rejection.body_text())
}

/// The one path parameter of a route, as an entity id (`u-1`, `p-42`):
/// 1 to 64 ASCII letters, digits, `-` or `_`, else `400 request.invalid`.
/// Ids go into downstream URLs (percent-encoded anyway) and logs, so
/// anything else is refused at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathId(pub String);

impl PathId {
    /// Whether `id` is an acceptable entity id.
    pub fn is_valid(id: &str) -> bool {
        (1..=64).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state).await?;
        if PathId::is_valid(&id) {
            Ok(PathId(id))
        } else {
            Err(ApiError::new(ErrorCode::RequestInvalid)
                .with_detail("an id is 1 to 64 letters, digits, '-' or '_'"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PathId;

    #[test]
    fn ids_are_short_and_plain() {
        assert!(PathId::is_valid("p-42") && PathId::is_valid("u_1"));
        for bad in ["", "a/b", "..", "p 1", "é", &"x".repeat(65)] {
            assert!(!PathId::is_valid(bad), "{bad:?}");
        }
    }
}
