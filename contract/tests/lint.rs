//! `mesh contract lint`'s checks: the standard's required fields, enums and
//! closed key sets, mesh's own rules, and the checks the data will get, each
//! reported with its field path.

#![allow(clippy::unwrap_used)]

use mesh_contract::odcs::lint;

#[test]
fn a_contract_with_a_problem_in_every_section_lists_each_with_its_path() {
    let yaml = r#"
apiVersion: v3.1.0
kind: DataContract
id: broken
version: "1.0"
domain: sales
dataProduct: orders
owner: someone
servers:
  - server: prod
team:
  name: sales
  members:
    - name: no username
customProperties:
  - property: x
schema:
  - name: orders
    tableName: orders
    quality:
      - metric: nullValues
        mustBe: 0
      - type: sql
        mustBe: 0
    properties:
      - name: id
        logicalType: integer
        logicalTypeOptions: {minLength: 3}
        quality:
          - metric: invalidValues
            mustBe: 0
            dimension: correctness
      - name: id
        logicalType: text
  - name: orders
"#;
    let l = lint(yaml, None);
    let errors = l.errors.join("\n");
    for expected in [
        "status: required by ODCS",
        "owner: not a field of ODCS v3.1.0",
        "version: \"1.0\" is not a semantic version",
        "servers[0].type: required by ODCS",
        "members[0].username: required by ODCS",
        "customProperties[0].value: required by ODCS",
        "schema[0].tableName: not a field of ODCS v3.1.0",
        "schema[0].quality[0]: nullValues is a property-level metric",
        "schema[0].quality[1].query: required for a sql rule",
        "schema[0].properties[0].logicalTypeOptions.minLength: not an option of logicalType integer",
        "schema[0].properties[0].quality[0]: invalidValues needs `arguments.validValues` or `arguments.pattern`",
        "schema[0].properties[0].quality[0].dimension: \"correctness\" is not one of",
        "schema[0].properties[1].name: \"id\" names two properties",
        "schema[0].properties[1].logicalType: \"text\" is not one of",
        "schema[1].name: \"orders\" names two schema objects",
    ] {
        assert!(errors.contains(expected), "missing {expected:?} in:\n{errors}");
    }
}

#[test]
fn unparsable_and_minimal_contracts() {
    let l = lint(include_str!("odcs/malformed.odcs.yaml"), Some("sales"));
    assert!(
        l.errors[0].starts_with("(top): not valid YAML"),
        "{:?}",
        l.errors
    );
    let minimal = include_str!("odcs/minimal-3.0.odcs.yaml");
    let l = lint(minimal, Some("logistics"));
    assert!(l.errors.is_empty(), "{:#?}", l.errors);
    for f in [
        include_str!("odcs/quality-rules.odcs.yaml"),
        include_str!("odcs/full-3.1.odcs.yaml"),
    ] {
        let l = lint(f, Some("logistics"));
        assert!(l.errors.is_empty(), "{:#?}", l.errors);
    }
    let l = lint(include_str!("odcs/quality-rules.odcs.yaml"), None);
    assert!(l.errors.is_empty(), "{:#?}", l.errors);
}
