//! Consumer vs provider schema compatibility: does every field a BFF reads
//! exist in what the provider says it sends, with a type the BFF accepts?
//!
//! Both sides are JSON Schemas (schemars: ours from [`crate::model`], the
//! providers' from their `/__schemas`). The check walks the consumer's
//! schema: each property it reads must exist in the provider's; a property
//! the consumer requires must be required (always sent) by the provider; a
//! provider that may send `null` needs a consumer that accepts it; and each
//! type the provider may send must be one the consumer accepts (an
//! `integer` is a `number`). Fields the provider sends and we ignore are
//! fine: that is how providers evolve without breaking consumers.

use serde_json::Value;

/// Every incompatibility, as `path: problem`. Empty means compatible.
pub fn incompatibilities(consumer: &Value, provider: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    check(consumer, consumer, provider, provider, "$", &mut problems);
    problems
}

/// Follows a local `$ref` (`#/$defs/Name`) within `root`.
fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    let mut current = schema;
    for _ in 0..16 {
        let Some(reference) = current.get("$ref").and_then(Value::as_str) else { return current };
        let target = reference.strip_prefix('#').map(|pointer| root.pointer(pointer)).unwrap_or(None);
        match target {
            Some(next) => current = next,
            None => return current,
        }
    }
    current
}

/// Splits `T | null` into `(T, nullable)`.
fn split_nullable<'a>(schema: &'a Value, root: &'a Value) -> (&'a Value, bool) {
    let schema = resolve(schema, root);
    for key in ["anyOf", "oneOf"] {
        if let Some(variants) = schema.get(key).and_then(Value::as_array) {
            let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
            let inner = variants.iter().find(|v| !is_null(v));
            if let Some(inner) = inner.filter(|_| variants.len() == 2 && variants.iter().any(is_null)) {
                return (resolve(inner, root), true);
            }
        }
    }
    let nullable = match schema.get("type") {
        Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
        _ => false,
    };
    (schema, nullable)
}

/// The non-null types a schema names.
fn types(schema: &Value) -> Vec<String> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => {
            ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn check(
    consumer: &Value,
    croot: &Value,
    provider: &Value,
    proot: &Value,
    path: &str,
    problems: &mut Vec<String>,
) {
    let (consumer, consumer_nullable) = split_nullable(consumer, croot);
    let (provider, provider_nullable) = split_nullable(provider, proot);
    if provider_nullable && !consumer_nullable {
        problems.push(format!("{path}: the provider may send null; the consumer requires a value"));
    }
    let (consumer_types, provider_types) = (types(consumer), types(provider));
    if !consumer_types.is_empty() {
        for sent in &provider_types {
            let accepted = consumer_types.iter().any(|t| t == sent || (t == "number" && sent == "integer"));
            if !accepted {
                problems.push(format!(
                    "{path}: the provider sends {sent}; the consumer reads {}",
                    consumer_types.join(" or ")
                ));
            }
        }
        if provider_types.is_empty() {
            problems.push(format!("{path}: the provider does not say what it sends"));
        }
    }
    if let Some(properties) = consumer.get("properties").and_then(Value::as_object) {
        let provided = provider.get("properties").and_then(Value::as_object);
        let (consumer_required, provider_required) = (required(consumer), required(provider));
        for (name, schema) in properties {
            let field = format!("{path}.{name}");
            match provided.and_then(|p| p.get(name)) {
                None => problems.push(format!("{field}: read by the consumer, absent from the provider")),
                Some(provided) => {
                    if consumer_required.contains(&name.as_str())
                        && !provider_required.contains(&name.as_str())
                    {
                        problems.push(format!("{field}: required by the consumer, optional in the provider"));
                    }
                    check(schema, croot, provided, proot, &field, problems);
                }
            }
        }
    }
    if let (Some(items), Some(provided)) = (consumer.get("items"), provider.get("items")) {
        check(items, croot, provided, proot, &format!("{path}[]"), problems);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn missing_optional_retyped_and_nullable_fields_are_reported() {
        let consumer = json!({
            "type": "object",
            "required": ["id", "price", "tags"],
            "properties": {
                "id": {"type": "string"},
                "price": {"$ref": "#/$defs/Money"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "name": {"type": "string"},
                "note": {"type": ["string", "null"]}
            },
            "$defs": {"Money": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "integer"}}}}
        });
        let provider = json!({
            "type": "object",
            "required": ["id", "tags"],
            "properties": {
                "id": {"type": "string"},
                "price": {"type": "object", "properties": {"amount": {"type": "number"}}},
                "tags": {"type": "array", "items": {"type": "integer"}},
                "name": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "note": {"type": "string"},
                "extra": {"type": "boolean"}
            }
        });
        let problems = incompatibilities(&consumer, &provider);
        assert_eq!(
            problems,
            [
                "$.name: the provider may send null; the consumer requires a value",
                "$.price: required by the consumer, optional in the provider",
                "$.price.amount: required by the consumer, optional in the provider",
                "$.price.amount: the provider sends number; the consumer reads integer",
                "$.tags[]: the provider sends integer; the consumer reads string",
            ]
        );
    }

    #[test]
    fn an_absent_field_is_reported_and_extra_provider_fields_are_fine() {
        let consumer = json!({"type": "object", "properties": {"gone": {"type": "string"}}});
        let provider = json!({"type": "object", "properties": {"other": {"type": "string"}}});
        assert_eq!(
            incompatibilities(&consumer, &provider),
            ["$.gone: read by the consumer, absent from the provider"]
        );
        assert!(incompatibilities(&json!({"type": "object"}), &provider).is_empty());
    }
}
