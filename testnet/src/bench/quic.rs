//! The QUIC row of the transfer benchmark: the single-provider fetch again, on a mesh
//! of three nodes that listen on QUIC only, against the TCP (noise + yamux) fetch of
//! the same run.

use std::path::Path;
use std::time::Duration;

use super::measure::{mbps, measured_fetch, BenchOptions, Row, LONG};
use crate::{sample, Testnet, TestnetConfig, Transport};

/// Publishes the files in `data` (`size` bytes) on node 0 of a QUIC-only mesh and
/// fetches them on node 1, then on node 2 with node 1 stopped (one provider each
/// time); `tcp` is the same run's single-provider fetch over TCP.
pub(super) fn fetch_row(
    opts: &BenchOptions,
    data: &Path,
    size: u64,
    tcp: Duration,
) -> anyhow::Result<Row> {
    let mut config = TestnetConfig::new(opts.mesh.clone(), 3, &["sales", "finance"]);
    config.council = 1;
    config.threshold = 1;
    let mut net = Testnet::create(config)?;
    for n in &mut net.nodes {
        n.transport = Transport::Quic;
    }
    net.start_all()?;
    let toml = sample::binary_manifest_toml("sales/big", "1.0.0").replace("Orders", "Bench data");
    net.publish(0, data, &toml)?;
    for i in 1..3 {
        net.wait_product(i, "sales/big", "1.0.0", LONG)?;
    }
    let mut quic = Duration::MAX;
    for (consumer, stopped) in [(1, None), (2, Some(1))] {
        let (elapsed, _) = measured_fetch(&mut net, consumer, stopped, 1, opts.progress)?;
        quic = quic.min(elapsed);
    }
    net.stop_all()?;
    Ok(Row {
        what: "fetch, 1 provider over QUIC (best of 2; the other rows are TCP + noise + yamux)"
            .into(),
        mesh: format!("{:.2} s ({:.0} MB/s)", quic.as_secs_f64(), mbps(size, quic)),
        baseline: format!(
            "TCP, 1 provider {:.2} s ({:.0} MB/s)",
            tcp.as_secs_f64(),
            mbps(size, tcp)
        ),
        ratio: format!("{:.2}x TCP", tcp.as_secs_f64() / quic.as_secs_f64()),
        target: "both transports measured".into(),
    })
}
