//! Announcements: small signed gossip messages saying "version V of product P exists,
//! its manifest hashes to H, and these peers serve it".

use serde::{Deserialize, Serialize};

use crate::hash::ManifestHash;
use crate::id::ProductId;
use crate::keys::PublicKey;
use crate::manifest::{Classification, Manifest, Status};
use crate::record::{check_count, check_length, RecordError, MAX_PEER_ID_LEN};
use crate::signed::SignedKind;

/// The format version of an announcement.
pub const ANNOUNCEMENT_FORMAT: u8 = 1;

/// The largest announcement payload accepted; gossip carries at most 64 KiB.
pub const MAX_ANNOUNCEMENT_BYTES: usize = 16 * 1024;

/// A product version's availability, signed by the domain's publisher key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// Format version, [`ANNOUNCEMENT_FORMAT`].
    pub format: u8,
    /// Which product.
    pub product: ProductId,
    /// Which version.
    pub version: semver::Version,
    /// The hash naming the signed manifest.
    pub manifest: ManifestHash,
    /// What catalogs show before fetching the manifest.
    pub summary: Summary,
    /// libp2p peer ids (base58) of nodes serving this version.
    pub providers: Vec<String>,
    /// Unix milliseconds when announced; orders re-announcements.
    pub issued_at_ms: u64,
    /// The signing publisher key.
    pub publisher: PublicKey,
}

/// Catalog-facing facts copied from the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Title.
    pub title: String,
    /// Lifecycle status.
    pub status: Status,
    /// Overall sensitivity.
    pub classification: Classification,
    /// Tags.
    pub tags: Vec<String>,
    /// Owning team.
    pub owner_team: String,
    /// Total bytes of all files.
    pub size: u64,
    /// Number of files.
    pub files: u32,
}

/// The most characters of a title or team name a summary keeps.
pub const MAX_SUMMARY_TEXT: usize = 200;
/// The most tags a summary keeps.
pub const MAX_SUMMARY_TAGS: usize = 32;
/// The most characters of a tag a summary keeps.
pub const MAX_SUMMARY_TAG: usize = 64;

impl Summary {
    /// What a manifest shows catalogs, cut to the summary's limits (an
    /// announcement must fit its 16 KiB).
    pub fn of(m: &Manifest) -> Summary {
        Summary {
            title: m.title.chars().take(MAX_SUMMARY_TEXT).collect(),
            status: m.status,
            classification: m.classification,
            tags: m
                .tags
                .iter()
                .take(MAX_SUMMARY_TAGS)
                .map(|t| t.chars().take(MAX_SUMMARY_TAG).collect())
                .collect(),
            owner_team: m.owner.team.chars().take(MAX_SUMMARY_TEXT).collect(),
            size: m.total_size(),
            files: u32::try_from(m.files.len()).unwrap_or(u32::MAX),
        }
    }
}

impl SignedKind for Announcement {
    const TAG: &'static str = "mesh/announcement/v1";
    const MAX_BYTES: usize = MAX_ANNOUNCEMENT_BYTES;
    const WHAT: &'static str = "announcement";
}

/// The most providers one announcement may list.
pub const MAX_PROVIDERS: usize = 16;

impl Announcement {
    /// The announcement of manifest `m` (whose signed form hashes to `manifest`),
    /// served by `providers`, issued now by `publisher`.
    pub fn of(
        m: &Manifest,
        manifest: ManifestHash,
        providers: Vec<String>,
        issued_at_ms: u64,
        publisher: PublicKey,
    ) -> Announcement {
        Announcement {
            format: ANNOUNCEMENT_FORMAT,
            product: m.id.clone(),
            version: m.version.clone(),
            manifest,
            summary: Summary::of(m),
            providers,
            issued_at_ms,
            publisher,
        }
    }

    /// Checks limits that keep announcements small and well-formed.
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.format != ANNOUNCEMENT_FORMAT {
            return Err(RecordError::Format {
                what: "announcement",
                format: self.format,
                supported: ANNOUNCEMENT_FORMAT,
            });
        }
        check_count(
            "an announcement's providers",
            self.providers.len(),
            1,
            MAX_PROVIDERS,
        )?;
        for p in &self.providers {
            check_length("provider peer id", p.len(), 1, MAX_PEER_ID_LEN)?;
        }
        Ok(())
    }
}
