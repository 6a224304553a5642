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
        "schema[0].quality[1].query: required by ODCS",
        "schema[0].properties[0].logicalTypeOptions.minLength: not an option of logicalType integer",
        "schema[0].properties[0].quality[0]: invalidValues needs `arguments.validValues` or `arguments.pattern`",
        "schema[0].properties[0].quality[0].dimension: \"correctness\" is not one of \"accuracy\"",
        "schema[0].properties[1].name: \"id\" names two properties",
        "schema[0].properties[1].logicalType: \"text\" is not one of",
        "schema[1].name: \"orders\" names two schema objects",
    ] {
        assert!(errors.contains(expected), "missing {expected:?} in:\n{errors}");
    }
}

#[test]
fn unparsable_and_minimal_contracts() {
    let l = lint(include_str!("../odcs/malformed.odcs.yaml"), Some("sales"));
    assert!(
        l.errors[0].starts_with("(top): not valid YAML"),
        "{:?}",
        l.errors
    );
    let minimal = include_str!("../odcs/minimal-3.0.odcs.yaml");
    let l = lint(minimal, Some("logistics"));
    assert!(l.errors.is_empty(), "{:#?}", l.errors);
    for f in [
        include_str!("../odcs/quality-rules.odcs.yaml"),
        include_str!("../odcs/full-3.1.odcs.yaml"),
    ] {
        let l = lint(f, Some("logistics"));
        assert!(l.errors.is_empty(), "{:#?}", l.errors);
    }
    let l = lint(include_str!("../odcs/quality-rules.odcs.yaml"), None);
    assert!(l.errors.is_empty(), "{:#?}", l.errors);
}

/// What the official schema of each version says, which mesh's own rules alone
/// missed (#33.8): misspelt keys in v3.0.x, a v3.0.2 library rule without `rule`,
/// `team` as a mapping before v3.1.0, `description: null`.
#[test]
fn each_version_is_checked_against_its_own_official_schema() {
    let base = |api: &str, extra: &str| {
        format!(
            "apiVersion: {api}\nkind: DataContract\nid: parcels\nversion: 1.0.0\nstatus: active\n{extra}"
        )
    };
    let cases = [
        (
            "v3.0.0",
            "schema:\n  - name: parcels\n    properties:\n      - name: id\n        requird: true\n",
            "schema[0].properties[0].requird: not a field of ODCS v3.0.0",
        ),
        (
            "v3.0.1",
            "schema:\n  - name: parcels\n    properties:\n      - name: id\n        requird: true\n",
            "schema[0].properties[0].requird: not a field of ODCS v3.0.1",
        ),
        (
            "v3.0.2",
            "schema:\n  - name: parcels\n    quality:\n      - type: library\n        mustBe: 0\n",
            "schema[0].quality[0].rule: required by ODCS v3.0.2",
        ),
        (
            "v3.0.2",
            "team:\n  name: parcels\n  members:\n    - username: erin\n",
            "team: must be array in ODCS v3.0.2, not object",
        ),
        (
            "v3.0.2",
            "description: null\n",
            "description: must be object in ODCS v3.0.2, not null",
        ),
    ];
    for (api, extra, expected) in cases {
        let l = lint(&base(api, extra), Some("logistics"));
        assert!(
            l.errors.iter().any(|e| e.starts_with(expected)),
            "{api} {extra:?}: missing {expected:?} in {:#?}",
            l.errors
        );
    }
    // A 3.1 team mapping is right in 3.1, and `format: date-time` is a format.
    let fine = base(
        "v3.1.0",
        "team:\n  name: parcels\n  members:\n    - username: erin\nschema:\n  - name: parcels\n    properties:\n      - name: at\n        logicalType: timestamp\n        logicalTypeOptions:\n          format: date-time\n",
    );
    let l = lint(&fine, Some("logistics"));
    assert!(l.errors.is_empty(), "{:#?}", l.errors);
    let l = lint(&base("v2.2.2", ""), Some("logistics"));
    assert!(
        l.errors[0].starts_with("apiVersion: \"v2.2.2\" is not one of v3.0.0"),
        "{:#?}",
        l.errors
    );
}
