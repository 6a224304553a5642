//! Human durations such as `90s`, `15m`, `24h`, `7d`, `2w`, used in manifests and flags.

/// Why a duration did not parse; each names the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Only digits, or nothing.
    #[error("duration {0:?} has no unit: use s, m, h, d or w (e.g. 24h)")]
    NoUnit(String),
    /// The part before the unit is not a whole number.
    #[error("duration {0:?} must start with a whole number (e.g. 24h)")]
    NotANumber(String),
    /// A unit other than s, m, h, d or w.
    #[error("duration {text:?} has unknown unit {unit:?}: use s, m, h, d or w")]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit found.
        unit: String,
    },
    /// More seconds than fit in 64 bits.
    #[error("duration {0:?} is too large")]
    TooLarge(String),
}

/// Parses a duration like `30s`, `15m`, `24h`, `7d` or `2w` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, DurationError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| DurationError::NoUnit(s.to_string()))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| DurationError::NotANumber(s.to_string()))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(DurationError::UnknownUnit {
                text: s.to_string(),
                unit: unit.to_string(),
            })
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| DurationError::TooLarge(s.to_string()))
}

/// Formats seconds in the largest unit that divides them exactly (`86400` -> `1d`).
pub fn format_duration(secs: u64) -> String {
    for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(format_duration(86_400), "1d");
        assert_eq!(format_duration(90), "90s");
        assert_eq!(
            parse_duration("24"),
            Err(DurationError::NoUnit("24".into()))
        );
        assert_eq!(
            parse_duration("h"),
            Err(DurationError::NotANumber("h".into()))
        );
        assert!(matches!(
            parse_duration("3y"),
            Err(DurationError::UnknownUnit { unit, .. }) if unit == "y"
        ));
        assert!(matches!(
            parse_duration("99999999999999999999w"),
            Err(DurationError::NotANumber(_))
        ));
        assert!(matches!(
            parse_duration("9999999999999999999w"),
            Err(DurationError::TooLarge(_))
        ));
    }
}
