//! `google.protobuf.Struct` ⇄ JSON, for Envoy metadata: the check's `metadata_context`
//! (`autoMapFromMetadata`) in, the response's `dynamic_metadata` (`dynamicMetadataFromClaims`)
//! out. Numbers are doubles in a `Struct`, as in protobuf's own JSON mapping.

use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{ListValue, NullValue, Struct, Value};

/// Deepest nesting converted; deeper values become `null` (metadata is client-influenced
/// through the gateway's filters, and recursion must stay bounded).
const MAX_DEPTH: usize = 16;

/// A `Struct` as a JSON object.
pub fn to_json(s: &Struct) -> serde_json::Value {
    object_to_json(s, 0)
}

fn object_to_json(s: &Struct, depth: usize) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v, depth + 1)))
            .collect(),
    )
}

fn value_to_json(v: &Value, depth: usize) -> serde_json::Value {
    if depth > MAX_DEPTH {
        return serde_json::Value::Null;
    }
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => object_to_json(s, depth),
        Some(Kind::ListValue(l)) => serde_json::Value::Array(
            l.values
                .iter()
                .map(|v| value_to_json(v, depth + 1))
                .collect(),
        ),
    }
}

/// A JSON object as a `Struct`.
pub fn from_json(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), value_from_json(v, 1)))
            .collect(),
    }
}

fn value_from_json(v: &serde_json::Value, depth: usize) -> Value {
    let kind = if depth > MAX_DEPTH {
        Kind::NullValue(NullValue::NullValue as i32)
    } else {
        match v {
            serde_json::Value::Null => Kind::NullValue(NullValue::NullValue as i32),
            serde_json::Value::Bool(b) => Kind::BoolValue(*b),
            serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
            serde_json::Value::String(s) => Kind::StringValue(s.clone()),
            serde_json::Value::Array(items) => Kind::ListValue(ListValue {
                values: items
                    .iter()
                    .map(|v| value_from_json(v, depth + 1))
                    .collect(),
            }),
            serde_json::Value::Object(map) => Kind::StructValue(Struct {
                fields: map
                    .iter()
                    .map(|(k, v)| (k.clone(), value_from_json(v, depth + 1)))
                    .collect(),
            }),
        }
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_keep_their_structure_both_ways() {
        let json = serde_json::json!({
            "email": "user1@example.com",
            "groups": ["a", "b"],
            "address": {"country": "FR"},
            "verified": true,
            "age": 42.0,
            "none": null,
        });
        let map = json.as_object().unwrap();
        assert_eq!(to_json(&from_json(map)), json);
    }

    #[test]
    fn deep_nesting_is_cut_not_recursed_forever() {
        let mut v = serde_json::json!("leaf");
        for _ in 0..40 {
            v = serde_json::json!({ "k": v });
        }
        let s = from_json(v.as_object().unwrap());
        let back = to_json(&s);
        assert!(back.to_string().contains("null"));
        assert!(!back.to_string().contains("leaf"));
    }
}
