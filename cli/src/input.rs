//! Files the user names (contracts, manifests, change and rules files, policy
//! files), read with a size cap: a 2 GB file, or `/dev/zero`, is refused after the
//! cap with a clear error instead of being read whole into memory.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// The largest contract (ODCS YAML or JSON) read: mesh keeps at most this much.
pub(crate) const MAX_CONTRACT: u64 = mesh_contract::odcs::MAX_CONTRACT_BYTES as u64;
/// The largest `product.toml`, change file or rules file read.
pub(crate) const MAX_SMALL_FILE: u64 = 4 << 20;

/// Reads the text file `path` (`what` names it in errors), refusing one larger than
/// `limit` bytes without reading past the limit.
pub(crate) fn read_text(path: &Path, what: &str, limit: u64) -> anyhow::Result<String> {
    let file =
        std::fs::File::open(path).with_context(|| format!("reading {what} {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    if bytes.len() as u64 > limit {
        anyhow::bail!(
            "{what} {} is larger than {} MiB, more than such a file can be; check the path",
            path.display(),
            limit >> 20
        );
    }
    String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{what} {} is not UTF-8 text: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_or_oversized_file_is_refused_at_the_cap() {
        let err = read_text(Path::new("/dev/zero"), "the contract", 1 << 20).unwrap_err();
        assert!(err.to_string().contains("larger than 1 MiB"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "a: 1\n").unwrap();
        assert_eq!(read_text(&p, "the contract", 5).unwrap(), "a: 1\n");
        assert!(read_text(&p, "the contract", 4).is_err());
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(read_text(&p, "the contract", 4)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
    }
}
