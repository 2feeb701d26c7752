//! Reading JSON fixtures the way Go's `encoding/json` fills a struct, for the fixture modes of
//! `qdisc` and `wifi` (node_exporter 1.12 unmarshals its `--collector.*.fixtures` files into
//! the structs of `ema/qdisc` and `mdlayher/wifi`):
//!
//! - an object key matches a field by exact name, else case-insensitively (ASCII);
//!   unknown keys are ignored, `null` leaves a field at its zero value;
//! - an integer field takes only an integer literal in its type's range (`1.0`, `1e2`, a
//!   string are errors); a `[]byte` field takes base64 (standard alphabet, padded);
//! - a type mismatch is an error (Go reports the first one after decoding the rest; either
//!   way the collector fails).

use base64::Engine as _;
use serde_json::{Map, Value};

/// A JSON object read as a Go struct.
pub struct Obj<'a>(&'a Map<String, Value>);

/// The elements of a top-level array (`null` is an empty slice, as a nil Go slice).
pub fn array(v: &Value) -> Result<&[Value], String> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Null => Ok(&[]),
        other => Err(format!("expected an array, found {}", kind(other))),
    }
}

/// A struct (`None` for `null`: a Go pointer element left nil).
pub fn object(v: &Value) -> Result<Option<Obj<'_>>, String> {
    match v {
        Value::Object(m) => Ok(Some(Obj(m))),
        Value::Null => Ok(None),
        other => Err(format!("expected an object, found {}", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Obj<'_> {
    /// The value of field `name` (exact key, else a case-insensitive one); `None` when absent
    /// or `null`.
    pub fn field(&self, name: &str) -> Option<&Value> {
        let v = self.0.get(name).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })?;
        (!v.is_null()).then_some(v)
    }

    fn mismatch(name: &str, want: &str, v: &Value) -> String {
        format!(
            "cannot unmarshal {} into field {name} of type {want}",
            kind(v)
        )
    }

    /// A signed integer field of `bits` bits (Go's `int` is 64 bits here).
    pub fn int(&self, name: &str, bits: u32) -> Result<i64, String> {
        let Some(v) = self.field(name) else {
            return Ok(0);
        };
        let n = v
            .as_i64()
            .ok_or_else(|| Self::mismatch(name, &format!("int{bits}"), v))?;
        let max = i64::MAX >> (64 - bits);
        let min = -max - 1;
        if n < min || n > max {
            return Err(Self::mismatch(name, &format!("int{bits}"), v));
        }
        Ok(n)
    }

    /// An unsigned integer field of `bits` bits.
    pub fn uint(&self, name: &str, bits: u32) -> Result<u64, String> {
        let Some(v) = self.field(name) else {
            return Ok(0);
        };
        let n = v
            .as_u64()
            .ok_or_else(|| Self::mismatch(name, &format!("uint{bits}"), v))?;
        if bits < 64 && n >> bits != 0 {
            return Err(Self::mismatch(name, &format!("uint{bits}"), v));
        }
        Ok(n)
    }

    /// A string field.
    pub fn string(&self, name: &str) -> Result<String, String> {
        match self.field(name) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(Self::mismatch(name, "string", v)),
        }
    }

    /// A `[]byte` field (base64).
    pub fn bytes(&self, name: &str) -> Result<Vec<u8>, String> {
        match self.field(name) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("field {name}: illegal base64 data: {e}")),
            Some(v) => Err(Self::mismatch(name, "[]uint8", v)),
        }
    }

    /// A struct field whose content is not used: only its JSON type is checked.
    pub fn any_object(&self, name: &str) -> Result<(), String> {
        match self.field(name) {
            None | Some(Value::Object(_)) => Ok(()),
            Some(v) => Err(Self::mismatch(name, "struct", v)),
        }
    }
}

/// Go's `net.HardwareAddr.String()`: lowercase hex bytes joined by `:`, empty for none.
pub fn hardware_addr(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_as_go_fills_them() {
        let v: Value = serde_json::from_str(
            r#"{"ifacename":"eth0","Bytes":42,"neg":-1,"big":4294967296,"f":1.0,"mac":"qrvM3e7/","n":null,"bad":"qr!"}"#,
        )
        .expect("json");
        let o = object(&v).expect("object").expect("not null");
        assert_eq!(o.string("IfaceName").expect("string"), "eth0");
        assert_eq!(o.uint("bytes", 64).expect("uint"), 42);
        assert_eq!(o.uint("Missing", 32).expect("zero"), 0);
        assert_eq!(o.uint("n", 32).expect("null is zero"), 0);
        assert!(o.uint("neg", 32).is_err());
        assert!(o.uint("big", 32).is_err());
        assert_eq!(o.uint("big", 64).expect("fits"), 4294967296);
        assert!(o.int("big", 32).is_err());
        assert_eq!(o.int("neg", 32).expect("int"), -1);
        assert!(o.uint("f", 64).is_err());
        assert!(o.string("Bytes").is_err());
        assert_eq!(
            hardware_addr(&o.bytes("mac").expect("base64")),
            "aa:bb:cc:dd:ee:ff"
        );
        assert!(o.bytes("bad").is_err());
        assert!(o.bytes("Bytes").is_err());
        assert!(array(&v).is_err());
        assert_eq!(array(&Value::Null).expect("nil slice").len(), 0);
    }
}
