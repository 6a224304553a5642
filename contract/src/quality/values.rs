//! Whether a value fits its logical type, and how values are shown in messages.

use mesh_protocol::manifest::LogicalType;

pub(crate) fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|p| p.parse::<u32>().ok());
    matches!(
        (num(0..4), num(5..7), num(8..10)),
        (Some(_), Some(m @ 1..=12), Some(d @ 1..=31)) if d <= days_in(m)
    )
}

fn days_in(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

pub(crate) fn is_timestamp(s: &str) -> bool {
    // `get`, not indexing: a multi-byte character at byte 10 must not panic.
    if s.len() < 16 || !s.get(..10).is_some_and(is_date) {
        return false;
    }
    let rest = &s.as_bytes()[10..];
    (rest[0] == b'T' || rest[0] == b' ')
        && rest[1..3].iter().all(u8::is_ascii_digit)
        && rest[3] == b':'
        && rest[4..6].iter().all(u8::is_ascii_digit)
}

/// A time of day: `HH:MM:SS`, optionally with fractional seconds and a `Z` or
/// `±HH:MM` offset.
pub(crate) fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    let two = |i: usize, max: u8| {
        b.get(i..i + 2).is_some_and(|d| {
            d.iter().all(u8::is_ascii_digit) && (d[0] - b'0') * 10 + (d[1] - b'0') <= max
        })
    };
    if !(two(0, 23)
        && b.get(2) == Some(&b':')
        && two(3, 59)
        && b.get(5) == Some(&b':')
        && two(6, 60))
    {
        return false;
    }
    let mut rest = &b[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = &frac[digits..];
    }
    match rest {
        [] | [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// Whether text `v` (a CSV cell, or a JSON string) is a valid `t`.
pub(crate) fn text_fits(t: LogicalType, v: &str) -> bool {
    match t {
        LogicalType::String => true,
        LogicalType::Integer => v.parse::<i64>().is_ok() || v.parse::<u64>().is_ok(),
        LogicalType::Number => v.parse::<f64>().is_ok_and(f64::is_finite),
        LogicalType::Boolean => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
        LogicalType::Date => is_date(v),
        LogicalType::Timestamp => is_timestamp(v),
        LogicalType::Time => is_time(v),
        LogicalType::Object => v.trim_start().starts_with('{'),
        LogicalType::Array => v.trim_start().starts_with('['),
    }
}

pub(crate) fn type_name(t: LogicalType) -> &'static str {
    match t {
        LogicalType::String => "a string",
        LogicalType::Integer => "an integer",
        LogicalType::Number => "a number",
        LogicalType::Boolean => "a boolean (true or false)",
        LogicalType::Date => "a date (YYYY-MM-DD)",
        LogicalType::Timestamp => "a timestamp (YYYY-MM-DDTHH:MM...)",
        LogicalType::Time => "a time of day (HH:MM:SS)",
        LogicalType::Object => "an object",
        LogicalType::Array => "an array",
    }
}

pub(crate) fn shown(v: &str) -> String {
    let short: String = v.chars().take(40).collect();
    if short.len() < v.len() {
        format!("{short:?}...")
    } else {
        format!("{short:?}")
    }
}

/// A JSON value checked against `t`: its canonical text, or why it does not fit.
pub(crate) fn json_fits(t: LogicalType, v: &serde_json::Value) -> Result<String, String> {
    use serde_json::Value as V;
    let ok = match (t, v) {
        (LogicalType::String, V::String(_)) => true,
        (LogicalType::Integer, V::Number(n)) => n.is_i64() || n.is_u64(),
        (LogicalType::Number, V::Number(_)) => true,
        (LogicalType::Boolean, V::Bool(_)) => true,
        (LogicalType::Date, V::String(s)) => is_date(s),
        (LogicalType::Timestamp, V::String(s)) => is_timestamp(s),
        (LogicalType::Time, V::String(s)) => is_time(s),
        (LogicalType::Object, V::Object(_)) => true,
        (LogicalType::Array, V::Array(_)) => true,
        _ => false,
    };
    let text = match v {
        V::String(s) => s.clone(),
        other => other.to_string(),
    };
    if ok {
        Ok(text)
    } else {
        Err(format!("{} is not {}", shown(&text), type_name(t)))
    }
}
