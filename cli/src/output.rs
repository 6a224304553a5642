//! Output helpers shared by the commands: JSON printing, human sizes, and the
//! printing of human output with terminal control characters escaped.
//!
//! Much of what the CLI shows was written by someone else: product titles,
//! descriptions, tags and file names come from publishers, error texts from peers.
//! Printed raw, an ANSI or OSC escape in a title could set a consumer's terminal
//! title or colours, or hide text. So human output goes through [`say!`] and
//! [`say_err!`], which escape every control character but newline and tab (and the
//! Unicode bidirectional overrides); `--json` output is unchanged (JSON escapes them).

use std::borrow::Cow;

use serde::Serialize;

/// Whether `c` acts on a terminal: a control character or a bidirectional override.
fn acts(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with the characters `unsafe_char` picks shown by `shown`.
fn escaped(
    text: &str,
    unsafe_char: impl Fn(char) -> bool,
    shown: impl Fn(char) -> String,
) -> Cow<'_, str> {
    if !text.chars().any(&unsafe_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_char(c) {
                    shown(c)
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// `text` with every control character except `\n` and `\t`, and every bidirectional
/// override, shown as an escape (`\u{1b}`) instead of acting on the terminal.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    escaped(
        text,
        |c| acts(c) && c != '\n' && c != '\t',
        |c| c.escape_unicode().to_string(),
    )
}

/// `text` on one line: every control character, newline and tab included, and
/// every bidirectional override shown as an escape (`\n`, `\t`, `\u{1b}`), so
/// that a publisher's title, tag, description or file name cannot start a line
/// that looks like another product's.
pub(crate) fn one_line(text: &str) -> Cow<'_, str> {
    escaped(text, acts, |c| c.escape_default().to_string())
}

/// `println!` of one line built from others' text: every control character
/// escaped, newlines and tabs too ([`one_line`]).
macro_rules! say_line {
    ($($arg:tt)*) => {
        println!("{}", $crate::output::one_line(&format!($($arg)*)))
    };
}

/// `println!` for human output, with control characters escaped ([`printable`]).
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", $crate::output::printable(&format!($($arg)*)))
    };
}

/// `eprintln!` for human output, with control characters escaped ([`printable`]).
macro_rules! say_err {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::output::printable(&format!($($arg)*)))
    };
}

pub(crate) use {say, say_err, say_line};

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Unix seconds as an RFC 3339 UTC date (`2027-12-01T10:00:00Z`).
pub(crate) fn date(unix_secs: u64) -> String {
    i64::try_from(unix_secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("at unix time {unix_secs}"))
}

/// Seconds elapsed as a short phrase: `42 s ago`, `3 min ago`, `5 h ago`, `2 d ago`.
pub(crate) fn ago(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs} s ago"),
        120..=7199 => format!("{} min ago", secs / 60),
        7200..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// `1536` -> `1.5 KiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_escapes_are_shown_not_obeyed() {
        let title = "Orders\u{1b}]0;pwned\u{7}\u{1b}[31m red \u{9b}2J \u{202e}txt.exe";
        let shown = super::printable(title);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(shown.contains("\\u{1b}]0;pwned\\u{7}"), "{shown}");
        assert!(shown.contains("\\u{202e}"), "{shown}");
        assert_eq!(super::printable("two\nlines\tok"), "two\nlines\tok");
    }

    #[test]
    fn a_fake_row_in_a_title_stays_on_its_line() {
        let title = "Orders\nsales/payroll  1.0.0  active\tpublic";
        let shown = super::one_line(title);
        assert_eq!(shown, "Orders\\nsales/payroll  1.0.0  active\\tpublic");
        assert!(!shown.chars().any(char::is_control));
        assert_eq!(super::one_line("plain"), "plain");
    }

    #[test]
    fn ago() {
        assert_eq!(super::ago(5), "5 s ago");
        assert_eq!(super::ago(600), "10 min ago");
        assert_eq!(super::ago(3 * 3600), "3 h ago");
        assert_eq!(super::ago(3 * 86_400), "3 d ago");
    }

    #[test]
    fn human_bytes() {
        assert_eq!(super::human_bytes(10), "10 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
