//! Extractors whose rejections are [`ApiError`]s (problem+json), replacing
//! axum's plain-text rejections: [`Json`], [`Path`], [`Query`] (a tidy test
//! keeps axum's own out of the BFF crates), plus [`PathId`],
//! [`IdempotencyKey`] and [`whole_number`].

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
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
    use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
    match rejection {
        // The body was cut at the limit (`DefaultBodyLimit`) while streaming.
        JsonRejection::BytesRejection(BytesRejection::FailedToBufferBody(
            FailedToBufferBody::LengthLimitError(_),
        )) => ApiError::new(ErrorCode::RequestTooLarge),
        other => ApiError::new(ErrorCode::RequestInvalid).with_detail(other.body_text()),
    }
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

/// Query parameters. A query that does not deserialize (a word where a
/// number goes, a repeated parameter) is `400 request.invalid` as
/// problem+json, like every other refusal, not axum's plain text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => {
                Err(ApiError::new(ErrorCode::RequestInvalid).with_detail(rejection.body_text()))
            }
        }
    }
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

/// The `Idempotency-Key` header of a write (IETF
/// draft-ietf-httpapi-idempotency-key-header): 8 to 128 ASCII letters,
/// digits, `-`, `_`, `.` or `:` (a UUID fits). Missing is
/// `400 idempotency.key_missing`; malformed is `400 request.invalid`.
///
/// Declaring it on an operation (`params(IdempotencyKey)`) makes the shell
/// enforce the key for that operation (`crate::idempotency`: replays,
/// `409` while in flight, `422` for another request); the handler forwards
/// it to the service that owns the write, which keeps it too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

impl IdempotencyKey {
    /// The header's name.
    pub const HEADER: &'static str = "idempotency-key";

    /// Whether `key` is an acceptable key.
    pub fn is_valid(key: &str) -> bool {
        (8..=128).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(IdempotencyKey::HEADER) else {
            return Err(ApiError::new(ErrorCode::IdempotencyKeyMissing));
        };
        match value.to_str() {
            Ok(key) if IdempotencyKey::is_valid(key) => Ok(IdempotencyKey(key.to_owned())),
            _ => Err(ApiError::new(ErrorCode::RequestInvalid)
                .with_detail("an Idempotency-Key is 8 to 128 letters, digits, '-', '_', '.' or ':'")),
        }
    }
}

impl utoipa::IntoParams for IdempotencyKey {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::Required;
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(8))
            .max_length(Some(128))
            .pattern(Some("^[A-Za-z0-9_.:-]{8,128}$"))
            .examples(["0b6f3c1e-4f7a-4d2e-9d0c-1f2a3b4c5d6e"]);
        vec![
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some(
                    "A new key per distinct write: a retry with the same key and body gets the first answer; \
                 the same key with another body is `422 idempotency.key_reused`.",
                ))
                .schema(Some(schema))
                .build(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::{IdempotencyKey, PathId};

    #[test]
    fn idempotency_keys_are_plain_and_bounded() {
        assert!(IdempotencyKey::is_valid("0b6f3c1e-4f7a-4d2e-9d0c-1f2a3b4c5d6e"));
        for bad in ["short", "has space in it", "ключ-ключ-ключ", &"k".repeat(129)] {
            assert!(!IdempotencyKey::is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_short_and_plain() {
        assert!(PathId::is_valid("p-42") && PathId::is_valid("u_1"));
        for bad in ["", "a/b", "..", "p 1", "é", &"x".repeat(65)] {
            assert!(!PathId::is_valid(bad), "{bad:?}");
        }
    }
}

/// `#[serde(deserialize_with = "bff_server::extract::whole_number")]`: an
/// integer field that also accepts an integer written with a fraction,
/// `22.0`. JSON Schema's `integer` counts `22.0` as an integer, so a client
/// generated from the document may send it; serde's integers refuse it.
/// A real fraction (`22.5`) or a value out of the field's range is still a
/// clear `400 request.invalid`.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64> + TryFrom<i64>,
{
    use serde::Deserialize as _;
    use serde::de::Error as _;
    let number = serde_json::Number::deserialize(deserializer)?;
    let out_of_range = || D::Error::custom(format!("{number} is out of range"));
    if let Some(n) = number.as_u64() {
        return T::try_from(n).map_err(|_| out_of_range());
    }
    if let Some(n) = number.as_i64() {
        return T::try_from(n).map_err(|_| out_of_range());
    }
    match number.as_f64() {
        // Exactly representable integers only: beyond 2^53 a float is not
        // a trustworthy count.
        Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => {
            #[allow(clippy::cast_possible_truncation)]
            let n = f as i64;
            T::try_from(n).map_err(|_| out_of_range())
        }
        _ => Err(D::Error::custom(format!("{number} is not a whole number"))),
    }
}

#[cfg(test)]
mod whole_numbers {
    use super::whole_number;

    #[derive(Debug, serde::Deserialize)]
    struct Line {
        #[serde(deserialize_with = "whole_number")]
        quantity: u32,
    }

    fn quantity(json: &str) -> Result<u32, String> {
        serde_json::from_str::<Line>(json).map(|l| l.quantity).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_with_or_without_a_zero_fraction_are_accepted() {
        assert_eq!(quantity(r#"{"quantity":22}"#), Ok(22));
        assert_eq!(quantity(r#"{"quantity":22.0}"#), Ok(22));
        assert_eq!(quantity(r#"{"quantity":2.2e1}"#), Ok(22));
        assert_eq!(quantity(r#"{"quantity":-0.0}"#), Ok(0));
    }

    #[test]
    fn fractions_out_of_range_values_and_other_types_are_refused() {
        for bad in [
            r#"{"quantity":22.5}"#,
            r#"{"quantity":-1}"#,
            r#"{"quantity":-1.0}"#,
            r#"{"quantity":4294967296}"#,
            r#"{"quantity":1e300}"#,
            r#"{"quantity":"22"}"#,
            r#"{"quantity":null}"#,
        ] {
            assert!(quantity(bad).is_err(), "{bad} was accepted");
        }
    }
}
