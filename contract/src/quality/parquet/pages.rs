//! Parquet page headers, checked before any page is decoded. A page header
//! declares its uncompressed size, and the reader allocates that much before it
//! decompresses: a 9 KB file declaring 2 GiB pages made the checker allocate 2 GiB
//! a column (five such columns aborted the daemon). So every page header of the
//! columns about to be read is parsed here first (Thrift compact protocol, only
//! the fields that size an allocation), and the file is refused with a clear error
//! when a page is larger than [`MAX_PAGE_BYTES`], a page or header runs past its
//! column chunk, or the pages decoded at once (one data page and the dictionary
//! per column) would pass [`MAX_DECODE_BYTES`]. The footer is capped at
//! [`MAX_FOOTER_BYTES`] before the metadata is read.

use std::io::{self, BufRead, BufReader, Read};

use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::ChunkReader;

/// The largest page (compressed or not) this checker decodes.
pub const MAX_PAGE_BYTES: u64 = 64 << 20;
/// The most memory the pages decoded at once may take (per column: its largest
/// data page and its dictionary, with 16 bytes per dictionary entry for the
/// decoded views).
pub const MAX_DECODE_BYTES: u64 = 512 << 20;
/// The largest footer (file metadata) read.
pub const MAX_FOOTER_BYTES: u64 = 64 << 20;
/// The longest page header parsed (statistics included).
const MAX_HEADER_BYTES: u64 = 16 << 20;
/// How deep Thrift structures may nest in a page header.
const MAX_NESTING: usize = 16;

const DICTIONARY_PAGE: i32 = 2;

fn refuse(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
}

/// Checks the footer's declared length before the metadata is read.
pub(crate) fn check_footer<R: ChunkReader>(file: &R) -> io::Result<()> {
    let len = file.len();
    if len < 12 {
        return Err(refuse(format!(
            "{len} bytes is too short for a Parquet file (magic, footer length, magic)"
        )));
    }
    let tail = file.get_bytes(len - 8, 8).map_err(io::Error::other)?;
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer > MAX_FOOTER_BYTES {
        return Err(refuse(format!(
            "its footer declares {} of metadata, more than the {} this checker reads",
            mib(footer),
            mib(MAX_FOOTER_BYTES)
        )));
    }
    Ok(())
}

/// What one page header says about the memory its page needs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PageSizes {
    kind: i32,
    uncompressed: i64,
    compressed: i64,
    /// The dictionary's entries (dictionary pages).
    entries: i64,
}

/// Checks every page header of the leaf columns `leaves` in every row group.
pub(crate) fn check_pages<R: ChunkReader>(
    file: &R,
    meta: &ParquetMetaData,
    leaves: &[usize],
) -> io::Result<()> {
    let file_len = file.len();
    let mut budget = 0u64;
    let schema = meta.file_metadata().schema_descr();
    for &leaf in leaves {
        let name = schema.column(leaf).path().string();
        let mut largest = (0u64, 0u64); // (data page, dictionary)
        for (g, group) in meta.row_groups().iter().enumerate() {
            let Some(col) = group.columns().get(leaf) else {
                continue;
            };
            let (start, len) = col.byte_range();
            if start.checked_add(len).is_none_or(|end| end > file_len) {
                return Err(refuse(format!(
                    "column `{name}` of row group {g} claims bytes {start}..{} past the file's end ({file_len})",
                    start.saturating_add(len)
                )));
            }
            walk_chunk(file, start, len, |p| {
                let cost = page_cost(&p)
                    .map_err(|why| refuse(format!("column `{name}` of row group {g}: {why}")))?;
                if p.kind == DICTIONARY_PAGE {
                    largest.1 = largest.1.max(cost);
                } else {
                    largest.0 = largest.0.max(cost);
                }
                Ok(())
            })
            .map_err(|e| refuse(format!("column `{name}` of row group {g}: {e}")))?;
        }
        budget += largest.0 + largest.1;
        if budget > MAX_DECODE_BYTES {
            return Err(refuse(format!(
                "decoding its pages would take more than {} at once (at column `{name}`); \
                 rewrite it with smaller pages (pyarrow: data_page_size, dictionary_pagesize_limit)",
                mib(MAX_DECODE_BYTES)
            )));
        }
    }
    Ok(())
}

/// The memory a page takes decoded, or why it is refused.
fn page_cost(p: &PageSizes) -> Result<u64, String> {
    let (Ok(un), Ok(co), Ok(entries)) = (
        u64::try_from(p.uncompressed),
        u64::try_from(p.compressed),
        u64::try_from(p.entries),
    ) else {
        return Err("a page header declares a negative size".to_string());
    };
    for (what, n) in [("uncompressed", un), ("compressed", co)] {
        if n > MAX_PAGE_BYTES {
            return Err(format!(
                "a page declares {} {what}, more than the {} this checker decodes; \
                 rewrite the file with smaller pages",
                mib(n),
                mib(MAX_PAGE_BYTES)
            ));
        }
    }
    if p.kind == DICTIONARY_PAGE && entries > un.max(1) {
        return Err(format!(
            "a dictionary page declares {entries} entries in {un} bytes"
        ));
    }
    Ok(un + co + entries * 16)
}

/// Reads the page headers of the column chunk at `start..start + len`, skipping
/// each page's body (each header is read from its own offset), and gives each
/// to `each`.
fn walk_chunk<R: ChunkReader>(
    file: &R,
    start: u64,
    len: u64,
    mut each: impl FnMut(PageSizes) -> io::Result<()>,
) -> io::Result<()> {
    let mut at = start;
    let mut left = len;
    while left > 0 {
        let mut reader =
            BufReader::with_capacity(16 << 10, file.get_read(at).map_err(io::Error::other)?);
        let mut t = Thrift {
            r: &mut reader,
            left: left.min(MAX_HEADER_BYTES),
        };
        let budget = t.left;
        let page = t.page_header()?;
        let header_len = budget - t.left;
        left -= header_len;
        let body = u64::try_from(page.compressed)
            .map_err(|_| refuse("a page declares a negative compressed size".to_string()))?;
        if body > left {
            return Err(refuse(format!(
                "a page declares {body} bytes, but only {left} remain in its column chunk"
            )));
        }
        each(page)?;
        at += header_len + body;
        left -= body;
    }
    Ok(())
}

/// A Thrift compact-protocol reader over at most `left` bytes.
struct Thrift<'a, R> {
    r: &'a mut R,
    left: u64,
}

// Compact protocol type ids.
const T_STOP: u8 = 0;
const T_TRUE: u8 = 1;
const T_FALSE: u8 = 2;
const T_BYTE: u8 = 3;
const T_I16: u8 = 4;
const T_I32: u8 = 5;
const T_I64: u8 = 6;
const T_DOUBLE: u8 = 7;
const T_BINARY: u8 = 8;
const T_LIST: u8 = 9;
const T_SET: u8 = 10;
const T_MAP: u8 = 11;
const T_STRUCT: u8 = 12;
const T_UUID: u8 = 13;

impl<R: BufRead> Thrift<'_, R> {
    fn byte(&mut self) -> io::Result<u8> {
        if self.left == 0 {
            return Err(refuse("a page header runs past its column chunk".into()));
        }
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b)?;
        self.left -= 1;
        Ok(b[0])
    }

    fn varint(&mut self) -> io::Result<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(refuse("a page header holds a malformed number".into()))
    }

    fn zigzag(&mut self) -> io::Result<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn skip_bytes(&mut self, n: u64) -> io::Result<()> {
        if n > self.left {
            return Err(refuse(format!(
                "a page header declares a {n}-byte field with {} bytes left",
                self.left
            )));
        }
        let copied = io::copy(&mut self.r.take(n), &mut io::sink())?;
        if copied != n {
            return Err(refuse("the file ends inside a page header".into()));
        }
        self.left -= n;
        Ok(())
    }

    /// Reads a struct's fields, giving each (id, type) to `field`, which reads the
    /// value and returns true, or returns false to have it skipped.
    fn fields(
        &mut self,
        depth: usize,
        field: &mut dyn FnMut(&mut Self, i16, u8) -> io::Result<bool>,
    ) -> io::Result<()> {
        if depth > MAX_NESTING {
            return Err(refuse("a page header nests too deeply".into()));
        }
        let mut id: i16 = 0;
        loop {
            let head = self.byte()?;
            let ty = head & 0x0f;
            if ty == T_STOP {
                return Ok(());
            }
            let delta = head >> 4;
            id = if delta == 0 {
                i16::try_from(self.zigzag()?)
                    .map_err(|_| refuse("a page header names a bad field".into()))?
            } else {
                id.wrapping_add(i16::from(delta))
            };
            if !field(self, id, ty)? {
                self.skip(ty, depth + 1)?;
            }
        }
    }

    fn skip(&mut self, ty: u8, depth: usize) -> io::Result<()> {
        match ty {
            T_TRUE | T_FALSE => Ok(()),
            T_BYTE => self.byte().map(drop),
            T_I16 | T_I32 | T_I64 => self.varint().map(drop),
            T_DOUBLE => self.skip_bytes(8),
            T_UUID => self.skip_bytes(16),
            T_BINARY => {
                let n = self.varint()?;
                self.skip_bytes(n)
            }
            T_LIST | T_SET => {
                let head = self.byte()?;
                let n = match head >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                let elem = head & 0x0f;
                self.skip_elements(n, &[elem], depth)
            }
            T_MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                self.skip_elements(n, &[kinds >> 4, kinds & 0x0f], depth)
            }
            T_STRUCT => self.fields(depth, &mut |_, _, _| Ok(false)),
            other => Err(refuse(format!(
                "a page header holds an unknown Thrift type {other}"
            ))),
        }
    }

    /// Skips `n` elements of the given kinds; every element takes at least a byte,
    /// so `n` is checked against what is left first.
    fn skip_elements(&mut self, n: u64, kinds: &[u8], depth: usize) -> io::Result<()> {
        if n > self.left {
            return Err(refuse(format!(
                "a page header declares {n} elements with {} bytes left",
                self.left
            )));
        }
        for _ in 0..n {
            for &k in kinds {
                // In a collection a boolean is a byte of its own.
                if k == T_TRUE || k == T_FALSE {
                    self.byte()?;
                } else {
                    self.skip(k, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    fn i32_value(&mut self, ty: u8) -> io::Result<i64> {
        if ty != T_I32 {
            return Err(refuse("a page header has a size of the wrong type".into()));
        }
        self.zigzag()
    }

    /// A `PageHeader`: type (1), uncompressed size (2), compressed size (3), and
    /// the entries of a dictionary page header (7).
    fn page_header(&mut self) -> io::Result<PageSizes> {
        let mut p = PageSizes::default();
        let mut seen = (false, false, false);
        self.fields(0, &mut |t, id, ty| {
            match id {
                1 => {
                    p.kind = i32::try_from(t.i32_value(ty)?).unwrap_or(-1);
                    seen.0 = true;
                }
                2 => {
                    p.uncompressed = t.i32_value(ty)?;
                    seen.1 = true;
                }
                3 => {
                    p.compressed = t.i32_value(ty)?;
                    seen.2 = true;
                }
                7 if ty == T_STRUCT => {
                    let mut entries = 0;
                    t.fields(1, &mut |t, id, ty| {
                        if id == 1 {
                            entries = t.i32_value(ty)?;
                            return Ok(true);
                        }
                        Ok(false)
                    })?;
                    p.entries = entries;
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if seen != (true, true, true) {
            return Err(refuse("a page header lacks its type or sizes".to_string()));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact-protocol page header: type, sizes, and optionally a dictionary
    /// page header with `entries`.
    pub(crate) fn header(
        kind: i32,
        uncompressed: i32,
        compressed: i32,
        entries: Option<i32>,
    ) -> Vec<u8> {
        fn zz(v: i64, out: &mut Vec<u8>) {
            let mut u = ((v << 1) ^ (v >> 63)) as u64;
            loop {
                let b = (u & 0x7f) as u8;
                u >>= 7;
                if u == 0 {
                    out.push(b);
                    break;
                }
                out.push(b | 0x80);
            }
        }
        let mut h = Vec::new();
        for v in [kind, uncompressed, compressed] {
            h.push(0x15); // delta 1, i32
            zz(i64::from(v), &mut h);
        }
        if let Some(n) = entries {
            h.push(0x4c); // delta 4 (3 -> 7), struct
            h.push(0x15);
            zz(i64::from(n), &mut h);
            h.push(0);
        }
        h.push(0);
        h
    }

    fn parse(bytes: &[u8]) -> io::Result<PageSizes> {
        let mut r = io::BufReader::new(bytes);
        Thrift {
            r: &mut r,
            left: bytes.len() as u64,
        }
        .page_header()
    }

    #[test]
    fn a_page_header_is_read_for_its_sizes() {
        let p = parse(&header(2, 1000, 400, Some(50))).unwrap();
        assert_eq!(
            p,
            PageSizes {
                kind: 2,
                uncompressed: 1000,
                compressed: 400,
                entries: 50
            }
        );
        assert_eq!(page_cost(&p).unwrap(), 1000 + 400 + 50 * 16);
    }

    #[test]
    fn oversized_negative_or_truncated_headers_are_refused() {
        let huge = parse(&header(0, i32::MAX, 9000, None)).unwrap();
        let err = page_cost(&huge).unwrap_err();
        assert!(err.contains("2048.0 MiB uncompressed"), "{err}");
        assert!(page_cost(&parse(&header(0, -1, 10, None)).unwrap()).is_err());
        let many = parse(&header(2, 100, 100, Some(1 << 30))).unwrap();
        assert!(page_cost(&many).unwrap_err().contains("entries"));
        let full = header(0, 10, 10, None);
        for cut in 0..full.len() {
            assert!(parse(&full[..cut]).is_err(), "cut at {cut}");
        }
        // A binary field longer than what is left, and a list of a billion items.
        let mut long = vec![0x98]; // field 9, binary
        long.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(parse(&long).unwrap_err().to_string().contains("bytes left"));
        let mut list = vec![0x99, 0xf5]; // field 9, list of i32 with a long count
        list.extend([0xff, 0xff, 0xff, 0xff, 0x03]);
        assert!(parse(&list).unwrap_err().to_string().contains("elements"));
    }
}
