//! Unit tests of the quality checks.

use super::values::{is_time, is_timestamp};
use super::*;
use mesh_protocol::manifest::{Classification, LogicalType, NullValues};

fn field(name: &str, t: LogicalType, required: bool, unique: bool) -> Field {
    Field {
        name: name.into(),
        logical_type: t,
        required,
        description: String::new(),
        classification: Classification::Internal,
        unique,
    }
}

#[test]
fn times_and_timestamps_are_recognised_without_panicking_on_any_text() {
    for ok in [
        "00:00:00",
        "23:59:60",
        "12:30:05.125",
        "08:00:00Z",
        "08:00:00+02:00",
    ] {
        assert!(is_time(ok), "{ok}");
    }
    for bad in [
        "24:00:00",
        "12:60:00",
        "1:00:00",
        "12:00",
        "12:00:00.",
        "12:00:00+2",
        "é",
    ] {
        assert!(!is_time(bad), "{bad}");
    }
    assert!(is_timestamp("2024-02-29T10:00:00Z"));
    // Byte 10 falls inside a multi-byte character: no panic, just "no".
    assert!(!is_timestamp("2024-02-2éT10:00:00"));
    assert!(!is_timestamp("ééééééééééééééé"));
}

fn schema() -> Vec<Field> {
    vec![
        field("id", LogicalType::Integer, true, true),
        field("email", LogicalType::String, true, false),
        field("amount", LogicalType::Number, false, false),
        field("day", LogicalType::Date, false, false),
    ]
}

fn run(name: &str, text: &str) -> Report {
    run_with(&schema(), name, text, &NullValues::default())
}

fn run_with(schema: &[Field], name: &str, text: &str, nulls: &NullValues) -> Report {
    check_text(schema, name, text, nulls).unwrap()
}

/// Why checking `text` as file `name` of [`schema`] failed.
fn run_err(name: &str, text: &str) -> String {
    check_text(&schema(), name, text, &NullValues::default())
        .unwrap_err()
        .to_string()
}

fn check_text(
    schema: &[Field],
    name: &str,
    text: &str,
    nulls: &NullValues,
) -> std::io::Result<Report> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    check(
        &Plan::from_schema(schema, nulls),
        schema,
        &[(name.to_string(), path)],
    )
}

fn listed(r: &Report) -> Vec<String> {
    r.violations.iter().map(|v| v.to_string()).collect()
}

fn markers(m: &[&str]) -> NullValues {
    NullValues {
        default: m.iter().map(|s| s.to_string()).collect(),
        files: Vec::new(),
    }
}

#[test]
fn na_markers_are_nulls_not_values_or_type_errors() {
    // An integer column that is mostly NA, as R and pandas write it.
    let schema = [
        field("dep_delay", LogicalType::Integer, false, false),
        field("tailnum", LogicalType::String, false, false),
    ];
    let text = "dep_delay,tailnum\nNA,N14228\n2,NA\nNA,\nNA,N24211\nNA,N619AA\n";
    let r = run_with(&schema, "flights.csv", text, &markers(&["NA", ""]));
    assert_eq!(r.total_violations, 0, "{:?}", r.lines());
    let q = r.quality.unwrap();
    assert_eq!(q.rows, 5);
    assert_eq!((q.fields[0].nulls, q.fields[1].nulls), (4, 2));
    assert_eq!(q.fields[1].distinct, Some(3), "NA is not a tail number");
    // Without the marker, NA is a type error in the integer column and a value in
    // the string one; and the metrics say so, whatever the policy does with them.
    let r = run_with(&schema, "flights.csv", text, &NullValues::default());
    assert_eq!(r.total_violations, 4);
    let q = r.quality.unwrap();
    assert_eq!((q.fields[0].nulls, q.fields[1].nulls), (0, 1));
    // Markers per file replace the product's.
    let per_file = NullValues {
        default: vec![String::new()],
        files: vec![("flights.csv".into(), vec!["NA".into(), String::new()])],
    };
    assert_eq!(
        run_with(&schema, "flights.csv", text, &per_file).total_violations,
        0
    );
    // Markers apply to JSON strings too.
    let r = run_with(
        &schema,
        "f.jsonl",
        "{\"dep_delay\": \"NA\", \"tailnum\": null}\n",
        &markers(&["NA"]),
    );
    assert_eq!(r.total_violations, 0, "{:?}", r.lines());
    assert_eq!(r.quality.unwrap().fields[0].nulls, 1);
}

#[test]
fn blank_lines_are_rows_of_a_single_column_file_and_skipped_otherwise() {
    let one = [field("x", LogicalType::Integer, false, false)];
    let q = run_with(&one, "one.csv", "x\n1\n\n3\n\n", &NullValues::default())
        .quality
        .unwrap();
    assert_eq!((q.rows, q.fields[0].nulls), (4, 2));
    let two = [
        field("x", LogicalType::Integer, false, false),
        field("y", LogicalType::Integer, false, false),
    ];
    let q = run_with(&two, "two.csv", "x,y\n1,2\n\n3,4\n", &NullValues::default())
        .quality
        .unwrap();
    assert_eq!(q.rows, 2);
}

#[test]
fn violations_are_summarised_per_file_and_field_before_the_list() {
    let schema = [
        field("a", LogicalType::Integer, false, false),
        field("b", LogicalType::Integer, false, false),
    ];
    let mut text = String::from("a,b\n");
    for i in 0..200 {
        text.push_str(&format!("x{i},{}\n", if i % 50 == 7 { "y" } else { "1" }));
    }
    let r = run_with(&schema, "m.csv", &text, &NullValues::default());
    assert_eq!(r.total_violations, 204);
    let lines = r.lines();
    assert_eq!(
        lines[0],
        "m.csv, field `a`: 200 violation(s), first at row(s) 1, 2, 3, 4, 5: \"x0\" is not an integer"
    );
    assert_eq!(
        lines[1],
        "m.csv, field `b`: 4 violation(s), first at row(s) 8, 58, 108, 158: \"y\" is not an integer",
        "the second broken column is not hidden behind the first"
    );
    let q = r.quality.unwrap();
    assert_eq!(q.violations.len(), 2, "kept with the metrics");
    assert_eq!(q.violations[1].count, 4);
}

#[test]
fn csv_violations_name_the_field_and_row() {
    let r = run(
        "orders.csv",
        "id,email,amount,day\n\
         1,a@x.io,3.5,2026-01-02\n\
         2,,abc,2026-02-30\n\
         1,\"b, \"\"quoted\"\"\n@x.io\",,\n",
    );
    let lines = listed(&r);
    assert_eq!(
        lines,
        vec![
            "orders.csv row 2, field `email`: is required but empty",
            "orders.csv row 2, field `amount`: \"abc\" is not a number",
            "orders.csv row 2, field `day`: \"2026-02-30\" is not a date (YYYY-MM-DD)",
            "orders.csv row 3, field `id`: \"1\" repeats an earlier value but must be unique",
        ],
        "{lines:#?}"
    );
    let q = r.quality.unwrap();
    assert_eq!(q.rows, 3);
    assert_eq!(q.fields[2].nulls, 1, "amount is empty in row 3");
    assert_eq!(q.fields[1].distinct, Some(2));
}

#[test]
fn jsonl_violations_name_the_field_and_row() {
    let r = run(
        "orders.jsonl",
        "{\"id\": 1, \"email\": \"a@x.io\", \"amount\": 2}\n\
         \n\
         {\"id\": \"2\", \"email\": \"b@x.io\"}\n\
         [1, 2]\n\
         {\"id\": 3, \"amount\": null}\n",
    );
    assert_eq!(
        listed(&r),
        vec![
            "orders.jsonl row 2, field `id`: \"2\" is not an integer",
            "orders.jsonl row 3, field `-`: the record is not a JSON object",
            "orders.jsonl row 4, field `email`: is required but empty",
        ]
    );
    assert_eq!(r.quality.unwrap().rows, 4);
}

#[test]
fn a_missing_column_and_other_files_and_limits() {
    let r = run("a.csv", "id,email\n1,x\n");
    assert_eq!(
        r.violations[0].to_string(),
        "a.csv header, field `amount`: no such column in the header"
    );
    let r = run("notes.txt", "anything");
    assert!(r.quality.is_none() && r.violations.is_empty());
    let err = run_err("big.jsonl", &"x".repeat(MAX_RECORD_BYTES + 10));
    assert!(err.contains("longer than"), "{err}");
}

#[test]
fn a_csv_of_many_batches_is_checked_in_order_and_a_late_failure_still_fails() {
    // 5,000 rows (several batches of records), some of 300 KiB (batches cut by
    // size), a violation in the last row, an id repeated across batches.
    let mut text = String::from("id,email,amount,day\n");
    let long = "y".repeat(300 << 10);
    for i in 1..=5000u32 {
        let email = if i % 1000 == 0 {
            long.as_str()
        } else {
            "a@x.io"
        };
        let id = if i == 4000 { 17 } else { i };
        let amount = if i == 5000 { "oops" } else { "1.5" };
        text.push_str(&format!("{id},{email},{amount},2026-01-02\n"));
    }
    let r = run("many.csv", &text);
    assert_eq!(
        listed(&r),
        vec![
            "many.csv row 4000, field `id`: \"17\" repeats an earlier value but must be unique",
            "many.csv row 5000, field `amount`: \"oops\" is not a number",
        ]
    );
    let q = r.quality.unwrap();
    assert_eq!(q.rows, 5000);
    assert_eq!(q.fields[1].distinct, Some(2));
    // A quote never closed at the end fails the whole check, after the rows
    // before it were read.
    text.push_str(r#"5001,"never closed,1,2026-01-02"#);
    let err = run_err("bad.csv", &text);
    assert!(err.contains("never closed"), "{err}");
}

/// A Parquet file of `columns` string columns (SNAPPY, statistics in the page
/// headers), whose first data page header in each column is then rewritten to
/// declare `declared` bytes uncompressed. The header keeps its length: the
/// statistics' first value gives up the bytes the longer size takes.
fn parquet_declaring(path: &Path, columns: usize, declared: i32) {
    use ::parquet::arrow::ArrowWriter;
    use ::parquet::basic::Compression;
    use ::parquet::file::properties::{EnabledStatistics, WriterProperties};
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use std::sync::Arc;
    let value = "a".repeat(40);
    let batch = RecordBatch::try_from_iter((0..columns).map(|c| {
        let a: ArrayRef = Arc::new(StringArray::from(vec![value.as_str(); 3]));
        (format!("c{c}"), a)
    }))
    .unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_write_page_header_statistics(true)
        .set_dictionary_enabled(false)
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    let meta = w.close().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    let varint = |v: i32| {
        let mut u = ((i64::from(v) << 1) ^ (i64::from(v) >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let b = (u & 0x7f) as u8;
            u >>= 7;
            if u == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    };
    for c in 0..columns {
        let at = meta.row_group(0).column(c).data_page_offset() as usize;
        // type DATA_PAGE (field 1), then field 2: the uncompressed size.
        assert_eq!(&bytes[at..at + 3], &[0x15, 0x00, 0x15]);
        let old = bytes[at + 3..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
        let mut new = varint(declared);
        while new.len() < old {
            // A longer encoding of the same number (continuation, then zero).
            *new.last_mut().unwrap() |= 0x80;
            new.push(0);
        }
        let grow = new.len() - old;
        let header = &bytes[at..at + 200];
        let mut run = vec![40u8];
        run.extend(value.as_bytes());
        let stat = header.windows(run.len()).position(|w| w == run).unwrap() + at;
        // Shorten the statistic by `grow` bytes, then widen the size.
        bytes[stat] -= grow as u8;
        bytes.drain(stat + 1..stat + 1 + grow);
        bytes.splice(at + 3..at + 3 + old, new);
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_parquet_page_declaring_gigabytes_is_refused_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let schema: Vec<Field> = (0..5)
        .map(|c| field(&format!("c{c}"), LogicalType::String, false, false))
        .collect();
    let path = dir.path().join("bomb.parquet");
    let check_file = |path: &Path| {
        check(
            &Plan::from_schema(&schema, &NullValues::default()),
            &schema,
            &[("bomb.parquet".to_string(), path.to_owned())],
        )
    };
    // The file as written reads (the rewrite keeps it valid but for the size).
    parquet_declaring(&path, 5, 10);
    let err = check_file(&path).unwrap_err().to_string();
    assert!(err.contains("snappy"), "{err}");
    // Five columns of 2 GiB pages: refused, naming the column and the limit.
    parquet_declaring(&path, 5, i32::MAX);
    assert!(std::fs::metadata(&path).unwrap().len() < 10_000);
    let err = check_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("column `c0`")
            && err.contains("2048.0 MiB uncompressed")
            && err.contains("64.0 MiB"),
        "{err}"
    );
    // Pages under the page limit, but too many at once for the budget.
    let schema: Vec<Field> = (0..9)
        .map(|c| field(&format!("c{c}"), LogicalType::String, false, false))
        .collect();
    parquet_declaring(&path, 9, 60 << 20);
    let err = check(
        &Plan::from_schema(&schema, &NullValues::default()),
        &schema,
        &[("bomb.parquet".to_string(), path.clone())],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("more than 512.0 MiB at once"), "{err}");
}

#[test]
fn a_schema_without_any_data_file_breaks_it() {
    let schema = schema();
    let r = check(
        &Plan::from_schema(&schema, &NullValues::default()),
        &schema,
        &[],
    )
    .unwrap();
    assert!(!r.kept());
    assert!(
        r.missing[0].starts_with("no data to check"),
        "{:?}",
        r.missing
    );
    let r = run("orders.csv", "");
    assert!(!r.kept());
    assert_eq!(
        r.violations[0].problem,
        "the file is empty: a CSV file needs a header row naming its columns"
    );
}

#[test]
fn json_files_are_read_as_an_array_of_records_or_one_record() {
    let schema = [
        field("id", LogicalType::Integer, true, true),
        field("email", LogicalType::String, true, false),
    ];
    let arr = "[\n  {\"id\": 1, \"email\": \"a@x\"},\n  {\"id\": \"two\", \"email\": null}\n]\n";
    let r = run_with(&schema, "orders.json", arr, &NullValues::default());
    assert_eq!(r.quality.as_ref().unwrap().rows, 2);
    assert_eq!(
        listed(&r),
        vec![
            "orders.json row 2, field `id`: \"two\" is not an integer",
            "orders.json row 2, field `email`: is required but empty",
        ]
    );
    let one = "{\"id\": 7, \"email\": \"b@x\"}";
    let r = run_with(&schema, "orders.json", one, &NullValues::default());
    assert!(r.kept(), "{:?}", r.lines());
    assert_eq!(r.quality.as_ref().unwrap().rows, 1);
    let err = check(
        &Plan::from_schema(&schema, &NullValues::default()),
        &schema,
        &[("orders.json".into(), {
            let dir = tempfile::tempdir().unwrap().keep();
            let p = dir.join("orders.json");
            std::fs::write(&p, "[{\"id\": 1}").unwrap();
            p
        })],
    )
    .unwrap_err();
    assert!(err.to_string().contains("orders.json"), "{err}");
}

#[test]
fn real_files_a_byte_order_mark_semicolons_and_na_are_read_as_meant() {
    let schema = [
        field("carrier", LogicalType::String, true, false),
        field("delay", LogicalType::Integer, false, false),
    ];
    let no_markers = NullValues::default();
    // Excel's UTF-8 export: a BOM before the first column's name, `;` between.
    let r = run_with(
        &schema,
        "f.csv",
        "\u{feff}carrier;delay\nUA;2\nAA;3\n",
        &no_markers,
    );
    assert!(r.kept(), "{:?}", r.lines());
    assert_eq!(r.quality.as_ref().unwrap().rows, 2);
    // Tabs.
    let r = run_with(&schema, "f.csv", "carrier\tdelay\nUA\t2\n", &no_markers);
    assert!(r.kept(), "{:?}", r.lines());
    // `NA` where an integer belongs: the problem says how to declare it.
    let r = run_with(&schema, "f.csv", "carrier,delay\nUA,NA\n", &no_markers);
    assert!(
        listed(&r)[0].contains("\"NA\" is not an integer (if \"NA\" marks a missing value, declare it: `null_values = [\"NA\"]`"),
        "{:?}",
        listed(&r)
    );
    assert!(run_with(
        &schema,
        "f.csv",
        "carrier,delay\nUA,NA\n",
        &markers(&["NA"])
    )
    .kept());
    // A header of one column where two are expected: the delimiter is the hint.
    let r = run_with(&schema, "f.csv", "carrier#delay\nUA#2\n", &no_markers);
    assert!(
        listed(&r)[0].contains("the header is one column (\"carrier#delay\")"),
        "{:?}",
        listed(&r)
    );
}

/// A delimiter declared in the contract wins over the header's (#33.12): a
/// `meshDelimiter` custom property, or a `format: csv` server's `delimiter`; a
/// bad declaration is a lint problem.
#[test]
fn a_declared_delimiter_splits_fields_the_header_would_mislead() {
    let contract = |decl: &str| {
        let yaml = format!(
            "apiVersion: v3.1.0\nkind: DataContract\nid: p\nversion: 1.0.0\nstatus: active\n{decl}schema:\n  - name: f\n    properties:\n      - {{name: \"a,b\", required: true}}\n      - {{name: \"c,d\", logicalType: integer}}\n"
        );
        let doc = crate::odcs::document(&yaml).unwrap();
        Plan::from_contract(&doc, &NullValues::default())
    };
    // The header holds more commas than pipes: detection would split on commas.
    let text = "a,b|c,d\nx|1\ny|2\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    std::fs::write(&path, text).unwrap();
    let files = [("f.csv".to_string(), path)];
    let detected = check(&contract(""), &[], &files).unwrap();
    assert!(!detected.kept(), "{:?}", detected.lines());
    for decl in [
        "customProperties:\n  - {property: meshDelimiter, value: \"|\"}\n",
        "servers:\n  - {server: s3, type: s3, location: \"s3://b/p\", format: csv, delimiter: \"|\"}\n",
    ] {
        let plan = contract(decl);
        assert!(plan.lint.is_empty(), "{:?}", plan.lint);
        let r = check(&plan, &[], &files).unwrap();
        assert!(r.kept(), "{decl}: {:?}", r.lines());
        assert_eq!(r.quality.as_ref().unwrap().rows, 2);
    }
    let bad = contract("customProperties:\n  - {property: meshDelimiter, value: \";;\"}\n");
    assert!(
        bad.lint[0].contains("(meshDelimiter): \";;\" is not a CSV delimiter"),
        "{:?}",
        bad.lint
    );
}
