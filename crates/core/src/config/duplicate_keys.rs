//! Duplicate keys anywhere in the JSON document.
//!
//! serde refuses a struct field given twice, but a map (`instances`,
//! `upstreams`, `sites`, `checks.extra`) silently keeps the later value,
//! so two `"www"` upstreams render one of them and nobody is told. JSON
//! (RFC 8259 §4) leaves duplicate names undefined; a declaration is
//! refused instead, with the path of every repeated key. This walks the
//! raw document once, keeping only the keys of the object being read.

use super::Problem;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeSet;
use std::fmt;

/// Every key that appears twice in one object, at the path of the repeat.
/// Input that is not JSON yields nothing: the typed parse reports it.
pub fn find(bytes: &[u8]) -> Vec<Problem> {
    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let _ = Walk {
        path: &mut Vec::new(),
        found: &mut found,
    }
    .deserialize(&mut de);
    found
}

struct Walk<'a> {
    path: &'a mut Vec<String>,
    found: &'a mut Vec<Problem>,
}

impl Walk<'_> {
    fn here(&self) -> String {
        if self.path.is_empty() {
            ".".into()
        } else {
            self.path.join(".")
        }
    }
}

fn segment(key: &str) -> String {
    if key.is_empty() {
        "\"\"".into()
    } else {
        key.to_string()
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            self.path.push(i.to_string());
            let more = seq.next_element_seed(Walk {
                path: self.path,
                found: self.found,
            });
            self.path.pop();
            if more?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            self.path.push(segment(&key));
            if !seen.insert(key.clone()) {
                let at = self.here();
                self.found.push(Problem {
                    path: at,
                    message: format!(
                        "duplicate key \"{}\": it is given more than once in the same object, and only one would be used",
                        key.escape_debug()
                    ),
                });
                // The repeated value is not walked: its own duplicates
                // would only repeat the message under the same path.
                self.path.pop();
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let r = map.next_value_seed(Walk {
                path: self.path,
                found: self.found,
            });
            self.path.pop();
            r?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::find;

    fn paths(j: &str) -> Vec<String> {
        find(j.as_bytes()).into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn nested_and_top_level_repeats_are_found() {
        assert_eq!(paths(r#"{"a": 1, "a": 2}"#), ["a"]);
        assert_eq!(
            paths(r#"{"x": {"m": {"k": 1, "k": 2}}, "l": [{"z": 0, "z": 1}]}"#),
            ["x.m.k", "l.0.z"]
        );
        assert!(paths(r#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#).is_empty());
    }

    #[test]
    fn escaped_spellings_of_one_key_are_the_same_key() {
        assert_eq!(paths(r#"{"web": 1, "w\u0065b": 2}"#), ["web"]);
    }

    #[test]
    fn not_json_yields_nothing() {
        assert!(paths("{\"a\": ").is_empty());
        assert!(paths("").is_empty());
    }
}
