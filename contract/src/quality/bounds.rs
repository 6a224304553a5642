//! The bounds of a quality rule (ODCS's comparison operators) and how a
//! measurement is judged against them.
//!
//! `mustBeBetween: [a, b]` holds for `a <= x <= b`, as SQL's `BETWEEN`, Soda and
//! datacontract-cli read it; `mustNotBeBetween` is its negation.

use serde_json::{Map, Value};

/// The comparison operators of ODCS, as written.
pub const OPERATORS: [&str; 8] = [
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
];

/// A bound a measured value must keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Bound {
    Eq(f64),
    Ne(f64),
    Gt(f64),
    Ge(f64),
    Lt(f64),
    Le(f64),
    Between(f64, f64),
    NotBetween(f64, f64),
}

impl Bound {
    pub(crate) fn holds(self, x: f64) -> bool {
        match self {
            Bound::Eq(v) => x == v,
            Bound::Ne(v) => x != v,
            Bound::Gt(v) => x > v,
            Bound::Ge(v) => x >= v,
            Bound::Lt(v) => x < v,
            Bound::Le(v) => x <= v,
            Bound::Between(a, b) => a <= x && x <= b,
            Bound::NotBetween(a, b) => !(a <= x && x <= b),
        }
    }

    pub(crate) fn describe(self) -> String {
        match self {
            Bound::Eq(v) => format!("= {}", num(v)),
            Bound::Ne(v) => format!("!= {}", num(v)),
            Bound::Gt(v) => format!("> {}", num(v)),
            Bound::Ge(v) => format!(">= {}", num(v)),
            Bound::Lt(v) => format!("< {}", num(v)),
            Bound::Le(v) => format!("<= {}", num(v)),
            Bound::Between(a, b) => format!("between {} and {}", num(a), num(b)),
            Bound::NotBetween(a, b) => format!("not between {} and {}", num(a), num(b)),
        }
    }
}

/// A number as people write it: `3`, not `3.0`.
pub(crate) fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn number(r: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match r.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("{key} must be a number")),
    }
}

fn pair(r: &Map<String, Value>, key: &str) -> Result<Option<(f64, f64)>, String> {
    let Some(v) = r.get(key) else { return Ok(None) };
    match v
        .as_array()
        .map(|a| a.iter().map(Value::as_f64).collect::<Vec<_>>())
    {
        Some(a) if a.len() == 2 && a.iter().all(Option::is_some) => {
            let (lo, hi) = (a[0].unwrap_or(0.0), a[1].unwrap_or(0.0));
            if lo > hi {
                return Err(format!(
                    "{key}: the smaller number comes first ([{}, {}])",
                    num(hi),
                    num(lo)
                ));
            }
            Ok(Some((lo, hi)))
        }
        _ => Err(format!(
            "{key} must be a list of two numbers, e.g. [0, 100]"
        )),
    }
}

/// Every operator of rule `r` as a bound; an error names a malformed one, or
/// says none is given.
pub(crate) fn bounds(r: &Map<String, Value>) -> Result<Vec<Bound>, String> {
    let mut out = Vec::new();
    type Make = fn(f64) -> Bound;
    let singles: [(&str, Make); 6] = [
        ("mustBe", Bound::Eq),
        ("mustNotBe", Bound::Ne),
        ("mustBeGreaterThan", Bound::Gt),
        ("mustBeGreaterOrEqualTo", Bound::Ge),
        ("mustBeLessThan", Bound::Lt),
        ("mustBeLessOrEqualTo", Bound::Le),
    ];
    for (key, make) in singles {
        if let Some(v) = number(r, key)? {
            out.push(make(v));
        }
    }
    if let Some((a, b)) = pair(r, "mustBeBetween")? {
        out.push(Bound::Between(a, b));
    }
    if let Some((a, b)) = pair(r, "mustNotBeBetween")? {
        out.push(Bound::NotBetween(a, b));
    }
    if out.is_empty() {
        // A misspelt operator (`mustBeGreatherThan`) is named, with the nearest.
        if let Some(key) = r
            .keys()
            .find(|k| k.starts_with("must") && !OPERATORS.contains(&k.as_str()))
        {
            return Err(format!(
                "`{key}` is not an operator; did you mean `{}`? (one of {})",
                nearest(key),
                OPERATORS.join(", ")
            ));
        }
        return Err(format!(
            "the rule has no operator (one of {})",
            OPERATORS.join(", ")
        ));
    }
    Ok(out)
}

/// The operator closest to `key` by edit distance.
fn nearest(key: &str) -> &'static str {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    OPERATORS
        .iter()
        .copied()
        .min_by_key(|op| distance(key, op))
        .unwrap_or("mustBe")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_operator_is_named_with_the_one_meant() {
        let r: Map<String, Value> =
            serde_json::from_str(r#"{"metric": "rowCount", "mustBeGreatherThan": 0}"#).unwrap();
        let err = bounds(&r).unwrap_err();
        assert!(
            err.starts_with(
                "`mustBeGreatherThan` is not an operator; did you mean `mustBeGreaterThan`?"
            ),
            "{err}"
        );
        let none: Map<String, Value> = serde_json::from_str(r#"{"metric": "rowCount"}"#).unwrap();
        assert!(bounds(&none)
            .unwrap_err()
            .starts_with("the rule has no operator"));
    }
}
