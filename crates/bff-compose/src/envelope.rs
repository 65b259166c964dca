//! The response envelope of composed endpoints.

use axum::Json;
use axum::response::{IntoResponse, Response};
use bff_error::ReasonCode;
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

/// Where a fallback value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A value fixed by the handler (`or`, `or_default`).
    Default,
    /// The last good value, from the cache (stale-if-error).
    Cache,
}

/// The outcome of one component, as clients see it in `components`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentStatus {
    /// Declared but not finished (only seen if a plan is inspected mid-run).
    Pending,
    /// The component's own data is in the response.
    Ok,
    /// A substitute is in the response.
    Fallback {
        /// Where the substitute came from.
        source: Source,
        /// Why the real value is missing.
        reason: ReasonCode,
        /// For a cached substitute: how old it is, in milliseconds.
        age_ms: Option<u64>,
    },
    /// The component is missing from the response.
    Error {
        /// Why it is missing.
        reason: ReasonCode,
    },
}

impl ComponentStatus {
    /// Whether the status makes the response degraded.
    pub fn is_degraded(&self) -> bool {
        !matches!(self, ComponentStatus::Ok)
    }
}

impl Serialize for ComponentStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (status, source, reason, age_ms) = match self {
            ComponentStatus::Pending => ("pending", None, None, None),
            ComponentStatus::Ok => ("ok", None, None, None),
            ComponentStatus::Fallback { source, reason, age_ms } => {
                ("fallback", Some(source), Some(reason), *age_ms)
            }
            ComponentStatus::Error { reason } => ("error", None, Some(reason), None),
        };
        let fields =
            1 + usize::from(source.is_some()) + usize::from(reason.is_some()) + usize::from(age_ms.is_some());
        let mut state = serializer.serialize_struct("ComponentStatus", fields)?;
        state.serialize_field("status", status)?;
        if let Some(source) = source {
            state.serialize_field("source", source)?;
        }
        if let Some(reason) = reason {
            state.serialize_field("reasonCode", reason)?;
        }
        if let Some(age_ms) = age_ms {
            state.serialize_field("ageMs", &age_ms)?;
        }
        state.end()
    }
}

/// `{ "degraded", "components", "data" }`: what every composed endpoint returns.
/// Components are listed in declaration order.
#[derive(Debug, Clone)]
pub struct Envelope<T> {
    components: Vec<(&'static str, ComponentStatus)>,
    /// When each component finished, from the composition's start (for
    /// `Server-Timing`; not serialized).
    timings: Vec<Option<std::time::Duration>>,
    data: T,
}

impl<T> Envelope<T> {
    pub(crate) fn new(components: Vec<(&'static str, ComponentStatus)>, data: T) -> Self {
        Envelope { components, timings: Vec::new(), data }
    }

    pub(crate) fn with_timings(mut self, timings: Vec<Option<std::time::Duration>>) -> Self {
        self.timings = timings;
        self
    }

    /// True when any component is not `ok`.
    pub fn degraded(&self) -> bool {
        self.components.iter().any(|(_, status)| status.is_degraded())
    }

    /// The status of a component, by name.
    pub fn status(&self, name: &str) -> Option<ComponentStatus> {
        self.components.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    /// The view model.
    pub fn data(&self) -> &T {
        &self.data
    }
}

struct Components<'a>(&'a [(&'static str, ComponentStatus)]);

impl Serialize for Components<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, status) in self.0 {
            map.serialize_entry(name, status)?;
        }
        map.end()
    }
}

impl<T: Serialize> Serialize for Envelope<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut state = serializer.serialize_struct("Envelope", 3)?;
        state.serialize_field("degraded", &self.degraded())?;
        state.serialize_field("components", &Components(&self.components))?;
        state.serialize_field("data", &self.data)?;
        state.end()
    }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    /// The JSON body, with the components' outcomes on the response as a
    /// [`bff_telemetry::Composition`] for the access log and the metrics.
    fn into_response(self) -> Response {
        let composition = bff_telemetry::Composition {
            components: self
                .components
                .iter()
                .enumerate()
                .map(|(i, (name, status))| {
                    let (label, reason) = match status {
                        ComponentStatus::Pending => ("pending", None),
                        ComponentStatus::Ok => ("ok", None),
                        ComponentStatus::Fallback { reason, .. } => ("fallback", Some(reason.as_str())),
                        ComponentStatus::Error { reason } => ("error", Some(reason.as_str())),
                    };
                    bff_telemetry::ComponentOutcome {
                        name,
                        status: label,
                        reason,
                        elapsed: self.timings.get(i).copied().flatten(),
                    }
                })
                .collect(),
        };
        let mut response = Json(self).into_response();
        response.extensions_mut().insert(composition);
        response
    }
}

/// The envelope in OpenAPI terms: `<Data>Envelope`, one schema per view model.
mod openapi {
    use std::borrow::Cow;

    use bff_error::ReasonCode;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Ref, RefOr, Schema};
    use utoipa::{PartialSchema, ToSchema};

    use super::{ComponentStatus, Envelope};

    fn reference<T: ToSchema>() -> RefOr<Schema> {
        RefOr::Ref(Ref::from_schema_name(T::name()))
    }

    impl PartialSchema for ComponentStatus {
        fn schema() -> RefOr<Schema> {
            let string = || ObjectBuilder::new().schema_type(Type::String);
            ObjectBuilder::new()
                .description(Some(
                    "How one component fared: `ok`, `fallback` (a substitute is shown, from `source`) or \
                     `error` (it is missing).",
                ))
                .property("status", string().enum_values(Some(["ok", "fallback", "error"])))
                .required("status")
                .property("source", string().enum_values(Some(["default", "cache"])))
                .property("reasonCode", reference::<ReasonCode>())
                .property(
                    "ageMs",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0))
                        .description(Some("Age of a cached substitute, in milliseconds.")),
                )
                .into()
        }
    }

    impl ToSchema for ComponentStatus {
        fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            schemas.push((ReasonCode::name().into_owned(), ReasonCode::schema()));
        }
    }

    impl<T: ToSchema> PartialSchema for Envelope<T> {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .description(Some(
                    "A composed response: `data` is the view model; `components` says how each part fared.",
                ))
                .property(
                    "degraded",
                    ObjectBuilder::new()
                        .schema_type(Type::Boolean)
                        .description(Some("True when any component is not `ok`.")),
                )
                .required("degraded")
                .property(
                    "components",
                    ObjectBuilder::new().additional_properties(Some(reference::<ComponentStatus>())),
                )
                .required("components")
                .property("data", reference::<T>())
                .required("data")
                .into()
        }
    }

    impl<T: ToSchema> ToSchema for Envelope<T> {
        fn name() -> Cow<'static, str> {
            Cow::Owned(format!("{}Envelope", T::name()))
        }

        fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            schemas.push((T::name().into_owned(), T::schema()));
            T::schemas(schemas);
            schemas.push((ComponentStatus::name().into_owned(), ComponentStatus::schema()));
            ComponentStatus::schemas(schemas);
        }
    }
}
