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
