//! Reading records: lines capped at [`super::MAX_RECORD_BYTES`], and an RFC 4180
//! CSV reader.

use std::io::{self, BufRead};

use super::MAX_RECORD_BYTES;

/// Reads one line of at most [`MAX_RECORD_BYTES`].
pub(crate) fn read_line_capped<R: BufRead>(r: &mut R, line: &mut String) -> io::Result<usize> {
    let n = io::Read::take(&mut *r, MAX_RECORD_BYTES as u64 + 1).read_line(line)?;
    if n > MAX_RECORD_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a line is longer than {MAX_RECORD_BYTES} bytes"),
        ));
    }
    Ok(n)
}

/// An RFC 4180 CSV reader: quoted fields may hold commas, doubled quotes and line
/// breaks; records are capped at [`MAX_RECORD_BYTES`].
pub(crate) struct CsvReader<R> {
    inner: R,
    line: String,
    /// A blank line is a record of one empty field (single-column files).
    pub(crate) blank_is_row: bool,
}

impl<R: BufRead> CsvReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        CsvReader {
            inner,
            line: String::new(),
            blank_is_row: false,
        }
    }

    pub(crate) fn next_record(&mut self) -> io::Result<Option<Vec<String>>> {
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut in_quotes = false;
        let mut total = 0usize;
        loop {
            self.line.clear();
            let n = read_line_capped(&mut self.inner, &mut self.line)?;
            if n == 0 {
                if in_quotes {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a quoted CSV field is never closed",
                    ));
                }
                if fields.is_empty() && field.is_empty() {
                    return Ok(None);
                }
                fields.push(std::mem::take(&mut field));
                return Ok(Some(fields));
            }
            total += n;
            if total > MAX_RECORD_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a CSV record is longer than {MAX_RECORD_BYTES} bytes"),
                ));
            }
            let mut chars = self.line.chars().peekable();
            while let Some(c) = chars.next() {
                match (in_quotes, c) {
                    (true, '"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    (true, '"') => in_quotes = false,
                    (true, c) => field.push(c),
                    (false, '"') if field.is_empty() => in_quotes = true,
                    (false, ',') => fields.push(std::mem::take(&mut field)),
                    (false, '\n') => {}
                    (false, '\r') if chars.peek() == Some(&'\n') => {}
                    (false, c) => field.push(c),
                }
            }
            if !in_quotes {
                if fields.is_empty() && field.is_empty() && !self.blank_is_row {
                    continue; // a blank line
                }
                fields.push(std::mem::take(&mut field));
                return Ok(Some(fields));
            }
        }
    }
}
