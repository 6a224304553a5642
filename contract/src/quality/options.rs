//! A property's `logicalTypeOptions` (ODCS v3.1) as checks on each value:
//! `minimum` / `maximum` and their exclusive forms (numbers, or ISO dates and
//! times compared as text), `multipleOf`, `minLength` / `maxLength`, `pattern`,
//! the integer `format` (`i8` ... `u128`) and a date or time `format` written in
//! Java's `DateTimeFormatter` letters (`yyyy-MM-dd HH:mm:ss`), which then replaces
//! the ISO form the type otherwise expects.

use regex::Regex;
use serde_json::{Map, Value};

use mesh_protocol::manifest::LogicalType;

use super::rules::{compile, num, scalar_text};
use super::values::shown;

/// A bound of a value: a number, or text compared as text (ISO dates sort).
#[derive(Debug, Clone, PartialEq)]
enum Limit {
    Number(f64),
    Text(String),
}

/// The value checks of one property.
#[derive(Debug, Clone, Default)]
pub(crate) struct ValueOptions {
    minimum: Option<(Limit, bool)>,
    maximum: Option<(Limit, bool)>,
    multiple_of: Option<f64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<Regex>,
    integer_range: Option<(i128, u128, &'static str)>,
    /// A date or time written in this format instead of ISO.
    pub(crate) format: Option<(Regex, String)>,
}

impl ValueOptions {
    /// Reads `logicalTypeOptions` of a property of type `t` at `at`; problems go
    /// to `lint` and the option is left out.
    pub(crate) fn read(
        v: Option<&Value>,
        t: LogicalType,
        at: &str,
        lint: &mut Vec<String>,
    ) -> Self {
        let mut o = ValueOptions::default();
        let Some(v) = v else { return o };
        let Some(m) = v.as_object() else {
            lint.push(format!("{at}.logicalTypeOptions: must be a mapping"));
            return o;
        };
        let at = format!("{at}.logicalTypeOptions");
        let numeric = matches!(t, LogicalType::Integer | LogicalType::Number);
        let limit = |key: &str, lint: &mut Vec<String>| -> Option<Limit> {
            let v = m.get(key)?;
            match (numeric, v) {
                (true, v) if v.as_f64().is_some() => v.as_f64().map(Limit::Number),
                (false, Value::String(s)) => Some(Limit::Text(s.clone())),
                (false, v) if v.as_f64().is_some() => v.as_f64().map(Limit::Number),
                _ => {
                    lint.push(format!(
                        "{at}.{key}: {v} is not a {}",
                        if numeric { "number" } else { "string" }
                    ));
                    None
                }
            }
        };
        o.minimum = limit("minimum", lint)
            .map(|l| (l, false))
            .or_else(|| limit("exclusiveMinimum", lint).map(|l| (l, true)));
        o.maximum = limit("maximum", lint)
            .map(|l| (l, false))
            .or_else(|| limit("exclusiveMaximum", lint).map(|l| (l, true)));
        let count = |key: &str, lint: &mut Vec<String>| -> Option<u64> {
            let v = m.get(key)?;
            v.as_u64().or_else(|| {
                lint.push(format!("{at}.{key}: {v} is not a whole number >= 0"));
                None
            })
        };
        if t == LogicalType::String {
            o.min_length = count("minLength", lint);
            o.max_length = count("maxLength", lint);
        }
        if let Some(p) = m.get("multipleOf") {
            match p.as_f64() {
                Some(x) if x > 0.0 => o.multiple_of = Some(x),
                _ => lint.push(format!("{at}.multipleOf: {p} is not a number above 0")),
            }
        }
        if let Some(p) = m.get("pattern") {
            match p.as_str().map(compile) {
                Some(Ok(re)) => o.pattern = Some(re),
                Some(Err(e)) => lint.push(format!("{at}.pattern: {e}")),
                None => lint.push(format!("{at}.pattern: must be a string")),
            }
        }
        if let Some(f) = m.get("format").and_then(scalar_text) {
            match t {
                LogicalType::Integer => match integer_range(&f) {
                    Some(r) => o.integer_range = Some(r),
                    None => lint.push(format!(
                        "{at}.format: {f:?} is not one of i8, i16, i32, i64, i128, u8, u16, u32, u64, u128"
                    )),
                },
                LogicalType::Date | LogicalType::Timestamp | LogicalType::Time => {
                    match named_format(&f).map_or_else(|| java_format(&f), Ok) {
                        Ok(re) => o.format = Some((re, f)),
                        Err(e) => lint.push(format!("{at}.format: {e}")),
                    }
                }
                // String formats (email, uuid, ...) and float widths describe the
                // data; they are kept, not checked.
                _ => {}
            }
        }
        o
    }

    /// Whether there is anything to check.
    pub(crate) fn is_empty(&self) -> bool {
        self.minimum.is_none()
            && self.maximum.is_none()
            && self.multiple_of.is_none()
            && self.min_length.is_none()
            && self.max_length.is_none()
            && self.pattern.is_none()
            && self.integer_range.is_none()
    }

    /// Why `v` (a value of the right type, as text) breaks an option, if it does.
    pub(crate) fn problem(&self, v: &str) -> Option<String> {
        let x = v.trim().parse::<f64>().ok();
        let below = |l: &Limit| match (l, x) {
            (Limit::Number(n), Some(x)) => Some(x.partial_cmp(n)),
            (Limit::Text(t), _) => Some(Some(v.cmp(t.as_str()))),
            (Limit::Number(_), None) => None,
        };
        if let Some((l, exclusive)) = &self.minimum {
            if let Some(Some(ord)) = below(l) {
                if ord.is_lt() || (*exclusive && ord.is_eq()) {
                    let op = if *exclusive { ">" } else { ">=" };
                    return Some(format!("{} must be {op} {}", shown(v), limit_text(l)));
                }
            }
        }
        if let Some((l, exclusive)) = &self.maximum {
            if let Some(Some(ord)) = below(l) {
                if ord.is_gt() || (*exclusive && ord.is_eq()) {
                    let op = if *exclusive { "<" } else { "<=" };
                    return Some(format!("{} must be {op} {}", shown(v), limit_text(l)));
                }
            }
        }
        if let (Some(m), Some(x)) = (self.multiple_of, x) {
            let q = x / m;
            if (q - q.round()).abs() > 1e-9 * q.abs().max(1.0) {
                return Some(format!("{} is not a multiple of {}", shown(v), num(m)));
            }
        }
        let len = v.chars().count() as u64;
        if let Some(min) = self.min_length.filter(|m| len < *m) {
            return Some(format!("{} is shorter than {min} characters", shown(v)));
        }
        if let Some(max) = self.max_length.filter(|m| len > *m) {
            return Some(format!("{} is longer than {max} characters", shown(v)));
        }
        if let Some(re) = self.pattern.as_ref().filter(|re| !re.is_match(v)) {
            return Some(format!(
                "{} does not match the pattern {:?}",
                shown(v),
                re.as_str()
            ));
        }
        if let Some((lo, hi, name)) = self.integer_range {
            let fits = v.trim().parse::<i128>().map_or_else(
                |_| v.trim().parse::<u128>().is_ok_and(|u| u <= hi),
                |i| i >= lo && (i < 0 || (i as u128) <= hi),
            );
            if !fits {
                return Some(format!("{} does not fit {name}", shown(v)));
            }
        }
        None
    }
}

fn limit_text(l: &Limit) -> String {
    match l {
        Limit::Number(n) => num(*n),
        Limit::Text(t) => t.clone(),
    }
}

fn integer_range(f: &str) -> Option<(i128, u128, &'static str)> {
    Some(match f {
        "i8" => (i8::MIN.into(), i8::MAX as u128, "i8"),
        "i16" => (i16::MIN.into(), i16::MAX as u128, "i16"),
        "i32" => (i32::MIN.into(), i32::MAX as u128, "i32"),
        "i64" => (i64::MIN.into(), i64::MAX as u128, "i64"),
        "i128" => (i128::MIN, i128::MAX as u128, "i128"),
        "u8" => (0, u8::MAX.into(), "u8"),
        "u16" => (0, u16::MAX.into(), "u16"),
        "u32" => (0, u32::MAX.into(), "u32"),
        "u64" => (0, u64::MAX.into(), "u64"),
        "u128" => (0, u128::MAX, "u128"),
        _ => return None,
    })
}

/// A Java `DateTimeFormatter` pattern (`yyyy-MM-dd'T'HH:mm:ss.SSSXXX`) as an
/// anchored regular expression over the text it formats.
/// The JSON Schema format names (RFC 3339's `date-time`, `date`, `time`) that
/// contracts also write in `logicalTypeOptions.format`.
fn named_format(f: &str) -> Option<Regex> {
    const DATE: &str = r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])";
    const TIME: &str = r"(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?";
    const ZONE: &str = r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)";
    let re = match f {
        "date-time" => format!("^{DATE}[Tt ]{TIME}{ZONE}$"),
        "date" => format!("^{DATE}$"),
        "time" => format!("^{TIME}{ZONE}?$"),
        _ => return None,
    };
    Regex::new(&re).ok()
}

pub(crate) fn java_format(f: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    let chars: Vec<char> = f.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        match c {
            '\'' => {
                // A quoted literal; '' is a quote.
                let mut j = i + 1;
                let mut lit = String::new();
                loop {
                    match chars.get(j) {
                        None => return Err(format!("{f:?}: a quoted part is never closed")),
                        Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                            lit.push('\'');
                            j += 2;
                        }
                        Some('\'') => break,
                        Some(c) => {
                            lit.push(*c);
                            j += 1;
                        }
                    }
                }
                if j == i + 1 {
                    lit.push('\'');
                }
                re.push_str(&regex::escape(&lit));
                i = j + 1;
                continue;
            }
            'y' | 'u' => re.push_str(if n == 2 { r"\d{2}" } else { r"\d{4}" }),
            'M' | 'L' => re.push_str(match n {
                1 => r"(?:1[0-2]|0?[1-9])",
                2 => r"(?:0[1-9]|1[0-2])",
                3 => r"[A-Za-z]{3}",
                _ => r"[A-Za-z]+",
            }),
            'd' => re.push_str(if n == 1 {
                r"(?:3[01]|[12]\d|0?[1-9])"
            } else {
                r"(?:0[1-9]|[12]\d|3[01])"
            }),
            'D' => re.push_str(r"\d{1,3}"),
            'H' | 'k' => re.push_str(if n == 1 {
                r"(?:2[0-4]|[01]?\d)"
            } else {
                r"(?:[01]\d|2[0-4])"
            }),
            'h' | 'K' => re.push_str(if n == 1 {
                r"(?:1[0-2]|0?\d)"
            } else {
                r"(?:0\d|1[0-2])"
            }),
            'm' | 's' => re.push_str(if n == 1 { r"[0-5]?\d" } else { r"[0-5]\d" }),
            'S' => re.push_str(&format!(r"\d{{{n}}}")),
            'n' => re.push_str(r"\d+"),
            'a' => re.push_str(r"(?:AM|PM|am|pm)"),
            'E' => re.push_str(r"[A-Za-z]+"),
            'X' => re.push_str(r"(?:Z|[+-]\d{2}(?::?\d{2})?)"),
            'x' | 'Z' => re.push_str(r"[+-]\d{2}(?::?\d{2})?"),
            'z' | 'V' => re.push_str(r"[A-Za-z_/+\-0-9]+"),
            c if c.is_ascii_alphabetic() => {
                return Err(format!("{f:?}: pattern letter {c:?} is not supported"))
            }
            c => re.push_str(&regex::escape(&c.to_string().repeat(n))),
        }
        i += n;
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("{f:?}: {e}"))
}

/// `logicalTypeOptions` keys of every type (for lint).
pub(crate) fn known_keys(t: LogicalType) -> &'static [&'static str] {
    match t {
        LogicalType::String => &["minLength", "maxLength", "pattern", "format"],
        LogicalType::Integer | LogicalType::Number => &[
            "multipleOf",
            "maximum",
            "exclusiveMaximum",
            "minimum",
            "exclusiveMinimum",
            "format",
        ],
        LogicalType::Date => &[
            "format",
            "exclusiveMaximum",
            "maximum",
            "exclusiveMinimum",
            "minimum",
        ],
        LogicalType::Timestamp | LogicalType::Time => &[
            "format",
            "exclusiveMaximum",
            "maximum",
            "exclusiveMinimum",
            "minimum",
            "timezone",
            "defaultTimezone",
        ],
        LogicalType::Array => &["maxItems", "minItems", "uniqueItems"],
        LogicalType::Object => &["maxProperties", "minProperties", "required"],
        LogicalType::Boolean => &[],
    }
}

/// Keys of `m` that the type does not know.
pub(crate) fn unknown_keys(m: &Map<String, Value>, t: LogicalType) -> Vec<String> {
    let known = known_keys(t);
    m.keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(yaml: &str, t: LogicalType) -> ValueOptions {
        let v: Value = serde_yaml::from_str(yaml).expect("yaml");
        let mut lint = Vec::new();
        let o = ValueOptions::read(Some(&v), t, "p", &mut lint);
        assert!(lint.is_empty(), "{lint:?}");
        o
    }

    #[test]
    fn numbers_keep_their_bounds() {
        let o = opts(
            "{minimum: 0, exclusiveMaximum: 10, multipleOf: 0.5}",
            LogicalType::Number,
        );
        assert_eq!(o.problem("0"), None);
        assert_eq!(o.problem("9.5"), None);
        assert!(o.problem("-1").is_some_and(|p| p.contains(">= 0")));
        assert!(o.problem("10").is_some_and(|p| p.contains("< 10")));
        assert!(o
            .problem("0.25")
            .is_some_and(|p| p.contains("multiple of 0.5")));
    }

    #[test]
    fn integer_formats_bound_the_width() {
        let o = opts("{format: u8}", LogicalType::Integer);
        assert_eq!(o.problem("255"), None);
        assert!(o.problem("256").is_some());
        assert!(o.problem("-1").is_some());
        let o = opts("{format: i64}", LogicalType::Integer);
        assert!(o.problem("9223372036854775808").is_some());
    }

    #[test]
    fn strings_keep_length_and_pattern() {
        let o = opts(
            "{minLength: 2, maxLength: 3, pattern: '^[A-Z]+$'}",
            LogicalType::String,
        );
        assert_eq!(o.problem("AB"), None);
        assert!(o.problem("A").is_some_and(|p| p.contains("shorter")));
        assert!(o.problem("ABCD").is_some_and(|p| p.contains("longer")));
        assert!(o.problem("ab").is_some_and(|p| p.contains("pattern")));
    }

    #[test]
    fn dates_compare_as_iso_text() {
        let o = opts(
            "{minimum: '2020-01-01', maximum: '2020-12-31'}",
            LogicalType::Date,
        );
        assert_eq!(o.problem("2020-06-01"), None);
        assert!(o.problem("2019-12-31").is_some());
        assert!(o.problem("2021-01-01").is_some());
    }

    #[test]
    fn java_formats_match_what_they_format() {
        let re = java_format("yyyy-MM-dd HH:mm:ss").expect("format");
        assert!(re.is_match("2024-02-29 23:59:59"));
        assert!(!re.is_match("2024-02-29T23:59:59"));
        let re = java_format("dd/MM/yyyy").expect("format");
        assert!(re.is_match("31/12/2024"));
        assert!(!re.is_match("2024-12-31"));
        let re = java_format("yyyy-MM-dd'T'HH:mm:ss.SSSXXX").expect("format");
        assert!(re.is_match("2024-01-02T03:04:05.678Z"));
        assert!(re.is_match("2024-01-02T03:04:05.678+02:00"));
        assert!(java_format("yyyy-qq").is_err());
        let re = named_format("date-time").expect("date-time");
        assert!(re.is_match("2024-01-02T03:04:05.678Z"));
        assert!(re.is_match("2024-01-02 03:04:05+02:00"));
        assert!(!re.is_match("2024-01-02"));
        assert!(named_format("date").expect("date").is_match("2024-12-31"));
    }
}
