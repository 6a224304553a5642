//! What a product.toml with a section of the wrong shape is told: what to write
//! there, not the name of a Rust type.

#![allow(clippy::unwrap_used)]

use mesh_contract::ManifestDraft;

const HEAD: &str = "id = \"web/clicks\"\nversion = \"1.0.0\"\ntitle = \"Clicks\"\n";
const OWNER: &str = "[owner]\nteam = \"web-analytics\"\ncontact = \"web@example.com\"\n";

#[test]
fn a_section_of_the_wrong_shape_is_told_what_to_write() {
    // Each line replaces a table; it comes before any table, so it is top level.
    let cases = [
        (
            "owner = \"web-analytics\"\n",
            false,
            "an [owner] table with `team` and `contact`",
        ),
        ("sla = \"2h\"\n", true, "an [sla] table"),
        (
            "lineage = [\"web/raw-events\"]\n",
            true,
            "a [[lineage]] entry with the upstream's `id`",
        ),
        (
            "schema = [\"local_time\"]\n",
            true,
            "a [[schema]] entry with `name` and `type`",
        ),
        (
            "files = { \"a.csv\" = \"NA\" }\n",
            true,
            "a [files.\"PATH\"] table",
        ),
    ];
    for (wrong, with_owner, told) in cases {
        let text = format!("{HEAD}{wrong}{}", if with_owner { OWNER } else { "" });
        let err = toml::from_str::<ManifestDraft>(&text)
            .unwrap_err()
            .to_string();
        assert!(err.contains(told), "{wrong:?} got: {err}");
        assert!(!err.contains("Draft"), "{wrong:?} names a Rust type: {err}");
    }
    // The right shape parses.
    toml::from_str::<ManifestDraft>(&format!("{HEAD}{OWNER}")).unwrap();
}

#[test]
fn a_derived_draft_needs_its_query_inline_and_every_input_pinned() {
    let facts = || mesh_contract::PublishFacts {
        files: Vec::new(),
        created_at: 0,
        publisher: mesh_protocol::KeyPair::from_secret([1; 32]).public(),
        quality: None,
    };
    let manifest = |extra: &str| {
        toml::from_str::<ManifestDraft>(&format!("{HEAD}{extra}{OWNER}"))
            .unwrap()
            .into_manifest(facts())
    };
    let errs = |extra: &str| -> String {
        manifest(extra)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let sql = "SELECT * FROM web.events";
    let err = errs(&format!("derive = {{ sql = \"{sql}\" }}\n"));
    assert!(
        err.contains("lineage") && err.contains("mesh derive"),
        "{err}"
    );
    let err = errs("derive = { sql_file = \"q.sql\" }\n");
    assert!(
        err.contains("sql_file") && err.contains("mesh derive"),
        "{err}"
    );
    let pinned = format!(
        "derive = {{ sql = \"{sql}\" }}\nlineage = [{{ id = \"web/events\", manifest = \"{}\" }}]\n",
        mesh_protocol::Hash::of(b"v1")
    );
    let m = manifest(&pinned).unwrap();
    let d = m.derivation.unwrap();
    assert_eq!(d.query_hash, mesh_protocol::Hash::of(sql.as_bytes()));
}
