//! Field readers that never fail on a value of an unexpected type: relays encode the same
//! field as a number, a numeric string (int64 in proto3 JSON and ts-proto), a bool or an
//! object, depending on the library and its version. A value that does not fit reads as
//! absent (`None`) and is skipped without being built, so one odd field never costs the frame.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A JSON scalar as read, before it is judged.
enum Scalar {
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Str(String),
    /// null, an object or an array (skipped).
    Other,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Unsigned(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Signed(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_none<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// Text or an id: a string, or a number written out. Empty strings read as absent.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Text(pub Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Text(match Scalar::deserialize(d)? {
            Scalar::Str(s) if !s.is_empty() => Some(s),
            Scalar::Unsigned(n) => Some(n.to_string()),
            Scalar::Signed(n) => Some(n.to_string()),
            _ => None,
        }))
    }
}

impl Text {
    /// An id: absent when empty or `"0"` (the proto3 default of an unset int64 id).
    pub fn id(self) -> Option<String> {
        self.0.filter(|s| s != "0")
    }
}

/// A comment's text: a string, empty or not (an emote-only chat has empty text), or a number
/// written out.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Words(pub Option<String>);

impl<'de> Deserialize<'de> for Words {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Words(match Scalar::deserialize(d)? {
            Scalar::Str(s) => Some(s),
            Scalar::Unsigned(n) => Some(n.to_string()),
            Scalar::Signed(n) => Some(n.to_string()),
            _ => None,
        }))
    }
}

/// A non-negative integer: a number or a numeric string.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Int(pub Option<u64>);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Int(match Scalar::deserialize(d)? {
            Scalar::Unsigned(n) => Some(n),
            Scalar::Signed(n) => u64::try_from(n).ok(),
            // Whole, non-negative floats only; the cast is exact below 2^53.
            Scalar::Float(f) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => Some(f as u64),
            Scalar::Str(s) => s.trim().parse().ok(),
            _ => None,
        }))
    }
}

/// A yes/no: a bool, 0/1, or the strings `"true"`/`"false"`/`"1"`/`"0"`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Flag(pub Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Flag(match Scalar::deserialize(d)? {
            Scalar::Bool(b) => Some(b),
            Scalar::Unsigned(n) => Some(n != 0),
            Scalar::Signed(n) => Some(n != 0),
            Scalar::Str(s) => match s.as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        }))
    }
}

/// A nested object read as `T` (whose fields are lenient too); anything else reads as absent.
#[derive(Debug, Clone, PartialEq)]
pub struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

struct ObjVisitor<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> Visitor<'de> for ObjVisitor<T> {
    type Value = Obj<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| Obj(Some(t)))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Obj<T>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Obj<T>, A::Error> {
        ScalarVisitor.visit_seq(seq).map(|_| Obj(None))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Obj<T>, E> {
        Ok(Obj(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Obj<T>, E> {
        Ok(Obj(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Obj<T>, E> {
        Ok(Obj(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Obj<T>, E> {
        Ok(Obj(None))
    }
    fn visit_str<E>(self, _: &str) -> Result<Obj<T>, E> {
        Ok(Obj(None))
    }
    fn visit_unit<E>(self) -> Result<Obj<T>, E> {
        Ok(Obj(None))
    }
    fn visit_none<E>(self) -> Result<Obj<T>, E> {
        Ok(Obj(None))
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjVisitor(PhantomData))
    }
}

/// A list of ids, each a string or a number; other elements and non-lists are skipped.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Ids(pub Vec<String>);

struct IdsVisitor;

impl<'de> Visitor<'de> for IdsVisitor {
    type Value = Ids;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ids, A::Error> {
        let mut out = Vec::new();
        while let Some(t) = seq.next_element::<Text>()? {
            out.extend(t.id());
        }
        Ok(Ids(out))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Ids, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Ids, A::Error> {
        ScalarVisitor.visit_map(map).map(|_| Ids::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Ids, E> {
        Ok(Ids::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Ids, E> {
        Ok(Ids::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Ids, E> {
        Ok(Ids::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Ids, E> {
        Ok(Ids::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Ids, E> {
        Ok(Ids::default())
    }
    fn visit_unit<E>(self) -> Result<Ids, E> {
        Ok(Ids::default())
    }
    fn visit_none<E>(self) -> Result<Ids, E> {
        Ok(Ids::default())
    }
}

impl<'de> Deserialize<'de> for Ids {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IdsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Probe {
        t: Text,
        n: Int,
        f: Flag,
        o: Obj<Inner>,
        ids: Ids,
    }

    #[derive(Deserialize, Default, Debug, PartialEq)]
    #[serde(default)]
    struct Inner {
        n: Int,
    }

    fn probe(json: &str) -> Probe {
        serde_json::from_str(json).expect("a lenient read never fails on types")
    }

    #[test]
    fn every_encoding_reads_or_is_absent() {
        /// (frame, text, int, flag)
        type Row = (&'static str, Option<&'static str>, Option<u64>, Option<bool>);
        let rows: &[Row] = &[
            (r#"{"t":"a","n":803,"f":true}"#, Some("a"), Some(803), Some(true)),
            (r#"{"t":7,"n":"803","f":"1"}"#, Some("7"), Some(803), Some(true)),
            (r#"{"t":-7,"n":803.0,"f":0}"#, Some("-7"), Some(803), Some(false)),
            (r#"{"t":"","n":-1,"f":"no"}"#, None, None, None),
            (r#"{"t":{"x":[1]},"n":[1,2],"f":{"a":1}}"#, None, None, None),
            (r#"{"t":null,"n":null,"f":null}"#, None, None, None),
            (r#"{"n":"12x","f":"false"}"#, None, None, Some(false)),
        ];
        for (json, t, n, f) in rows {
            let p = probe(json);
            assert_eq!((p.t.0.as_deref(), p.n.0, p.f.0), (*t, *n, *f), "{json}");
        }
    }

    #[test]
    fn objects_and_id_lists() {
        assert_eq!(
            probe(r#"{"o":{"n":"5","junk":{"a":[1]}}}"#).o.0,
            Some(Inner { n: Int(Some(5)) })
        );
        assert_eq!(probe(r#"{"o":"not an object"}"#).o.0, None);
        assert_eq!(probe(r#"{"o":[1,2]}"#).o.0, None);
        assert_eq!(
            probe(r#"{"ids":["1",2,"0",null,{"x":1},""]}"#).ids.0,
            vec!["1", "2"]
        );
        assert_eq!(probe(r#"{"ids":"1"}"#).ids.0, Vec::<String>::new());
        assert_eq!(Text(Some("0".into())).id(), None, "an unset proto3 id");
    }
}
