//! Reading what nodes did from their own records: the times their logs say they
//! learned each product version or accepted each policy, their gossip metrics, and
//! summary statistics. All node processes share this machine's clock, so times from
//! different logs compare directly.

use std::collections::HashMap;

use crate::Testnet;

/// Seconds since the Unix epoch of a log line's leading RFC 3339 UTC timestamp
/// (`2026-11-27T08:17:34.574946Z`), as the node's tracing output writes it.
pub fn line_time(line: &str) -> Option<f64> {
    let ts = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let ss: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss)
}

/// Now, in seconds since the Unix epoch.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// When the log says each product version was first learned (`product@version`).
pub fn learned(log: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in log.lines().filter(|l| l.contains("catalog learned")) {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_owned)
        };
        if let (Some(t), Some(p), Some(v)) = (line_time(line), field("product="), field("version="))
        {
            out.entry(format!("{p}@{v}")).or_insert(t);
        }
    }
    out
}

/// When the log says each policy version was accepted.
pub fn policies(log: &str) -> HashMap<u64, f64> {
    let mut out = HashMap::new();
    for line in log.lines().filter(|l| l.contains("policy accepted")) {
        let version = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("version="))
            .and_then(|v| v.parse().ok());
        if let (Some(t), Some(v)) = (line_time(line), version) {
            out.entry(v).or_insert(t);
        }
    }
    out
}

/// Every node's learned-times, by node index (empty for a log that cannot be read).
pub fn learned_all(net: &Testnet) -> Vec<HashMap<String, f64>> {
    net.nodes.iter().map(|n| learned(&n.log())).collect()
}

/// Gossip messages on the announcement topic a node received, and how many of those
/// were duplicates, from its `/metrics`.
pub fn announce_counts(net: &Testnet, i: usize) -> Option<(u64, u64)> {
    let t = traffic(net, i)?;
    Some((
        t.announce_copies,
        t.announce_copies.saturating_sub(t.announce_unique),
    ))
}

/// What a node's transports and its announcement gossip carried so far, from its
/// `/metrics` (counters since the node started).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Traffic {
    /// Bytes received over every transport (TCP, QUIC, relayed), with their
    /// framing and encryption.
    pub bytes_in: u64,
    /// Bytes sent over every transport.
    pub bytes_out: u64,
    /// Announcement gossip messages received, duplicates included.
    pub announce_copies: u64,
    /// Announcement gossip messages received once each (duplicates filtered).
    pub announce_unique: u64,
    /// The bytes of the unique ones: the signed envelopes as gossiped.
    pub announce_unique_bytes: u64,
}

impl Traffic {
    /// Each counter of `self` and `other` combined by `f`.
    fn zip_with(&self, other: &Traffic, f: impl Fn(u64, u64) -> u64) -> Traffic {
        Traffic {
            bytes_in: f(self.bytes_in, other.bytes_in),
            bytes_out: f(self.bytes_out, other.bytes_out),
            announce_copies: f(self.announce_copies, other.announce_copies),
            announce_unique: f(self.announce_unique, other.announce_unique),
            announce_unique_bytes: f(self.announce_unique_bytes, other.announce_unique_bytes),
        }
    }

    /// Each counter mapped by `f`.
    pub fn map(&self, f: impl Fn(u64) -> u64) -> Traffic {
        self.zip_with(self, |a, _| f(a))
    }

    /// What was carried between `before` and `self`.
    pub fn since(&self, before: &Traffic) -> Traffic {
        self.zip_with(before, u64::saturating_sub)
    }

    /// The mean over nodes of what each carried between `before` and `after`
    /// (nodes unreadable at either end are left out).
    pub fn mean_since(before: &[Option<Traffic>], after: &[Option<Traffic>]) -> Traffic {
        let deltas: Vec<Traffic> = before
            .iter()
            .zip(after)
            .filter_map(|(b, a)| Some(a.as_ref()?.since(b.as_ref()?)))
            .collect();
        let n = deltas.len().max(1) as u64;
        deltas
            .iter()
            .fold(Traffic::default(), |sum, t| {
                sum.zip_with(t, u64::saturating_add)
            })
            .map(|total| total / n)
    }

    /// The mean size of one announcement envelope, if any arrived.
    pub fn announcement_size(&self) -> Option<u64> {
        (self.announce_unique > 0).then(|| self.announce_unique_bytes / self.announce_unique)
    }
}

/// Node `i`'s [`Traffic`] so far, `None` if its `/metrics` cannot be read.
pub fn traffic(net: &Testnet, i: usize) -> Option<Traffic> {
    let text = net.nodes[i].client().ok()?.metrics().ok()?;
    Some(parse_traffic(&text))
}

/// Every node's [`Traffic`] so far, by node index.
pub fn traffic_all(net: &Testnet) -> Vec<Option<Traffic>> {
    (0..net.nodes.len()).map(|i| traffic(net, i)).collect()
}

/// [`Traffic`] from the OpenMetrics text of a node's `/metrics`.
fn parse_traffic(text: &str) -> Traffic {
    let sum = |metric: &str, label: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(metric) && l.to_ascii_lowercase().contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let bandwidth = "libp2p_bandwidth_bytes_total{";
    let announce = "mesh/announce/v1";
    Traffic {
        bytes_in: sum(bandwidth, "direction=\"inbound\""),
        bytes_out: sum(bandwidth, "direction=\"outbound\""),
        announce_copies: sum(
            "gossipsub_topic_msg_recv_counts_unfiltered_total{",
            announce,
        ),
        announce_unique: sum("gossipsub_topic_msg_recv_counts_total{", announce),
        announce_unique_bytes: sum("gossipsub_topic_msg_recv_bytes_total{", announce),
    }
}

/// Nearest-rank percentile `p` (0..=100) of `sorted` values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Delay statistics in milliseconds: p50, p95, p99, max.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Delays {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Delays {
    /// Statistics of `secs` (delays in seconds).
    pub fn of(mut secs: Vec<f64>) -> Self {
        secs.sort_by(f64::total_cmp);
        let ms = |p| percentile(&secs, p) * 1000.0;
        Delays {
            p50_ms: ms(50.0),
            p95_ms: ms(95.0),
            p99_ms: ms(99.0),
            max_ms: secs.last().map_or(f64::NAN, |m| m * 1000.0),
        }
    }

    /// `p50 / p95 / p99 / max` in ms, for a table.
    pub fn show(&self) -> String {
        format!(
            "{:.0} / {:.0} / {:.0} / {:.0} ms",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_gives_traffic() {
        let text = "# TYPE libp2p_bandwidth_bytes counter\n\
libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Inbound\"} 1000\n\
libp2p_bandwidth_bytes_total{protocols=\"/ip4/udp/quic-v1\",direction=\"Inbound\"} 24\n\
libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Outbound\"} 500\n\
gossipsub_topic_msg_recv_counts_unfiltered_total{hash=\"mesh/announce/v1\"} 9\n\
gossipsub_topic_msg_recv_counts_total{hash=\"mesh/announce/v1\"} 3\n\
gossipsub_topic_msg_recv_counts_total{hash=\"mesh/usage/v1\"} 70\n\
gossipsub_topic_msg_recv_bytes_total{hash=\"mesh/announce/v1\"} 2100\n";
        let t = parse_traffic(text);
        assert_eq!((t.bytes_in, t.bytes_out), (1024, 500));
        assert_eq!((t.announce_copies, t.announce_unique), (9, 3));
        assert_eq!(t.announcement_size(), Some(700));
        let later = Traffic {
            bytes_in: 3048,
            ..t
        };
        let mean = Traffic::mean_since(&[Some(t), None], &[Some(later), Some(later)]);
        assert_eq!(mean.bytes_in, 2024, "the unreadable node is left out");
        assert_eq!(mean.announce_copies, 0);
    }

    #[test]
    fn log_lines_give_times_and_fields() {
        let line = "2026-11-27T08:17:34.500000Z  INFO mesh_node::catalog: catalog learned product=sales/p1 version=1.0.0";
        // 2026-11-27 is day 20784 since the epoch.
        assert_eq!(
            line_time(line),
            Some(20_784.0 * 86_400.0 + 8.0 * 3600.0 + 17.0 * 60.0 + 34.5)
        );
        let log = format!("{line}\n{}\n", line.replace("34.500000", "35.000000"));
        assert_eq!(learned(&log).len(), 1, "first time wins");
        let p =
            "2026-11-27T08:17:36.000000Z  INFO mesh_node::governance: policy accepted version=2";
        assert!(policies(p).contains_key(&2));
        assert_eq!(line_time("garbage"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
