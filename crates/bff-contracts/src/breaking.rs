//! The breaking-change check: what a client built against the baseline
//! document could no longer rely on in the new one.
//!
//! No crate fits (oasdiff, the reference tool, is Go and not installable
//! here; the Rust OpenAPI diff crates compare documents structurally without
//! knowing which direction of a change breaks a client), so the rules are
//! written out below. They follow oasdiff's *error*-level checks and use its
//! rule ids:
//!
//! | rule | breaks because |
//! |---|---|
//! | `api-path-removed`, `api-operation-removed` | the client's call now 404s/405s |
//! | `response-success-status-removed`, `response-media-type-removed` | the client's happy path disappears |
//! | `response-header-removed` | e.g. `ETag`, `RateLimit` that the client reads |
//! | `response-property-removed`, `response-property-became-optional`, `response-property-became-nullable`, `response-property-type-changed` | the client reads a field that may not be there, or not be what it parses |
//! | `response-property-enum-value-added` | the client switches over a closed set that grew |
//! | `new-required-request-parameter`, `request-parameter-became-required`, `request-body-became-required`, `new-required-request-property`, `request-property-became-required` | the client's request lacks something now required |
//! | `request-property-enum-value-removed`, `request-property-type-changed`, `request-property-became-not-nullable` | a value the client sends is now refused |
//! | `request-property-max-length-decreased`, `request-property-min-length-increased`, `request-property-max-decreased`, `request-property-min-increased`, `request-property-max-items-decreased`, `request-property-min-items-increased`, `request-property-pattern-changed` | the same, by a tightened constraint (a changed pattern is reported: no one can prove it is looser) |
//! | `security-requirement-added` | the client's credentials no longer suffice |
//!
//! Request parameters are checked with the request rules (their prefix is
//! `request-parameter-` instead of `request-property-`). Additive changes
//! (new paths, operations, optional properties, response enum values
//! removed, relaxed constraints) pass.
//!
//! Each [`Break`] names its rule and a JSON pointer. Pointers point into the
//! document that has the thing: the baseline for something removed, the new
//! document otherwise; through a `$ref`, they point at the referenced
//! component (`/components/schemas/HomeVm/properties/tier`), which is where
//! a reviewer goes to look. `operations` says which calls reach it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

/// One breaking change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Break {
    /// The rule id, e.g. `response-property-removed`.
    pub rule: String,
    /// RFC 6901 pointer to the changed place (in the baseline for removals).
    pub pointer: String,
    /// What changed, for humans.
    pub message: String,
    /// The operations that reach it (`GET /v1/home -> 200`).
    pub operations: BTreeSet<String>,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.rule, self.pointer, self.message)?;
        if !self.operations.is_empty() {
            let operations: Vec<&str> = self.operations.iter().map(String::as_str).collect();
            write!(f, " (via {})", operations.join(", "))?;
        }
        Ok(())
    }
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Every breaking change from `base` to `head`, sorted by rule and pointer.
pub fn breaking_changes(base: &Value, head: &Value) -> Vec<Break> {
    let mut diff =
        Diff { base, head, found: BTreeMap::new(), operation: String::new(), seen: BTreeSet::new() };
    diff.document();
    let mut found: Vec<Break> = diff.found.into_values().collect();
    found.sort();
    found
}

/// Escapes one pointer segment (RFC 6901).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

/// A schema position in one document: the (resolved) schema and its pointer.
#[derive(Clone)]
struct At<'a> {
    schema: &'a Value,
    pointer: String,
}

struct Diff<'a> {
    base: &'a Value,
    head: &'a Value,
    found: BTreeMap<(String, String), Break>,
    /// The operation being compared, for [`Break::operations`].
    operation: String,
    /// Schema pairs already compared under the current operation (recursion guard).
    seen: BTreeSet<(String, String, bool)>,
}

impl<'a> Diff<'a> {
    fn report(&mut self, rule: impl Into<String>, pointer: &str, message: String) {
        let (rule, operation) = (rule.into(), self.operation.clone());
        let entry = self.found.entry((rule.clone(), pointer.to_owned())).or_insert_with(|| Break {
            rule,
            pointer: pointer.to_owned(),
            message,
            operations: BTreeSet::new(),
        });
        if !operation.is_empty() {
            entry.operations.insert(operation);
        }
    }

    fn document(&mut self) {
        let base_paths = self.base.get("paths").and_then(Value::as_object);
        let head_paths = self.head.get("paths").and_then(Value::as_object);
        for (path, base_item) in base_paths.into_iter().flatten() {
            let pointer = format!("/paths/{}", escape(path));
            let Some(head_item) = head_paths.and_then(|p| p.get(path)) else {
                self.operation = String::new();
                self.report("api-path-removed", &pointer, format!("path {path} was removed"));
                continue;
            };
            for method in METHODS {
                let Some(base_op) = base_item.get(method) else { continue };
                let upper = method.to_uppercase();
                self.operation = format!("{upper} {path}");
                self.seen.clear();
                let op_pointer = format!("{pointer}/{method}");
                match head_item.get(method) {
                    None => self.report(
                        "api-operation-removed",
                        &op_pointer,
                        format!("operation {upper} {path} was removed"),
                    ),
                    Some(head_op) => {
                        // Path-level parameters apply to every operation of the path.
                        let shared =
                            |item: &'a Value| (item.get("parameters"), format!("{pointer}/parameters"));
                        self.security(&op_pointer, base_op, head_op);
                        self.parameters(
                            &op_pointer,
                            base_op,
                            head_op,
                            &shared(base_item),
                            &shared(head_item),
                        );
                        self.request_body(&op_pointer, base_op, head_op);
                        self.responses(&op_pointer, base_op, head_op);
                    }
                }
            }
        }
    }

    /// Alternatives (OR) of credential sets (AND): each scheme, and each
    /// scope it lists as `scheme:scope`. A client that met some base
    /// alternative must meet a head alternative with the same credentials:
    /// a new scheme or a new scope breaks it.
    fn security(&mut self, pointer: &str, base: &Value, head: &Value) {
        let alternatives = |doc: &Value, op: &Value| -> Vec<BTreeSet<String>> {
            let list = op.get("security").or_else(|| doc.get("security")).and_then(Value::as_array);
            match list {
                Some(list) if !list.is_empty() => list
                    .iter()
                    .map(|req| {
                        let mut held = BTreeSet::new();
                        for (scheme, scopes) in req.as_object().into_iter().flatten() {
                            held.insert(scheme.clone());
                            for scope in scopes.as_array().into_iter().flatten().filter_map(Value::as_str) {
                                held.insert(format!("{scheme}:{scope}"));
                            }
                        }
                        held
                    })
                    .collect(),
                _ => vec![BTreeSet::new()],
            }
        };
        let (before, after) = (alternatives(self.base, base), alternatives(self.head, head));
        for held in &before {
            if !after.iter().any(|needed| needed.is_subset(held)) {
                let held: Vec<&str> = held.iter().map(String::as_str).collect();
                let held = if held.is_empty() { "no credentials".to_owned() } else { held.join(" + ") };
                let needed =
                    after.iter().map(|n| n.iter().map(String::as_str).collect::<Vec<_>>().join(" + "));
                let needed: Vec<String> = needed.collect();
                self.report(
                    "security-requirement-added",
                    &format!("{pointer}/security"),
                    format!("a client with {held} is no longer allowed: it needs {}", needed.join(" or ")),
                );
            }
        }
    }

    fn parameters(
        &mut self,
        pointer: &str,
        base: &'a Value,
        head: &'a Value,
        base_shared: &(Option<&'a Value>, String),
        head_shared: &(Option<&'a Value>, String),
    ) {
        let collect = |doc: &'a Value, op: &'a Value, shared: &(Option<&'a Value>, String)| {
            let mut out: BTreeMap<(String, String), (&'a Value, String)> = BTreeMap::new();
            let own = (op.get("parameters"), format!("{pointer}/parameters"));
            // Operation parameters override path-level ones of the same name.
            let lists = [shared.clone(), own];
            for (list, list_pointer) in lists {
                for (i, param) in list.and_then(Value::as_array).into_iter().flatten().enumerate() {
                    let (param, at) = resolve(doc, param, format!("{list_pointer}/{i}"));
                    let place = param.get("in").and_then(Value::as_str).unwrap_or_default().to_owned();
                    let name = param.get("name").and_then(Value::as_str).unwrap_or_default();
                    // Header names are case-insensitive; query and cookie names are not.
                    let name = if place == "header" { name.to_lowercase() } else { name.to_owned() };
                    let key = (place, name);
                    out.insert(key, (param, at));
                }
            }
            out
        };
        let before = collect(self.base, base, base_shared);
        let after = collect(self.head, head, head_shared);
        for ((location, name), (param, at)) in after {
            let (param, at): (&'a Value, &str) = (param, &at);
            let required = is_true(param.get("required"));
            match before.get(&(location.clone(), name.clone())) {
                None if required => self.report(
                    "new-required-request-parameter",
                    at,
                    format!("new required {location} parameter `{name}`"),
                ),
                None => {}
                Some((old, old_at)) => {
                    if required && !is_true(old.get("required")) {
                        self.report(
                            "request-parameter-became-required",
                            at,
                            format!("{location} parameter `{name}` became required"),
                        );
                    }
                    if let (Some(old_schema), Some(new_schema)) = (old.get("schema"), param.get("schema")) {
                        self.child(
                            Direction::Request,
                            "request-parameter",
                            old_schema,
                            new_schema,
                            &format!("{old_at}/schema"),
                            &format!("{at}/schema"),
                        );
                    }
                }
            }
        }
    }

    fn request_body(&mut self, pointer: &str, base: &'a Value, head: &'a Value) {
        let (Some(new_body), old_body) = (head.get("requestBody"), base.get("requestBody")) else { return };
        let (new_body, new_at) = resolve(self.head, new_body, format!("{pointer}/requestBody"));
        let old = old_body.map(|b| resolve(self.base, b, format!("{pointer}/requestBody")));
        let required = is_true(new_body.get("required"));
        let was_required = old.as_ref().is_some_and(|(b, _)| is_true(b.get("required")));
        if required && !was_required {
            self.report(
                "request-body-became-required",
                &new_at,
                "the request body became required".to_owned(),
            );
        }
        let Some((old_body, old_at)) = old else { return };
        for (media, content) in new_body.get("content").and_then(Value::as_object).into_iter().flatten() {
            let Some(old_content) = old_body.get("content").and_then(|c| c.get(media)) else { continue };
            let (Some(a), Some(b)) = (old_content.get("schema"), content.get("schema")) else { continue };
            let media = escape(media);
            self.child(
                Direction::Request,
                "request-property",
                a,
                b,
                &format!("{old_at}/content/{media}/schema"),
                &format!("{new_at}/content/{media}/schema"),
            );
        }
    }

    fn responses(&mut self, pointer: &str, base: &'a Value, head: &'a Value) {
        let after = head.get("responses").and_then(Value::as_object);
        let operation = self.operation.clone();
        for (status, old) in base.get("responses").and_then(Value::as_object).into_iter().flatten() {
            let at = format!("{pointer}/responses/{}", escape(status));
            let success = status.starts_with('2');
            let Some(new) = after.and_then(|a| a.get(status)) else {
                if success {
                    self.report(
                        "response-success-status-removed",
                        &at,
                        format!("success status {status} was removed"),
                    );
                }
                continue;
            };
            self.operation = format!("{operation} -> {status}");
            let (old, old_at) = resolve(self.base, old, at.clone());
            let (new, new_at) = resolve(self.head, new, at);
            if success {
                for (name, _) in old.get("headers").and_then(Value::as_object).into_iter().flatten() {
                    let kept = new
                        .get("headers")
                        .and_then(Value::as_object)
                        .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case(name)));
                    if !kept {
                        self.report(
                            "response-header-removed",
                            &format!("{old_at}/headers/{}", escape(name)),
                            format!("response header `{name}` was removed"),
                        );
                    }
                }
            }
            for (media, content) in old.get("content").and_then(Value::as_object).into_iter().flatten() {
                let escaped = escape(media);
                let Some(new_content) = new.get("content").and_then(|c| c.get(media)) else {
                    if success {
                        self.report(
                            "response-media-type-removed",
                            &format!("{old_at}/content/{escaped}"),
                            format!("media type {media} was removed"),
                        );
                    }
                    continue;
                };
                let (Some(a), Some(b)) = (content.get("schema"), new_content.get("schema")) else { continue };
                self.child(
                    Direction::Response,
                    "response-property",
                    a,
                    b,
                    &format!("{old_at}/content/{escaped}/schema"),
                    &format!("{new_at}/content/{escaped}/schema"),
                );
            }
            self.operation = operation.clone();
        }
    }

    /// Compares two (resolved) schemas. `prefix` is the rule prefix for
    /// this position (`response-property`, `request-parameter`, ...).
    fn schema(&mut self, direction: Direction, prefix: &'static str, old: At<'a>, new: At<'a>) {
        let key = (old.pointer.clone(), new.pointer.clone(), direction == Direction::Request);
        if !self.seen.insert(key) {
            return;
        }
        let (old_shape, new_shape) = (Shape::of(self.base, old.schema), Shape::of(self.head, new.schema));
        let removed_at = &old.pointer;
        let at = &new.pointer;
        // What one side may now send must be something the other side
        // accepts: for a response, the new values must be among the old
        // ones (clients parse those); for a request, the old values must be
        // among the new ones (clients send those).
        let (accepted, sent) = match direction {
            Direction::Response => (&old_shape, &new_shape),
            Direction::Request => (&new_shape, &old_shape),
        };
        if !accepted.types.is_empty() && !sent.types.is_subset(&accepted.types) {
            let message =
                format!("type changed from {} to {}", list(&old_shape.types), list(&new_shape.types));
            self.report(rule(prefix, "type-changed"), at, message);
        }
        if sent.nullable && !accepted.nullable {
            let (suffix, message) = match direction {
                Direction::Response => ("became-nullable", "became nullable"),
                Direction::Request => ("became-not-nullable", "no longer accepts null"),
            };
            self.report(rule(prefix, suffix), at, message.to_owned());
        }
        if let Some(accepted_values) = &accepted.enumeration {
            let extra: Vec<String> = match &sent.enumeration {
                Some(values) => values.difference(accepted_values).cloned().collect(),
                None => vec!["(any value)".to_owned()],
            };
            if !extra.is_empty() {
                let (suffix, verb) = match direction {
                    Direction::Response => ("enum-value-added", "gained"),
                    Direction::Request => ("enum-value-removed", "no longer accepts"),
                };
                self.report(rule(prefix, suffix), at, format!("enum {verb} {}", extra.join(", ")));
            }
        }
        match direction {
            Direction::Response => {
                for (name, old_property) in &old_shape.properties {
                    let property_at = format!("{removed_at}/properties/{}", escape(name));
                    let Some(new_property) = new_shape.properties.get(name) else {
                        self.report(
                            rule(prefix, "removed"),
                            &property_at,
                            format!("property `{name}` was removed"),
                        );
                        continue;
                    };
                    if old_shape.required.contains(name) && !new_shape.required.contains(name) {
                        self.report(
                            rule(prefix, "became-optional"),
                            &format!("{at}/properties/{}", escape(name)),
                            format!("property `{name}` became optional"),
                        );
                    }
                    self.child(
                        direction,
                        prefix,
                        old_property,
                        new_property,
                        &property_at,
                        &format!("{at}/properties/{}", escape(name)),
                    );
                }
            }
            Direction::Request => {
                self.constraints(prefix, old.schema, new.schema, at);
                for name in &new_shape.required {
                    let property_at = format!("{at}/properties/{}", escape(name));
                    if !old_shape.properties.contains_key(name) {
                        self.report(
                            if prefix == "request-property" {
                                "new-required-request-property".to_owned()
                            } else {
                                rule(prefix, "new-required-property")
                            },
                            &property_at,
                            format!("new required property `{name}`"),
                        );
                    } else if !old_shape.required.contains(name) {
                        self.report(
                            rule(prefix, "became-required"),
                            &property_at,
                            format!("property `{name}` became required"),
                        );
                    }
                }
                for (name, new_property) in &new_shape.properties {
                    if let Some(old_property) = old_shape.properties.get(name) {
                        let escaped = escape(name);
                        self.child(
                            direction,
                            prefix,
                            old_property,
                            new_property,
                            &format!("{removed_at}/properties/{escaped}"),
                            &format!("{at}/properties/{escaped}"),
                        );
                    }
                }
            }
        }
        for key in ["items", "additionalProperties"] {
            if let (Some(a), Some(b)) = (old_shape.nested.get(key), new_shape.nested.get(key)) {
                self.child(direction, prefix, a, b, &format!("{removed_at}/{key}"), &format!("{at}/{key}"));
            }
        }
    }

    /// Resolves both sides' `$ref`s (pointers follow) and compares them.
    fn child(
        &mut self,
        direction: Direction,
        prefix: &'static str,
        old: &'a Value,
        new: &'a Value,
        old_at: &str,
        new_at: &str,
    ) {
        let (a, a_at) = resolve(self.base, old, old_at.to_owned());
        let (b, b_at) = resolve(self.head, new, new_at.to_owned());
        self.schema(direction, prefix, At { schema: a, pointer: a_at }, At { schema: b, pointer: b_at });
    }

    /// Request constraints that may only stay or loosen.
    fn constraints(&mut self, prefix: &'static str, old: &Value, new: &Value, at: &str) {
        let number = |schema: &Value, key: &str| schema.get(key).and_then(Value::as_f64);
        // (keyword, rule suffix, true when a larger new value is the tightening)
        let bounds = [
            ("maxLength", "max-length-decreased", false),
            ("minLength", "min-length-increased", true),
            ("maximum", "max-decreased", false),
            ("exclusiveMaximum", "max-decreased", false),
            ("minimum", "min-increased", true),
            ("exclusiveMinimum", "min-increased", true),
            ("maxItems", "max-items-decreased", false),
            ("minItems", "min-items-increased", true),
        ];
        for (keyword, suffix, larger_is_tighter) in bounds {
            let Some(after) = number(new, keyword) else { continue };
            let tightened = match number(old, keyword) {
                None => true,
                Some(before) if larger_is_tighter => after > before,
                Some(before) => after < before,
            };
            if tightened {
                let before = number(old, keyword).map_or_else(|| "none".to_owned(), |b| b.to_string());
                self.report(
                    rule(prefix, suffix),
                    at,
                    format!("{keyword} tightened from {before} to {after}"),
                );
            }
        }
        let pattern = |schema: &Value| schema.get("pattern").and_then(Value::as_str).map(str::to_owned);
        if let Some(after) = pattern(new)
            && pattern(old).as_ref() != Some(&after)
        {
            let before = pattern(old).unwrap_or_else(|| "none".to_owned());
            self.report(
                rule(prefix, "pattern-changed"),
                at,
                format!("pattern changed from {before} to {after}"),
            );
        }
    }
}

/// `response-property` + `removed`.
fn rule(prefix: &str, suffix: &str) -> String {
    format!("{prefix}-{suffix}")
}

fn list(types: &BTreeSet<String>) -> String {
    if types.is_empty() { "any".to_owned() } else { types.iter().cloned().collect::<Vec<_>>().join("|") }
}

fn is_true(value: Option<&Value>) -> bool {
    value.and_then(Value::as_bool).unwrap_or(false)
}

/// Follows a local `$ref` (`#/components/...`) to what it names; the
/// pointer follows it too.
fn resolve<'v>(doc: &'v Value, value: &'v Value, pointer: String) -> (&'v Value, String) {
    let mut current = (value, pointer);
    for _ in 0..16 {
        let Some(target) = current.0.get("$ref").and_then(Value::as_str) else { break };
        let Some(local) = target.strip_prefix('#') else { break };
        match doc.pointer(local) {
            Some(next) => current = (next, local.to_owned()),
            None => break,
        }
    }
    current
}

/// What the rules look at in a schema, with `allOf` merged and
/// `oneOf`/`anyOf` with a `null` branch read as "nullable".
#[derive(Default)]
struct Shape<'v> {
    types: BTreeSet<String>,
    nullable: bool,
    enumeration: Option<BTreeSet<String>>,
    properties: BTreeMap<String, &'v Value>,
    required: BTreeSet<String>,
    nested: BTreeMap<&'static str, &'v Value>,
}

impl<'v> Shape<'v> {
    fn of(doc: &'v Value, schema: &'v Value) -> Shape<'v> {
        let mut shape = Shape::default();
        shape.add(doc, schema, 0);
        shape
    }

    fn add(&mut self, doc: &'v Value, schema: &'v Value, depth: u8) {
        if depth > 8 {
            return;
        }
        let (schema, _) = resolve(doc, schema, String::new());
        match schema.get("type") {
            Some(Value::String(t)) if t == "null" => self.nullable = true,
            Some(Value::String(t)) => {
                self.types.insert(t.clone());
            }
            Some(Value::Array(types)) => {
                for t in types.iter().filter_map(Value::as_str) {
                    if t == "null" {
                        self.nullable = true;
                    } else {
                        self.types.insert(t.to_owned());
                    }
                }
            }
            _ => {}
        }
        if is_true(schema.get("nullable")) {
            self.nullable = true;
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let values: BTreeSet<String> =
                values.iter().filter(|v| !v.is_null()).map(|v| v.to_string()).collect();
            self.nullable |=
                schema.get("enum").and_then(Value::as_array).is_some_and(|v| v.iter().any(Value::is_null));
            self.enumeration = Some(match self.enumeration.take() {
                Some(known) => known.intersection(&values).cloned().collect(),
                None => values,
            });
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                self.properties.insert(name.clone(), property);
            }
        }
        for name in
            schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
        {
            self.required.insert(name.to_owned());
        }
        for key in ["items", "additionalProperties"] {
            if let Some(nested) = schema.get(key).filter(|n| n.is_object()) {
                self.nested.insert(key, nested);
            }
        }
        for member in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            self.add(doc, member, depth + 1);
        }
        for key in ["oneOf", "anyOf"] {
            let Some(branches) = schema.get(key).and_then(Value::as_array) else { continue };
            let (nulls, others): (Vec<&Value>, Vec<&Value>) =
                branches.iter().partition(|b| b.get("type").and_then(Value::as_str) == Some("null"));
            if !nulls.is_empty() {
                self.nullable = true;
            }
            // `oneOf: [X, null]` is X, nullable; wider unions are compared by type only.
            if let [only] = others.as_slice() {
                self.add(doc, only, depth + 1);
            } else {
                for branch in others {
                    let (branch, _) = resolve(doc, branch, String::new());
                    if let Some(t) = branch.get("type").and_then(Value::as_str) {
                        self.types.insert(t.to_owned());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::breaking_changes;

    /// A small API: one read (a response with a nested `$ref`) and one write
    /// (a request body with an enum and constraints, a header parameter).
    fn base() -> Value {
        json!({
            "openapi": "3.1.0",
            "paths": {
                "/v1/items/{id}": {
                    "get": {
                        "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                        "responses": {
                            "200": {
                                "description": "ok",
                                "headers": { "ETag": { "schema": { "type": "string" } } },
                                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Item" } } }
                            },
                            "404": { "description": "missing" }
                        }
                    }
                },
                "/v1/orders": {
                    "post": {
                        "parameters": [{ "name": "Idempotency-Key", "in": "header", "required": true, "schema": { "type": "string", "maxLength": 64 } }],
                        "requestBody": {
                            "required": true,
                            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewOrder" } } }
                        },
                        "responses": { "201": { "description": "created" } },
                        "security": [{ "bearer": [] }]
                    }
                }
            },
            "components": {
                "schemas": {
                    "Item": {
                        "type": "object",
                        "required": ["id", "name", "price", "state"],
                        "properties": {
                            "id": { "type": "string" },
                            "name": { "type": "string" },
                            "price": { "$ref": "#/components/schemas/Money" },
                            "state": { "type": "string", "enum": ["active", "retired"] }
                        }
                    },
                    "Money": {
                        "type": "object",
                        "required": ["amountMinor"],
                        "properties": { "amountMinor": { "type": "integer" } }
                    },
                    "NewOrder": {
                        "type": "object",
                        "required": ["productId"],
                        "properties": {
                            "productId": { "type": "string", "maxLength": 64 },
                            "quantity": { "type": "integer", "minimum": 1, "maximum": 99 },
                            "delivery": { "type": "string", "enum": ["standard", "express"] }
                        }
                    }
                }
            }
        })
    }

    fn changed(edit: impl FnOnce(&mut Value)) -> Vec<(String, String)> {
        let mut head = base();
        edit(&mut head);
        breaking_changes(&base(), &head).into_iter().map(|b| (b.rule, b.pointer)).collect()
    }

    fn at<'v>(doc: &'v mut Value, pointer: &str) -> &'v mut Value {
        doc.pointer_mut(pointer).unwrap_or_else(|| panic!("fixture has no {pointer}"))
    }

    fn rule(rule: &str, pointer: &str) -> Vec<(String, String)> {
        vec![(rule.to_owned(), pointer.to_owned())]
    }

    #[test]
    fn an_unchanged_document_has_no_breaks() {
        assert_eq!(changed(|_| {}), vec![]);
    }

    #[test]
    fn removing_a_response_property_breaks() {
        let found = changed(|d| {
            at(d, "/components/schemas/Item/properties").as_object_mut().map(|p| p.remove("name"));
        });
        assert_eq!(found, rule("response-property-removed", "/components/schemas/Item/properties/name"));
    }

    #[test]
    fn a_nested_response_property_is_found_through_its_ref() {
        let found =
            changed(|d| *at(d, "/components/schemas/Money/properties/amountMinor/type") = json!("string"));
        assert_eq!(
            found,
            rule("response-property-type-changed", "/components/schemas/Money/properties/amountMinor")
        );
        let breaks = breaking_changes(&base(), &{
            let mut head = base();
            *at(&mut head, "/components/schemas/Money/properties/amountMinor/type") = json!("string");
            head
        });
        assert!(breaks[0].operations.contains("GET /v1/items/{id} -> 200"), "{breaks:?}");
    }

    #[test]
    fn optional_or_nullable_response_properties_break() {
        let found =
            changed(|d| *at(d, "/components/schemas/Item/required") = json!(["id", "price", "state"]));
        assert_eq!(
            found,
            rule("response-property-became-optional", "/components/schemas/Item/properties/name")
        );
        let found =
            changed(|d| *at(d, "/components/schemas/Item/properties/name/type") = json!(["string", "null"]));
        assert_eq!(
            found,
            rule("response-property-became-nullable", "/components/schemas/Item/properties/name")
        );
    }

    #[test]
    fn a_wider_response_enum_breaks_and_a_narrower_one_does_not() {
        let found = changed(|d| {
            *at(d, "/components/schemas/Item/properties/state/enum") =
                json!(["active", "retired", "recalled"])
        });
        assert_eq!(
            found,
            rule("response-property-enum-value-added", "/components/schemas/Item/properties/state")
        );
        assert_eq!(
            changed(|d| *at(d, "/components/schemas/Item/properties/state/enum") = json!(["active"])),
            vec![]
        );
    }

    #[test]
    fn additive_changes_pass() {
        let found = changed(|d| {
            // A new optional response property, a new optional request property,
            // a new operation and path, a looser request constraint.
            at(d, "/components/schemas/Item/properties")
                .as_object_mut()
                .map(|p| p.insert("badge".into(), json!({ "type": "string" })));
            at(d, "/components/schemas/NewOrder/properties")
                .as_object_mut()
                .map(|p| p.insert("note".into(), json!({ "type": "string" })));
            *at(d, "/components/schemas/NewOrder/properties/quantity/maximum") = json!(999);
            at(d, "/paths")
                .as_object_mut()
                .map(|p| p.insert("/v1/new".into(), json!({ "get": { "responses": {} } })));
        });
        assert_eq!(found, vec![]);
    }

    #[test]
    fn a_newly_required_request_property_breaks() {
        let found =
            changed(|d| *at(d, "/components/schemas/NewOrder/required") = json!(["productId", "quantity"]));
        assert_eq!(
            found,
            rule("request-property-became-required", "/components/schemas/NewOrder/properties/quantity")
        );
        let found = changed(|d| {
            at(d, "/components/schemas/NewOrder/properties")
                .as_object_mut()
                .map(|p| p.insert("giftWrap".into(), json!({ "type": "boolean" })));
            *at(d, "/components/schemas/NewOrder/required") = json!(["productId", "giftWrap"]);
        });
        assert_eq!(
            found,
            rule("new-required-request-property", "/components/schemas/NewOrder/properties/giftWrap")
        );
    }

    #[test]
    fn a_narrowed_request_enum_breaks() {
        let found = changed(|d| {
            *at(d, "/components/schemas/NewOrder/properties/delivery/enum") = json!(["standard"])
        });
        assert_eq!(
            found,
            rule("request-property-enum-value-removed", "/components/schemas/NewOrder/properties/delivery")
        );
    }

    #[test]
    fn tightened_request_constraints_break() {
        let found = changed(|d| {
            *at(d, "/components/schemas/NewOrder/properties/productId/maxLength") = json!(32);
            *at(d, "/components/schemas/NewOrder/properties/quantity/maximum") = json!(10);
            *at(d, "/components/schemas/NewOrder/properties/quantity/minimum") = json!(2);
            at(d, "/components/schemas/NewOrder/properties/productId")
                .as_object_mut()
                .map(|p| p.insert("pattern".into(), json!("^p-[0-9]+$")));
        });
        let rules: Vec<&str> = found.iter().map(|(rule, _)| rule.as_str()).collect();
        assert_eq!(
            rules,
            [
                "request-property-max-decreased",
                "request-property-max-length-decreased",
                "request-property-min-increased",
                "request-property-pattern-changed"
            ]
        );
    }

    #[test]
    fn removed_operations_statuses_and_headers_break() {
        assert_eq!(
            changed(|d| *at(d, "/paths/~1v1~1orders") = json!({})),
            rule("api-operation-removed", "/paths/~1v1~1orders/post")
        );
        assert_eq!(
            changed(|d| {
                at(d, "/paths").as_object_mut().map(|p| p.remove("/v1/orders"));
            }),
            rule("api-path-removed", "/paths/~1v1~1orders")
        );
        assert_eq!(
            changed(|d| *at(d, "/paths/~1v1~1orders/post/responses") =
                json!({ "202": { "description": "later" } })),
            rule("response-success-status-removed", "/paths/~1v1~1orders/post/responses/201")
        );
        assert_eq!(
            changed(|d| *at(d, "/paths/~1v1~1items~1{id}/get/responses/200/headers") = json!({})),
            rule("response-header-removed", "/paths/~1v1~1items~1{id}/get/responses/200/headers/ETag")
        );
        // A non-success status may go.
        assert_eq!(
            changed(|d| {
                at(d, "/paths/~1v1~1items~1{id}/get/responses").as_object_mut().map(|r| r.remove("404"));
            }),
            vec![]
        );
    }

    #[test]
    fn new_required_parameters_and_security_break() {
        let found = changed(|d| {
            if let Some(parameters) = at(d, "/paths/~1v1~1items~1{id}/get/parameters").as_array_mut() {
                parameters.push(json!({ "name": "X-Tenant", "in": "header", "required": true, "schema": { "type": "string" } }));
            }
        });
        assert_eq!(
            found,
            rule("new-required-request-parameter", "/paths/~1v1~1items~1{id}/get/parameters/1")
        );
        let found = changed(|d| {
            at(d, "/paths/~1v1~1items~1{id}/get")
                .as_object_mut()
                .map(|op| op.insert("security".into(), json!([{ "bearer": [] }])));
        });
        assert_eq!(found, rule("security-requirement-added", "/paths/~1v1~1items~1{id}/get/security"));
        let found =
            changed(|d| *at(d, "/paths/~1v1~1orders/post/security") = json!([{ "bearer": [], "csrf": [] }]));
        assert_eq!(found, rule("security-requirement-added", "/paths/~1v1~1orders/post/security"));
        // A scope newly needed breaks the tokens that lacked it; one no
        // longer needed does not.
        let found =
            changed(|d| *at(d, "/paths/~1v1~1orders/post/security") = json!([{ "bearer": ["orders"] }]));
        assert_eq!(found, rule("security-requirement-added", "/paths/~1v1~1orders/post/security"));
        let mut scoped = base();
        *at(&mut scoped, "/paths/~1v1~1orders/post/security") = json!([{ "bearer": ["orders"] }]);
        let mut unscoped = scoped.clone();
        *at(&mut unscoped, "/paths/~1v1~1orders/post/security") = json!([{ "bearer": [] }]);
        assert!(breaking_changes(&scoped, &unscoped).is_empty());
        // Another way in is not a break.
        assert_eq!(
            changed(|d| *at(d, "/paths/~1v1~1orders/post/security") =
                json!([{ "bearer": [] }, { "session": [] }])),
            vec![]
        );
        let found = changed(|d| {
            *at(d, "/paths/~1v1~1orders/post/parameters/0/schema/maxLength") = json!(16);
        });
        assert_eq!(
            found,
            rule("request-parameter-max-length-decreased", "/paths/~1v1~1orders/post/parameters/0/schema")
        );
    }
}
