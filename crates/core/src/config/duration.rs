//! Durations written the way operators write them: `"100ms"`, `"1s"`,
//! `"1.5s"`, `"2m"`. A bare number is refused on purpose: `1` could mean
//! seconds (keepalived) or centiseconds (VRRPv3 on the wire), and guessing
//! wrong moves a VIP at the wrong time.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A `std::time::Duration` that (de)serialises as a string with a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_millis(ms: u64) -> Self {
        HumanDuration(Duration::from_millis(ms))
    }
    pub const fn from_secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

/// Parses `"<number><unit>"` with unit one of `us`, `ms`, `s`, `m`, `h`.
/// The number may have a fractional part; the result must be a whole number
/// of microseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("\"{text}\" has no unit (write e.g. \"100ms\" or \"1s\")"))?;
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("\"{text}\" does not start with a number"));
    }
    let micros_per_unit: u128 = match unit {
        "us" | "µs" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" | "min" => 60_000_000,
        "h" => 3_600_000_000,
        _ => {
            return Err(format!(
                "\"{text}\": unknown unit \"{unit}\" (use us, ms, s, m or h)"
            ));
        }
    };
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int_part.is_empty() || frac_part.contains('.') || (num.contains('.') && frac_part.is_empty())
    {
        return Err(format!("\"{text}\" is not a valid number"));
    }
    if int_part.len() > 12 || frac_part.len() > 9 {
        return Err(format!("\"{text}\" is too long"));
    }
    let int: u128 = int_part
        .parse()
        .map_err(|_| format!("\"{text}\" is not a valid number"))?;
    let scale = 10u128.pow(frac_part.len() as u32);
    let frac: u128 = if frac_part.is_empty() {
        0
    } else {
        frac_part
            .parse()
            .map_err(|_| format!("\"{text}\" is not a valid number"))?
    };
    let total_scaled = int * micros_per_unit * scale + frac * micros_per_unit;
    if !total_scaled.is_multiple_of(scale) {
        return Err(format!("\"{text}\" is finer than a microsecond"));
    }
    let micros = total_scaled / scale;
    let micros = u64::try_from(micros).map_err(|_| format!("\"{text}\" is too large"))?;
    Ok(Duration::from_micros(micros))
}

/// Formats with the largest unit that keeps the value whole, so that
/// rendering and re-parsing is lossless.
pub fn format_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        return "0s".into();
    }
    if us.is_multiple_of(1_000_000) {
        format!("{}s", us / 1_000_000)
    } else if us.is_multiple_of(1_000) {
        format!("{}ms", us / 1_000)
    } else {
        format!("{us}us")
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string with a unit, e.g. \"100ms\" or \"1s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": super::schema::DURATION,
            "description": "A duration with a unit (us, ms, s, m, h), e.g. \"100ms\" or \"1.5s\"."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_fractions() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_ambiguous_or_broken() {
        for bad in [
            "1",
            "",
            "ms",
            "1.s",
            "1..2s",
            "1x",
            "-1s",
            "0.0000001s",
            "1e3ms",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_duration("99999999999999h").is_err());
    }

    #[test]
    fn format_round_trips() {
        for ms in [0u64, 1, 10, 999, 1000, 1500, 60_000, 40_950] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
