//! Strict decoding of configuration and API objects, as Kubernetes' decoders do it: a
//! field the type does not have is an error (`unknown field "nodeRegistration.foo"`), and
//! a value of the wrong JSON type cannot be unmarshalled. Types are described with
//! [`Field`] trees; a subtree the lab does not check in detail is [`Field::Any`].

use serde_json::Value;

/// The shape of one field.
#[derive(Debug, Clone, Copy)]
pub enum Field {
    Any,
    Str,
    Bool,
    Int,
    List(&'static Field),
    /// An object with arbitrary keys (`map[string]T`).
    Map(&'static Field),
    Obj(&'static [(&'static str, Field)]),
}

impl Field {
    fn go_type(&self) -> &'static str {
        match self {
            Field::Any => "interface {}",
            Field::Str => "string",
            Field::Bool => "bool",
            Field::Int => "int32",
            Field::List(_) => "[]",
            Field::Map(_) => "map[string]string",
            Field::Obj(_) => "struct",
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The result of a strict decode: the first type error, or every unknown field.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Problems {
    pub type_error: Option<String>,
    pub unknown: Vec<String>,
}

impl Problems {
    pub fn is_empty(&self) -> bool {
        self.type_error.is_none() && self.unknown.is_empty()
    }

    /// The decoder's message: `json: cannot unmarshal ...` or
    /// `strict decoding error: unknown field "a", unknown field "b"`.
    pub fn message(&self) -> String {
        if let Some(t) = &self.type_error {
            return t.clone();
        }
        let fields: Vec<String> = self
            .unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        format!("strict decoding error: {}", fields.join(", "))
    }
}

/// Checks `value` against `field`; `kind` names the Go type in type errors.
pub fn check(value: &Value, field: &Field, kind: &str) -> Problems {
    let mut p = Problems::default();
    walk(value, field, "", kind, &mut p);
    p
}

fn walk(value: &Value, field: &Field, path: &str, kind: &str, p: &mut Problems) {
    if p.type_error.is_some() || value.is_null() {
        return;
    }
    let mismatch = |p: &mut Problems| {
        p.type_error = Some(format!(
            "json: cannot unmarshal {} into Go struct field {kind}.{path} of type {}",
            json_type(value),
            field.go_type()
        ));
    };
    match field {
        Field::Any => {}
        Field::Str => {
            if !value.is_string() {
                mismatch(p)
            }
        }
        Field::Bool => {
            if !value.is_boolean() {
                mismatch(p)
            }
        }
        Field::Int => {
            if !(value.is_i64() || value.is_u64()) {
                mismatch(p)
            }
        }
        Field::List(inner) => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, inner, &format!("{path}[{i}]"), kind, p);
                }
            }
            None => mismatch(p),
        },
        Field::Map(inner) => match value.as_object() {
            Some(map) => {
                for (k, v) in map {
                    walk(v, inner, &join(path, k), kind, p);
                }
            }
            None => mismatch(p),
        },
        Field::Obj(fields) => match value.as_object() {
            Some(map) => {
                for (k, v) in map {
                    match fields.iter().find(|(name, _)| name == k) {
                        Some((_, f)) => walk(v, f, &join(path, k), kind, p),
                        None => p.unknown.push(join(path, k)),
                    }
                }
            }
            None => mismatch(p),
        },
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAINT: Field = Field::Obj(&[("key", Field::Str), ("effect", Field::Str)]);
    const ROOT: Field = Field::Obj(&[
        ("apiVersion", Field::Str),
        ("port", Field::Int),
        ("taints", Field::List(&TAINT)),
        ("args", Field::Map(&Field::Str)),
    ]);

    #[test]
    fn unknown_fields_and_wrong_types_are_reported() {
        let v: Value = serde_json::json!({"apiVersion": "x", "taints": [{"key": "a", "efect": "NoSchedule"}], "foo": 1});
        let p = check(&v, &ROOT, "T");
        assert_eq!(
            p.message(),
            "strict decoding error: unknown field \"foo\", unknown field \"taints[0].efect\""
        );
        let v: Value = serde_json::json!({"port": "6443"});
        assert_eq!(
            check(&v, &ROOT, "T").message(),
            "json: cannot unmarshal string into Go struct field T.port of type int32"
        );
        let v: Value = serde_json::json!({"args": [{"name": "a"}]});
        assert!(check(&v, &ROOT, "T")
            .message()
            .contains("cannot unmarshal array"));
        assert!(check(&serde_json::json!({"port": 1}), &ROOT, "T").is_empty());
    }
}
