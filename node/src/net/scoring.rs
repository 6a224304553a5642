//! Gossipsub peer scoring (v1.1), tuned for a data mesh: sparse, valuable messages
//! (announcements, policies, usage reports) rather than a steady stream.
//!
//! What moves a peer's score:
//! - **invalid messages** (P4) on any mesh topic: a forged, malformed or unregistered
//!   announcement, policy or usage report counts once; the penalty is the square of
//!   the count, so a few honest mistakes (a peer on another policy version forwarding
//!   an announcement we now refuse) cost little and a flood costs everything. The
//!   count halves in about 35 s.
//! - **first deliveries** (P2): a small bonus, capped, for being first with a valid
//!   message.
//! - **time in the mesh** (P1): a small bonus, capped at one minute, so a long-lived
//!   peer cannot bank credit to spend on a flood.
//! - **protocol misbehaviour** (P7): GRAFTs during a backoff and broken promises.
//! - **corrupt data** (P5, application-specific): a provider banned from a fetch for
//!   sending chunks that fail BLAKE3 verification loses [`CORRUPT_DATA_PENALTY`] at
//!   once, which graylists it: transport encryption rules out damage in transit, so
//!   only a hostile peer sends such chunks.
//! - **IP colocation** (P6): more than [`COLOCATION_THRESHOLD`] peers from one address
//!   lose score, except loopback addresses: a local testnet runs every node on
//!   127.0.0.1, and peers on this machine are this machine's users.
//!
//! Mesh-delivery deficits (P3, P3b) are off: announcements are rare, so an honest
//! mesh peer would always look like it under-delivers.
//!
//! Below [`GOSSIP_THRESHOLD`] no gossip is exchanged with a peer, below
//! [`PUBLISH_THRESHOLD`] nothing is published to it, and below [`GRAYLIST_THRESHOLD`]
//! everything it sends is dropped unread. With the weights here a peer is graylisted
//! after about nine invalid messages in quick succession.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libp2p::gossipsub::{PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams};

/// Below this score, no gossip (IHAVE/IWANT) is exchanged with the peer.
pub(crate) const GOSSIP_THRESHOLD: f64 = -20.0;
/// Below this score, the node publishes nothing to the peer.
pub(crate) const PUBLISH_THRESHOLD: f64 = -40.0;
/// Below this score, every message from the peer is ignored (graylisted).
pub const GRAYLIST_THRESHOLD: f64 = -80.0;
/// The application score a provider loses each time a fetch bans it for chunks
/// that fail verification.
pub(crate) const CORRUPT_DATA_PENALTY: f64 = 100.0;
/// Peers sharing one non-loopback IP address beyond this many lose score.
pub(crate) const COLOCATION_THRESHOLD: f64 = 8.0;
/// The penalty per invalid message, squared over the decaying count.
const INVALID_WEIGHT: f64 = -1.0;
/// Per-second decay of the invalid-message count: it halves in about 35 s.
const INVALID_DECAY: f64 = 0.98;

/// The score thresholds.
pub(crate) fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: GOSSIP_THRESHOLD,
        publish_threshold: PUBLISH_THRESHOLD,
        graylist_threshold: GRAYLIST_THRESHOLD,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 2.0,
    }
}

/// The score parameters for the mesh's `topics`.
pub(crate) fn params(topics: &[TopicHash]) -> PeerScoreParams {
    let topic = TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 60.0,
        first_message_deliveries_weight: 0.1,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 50.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_message_deliveries_decay: 0.5,
        mesh_message_deliveries_cap: 100.0,
        mesh_message_deliveries_threshold: 1.0,
        mesh_message_deliveries_window: Duration::from_millis(10),
        mesh_message_deliveries_activation: Duration::from_secs(60),
        mesh_failure_penalty_weight: 0.0,
        mesh_failure_penalty_decay: 0.5,
        invalid_message_deliveries_weight: INVALID_WEIGHT,
        invalid_message_deliveries_decay: INVALID_DECAY,
    };
    let loopback: HashSet<IpAddr> = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]
    .into();
    PeerScoreParams {
        topics: topics
            .iter()
            .map(|t| (t.clone(), topic.clone()))
            .collect::<HashMap<_, _>>(),
        topic_score_cap: 10.0,
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: -5.0,
        ip_colocation_factor_threshold: COLOCATION_THRESHOLD,
        ip_colocation_factor_whitelist: loopback,
        behaviour_penalty_weight: -10.0,
        behaviour_penalty_threshold: 2.0,
        behaviour_penalty_decay: 0.9,
        decay_interval: Duration::from_secs(1),
        decay_to_zero: 0.01,
        retain_score: Duration::from_secs(3600),
        ..PeerScoreParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_valid_for_gossipsub() {
        let topics = [TopicHash::from_raw("a"), TopicHash::from_raw("b")];
        params(&topics).validate().expect("params");
        thresholds().validate().expect("thresholds");
    }

    #[test]
    fn a_flood_crosses_the_graylist_and_a_few_mistakes_do_not() {
        // P4 is weight × count²; the positive terms are capped by topic_score_cap.
        let penalty = |n: f64| INVALID_WEIGHT * n * n;
        assert!(
            penalty(3.0) + 10.0 > GOSSIP_THRESHOLD,
            "three mistakes keep gossip"
        );
        assert!(penalty(10.0) + 10.0 < GRAYLIST_THRESHOLD, "ten graylist");
    }
}
