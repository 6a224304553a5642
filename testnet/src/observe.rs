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
    let text = net.nodes[i].client().ok()?.metrics().ok()?;
    let value = |metric: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(metric) && l.contains("mesh/announce/v1"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let all = value("gossipsub_topic_msg_recv_counts_unfiltered_total{");
    let unique = value("gossipsub_topic_msg_recv_counts_total{");
    Some((all, all.saturating_sub(unique)))
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
