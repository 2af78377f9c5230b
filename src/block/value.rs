//! [`Value`]: one value of a bag or of a block's configuration, and its
//! serde form.
//!
//! Plain data serialises in any serde format (a block's configuration is
//! usually JSON or TOML); `Value::Shared` travels in process only.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// One value in a [`Bag`](crate::block::Bag) or a block's configuration.
///
/// Plain data (null, bool, integer, float, string, bytes, list, map) plus
/// [`Value::Shared`], an `Arc` of anything `Send + Sync` for what does not
/// serialise: a reply channel, a connection, a shared buffer. Plain values
/// serialise with serde in any format (a block's configuration is usually
/// JSON or TOML); [`Value::decode`] turns one into the block's own typed
/// configuration struct.
///
/// `From` conversions exist for the usual Rust types, so
/// `Bag::new().with("line", "hello").with("seq", 7)` reads naturally.
#[derive(Clone, Default)]
pub enum Value {
    /// No value (JSON `null`, a missing configuration).
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer. Unsigned values above `i64::MAX` do not fit and are
    /// refused when deserialising.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A list of values.
    List(Vec<Value>),
    /// A map from strings to values, ordered by key.
    Map(BTreeMap<String, Value>),
    /// Anything else, shared: a reply channel, a handle, a buffer. Compared
    /// by identity; it cannot be serialised. Read it back with
    /// [`Value::shared`].
    Shared(Arc<dyn Any + Send + Sync>),
}

impl Value {
    /// Wraps `value` as [`Value::Shared`].
    pub fn shared_from<T: Any + Send + Sync>(value: T) -> Self {
        Value::Shared(Arc::new(value))
    }

    /// The string, if this is a [`Value::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is a [`Value::Int`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean, if this is a [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The bytes of a [`Value::Bytes`], or of a [`Value::Str`] as UTF-8.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Str(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The entry `key` of a [`Value::Map`].
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(map) => map.get(key),
            _ => None,
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The shared value, if this is a [`Value::Shared`] holding a `T`.
    pub fn shared<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        match self {
            Value::Shared(any) => any.clone().downcast::<T>().ok(),
            _ => None,
        }
    }

    /// Converts the value into a `T`, typically a block's configuration
    /// struct. `Null` becomes `T`'s reading of "nothing" (an `Option` is
    /// `None`; a struct whose fields all have defaults is its default).
    ///
    /// ```
    /// use syncmq::block::Value;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Conf { port: u16, #[serde(default)] verbose: bool }
    ///
    /// let value: Value = serde_json::from_str(r#"{"port": 7000}"#).unwrap();
    /// let conf: Conf = value.decode().unwrap();
    /// assert_eq!(conf.port, 7000);
    /// assert!(!conf.verbose);
    /// ```
    ///
    /// A [`Value::Bytes`] decodes into a field marked
    /// `#[serde(with = "serde_bytes")]`, not into a plain `Vec<u8>` (which
    /// serde reads as a list of numbers).
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when the value does not have `T`'s shape, or holds a
    /// [`Value::Shared`].
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        // A round trip through MessagePack: short and exact, and
        // configurations are decoded once per block.
        let bytes = rmp_serde::to_vec_named(self)?;
        let decoded = rmp_serde::from_slice(&bytes);
        if decoded.is_err() && self.is_null() {
            // "No configuration" that is not an `Option` reads as an empty
            // map, so a struct whose fields all have defaults gets them.
            if let Ok(value) = Value::Map(BTreeMap::new()).decode() {
                return Ok(value);
            }
        }
        decoded.map_err(|e| Error::codec("decode a configuration", e))
    }

    /// The value of any `Serialize` type, for building configurations in
    /// code.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] when `value` does not serialise.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
        let bytes = rmp_serde::to_vec_named(value)?;
        Ok(rmp_serde::from_slice(&bytes)?)
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::Shared(a), Value::Shared(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Bool(b) => write!(f, "{b:?}"),
            Value::Int(i) => write!(f, "{i:?}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Map(m) => f.debug_map().entries(m).finish(),
            Value::Shared(_) => f.write_str("Shared(..)"),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(v: BTreeMap<String, Value>) -> Self {
        Value::Map(v)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Float(x) => serializer.serialize_f64(*x),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::List(list) => {
                let mut seq = serializer.serialize_seq(Some(list.len()))?;
                for v in list {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(map) => {
                let mut m = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Value::Shared(_) => Err(ser::Error::custom(
                "a Value::Shared cannot be serialised; it only travels in process",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null, a bool, a number, a string, bytes, a list or a map")
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} is larger than i64::MAX")))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<Value, E> {
        Ok(Value::Bytes(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            list.push(v);
        }
        Ok(Value::List(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> std::result::Result<Value, A::Error> {
        let mut map = BTreeMap::new();
        while let Some((k, v)) = access.next_entry::<String, Value>()? {
            map.insert(k, v);
        }
        Ok(Value::Map(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_json_and_decode_to_structs() {
        #[derive(Deserialize, Serialize, PartialEq, Debug)]
        struct Conf {
            port: u16,
            tags: Vec<String>,
            ratio: f64,
        }
        let v: Value =
            serde_json::from_str(r#"{"port": 7000, "tags": ["a", "b"], "ratio": 0.5}"#).unwrap();
        assert_eq!(v.get("port").and_then(Value::as_i64), Some(7000));
        let conf: Conf = v.decode().unwrap();
        assert_eq!(conf.tags, ["a", "b"]);
        assert_eq!(Value::encode(&conf).unwrap(), v);
        assert_eq!(serde_json::to_value(&v).unwrap()["port"], 7000);
    }

    #[test]
    fn null_decodes_to_defaults_or_none() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Conf {
            #[serde(default)]
            port: u16,
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Required {
            port: u16,
        }
        assert_eq!(Value::Null.decode::<Conf>().unwrap(), Conf { port: 0 });
        assert_eq!(Value::Null.decode::<Option<u16>>().unwrap(), None);
        assert_eq!(Value::Null.decode::<Option<Conf>>().unwrap(), None);
        assert!(matches!(
            Value::Null.decode::<Required>(),
            Err(Error::Codec { .. })
        ));
    }

    #[test]
    fn decode_with_the_wrong_shape_is_a_codec_error() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Conf {
            port: u16,
        }
        let v = Value::from("not a map");
        assert!(matches!(v.decode::<Conf>(), Err(Error::Codec { .. })));
        let too_big: std::result::Result<Value, _> = serde_json::from_str("18446744073709551615");
        assert!(too_big.is_err());
    }

    #[test]
    fn shared_values_come_back_typed_and_refuse_to_serialise() {
        let (tx, _rx) = crossbeam_channel::unbounded::<u32>();
        let v = Value::shared_from(tx);
        assert!(v.shared::<crossbeam_channel::Sender<u32>>().is_some());
        assert!(v.shared::<String>().is_none());
        assert_eq!(v.clone(), v);
        assert!(serde_json::to_string(&v).is_err());
        assert!(matches!(v.decode::<u32>(), Err(Error::Codec { .. })));
    }
}
