//! `.json` files as datacontract-cli reads them: a top-level array of records,
//! or one record (or several, one after another, as JSON lines written to a
//! `.json` file). Records are cut out of the stream one at a time by bracket depth
//! (strings and escapes respected) and parsed on their own, each at most
//! [`MAX_RECORD_BYTES`], so a large array never sits in memory whole.

use std::io::{self, BufRead};

use super::report::MAX_RECORD_BYTES;

/// The records of a `.json` file.
#[derive(Debug)]
pub(crate) struct JsonRecords<R> {
    r: R,
    /// `None` before the first record; then whether the file is one array.
    array: Option<bool>,
    done: bool,
    buf: Vec<u8>,
}

fn malformed(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

impl<R: BufRead> JsonRecords<R> {
    /// Records read from `r`.
    pub(crate) fn new(r: R) -> Self {
        JsonRecords {
            r,
            array: None,
            done: false,
            buf: Vec::new(),
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.r.fill_buf()?.first().copied())
    }

    /// Skips whitespace (and a UTF-8 byte order mark); the next byte, unread.
    fn skip_space(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.r.consume(1),
                Some(0xEF) if self.array.is_none() => {
                    let bom = self.r.fill_buf()?.starts_with(&[0xEF, 0xBB, 0xBF]);
                    if !bom {
                        return Ok(Some(0xEF));
                    }
                    self.r.consume(3);
                }
                other => return Ok(other),
            }
        }
    }

    /// The next record, parsed; `None` at the end of the file.
    pub(crate) fn next_record(&mut self) -> io::Result<Option<serde_json::Value>> {
        if self.done {
            return Ok(None);
        }
        let first = self.skip_space()?;
        if self.array.is_none() {
            self.array = Some(first == Some(b'['));
            if first == Some(b'[') {
                self.r.consume(1);
                if self.skip_space()? == Some(b']') {
                    self.r.consume(1);
                    return self.end();
                }
            }
        }
        if self.array == Some(false) && self.skip_space()?.is_none() {
            self.done = true;
            return Ok(None);
        }
        self.skip_space()?;
        self.buf.clear();
        self.value()?;
        let value = serde_json::from_slice(&self.buf)
            .map_err(|e| malformed(format!("a record is not valid JSON: {e}")))?;
        if self.array == Some(true) {
            match self.skip_space()? {
                Some(b',') => self.r.consume(1),
                Some(b']') => {
                    self.r.consume(1);
                    self.end()?;
                }
                Some(b) => {
                    return Err(malformed(format!(
                        "expected `,` or `]` after a record of the array, found `{}`",
                        b as char
                    )))
                }
                None => return Err(malformed("the file ends inside the top-level array")),
            }
        }
        Ok(Some(value))
    }

    /// After the closing `]`: only whitespace may follow.
    fn end(&mut self) -> io::Result<Option<serde_json::Value>> {
        self.done = true;
        match self.skip_space()? {
            None => Ok(None),
            Some(_) => Err(malformed("more data after the top-level array")),
        }
    }

    fn push(&mut self, b: u8) -> io::Result<()> {
        if self.buf.len() >= MAX_RECORD_BYTES {
            return Err(malformed(format!(
                "a JSON record is longer than {MAX_RECORD_BYTES} bytes"
            )));
        }
        self.buf.push(b);
        Ok(())
    }

    /// Copies one JSON value into `buf`: an object or array by bracket depth, a
    /// string to its closing quote, a scalar to the next delimiter.
    fn value(&mut self) -> io::Result<()> {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        loop {
            let Some(b) = self.peek()? else {
                if depth == 0 && !in_string && !self.buf.is_empty() {
                    return Ok(());
                }
                return Err(malformed("the file ends inside a record"));
            };
            if !in_string && depth == 0 && !self.buf.is_empty() {
                let scalar_done = matches!(b, b',' | b']' | b' ' | b'\t' | b'\n' | b'\r');
                let closed = matches!(self.buf.first(), Some(b'{' | b'[' | b'"'));
                if closed || scalar_done {
                    return Ok(());
                }
            }
            self.r.consume(1);
            self.push(b)?;
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| malformed(format!("an unmatched `{}`", b as char)))?;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> io::Result<Vec<serde_json::Value>> {
        let mut r = JsonRecords::new(io::BufReader::new(text.as_bytes()));
        let mut out = Vec::new();
        while let Some(v) = r.next_record()? {
            out.push(v);
        }
        Ok(out)
    }

    #[test]
    fn arrays_single_objects_and_concatenated_records_are_read_one_at_a_time() {
        let arr =
            records("\u{feff} [ {\"a\": \"x]}\\\"\"}, {\"a\": [1, {\"b\": 2}]} ,3 ]\n").unwrap();
        assert_eq!(arr.len(), 3);
        assert_eq!(arr[0]["a"], "x]}\"");
        assert_eq!(arr[1]["a"][1]["b"], 2);
        assert_eq!(arr[2], 3);
        let one = records("{\n  \"a\": 1,\n  \"b\": {\"c\": null}\n}\n").unwrap();
        assert_eq!(one.len(), 1);
        let lines = records("{\"a\":1}\n{\"a\":2}\n").unwrap();
        assert_eq!(lines.len(), 2);
        assert!(records("").unwrap().is_empty());
        assert!(records("[]").unwrap().is_empty());
    }

    #[test]
    fn malformed_or_oversized_files_are_clear_errors() {
        for bad in [
            "[{\"a\":1}",
            "[{\"a\":1} {\"a\":2}]",
            "[1] 2",
            "{\"a\":",
            "[}]",
            "[{\"a\": tru}]",
        ] {
            assert!(records(bad).is_err(), "{bad}");
        }
        let long = format!("[\"{}\"]", "x".repeat(MAX_RECORD_BYTES + 1));
        let err = records(&long).unwrap_err().to_string();
        assert!(err.contains("longer than"), "{err}");
    }
}
