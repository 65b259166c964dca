//! The taxonomy in OpenAPI terms, so every BFF's document says exactly what
//! its errors look like: the [`Problem`] body and [`ReasonCode`] schemas, and
//! one reusable response per error status with an example per code it can
//! carry. Handlers name them in `#[utoipa::path(responses(...))]`
//! (`(status = 401, response = bff_error::openapi::Unauthenticated)`), and
//! [`register`] puts them under `components` once per document.
//!
//! The schemas are written by hand rather than derived: the codes come from
//! [`ErrorCode::ALL`] / [`ReasonCode::ALL`], so the documented enum cannot
//! drift from the one the code serializes.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Components, RefOr, Schema};
use utoipa::{PartialSchema, ToResponse, ToSchema};

use crate::{ApiError, ErrorCode, PROBLEM_JSON, Problem, ReasonCode};

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Integer)
}

impl PartialSchema for Problem {
    fn schema() -> RefOr<Schema> {
        let example = serde_json::to_value(
            ApiError::new(ErrorCode::DependencyTimeout)
                .with_detail("The price did not answer in time")
                .problem(),
        )
        .ok();
        ObjectBuilder::new()
            .description(Some("An RFC 9457 problem: what every error response carries."))
            .property("type", string().description(Some("`urn:problem:bff:<code>`.")))
            .required("type")
            .property("title", string().description(Some("Fixed summary of the problem type.")))
            .required("title")
            .property("status", integer().description(Some("The HTTP status.")))
            .required("status")
            .property(
                "code",
                string()
                    .description(Some("The stable machine code clients switch on."))
                    .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str()))),
            )
            .required("code")
            .property("detail", string().description(Some("Caller-safe explanation of this occurrence.")))
            .examples(example)
            .into()
    }
}

impl ToSchema for Problem {}

impl PartialSchema for ReasonCode {
    fn schema() -> RefOr<Schema> {
        string()
            .description(Some("Why a component of a composed response is not `ok`."))
            .enum_values(Some(ReasonCode::ALL.iter().map(|r| r.as_str())))
            .into()
    }
}

impl ToSchema for ReasonCode {}

/// A problem+json response carrying any of `codes`, each shown as a named example.
fn problem_response(description: &str, codes: &[ErrorCode]) -> ResponseBuilder {
    let mut content = ContentBuilder::new().schema(Some(Problem::schema_ref()));
    for code in codes {
        let value = serde_json::to_value(ApiError::new(*code).problem()).ok();
        content = content.examples_from_iter([(code.as_str(), ExampleBuilder::new().value(value))]);
    }
    ResponseBuilder::new().description(description).content(PROBLEM_JSON, content.build())
}

impl Problem {
    /// `$ref` to the `Problem` schema (registered by [`register`]).
    fn schema_ref() -> RefOr<Schema> {
        RefOr::Ref(utoipa::openapi::Ref::from_schema_name(Problem::name()))
    }
}

/// A `Retry-After` response header: whole seconds.
pub fn retry_after_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(integer().minimum(Some(1))))
        .description(Some("Seconds to wait before trying again."))
        .build()
}

macro_rules! responses {
    ($($(#[$doc:meta])* $name:ident: $description:literal, [$($code:ident),+] $(, $header:literal => $value:expr)*;)+) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    let response = problem_response($description, &[$(ErrorCode::$code),+])
                        $(.header($header, $value))*;
                    (stringify!($name), RefOr::T(response.build()))
                }
            }
        )+

        /// Adds the `Problem` and `ReasonCode` schemas and every error
        /// response of this module to `components`.
        pub fn register(components: &mut Components) {
            components.schemas.insert(Problem::name().into_owned(), Problem::schema());
            components.schemas.insert(ReasonCode::name().into_owned(), ReasonCode::schema());
            $(
                let (name, response) = <$name as ToResponse>::response();
                components.responses.insert(name.to_owned(), response);
            )+
        }
    };
}

responses! {
    /// 400: a malformed request (bad parameter, path id or JSON).
    BadRequest: "The request is malformed.", [RequestInvalid];
    /// 400 on a write: malformed, or without its `Idempotency-Key`.
    BadWrite: "The request is malformed, or lacks its `Idempotency-Key`.", [RequestInvalid, IdempotencyKeyMissing];
    /// 422: the `Idempotency-Key` was used before for a different request.
    KeyReused: "The `Idempotency-Key` was already used for a different request: use a new key per distinct write.",
        [IdempotencyKeyReused];
    /// 409: a request with the same `Idempotency-Key` is still in flight.
    InFlight: "A request with this `Idempotency-Key` is still being processed: send the same request again after `Retry-After` seconds.",
        [IdempotencyInFlight],
        "Retry-After" => retry_after_header();
    /// 504 on a write: the outcome is unknown; retry with the same key.
    WriteTimeout: "A part the response cannot do without did not answer in time; for a write, `write.outcome_unknown`: it may have happened, so retry with the same `Idempotency-Key`.",
        [DependencyTimeout, WriteOutcomeUnknown];
    /// 401: missing, expired or forged credentials; carries `WWW-Authenticate`.
    Unauthenticated: "Credentials are missing, expired or not trusted.", [AuthInvalidToken],
        "WWW-Authenticate" => HeaderBuilder::new().schema(Some(string()))
            .description(Some("The RFC 6750 challenge, e.g. `Bearer error=\"invalid_token\"`.")).build();
    /// 403: authenticated, but not allowed.
    Forbidden: "The caller may not do this.", [AuthForbidden];
    /// 404: the addressed resource does not exist.
    NotFound: "The resource does not exist.", [NotFound];
    /// 413: the body is larger than the configured limit.
    TooLarge: "The request body is too large.", [RequestTooLarge];
    /// 429: the caller's rate limit is exhausted.
    RateLimited: "Too many requests: this caller's quota is used up; come back after `Retry-After` seconds. \
        Every answer to an authenticated caller carries `RateLimit-Policy` and `RateLimit` (IETF \
        draft-ietf-httpapi-ratelimit-headers).",
        [RateLimited],
        "Retry-After" => retry_after_header(),
        "RateLimit-Policy" => HeaderBuilder::new().schema(Some(string()))
            .description(Some("The caller's quota: `\"<policy>\";q=<requests>;w=<window seconds>`.")).build(),
        "RateLimit" => HeaderBuilder::new().schema(Some(string()))
            .description(Some("What is left: `\"<policy>\";r=<remaining>;t=<seconds until whole>`.")).build();
    /// 426: the app is older than the oldest version served.
    UpgradeRequired: "This app version is no longer served: update the app (`Link` names the notes).",
        [ClientUpgradeRequired];
    /// 500: a bug on our side; never carries details.
    Internal: "A bug on our side.", [Internal];
    /// 503: a critical part is unavailable, or the BFF shed load.
    Unavailable: "A part the response cannot do without is unavailable, or the BFF is overloaded.",
        [DependencyUnavailable, Overloaded],
        "Retry-After" => retry_after_header();
    /// 504: a critical part did not answer within the request deadline.
    Timeout: "A part the response cannot do without did not answer in time.", [DependencyTimeout];
}
