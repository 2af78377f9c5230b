//! Durations at the serde boundary: whole milliseconds.
//!
//! Every configuration struct holds [`Duration`]s, and every configuration
//! file spells them as whole milliseconds in a field ending in `_ms`, so
//! that JSON, TOML and MessagePack agree and a person can read them. These
//! two adapters are the only place that conversion happens:
//!
//! - `#[serde(with = "crate::millis")]` for a `Duration`;
//! - `#[serde(with = "crate::millis::or_off")]` for an `Option<Duration>`,
//!   where 0 means `None` ("off").

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// `d` in whole milliseconds, saturating at `u64::MAX`.
pub(crate) fn to_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(to_ms(*value))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    Ok(Duration::from_millis(u64::deserialize(deserializer)?))
}

/// `Option<Duration>` as whole milliseconds, 0 meaning `None`.
pub(crate) mod or_off {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // the signature serde's `with` calls
    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.map_or(0, super::to_ms))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let ms = u64::deserialize(deserializer)?;
        Ok((ms > 0).then(|| Duration::from_millis(ms)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Both {
        #[serde(with = "crate::millis")]
        timeout: Duration,
        #[serde(with = "crate::millis::or_off")]
        expiry: Option<Duration>,
    }

    #[test]
    fn durations_round_trip_as_milliseconds_and_zero_is_off() {
        let both = Both {
            timeout: Duration::from_millis(1500),
            expiry: None,
        };
        let bytes = rmp_serde::to_vec_named(&both).unwrap();
        assert_eq!(rmp_serde::from_slice::<Both>(&bytes).unwrap(), both);
        let with_expiry = Both {
            timeout: Duration::ZERO,
            expiry: Some(Duration::from_secs(2)),
        };
        let bytes = rmp_serde::to_vec_named(&with_expiry).unwrap();
        assert_eq!(rmp_serde::from_slice::<Both>(&bytes).unwrap(), with_expiry);
    }
}
