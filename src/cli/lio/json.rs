//! Reading rtslib-fb's JSON leniently: numbers may be strings, booleans numbers.

use serde_json::Value;

/// A non-empty string field.
pub(crate) fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A signed integer field (number, numeric string or boolean).
pub(crate) fn i(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(|x| {
        x.as_i64()
            .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            .or_else(|| x.as_bool().map(i64::from))
    })
}

/// An unsigned integer field.
pub(crate) fn u(v: &Value, k: &str) -> Option<u64> {
    i(v, k).and_then(|n| u64::try_from(n).ok())
}

/// A flag (true, 1, "1", "yes").
pub(crate) fn b(v: &Value, k: &str) -> bool {
    match v.get(k) {
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "1" | "yes" | "true"),
        _ => i(v, k).unwrap_or(0) != 0,
    }
}

/// An array field (empty when absent).
pub(crate) fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}
