//! A product's schema objects as SQL tables: CSV with `NA` null markers, JSON lines
//! with nested objects and arrays, a `.json` array, and Parquet with a struct
//! column, each read with the types the contract declares, then queried and joined
//! in DataFusion.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field};
use mesh_contract::engine::{self, QueryError};
use mesh_contract::odcs;
use mesh_contract::quality::Plan;
use mesh_contract::tables::product_tables;
use mesh_protocol::manifest::NullValues;

const CONTRACT: &str = r#"
apiVersion: v3.1.0
kind: DataContract
id: shop
version: 1.0.0
status: active
customProperties:
  - {property: meshNullValues, value: ["NA", ""]}
schema:
  - name: orders
    properties:
      - {name: id, logicalType: integer}
      - {name: region, logicalType: string}
      - {name: amount, logicalType: number}
      - {name: placed, logicalType: date}
  - name: events
    properties:
      - {name: order_id, logicalType: integer}
      - name: attrs
        logicalType: object
        properties:
          - {name: kind, logicalType: string}
          - {name: weight, logicalType: number}
      - name: tags
        logicalType: array
        items: {logicalType: string}
  - name: regions
    properties:
      - {name: code, logicalType: string}
      - {name: name, logicalType: string}
  - name: parts
    physicalName: parts_v2
    properties:
      - {name: part, logicalType: integer}
      - name: size
        logicalType: object
        properties:
          - {name: width, logicalType: number}
"#;

fn write_parts(path: &std::path::Path) {
    let width: ArrayRef = Arc::new(Float64Array::from(vec![1.5, 2.5]));
    let size = StructArray::from(vec![(
        Arc::new(Field::new("width", DataType::Float64, true)),
        width,
    )]);
    let batch = RecordBatch::try_from_iter([
        ("part", Arc::new(Int32Array::from(vec![7, 8])) as ArrayRef),
        ("size", Arc::new(size) as ArrayRef),
        (
            "extra",
            Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        ),
    ])
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn product() -> (tempfile::TempDir, Vec<(String, PathBuf)>) {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        // Columns in another order than the contract's, a column it does not
        // declare, and `NA` for missing values.
        ("orders/2024.csv", "placed,id,amount,region,note\n2024-01-02,1,10.5,N,x\n2024-02-03,2,NA,S,\n"),
        // The same object split over files with another delimiter.
        ("orders/2025.csv", "id;region;amount;placed\n3;N;4;NA\n"),
        (
            "events.jsonl",
            "{\"order_id\": 1, \"attrs\": {\"kind\": \"click\", \"weight\": 2.5}, \"tags\": [\"a\", \"b\"]}\n{\"order_id\": 3, \"attrs\": {\"kind\": \"view\", \"weight\": 0.5}, \"tags\": []}\n",
        ),
        (
            "regions.json",
            "[{\"code\": \"N\", \"name\": \"North\"}, {\"code\": \"S\", \"name\": \"South\"}]",
        ),
    ];
    let mut list = crate::common::write_files(dir.path(), &files);
    let parts = dir.path().join("parts_v2.parquet");
    write_parts(&parts);
    list.push(("parts_v2.parquet".into(), parts));
    (dir, list)
}

/// Runs `sql` over the product's tables; returns the rows as CSV-like text lines.
fn query(files: Vec<(String, PathBuf)>, sql: &'static str) -> Result<Vec<String>, QueryError> {
    let plan = Plan::from_contract(&odcs::document(CONTRACT).unwrap(), &NullValues::default());
    assert!(plan.lint.is_empty(), "{:#?}", plan.lint);
    engine::run(Duration::from_secs(60), move || async move {
        let ctx = engine::session()?;
        for t in product_tables(&ctx, &plan, &files).await? {
            let name = t.physical_name.clone().unwrap_or(t.name.clone());
            ctx.register_table(name.as_str(), t.frame.into_view())
                .map_err(|e| QueryError::Failed(e.to_string()))?;
        }
        let batches = engine::collect(&ctx, sql).await?;
        let text = arrow_cast::pretty::pretty_format_batches(&batches.batches)
            .map_err(|e| QueryError::Failed(e.to_string()))?
            .to_string();
        Ok(text.lines().map(str::to_owned).collect())
    })
}

#[test]
fn csv_json_and_parquet_objects_are_tables_with_their_declared_types() {
    let (_dir, files) = product();
    // NA is null; the three files of `orders` are one table, in contract order.
    let rows = query(
        files.clone(),
        "SELECT COUNT(*) AS n, SUM(amount) AS total, COUNT(placed) AS dated, MIN(placed) AS first FROM orders",
    )
    .unwrap();
    assert!(
        rows.iter()
            .any(|l| l.contains("| 3 | 14.5  | 2     | 2024-01-02 |")),
        "{rows:#?}"
    );
    // Declared types: `placed` is a date (compared as one), `id` an integer.
    let rows = query(
        files.clone(),
        "SELECT arrow_typeof(placed) AS t, arrow_typeof(id) AS i FROM orders LIMIT 1",
    )
    .unwrap();
    assert!(
        rows.iter()
            .any(|l| l.contains("Date32") && l.contains("Int64")),
        "{rows:#?}"
    );
    // Nested JSON lines and a join with a JSON array.
    let rows = query(
        files.clone(),
        "SELECT r.name, SUM(e.attrs['weight']) AS w, MAX(array_length(e.tags)) AS tags \
         FROM events e JOIN orders o ON o.id = e.order_id JOIN regions r ON r.code = o.region \
         GROUP BY r.name",
    )
    .unwrap();
    assert!(
        rows.iter().any(|l| l.contains("| North | 3.0 | 2    |")),
        "{rows:#?}"
    );
    // Parquet by its physical name, a struct field, integers cast to BIGINT.
    let rows = query(
        files.clone(),
        "SELECT SUM(part) AS parts, arrow_typeof(SUM(part)) AS t, MAX(size['width']) AS w FROM parts_v2",
    )
    .unwrap();
    assert!(
        rows.iter().any(|l| l.contains("| 15    | Int64 | 2.5 |")),
        "{rows:#?}"
    );
    // An undeclared column is not part of the table.
    let err = query(files, "SELECT note FROM orders").unwrap_err();
    assert!(err.to_string().contains("note"), "{err}");
}
