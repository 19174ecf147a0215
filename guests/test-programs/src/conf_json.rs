//! `JSON.stringify` for conformance values, which mark what JSON cannot
//! hold: `{"$undefined":1}`, `{"$nan":1}`, `{"$inf":1}`. As in Node,
//! undefined members are dropped, undefined array items and non-finite
//! numbers become `null`, and a top-level undefined is not sendable.
use serde_json::Value;

fn marker(v: &Value) -> Option<&str> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let key = obj.keys().next()?;
    key.starts_with('$').then_some(key.as_str())
}

pub fn stringify(v: &Value) -> Option<String> {
    match marker(v) {
        Some("$undefined") => return None,
        Some("$nan") | Some("$inf") => return Some("null".into()),
        _ => {}
    }
    Some(match v {
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| stringify(i).unwrap_or_else(|| "null".into()))
                .collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .filter_map(|(k, v)| {
                    Some(format!("{}:{}", Value::String(k.clone()), stringify(v)?))
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    })
}
