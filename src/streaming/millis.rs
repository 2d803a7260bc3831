//! Milliseconds as JavaScript sends them.
//!
//! Why: a browser's clock is `currentTime` in seconds, a float; the spec's own player hook sends
//! `position_ms: audio.currentTime * 1000` on every `timeupdate`, so a whole number would refuse
//! nearly every report of a client written from the spec. A position is therefore any finite,
//! non-negative JSON number, rounded to the nearest millisecond; anything else is refused as
//! before.

use serde::de::{self, Deserializer, Visitor};

struct Millis;

impl Visitor<'_> for Millis {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a non-negative number of milliseconds")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        // 2^64 itself is out of range; the largest f64 below it is fine.
        if (0.0..18_446_744_073_709_551_616.0).contains(&v) {
            Ok(v.round() as u64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
}

/// For `#[serde(deserialize_with = "millis::deserialize")]` on a `u64`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(Millis)
}

/// For `#[serde(deserialize_with = "millis::whole_u32")]` on a `u32` that a browser computes as
/// a float: the spec's hook sends `navigator.connection.downlink * 1000` as its bandwidth, and
/// `4.025 * 1000` is `4025.0000000000005` in JavaScript. Rounded like a position; a number that
/// does not fit is refused.
pub fn whole_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = deserialize(d)?;
    u32::try_from(v).map_err(|_| {
        de::Error::invalid_value(
            de::Unexpected::Unsigned(v),
            &"a non-negative number up to 4294967295",
        )
    })
}

/// For `#[serde(default, deserialize_with = "millis::optional")]` on an `Option<u64>`.
pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Maybe;
    impl<'de> Visitor<'de> for Maybe {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative number of milliseconds, or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            deserialize(d).map(Some)
        }
    }
    d.deserialize_option(Maybe)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct At {
        #[serde(deserialize_with = "super::deserialize")]
        position_ms: u64,
        #[serde(default, deserialize_with = "super::optional")]
        start_ms: Option<u64>,
    }

    fn parse(json: &str) -> Result<At, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn whole_and_fractional_milliseconds_are_taken_and_rounded() {
        let at = |p, s| At {
            position_ms: p,
            start_ms: s,
        };
        assert_eq!(parse(r#"{"position_ms": 1234}"#).unwrap(), at(1234, None));
        assert_eq!(
            parse(r#"{"position_ms": 1234.5678, "start_ms": 0.4}"#).unwrap(),
            at(1235, Some(0))
        );
        assert_eq!(
            parse(r#"{"position_ms": 1e3, "start_ms": null}"#).unwrap(),
            at(1000, None)
        );
    }

    #[test]
    fn what_is_not_a_time_is_refused() {
        for bad in [
            r#"{"position_ms": -1}"#,
            r#"{"position_ms": -0.5}"#,
            r#"{"position_ms": 1e30}"#,
            r#"{"position_ms": "12"}"#,
            r#"{"position_ms": true}"#,
            r#"{"position_ms": 1, "start_ms": -3}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
