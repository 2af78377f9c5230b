//! Durations as a person types them on the command line: `1500` (whole
//! milliseconds, as every `_ms` field of the configs), or a number with a
//! unit, `500ms`, `30s`, `5m`, `2h`, `1d`. One parser, so that every flag
//! that takes a duration reads the same.

use std::time::Duration;

/// Parses `text` as a duration; the error says what was wrong and what is
/// accepted (clap prints it with the flag's name).
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let accepted = "give whole milliseconds (1500) or a number with a unit: 500ms, 30s, 5m, 2h, 1d";
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; {accepted}"))?;
    let millis_per = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("{other:?} is not a unit of time; {accepted}")),
    };
    let millis = n
        .checked_mul(millis_per)
        .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    if millis == 0 {
        return Err(format!(
            "{text:?} is no time at all; a duration is at least 1 ms"
        ));
    }
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_or_a_unit() {
        assert_eq!(parse("1500"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse(" 7 s"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn mistakes_say_what_is_accepted() {
        for bad in ["", "s", "1.5s", "-1", "10y"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("500ms, 30s, 5m"), "{bad}: {err}");
        }
        for zero in ["0", "0s"] {
            assert!(parse(zero).unwrap_err().contains("at least 1 ms"), "{zero}");
        }
        assert!(parse("10y").unwrap_err().contains("30s"));
        assert!(parse(&format!("{}d", u64::MAX))
            .unwrap_err()
            .contains("too long"));
    }
}
