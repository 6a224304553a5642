//! Reading records: lines capped at [`super::MAX_RECORD_BYTES`], and an RFC 4180
//! CSV reader that skips a UTF-8 byte order mark and takes its delimiter from the
//! header line (`,`, `;`, tab or `|`, whichever it holds most of outside quotes)
//! unless one is declared.

use std::io::{self, BufRead};

use super::report::MAX_RECORD_BYTES;

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
    /// The field delimiter: declared, or taken from the first line.
    delimiter: Option<char>,
    started: bool,
}

/// The delimiters recognised in a header line, the first winning ties.
pub(crate) const DELIMITERS: [char; 4] = [',', ';', '\t', '|'];

/// The delimiter a header line uses: the one of [`DELIMITERS`] it holds most of
/// outside quotes (a comma if none).
pub(crate) fn detect_delimiter(line: &str) -> char {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for c in line.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(i) = DELIMITERS.iter().position(|d| *d == c) {
                counts[i] += 1;
            }
        }
    }
    let mut best = 0;
    for i in 1..DELIMITERS.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    DELIMITERS[best]
}

impl<R: BufRead> CsvReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        CsvReader {
            inner,
            line: String::new(),
            blank_is_row: false,
            delimiter: None,
            started: false,
        }
    }

    /// Splits fields by `d` instead of the delimiter the header uses (`None`:
    /// the header tells).
    pub(crate) fn declare_delimiter(&mut self, d: Option<char>) {
        if d.is_some() {
            self.delimiter = d;
        }
    }

    /// The delimiter in use (a comma until the first line is read, if none was
    /// declared).
    pub(crate) fn delimiter(&self) -> char {
        self.delimiter.unwrap_or(',')
    }

    /// The next record's fields, or `None` at the end of the input.
    pub(crate) fn next_record(&mut self) -> io::Result<Option<Vec<String>>> {
        let mut fields = Vec::new();
        Ok(self.read_record(&mut fields)?.then_some(fields))
    }

    /// Reads the next record into `fields` (their strings reused: a file is
    /// read without an allocation per field); `false` at the end of the input.
    pub(crate) fn read_record(&mut self, fields: &mut Vec<String>) -> io::Result<bool> {
        let mut out = Fields { fields, n: 0 };
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
                if out.n == 0 && field.is_empty() {
                    out.finish();
                    return Ok(false);
                }
                out.push(&field);
                out.finish();
                return Ok(true);
            }
            if !self.started {
                self.started = true;
                if self.line.starts_with('\u{feff}') {
                    self.line.drain(..'\u{feff}'.len_utf8());
                }
                if self.delimiter.is_none() {
                    self.delimiter = Some(detect_delimiter(&self.line));
                }
            }
            let delimiter = self.delimiter();
            total += n;
            if total > MAX_RECORD_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a CSV record is longer than {MAX_RECORD_BYTES} bytes"),
                ));
            }
            // Most lines are a whole record without quotes: split as they are.
            if !in_quotes && out.n == 0 && field.is_empty() && !self.line.contains('"') {
                let body = line_body(&self.line);
                if body.is_empty() && !self.blank_is_row {
                    continue; // a blank line
                }
                for f in body.split(delimiter) {
                    out.push(f);
                }
                out.finish();
                return Ok(true);
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
                    (false, c) if c == delimiter => {
                        out.push(&field);
                        field.clear();
                    }
                    (false, '\n') => {}
                    (false, '\r') if chars.peek() == Some(&'\n') => {}
                    (false, c) => field.push(c),
                }
            }
            if !in_quotes {
                if out.n == 0 && field.is_empty() && !self.blank_is_row {
                    continue; // a blank line
                }
                out.push(&field);
                out.finish();
                return Ok(true);
            }
        }
    }
}

/// A line without its line break (`\n`, or `\r\n`; a lone `\r` is kept).
fn line_body(line: &str) -> &str {
    match line.strip_suffix('\n') {
        Some(l) => l.strip_suffix('\r').unwrap_or(l),
        None => line,
    }
}

/// A record's fields being filled: the first `n` are this record's.
struct Fields<'a> {
    fields: &'a mut Vec<String>,
    n: usize,
}

impl Fields<'_> {
    fn push(&mut self, text: &str) {
        match self.fields.get_mut(self.n) {
            Some(f) => {
                f.clear();
                f.push_str(text);
            }
            None => self.fields.push(text.to_owned()),
        }
        self.n += 1;
    }

    fn finish(&mut self) {
        self.fields.truncate(self.n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> (Vec<Vec<String>>, char) {
        let mut r = CsvReader::new(io::BufReader::new(text.as_bytes()));
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            out.push(rec);
        }
        (out, r.delimiter())
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_the_delimiter_taken_from_the_header() {
        let (rows, d) = records("\u{feff}carrier,name\nUA,United\n");
        assert_eq!((rows[0][0].as_str(), d), ("carrier", ','));
        let (rows, d) = records("a;b;c\n1;\"x;y\";3\n");
        assert_eq!(d, ';');
        assert_eq!(rows[1], ["1", "x;y", "3"]);
        let (rows, d) = records("a\tb\n1\t2,5\n");
        assert_eq!((d, rows[1][1].as_str()), ('\t', "2,5"));
        // Commas inside quotes do not count; a comma wins a tie.
        assert_eq!(detect_delimiter("\"a,b,c\";d;e"), ';');
        assert_eq!(detect_delimiter("a,b;c"), ',');
        assert_eq!(detect_delimiter("single"), ',');
    }

    #[test]
    fn lines_without_quotes_read_as_lines_with_them() {
        // Line ends \n and \r\n, a lone \r kept, blank lines skipped, records
        // of different lengths in one reused buffer, a quoted field over lines.
        let text = "a,b,c\r\n1,2,3\n\n4,5\r\n\"x\ny\",\"q\"\"\",z\n6,7\r,8\n\r\nlast,,";
        let (rows, _) = records(text);
        let want: Vec<Vec<&str>> = vec![
            vec!["a", "b", "c"],
            vec!["1", "2", "3"],
            vec!["4", "5"],
            vec!["x\ny", "q\"", "z"],
            vec!["6", "7\r", "8"],
            vec!["last", "", ""],
        ];
        assert_eq!(rows, want);
        let mut r = CsvReader::new(io::BufReader::new("v\n\n2\n".as_bytes()));
        r.blank_is_row = true;
        let mut fields = Vec::new();
        let mut got = Vec::new();
        while r.read_record(&mut fields).unwrap() {
            got.push(fields.clone());
        }
        assert_eq!(got, vec![vec!["v"], vec![""], vec!["2"]]);
    }
}
