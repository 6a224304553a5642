//! The contract's quality rules measured on real files: every schema object
//! mapped to its files (by name, physicalName or folder), each library metric
//! passing and failing, null markers, logicalTypeOptions, and Parquet files
//! written here (several row groups, nulls, a type mismatch) measured exactly as
//! the same rows in CSV.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use mesh_contract::odcs;
use mesh_contract::quality::{self, Plan, Report};
use mesh_protocol::manifest::{NullValues, RuleState};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

const CONTRACT: &str = include_str!("../odcs/quality-rules.odcs.yaml");

fn plan() -> (Plan, Vec<mesh_protocol::manifest::Field>) {
    let imported = odcs::import(CONTRACT, None).unwrap();
    let contract = imported.draft.contract.clone().unwrap();
    let doc: serde_json::Value = serde_json::from_str(&contract.document).unwrap();
    let plan = Plan::from_contract(doc.as_object().unwrap(), &NullValues::default());
    assert!(plan.lint.is_empty(), "{:#?}", plan.lint);
    let schema = imported.draft.fields();
    (plan, schema)
}

/// Writes `files` under a temp dir and checks them.
fn run(files: &[(&str, &str)]) -> Report {
    let dir = tempfile::tempdir().unwrap();
    check(&crate::common::write_files(dir.path(), files))
}

fn check(files: &[(String, PathBuf)]) -> Report {
    let (plan, schema) = plan();
    quality::check(&plan, &schema, files).unwrap()
}

fn states(r: &Report) -> BTreeMap<String, (RuleState, String)> {
    r.rules
        .iter()
        .map(|o| (o.rule.clone(), (o.state, o.measured.clone())))
        .collect()
}

const GOOD_SHIPMENTS_1: &str = "shipment_id,carrier_code,number,weight_kg,tracking\n1,UA,100,12.5,UA1234\n2,AA,200,NA,AA0001\n";
const GOOD_SHIPMENTS_2: &str =
    "shipment_id,carrier_code,number,weight_kg,tracking\n3,DL,300,7,\"DL0002\"\n4,UA,101,3.25,bad\n";
const GOOD_CARRIERS: &str = concat!(
    "{\"code\":\"UA\",\"founded\":\"06/04/1926\",\"fleet\":900}\n",
    "{\"code\":\"AA\",\"founded\":\"15/04/1926\",\"fleet\":null}\n",
    "\n",
    "{\"code\":\"DL\",\"founded\":\"30/05/1925\"}\n",
);

const GOOD_EVENTS: &str = "{\"kind\":\"shipped\"}\n";

#[test]
fn an_object_without_data_or_a_csv_without_header_breaks_the_contract() {
    // No file for `events`: the rule on it is not run, and the data does not keep
    // the contract (it describes data that is not there).
    let r = run(&[
        ("shipments.csv", GOOD_SHIPMENTS_1),
        ("carrier_list.jsonl", GOOD_CARRIERS),
    ]);
    assert!(!r.kept());
    assert_eq!(r.total_violations, 0);
    assert_eq!(r.missing.len(), 1, "{:#?}", r.missing);
    assert!(
        r.missing[0].starts_with("object `events` has no data: no CSV, JSON lines, JSON or Parquet file is named `events`"),
        "{}",
        r.missing[0]
    );
    assert_eq!(r.lines()[0], r.missing[0]);
    let o = r.rules.iter().find(|o| o.rule == "events_rows").unwrap();
    assert_eq!(o.state, RuleState::NotEvaluated);
    assert!(
        o.note.contains("no data file maps to object `events`"),
        "{}",
        o.note
    );
    // A 0-byte CSV has no header: a violation, not a pass.
    let r = run(&[
        ("shipments.csv", ""),
        ("carrier_list.jsonl", GOOD_CARRIERS),
        ("events.jsonl", GOOD_EVENTS),
    ]);
    assert!(!r.kept());
    assert!(
        r.lines()
            .iter()
            .any(|l| l.contains("the file is empty: a CSV file needs a header row")),
        "{:#?}",
        r.lines()
    );
    // Only files of other kinds (a README): every object lacks data.
    let r = run(&[("README.md", "# shipments")]);
    assert_eq!(r.missing.len(), 3, "{:#?}", r.missing);
}

#[test]
fn data_that_keeps_every_rule_passes_them_all_and_says_what_it_did_not_run() {
    let r = run(&[
        ("shipments.csv", GOOD_SHIPMENTS_1),
        ("shipments/2024-q2.csv", GOOD_SHIPMENTS_2),
        ("carrier_list.jsonl", GOOD_CARRIERS),
        ("events.jsonl", GOOD_EVENTS),
        ("notes/regions.csv", "region\nnorth\n"),
        ("README.md", "# shipments"),
    ]);
    assert_eq!(r.total_violations, 0, "{:#?}", r.lines());
    assert!(r.kept(), "{:#?}", r.lines());
    let s = states(&r);
    for passed in [
        "shipments_rows",
        "shipments_carrier_number_once",
        "shipment_id_no_nulls",
        "shipment_id_no_duplicates",
        "carrier_known",
        "weight_missing",
        "weight_nulls_not_most",
        "tracking_format",
        "carriers_rows",
        "code_few_repeats",
        "fleet_some",
        "fleet_not_all_null",
        "shipments_weight_sql",
        "number_max_sql",
        "carriers_distinct_sql",
        "events_rows",
    ] {
        assert_eq!(s[passed].0, RuleState::Passed, "{passed}: {:?}", s[passed]);
    }
    // SQL over the object's rows: the table is named by physicalName, with a view
    // by name; `{property}` is the column.
    assert_eq!(s["number_max_sql"].1, "300");
    assert_eq!(s["carriers_distinct_sql"].1, "3");
    assert_eq!(s["shipments_weight_sql"].1, "0");
    assert_eq!(s["shipments_rows"].1, "4 rows");
    assert_eq!(s["weight_missing"].1, "1 row (25%)");
    assert_eq!(s["tracking_format"].1, "1 row (25%)");
    assert_eq!(s["fleet_some"].1, "2 rows (66.67%)");
    for (not_run, why) in [
        ("tracking_reviewed", "`text` rule"),
        ("carriers_soda", "engine soda"),
    ] {
        let o = r.rules.iter().find(|o| o.rule == not_run).unwrap();
        assert_eq!(o.state, RuleState::NotEvaluated, "{not_run}");
        assert!(o.note.contains(why), "{not_run}: {}", o.note);
    }
    // Both shipments files were read as one object; the stray CSV is listed.
    let q = r.quality.as_ref().unwrap();
    let objects: Vec<(&str, u32, u64)> = q
        .objects
        .iter()
        .map(|o| (o.name.as_str(), o.files, o.rows))
        .collect();
    assert_eq!(
        objects,
        [("shipments", 2, 4), ("carriers", 1, 3), ("events", 1, 1)]
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("notes/regions.csv: not checked; it matches no schema object")),
        "{:#?}",
        r.notes
    );
    // The manifest's field metrics are the first object's, with NA counted as null.
    let weight = q.fields.iter().find(|f| f.name == "weight_kg").unwrap();
    assert_eq!(weight.nulls, 1);
    assert_eq!(q.rules.len(), r.rules.len());
}

#[test]
fn data_that_breaks_the_rules_fails_each_one_with_its_measurement() {
    let shipments = "shipment_id,carrier_code,number,weight_kg,tracking\n1,UA,100,NA,UA1234\n1,UA,100,n/a,nope\n,A,0,NA,bad\n";
    let carriers = "{\"code\":\"UA\",\"founded\":\"1926-04-06\",\"fleet\":1}\n{\"code\":\"UA\",\"founded\":\"15/04/1926\",\"fleet\":2}\n";
    let r = run(&[
        ("shipments.csv", shipments),
        ("carrier_list.jsonl", carriers),
        ("events.jsonl", GOOD_EVENTS),
    ]);
    let s = states(&r);
    for failed in [
        "shipments_carrier_number_once",
        "shipment_id_no_nulls",
        "shipment_id_no_duplicates",
        "carrier_known",
        "weight_missing",
        "weight_nulls_not_most",
        "tracking_format",
        "carriers_rows",
        "code_few_repeats",
        "carriers_distinct_sql",
    ] {
        assert_eq!(s[failed].0, RuleState::Failed, "{failed}: {:?}", s[failed]);
    }
    assert_eq!(s["carriers_distinct_sql"].1, "1");
    // A failed invalidValues rule names the first value it counted, and where.
    let known = r.rules.iter().find(|o| o.rule == "carrier_known").unwrap();
    assert_eq!(known.note, "first: \"A\" at shipments.csv row 3");
    assert_eq!(s["shipments_rows"].0, RuleState::Passed);
    assert_eq!(s["weight_missing"].1, "3 rows (100%)");
    assert_eq!(s["code_few_repeats"].1, "1 row (50%)");
    assert!(!r.kept());
    assert_eq!(r.failed_rules(), 10);
    let lines = r.lines();
    assert!(
        lines[0].starts_with("FAIL shipments_carrier_number_once (shipments): duplicateValues = 0, measured 1 row (33.33%)"),
        "{lines:#?}"
    );
    // The property checks: primary key, options, type format, unique.
    let problems: Vec<String> = r.violations.iter().map(|v| v.to_string()).collect();
    for expected in [
        "shipments.csv row 2, field `shipment_id`: primary key (\"1\") repeats an earlier row",
        "shipments.csv row 3, field `shipment_id`: is part of the primary key but empty",
        "shipments.csv row 3, field `carrier`: \"A\" is shorter than 2 characters",
        "shipments.csv row 3, field `number`: \"0\" must be >= 1",
        "carrier_list.jsonl row 1, field `founded`: \"1926-04-06\" is not a date in the format \"dd/MM/yyyy\"",
        "carrier_list.jsonl row 2, field `code`: \"UA\" repeats an earlier value but must be unique",
    ] {
        assert!(problems.iter().any(|p| p.starts_with(expected)), "{expected}\n{problems:#?}");
    }
}

fn shipments_batch(ids: Vec<Option<i64>>, weights: Vec<Option<f64>>) -> RecordBatch {
    let n = ids.len();
    let carriers = ["UA", "AA", "DL", "UA"];
    let tracking = ["UA1234", "AA0001", "DL0002", "bad"];
    let numbers = [100, 200, 300, 101];
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("shipment_id", Arc::new(Int64Array::from(ids))),
        (
            "carrier_code",
            Arc::new(StringArray::from(
                (0..n).map(|i| carriers[i % 4]).collect::<Vec<_>>(),
            )),
        ),
        (
            "number",
            Arc::new(Int64Array::from(
                (0..n).map(|i| numbers[i % 4]).collect::<Vec<i64>>(),
            )),
        ),
        ("weight_kg", Arc::new(Float64Array::from(weights))),
        (
            "tracking",
            Arc::new(StringArray::from(
                (0..n).map(|i| tracking[i % 4]).collect::<Vec<_>>(),
            )),
        ),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

fn write_parquet(path: &Path, batch: &RecordBatch, rows_per_group: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows_per_group))
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(batch).unwrap();
    let meta = w.close().unwrap();
    assert_eq!(
        meta.num_row_groups(),
        batch.num_rows().div_ceil(rows_per_group)
    );
}

#[test]
fn parquet_rows_are_measured_as_the_same_rows_in_csv() {
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("shipments.parquet");
    let batch = shipments_batch(
        vec![Some(1), Some(2), Some(3), Some(4)],
        vec![Some(12.5), None, Some(7.0), Some(3.25)],
    );
    write_parquet(&pq, &batch, 1);
    let carriers = dir.path().join("carrier_list.jsonl");
    std::fs::write(&carriers, GOOD_CARRIERS).unwrap();
    let from_parquet = check(&[
        ("shipments.parquet".into(), pq),
        ("carrier_list.jsonl".into(), carriers.clone()),
    ]);
    let csv = dir.path().join("shipments.csv");
    std::fs::write(
        &csv,
        format!(
            "{GOOD_SHIPMENTS_1}{}",
            GOOD_SHIPMENTS_2.split_once('\n').unwrap().1
        ),
    )
    .unwrap();
    let from_csv = check(&[
        ("shipments.csv".into(), csv),
        ("carrier_list.jsonl".into(), carriers),
    ]);
    assert_eq!(
        from_parquet.total_violations,
        0,
        "{:#?}",
        from_parquet.lines()
    );
    assert_eq!(states(&from_parquet), states(&from_csv));
    let (pq_q, csv_q) = (from_parquet.quality.unwrap(), from_csv.quality.unwrap());
    assert_eq!(pq_q.fields, csv_q.fields);
    assert_eq!(pq_q.rows, csv_q.rows);
}

#[test]
fn parquet_nulls_duplicates_and_type_mismatches_are_found_across_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    // 10,000 rows in groups of 999: a repeat and a null far apart.
    let mut ids: Vec<Option<i64>> = (0..10_000).map(Some).collect();
    ids[9_000] = Some(5);
    ids[4_321] = None;
    let weights = (0..10_000).map(|i| (i % 3 != 0).then_some(1.5)).collect();
    let pq = dir.path().join("shipments.parquet");
    write_parquet(&pq, &shipments_batch(ids, weights), 999);
    let r = check(&[("shipments.parquet".into(), pq)]);
    let s = states(&r);
    assert_eq!(
        s["shipment_id_no_nulls"],
        (RuleState::Failed, "1 row (0.01%)".into())
    );
    assert_eq!(
        s["shipment_id_no_duplicates"],
        (RuleState::Failed, "1 row (0.01%)".into())
    );
    assert_eq!(
        s["weight_missing"],
        (RuleState::Passed, "3334 rows (33.34%)".into())
    );
    assert_eq!(s["shipments_rows"].0, RuleState::Failed);
    let problems: Vec<String> = r.violations.iter().map(|v| v.to_string()).collect();
    assert!(
        problems.iter().any(|p| p.starts_with(
            "shipments.parquet row 4322, field `shipment_id`: is part of the primary key but empty"
        )),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with(
            "shipments.parquet row 9001, field `shipment_id`: primary key (\"5\") repeats"
        )),
        "{problems:#?}"
    );

    // A column of the wrong type is one violation at the schema, not one per row.
    let wrong = RecordBatch::try_from_iter(vec![
        (
            "shipment_id",
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
        ),
        (
            "carrier_code",
            Arc::new(StringArray::from(vec!["UA", "AA"])),
        ),
        ("number", Arc::new(StringArray::from(vec!["100", "x"]))),
    ])
    .unwrap();
    let pq = dir.path().join("shipments.parquet");
    write_parquet(&pq, &wrong, 10);
    let r = check(&[("shipments.parquet".into(), pq)]);
    let problems: Vec<String> = r.violations.iter().map(|v| v.to_string()).collect();
    assert_eq!(
        problems,
        [
            "shipments.parquet schema, field `number`: the Parquet column is Utf8, but the contract says an integer",
            "shipments.parquet schema, field `weight_kg`: no column `weight_kg` in the Parquet schema",
            "shipments.parquet schema, field `tracking`: no column `tracking` in the Parquet schema",
        ]
    );
    let o = r.rules.iter().find(|o| o.rule == "weight_missing").unwrap();
    assert_eq!(o.state, RuleState::NotEvaluated);
    assert!(
        o.note.contains("in none of the object's files"),
        "{}",
        o.note
    );
}

#[test]
fn a_file_that_is_not_parquet_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("shipments.parquet");
    std::fs::write(&p, b"PAR1 this is not parquet").unwrap();
    let err = quality::check(&plan().0, &plan().1, &[("shipments.parquet".into(), p)]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("shipments.parquet: not a readable Parquet file"),
        "{err}"
    );
}

#[test]
fn parquet_binary_strings_and_zoned_timestamps_are_read_as_their_logical_types() {
    use arrow_array::{BinaryArray, TimestampMillisecondArray};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("events.parquet");
    let batch = RecordBatch::try_from_iter(vec![
        (
            "kind",
            Arc::new(BinaryArray::from(vec![&b"click"[..], b"view", b"click"])) as ArrayRef,
        ),
        (
            "at",
            Arc::new(
                TimestampMillisecondArray::from(vec![
                    1_700_000_000_000,
                    1_700_000_001_000,
                    1_700_000_002_000,
                ])
                .with_timezone("America/New_York"),
            ),
        ),
    ])
    .unwrap();
    write_parquet(&p, &batch, 2);
    let contract = "apiVersion: v3.1.0\nkind: DataContract\nid: e\nversion: 1.0.0\nstatus: active\nschema:\n  - name: events\n    properties:\n      - name: kind\n        logicalType: string\n        quality:\n          - {id: kinds, metric: invalidValues, arguments: {validValues: [click, view]}, mustBe: 0}\n      - name: at\n        logicalType: timestamp\n        logicalTypeOptions: {minimum: '2023-11-14'}\n";
    let doc = odcs::document(contract).unwrap();
    let plan = Plan::from_contract(&doc, &NullValues::default());
    let r = quality::check(&plan, &[], &[("events.parquet".into(), p)]).unwrap();
    assert!(r.kept(), "{:#?}", r.lines());
    assert_eq!(r.rules[0].measured, "0 rows (0%)");
}

#[test]
fn nested_properties_are_checked_in_json_lines() {
    let contract = "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\nschema:\n  - name: customers\n    properties:\n      - {name: id, logicalType: integer, required: true}\n      - name: address\n        logicalType: object\n        properties:\n          - {name: city, logicalType: string, required: true}\n          - name: geo\n            logicalType: object\n            properties:\n              - {name: lat, logicalType: number, logicalTypeOptions: {minimum: -90, maximum: 90}}\n          - name: zip\n            physicalName: postcode\n            logicalType: string\n            quality:\n              - {id: zip_present, metric: nullValues, mustBe: 0}\n";
    let doc = odcs::document(contract).unwrap();
    let plan = Plan::from_contract(&doc, &NullValues::default());
    assert!(plan.lint.is_empty(), "{:?}", plan.lint);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("customers.jsonl");
    std::fs::write(
        &p,
        concat!(
            "{\"id\": 1, \"address\": {\"city\": \"Lyon\", \"geo\": {\"lat\": 45.7}, \"postcode\": \"69001\"}}\n",
            "{\"id\": 2, \"address\": {\"geo\": {\"lat\": 123}, \"postcode\": \"75001\"}}\n",
            "{\"id\": 3, \"address\": {\"city\": 7}}\n",
            "{\"id\": 4}\n",
        ),
    )
    .unwrap();
    let r = quality::check(&plan, &[], &[("customers.jsonl".into(), p)]).unwrap();
    let problems: Vec<String> = r.violations.iter().map(|v| v.to_string()).collect();
    assert_eq!(
        problems,
        [
            "customers.jsonl row 2, field `address.city`: is required but empty",
            "customers.jsonl row 2, field `address.geo.lat`: \"123\" must be <= 90",
            "customers.jsonl row 3, field `address.city`: \"7\" is not a string",
        ],
        "a missing parent (row 4) is not a missing child"
    );
    let zip = r.rules.iter().find(|o| o.rule == "zip_present").unwrap();
    assert_eq!(
        (zip.state, zip.measured.as_str()),
        (RuleState::Failed, "1 row (25%)")
    );
    assert_eq!(zip.property, "address.zip");
}

/// Nested Parquet types against nested `properties` and `items` (#33.7): a struct
/// field of another type, a missing field, list items of another type and map
/// values of another type are each named; a struct field's values are checked
/// (required, options) as a JSON line's are; a file that keeps the shape passes.
#[test]
fn nested_parquet_fields_items_and_maps_are_checked_against_the_contract() {
    use arrow_array::builder::{
        Float64Builder, Int64Builder, ListBuilder, MapBuilder, StringBuilder,
    };
    use arrow_array::{Array, StructArray};
    use arrow_schema::{DataType, Field as ArrowField, Fields};

    let contract = r#"
apiVersion: v3.1.0
kind: DataContract
id: parcels
version: 1.0.0
status: active
domain: logistics
schema:
  - name: parcels
    properties:
      - name: id
        logicalType: integer
      - name: address
        logicalType: object
        properties:
          - {name: zip, logicalType: integer}
          - {name: city, logicalType: string, required: true, logicalTypeOptions: {maxLength: 5}}
          - {name: country, logicalType: string}
      - name: tags
        logicalType: array
        items: {logicalType: integer}
      - name: attributes
        logicalType: object
        properties:
          - {name: weight, logicalType: number}
"#;
    let doc = odcs::document(contract).unwrap();
    let plan = Plan::from_contract(&doc, &NullValues::default());
    assert!(plan.lint.is_empty(), "{:#?}", plan.lint);

    // zip as text where the contract says integer; no `country` field.
    let zip: ArrayRef = Arc::new(StringArray::from(vec!["1000", "2000", "3000"]));
    let city: ArrayRef = Arc::new(StringArray::from(vec![
        Some("Bern"),
        None,
        Some("Lausanne"),
    ]));
    let address = StructArray::new(
        Fields::from(vec![
            ArrowField::new("zip", DataType::Utf8, false),
            ArrowField::new("city", DataType::Utf8, true),
        ]),
        vec![zip, city],
        None,
    );
    let mut tags = ListBuilder::new(StringBuilder::new());
    for row in [["a", "b"], ["c", "d"], ["e", "f"]] {
        for t in row {
            tags.values().append_value(t);
        }
        tags.append(true);
    }
    let mut attributes = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for _ in 0..3 {
        attributes.keys().append_value("weight");
        attributes.values().append_value("heavy");
        attributes.append(true).unwrap();
    }
    let mut ids = Int64Builder::new();
    ids.append_slice(&[1, 2, 3]);
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(ids.finish()) as ArrayRef),
        ("address", Arc::new(address) as ArrayRef),
        ("tags", Arc::new(tags.finish()) as ArrayRef),
        ("attributes", Arc::new(attributes.finish()) as ArrayRef),
    ])
    .unwrap();
    assert_eq!(batch.column(1).len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("parcels.parquet");
    write_parquet(&pq, &batch, 3);
    let r = quality::check(&plan, &[], &[("parcels.parquet".into(), pq)]).unwrap();
    let lines = r.lines().join("\n");
    for expected in [
        "schema, field `address.zip`: the Parquet field is Utf8, but the contract says an integer",
        "schema, field `address.country`: no field `country` in the Parquet struct",
        "schema, field `tags[]`: the Parquet field is Utf8, but the contract says an integer",
        "schema, field `attributes.weight`: the Parquet field is Utf8, but the contract says a number",
        // A struct field's values: required, and its options.
        "row 2, field `address.city`: is required but empty",
        "row 3, field `address.city`: \"Lausanne\" is longer than 5 characters",
    ] {
        assert!(lines.contains(expected), "missing {expected:?} in\n{lines}");
    }

    // The same shape kept: integers everywhere the contract says so, every field.
    let zip: ArrayRef = Arc::new(Int64Array::from(vec![1000, 2000]));
    let city: ArrayRef = Arc::new(StringArray::from(vec!["Bern", "Sion"]));
    let country: ArrayRef = Arc::new(StringArray::from(vec!["CH", "CH"]));
    let address = StructArray::new(
        Fields::from(vec![
            ArrowField::new("zip", DataType::Int64, false),
            ArrowField::new("city", DataType::Utf8, false),
            ArrowField::new("country", DataType::Utf8, false),
        ]),
        vec![zip, city, country],
        None,
    );
    let mut tags = ListBuilder::new(Int64Builder::new());
    tags.values().append_slice(&[1, 2]);
    tags.append(true);
    tags.append(true);
    let mut attributes = MapBuilder::new(None, StringBuilder::new(), Float64Builder::new());
    for _ in 0..2 {
        attributes.keys().append_value("weight");
        attributes.values().append_value(1.5);
        attributes.append(true).unwrap();
    }
    let good = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        ("address", Arc::new(address) as ArrayRef),
        ("tags", Arc::new(tags.finish()) as ArrayRef),
        ("attributes", Arc::new(attributes.finish()) as ArrayRef),
    ])
    .unwrap();
    let pq = dir.path().join("good.parquet");
    write_parquet(&pq, &good, 2);
    let r = quality::check(&plan, &[], &[("parcels.parquet".into(), pq)]).unwrap();
    assert_eq!(r.total_violations, 0, "{:#?}", r.lines());
}

/// `sql` rules run in DataFusion over the rows as the checker reads them (null
/// markers applied, columns typed by the contract): one passes, one fails, and one
/// that cannot run fails with the engine's reason instead of passing silently.
#[test]
fn sql_rules_pass_fail_or_fail_to_run_but_never_pass_silently() {
    let contract = r#"
apiVersion: v3.1.0
kind: DataContract
id: orders
version: 1.0.0
status: active
customProperties:
  - {property: meshNullValues, value: ["NA", ""]}
schema:
  - name: orders
    properties:
      - {name: id, logicalType: integer}
      - {name: placed, logicalType: date}
      - {name: amount, logicalType: number}
      - {name: OrderStatus, logicalType: string}
    quality:
      - id: late_orders
        type: sql
        query: SELECT COUNT(*) FROM {object} WHERE placed < DATE '2024-01-01' AND "OrderStatus" = 'open'
        mustBe: 0
      - id: total_small
        type: sql
        query: SELECT SUM(amount) FROM ${object}
        mustBeLessThan: 10
      - id: not_runnable
        type: sql
        query: SELECT date_diff_that_does_not_exist(placed) FROM {object}
        mustBe: 0
"#;
    let plan = Plan::from_contract(&odcs::document(contract).unwrap(), &NullValues::default());
    assert!(plan.lint.is_empty(), "{:#?}", plan.lint);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.csv");
    std::fs::write(
        &file,
        "id,placed,amount,OrderStatus\n1,2023-12-31,5.5,closed\n2,2024-02-01,NA,open\n3,NA,7,open\n",
    )
    .unwrap();
    let r = quality::check(&plan, &[], &[("orders.csv".into(), file)]).unwrap();
    let s = states(&r);
    assert_eq!(s["late_orders"], (RuleState::Passed, "0".into()));
    assert_eq!(s["total_small"], (RuleState::Failed, "12.5".into()));
    let broken = r.rules.iter().find(|o| o.rule == "not_runnable").unwrap();
    assert_eq!(broken.state, RuleState::Failed);
    assert!(
        broken.note.starts_with("could not run: the query failed")
            && broken.note.contains("date_diff_that_does_not_exist"),
        "{}",
        broken.note
    );
    assert!(!r.kept(), "{:#?}", r.lines());
}

/// A file's bytes in memory, read as a file kept elsewhere: a stream for the
/// text formats, ranges for Parquet.
struct InMemory(Vec<u8>);

impl quality::Remote for InMemory {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn stream(&self) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(std::io::Cursor::new(self.0.clone())))
    }
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let start = (offset as usize).min(self.0.len());
        Ok(self.0[start..(start + len).min(self.0.len())].to_vec())
    }
}

/// Files read through `quality::Remote` (objects published from a bucket with
/// no local copy) are checked exactly as the same files on disk: CSV, JSON
/// lines, and a Parquet file of a few megabytes in row groups, so that its
/// pages are read across the remote reader's blocks.
#[test]
fn files_kept_elsewhere_are_checked_as_the_same_files_here() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 150_000;
    let mut ids: Vec<Option<i64>> = (0..rows).map(Some).collect();
    ids[140_000] = Some(17);
    ids[123_456] = None;
    let weights = (0..rows)
        .map(|i| (i % 7 != 0).then_some(i as f64 * 0.5))
        .collect();
    let pq = dir.path().join("shipments.parquet");
    write_parquet(&pq, &shipments_batch(ids, weights), 40_000);
    // Larger than the remote reader's blocks (2 MiB).
    assert!(std::fs::metadata(&pq).unwrap().len() > 2 << 20);
    let carriers = dir.path().join("carrier_list.jsonl");
    std::fs::write(&carriers, GOOD_CARRIERS).unwrap();
    let csv = dir.path().join("more/shipments.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    std::fs::write(&csv, GOOD_SHIPMENTS_2).unwrap();
    let files = vec![
        ("carrier_list.jsonl".to_string(), carriers),
        ("more/shipments.csv".to_string(), csv),
        ("shipments.parquet".to_string(), pq),
    ];
    let here = check(&files);
    let places: Vec<(String, quality::Place)> = files
        .iter()
        .map(|(rel, full)| {
            let remote = InMemory(std::fs::read(full).unwrap());
            (rel.clone(), quality::Place::Remote(Arc::new(remote)))
        })
        .collect();
    let (plan, schema) = plan();
    let elsewhere = quality::check_at(&plan, &schema, &places).unwrap();
    assert!(here.total_violations >= 2, "{:#?}", here.lines());
    assert_eq!(elsewhere.lines(), here.lines());
    assert_eq!(states(&elsewhere), states(&here));
    assert_eq!(elsewhere.quality, here.quality);

    // A remote file that ends early is an error naming the file, not a pass.
    struct Truncated(Vec<u8>);
    impl quality::Remote for Truncated {
        fn len(&self) -> u64 {
            self.0.len() as u64 + 1000
        }
        fn stream(&self) -> std::io::Result<Box<dyn std::io::Read + Send>> {
            Ok(Box::new(std::io::Cursor::new(self.0.clone())))
        }
        fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            let start = (offset as usize).min(self.0.len());
            Ok(self.0[start..(start + len).min(self.0.len())].to_vec())
        }
    }
    let bytes = std::fs::read(&files[2].1).unwrap();
    let short = vec![(
        "shipments.parquet".to_string(),
        quality::Place::Remote(Arc::new(Truncated(bytes))),
    )];
    let err = quality::check_at(&plan, &schema, &short).unwrap_err();
    assert!(err.to_string().starts_with("shipments.parquet: "), "{err}");
}
