//! The council's bookkeeping in the soak: the kinds of change it signs, what each
//! does once acknowledged, and its own head (see `council.rs` for the changes and
//! forgeries themselves).

use mesh_node::unix_now;
use mesh_protocol::policy::Policy;
use mesh_protocol::policy_change::PolicyChange;
use mesh_protocol::signed::Signed;

/// The version after `head` that the change file `toml` makes.
pub(super) fn next_version(head: &Policy, toml: &str) -> anyhow::Result<Policy> {
    let change = PolicyChange::from_toml(toml).map_err(|e| anyhow::anyhow!("{e}"))?;
    change
        .apply(head, unix_now())
        .map_err(|e| anyhow::anyhow!("applying {toml:?}: {e}"))
}

/// The domain the schedule removes and adds back.
pub(super) const REMOVABLE: &str = "marketing";

/// A kind of change the council signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// A new contact address for sales.
    Contact,
    /// One member out, a new key in.
    Rotate,
    /// [`REMOVABLE`] removed.
    Remove,
    /// [`REMOVABLE`] added back.
    Readd,
}

/// What a signed change does to the council's own bookkeeping once acknowledged.
#[derive(Debug, Clone)]
pub(super) enum Effect {
    Nothing,
    Rotate { out: usize, inn: usize },
    Removed,
    Readded,
}

/// The council's state.
#[derive(Debug)]
pub(super) struct CouncilState {
    /// Indices into `Testnet::council` of the current members.
    pub(super) members: Vec<usize>,
    /// Former members: their signatures must count for nothing.
    pub(super) retired: Vec<usize>,
    /// The newest version the council signed that a node acknowledged.
    pub(super) head: Signed<Policy>,
    /// Signed but not acknowledged yet: sent again before anything new is signed.
    pub(super) unsent: Option<(Signed<Policy>, Effect, &'static str)>,
    /// Whether [`REMOVABLE`] is removed (acknowledged).
    pub(super) removed: bool,
    /// Why the last refused delivery was refused.
    pub(super) refused: String,
}

impl CouncilState {
    /// The council of the genesis `head`: members 0..council.
    pub(super) fn new(head: Signed<Policy>, council: usize) -> CouncilState {
        CouncilState {
            members: (0..council).collect(),
            retired: Vec::new(),
            head,
            unsent: None,
            removed: false,
            refused: String::new(),
        }
    }
}
