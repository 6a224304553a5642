//! `mesh subscribe`, `mesh unsubscribe`, `mesh subscriptions`, `mesh subscribers`:
//! follow a product into a directory, and see who follows what.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use mesh_node::api::{SubscribeBody, SubscriberView, SubscriptionView};

use crate::args::{SubscribeArgs, SubscribersArgs, UnsubscribeArgs};
use crate::client;
use crate::output::{date, human_bytes, print_json, say, say_err};

/// How long `mesh subscribe --wait` waits for the newest version.
const WAIT: Duration = Duration::from_secs(600);

/// `mesh subscribe PRODUCT -o DIR [--keep N] [--wait]`.
pub(crate) fn subscribe(home: &Path, a: SubscribeArgs, json: bool) -> anyhow::Result<()> {
    let api = client(home)?;
    let is_url = a
        .out
        .to_str()
        .is_some_and(mesh_storage::objects::ObjectUrl::is_object_url);
    let out = if is_url {
        a.out.clone()
    } else {
        std::path::absolute(&a.out).with_context(|| format!("resolving {}", a.out.display()))?
    };
    let mut view = api.subscribe(&SubscribeBody {
        product: a.product.clone(),
        out,
        keep: a.keep,
        skip_flagged: a.skip_flagged,
    })?;
    if a.wait {
        let started = Instant::now();
        loop {
            let settled = matches!(
                view.state.as_str(),
                "up to date" | "denied" | "moved" | "failing"
            );
            if settled || started.elapsed() > WAIT {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            view = api
                .subscriptions()?
                .into_iter()
                .find(|s| s.product == view.product)
                .with_context(|| format!("the subscription of {} is gone", a.product))?;
        }
    }
    if json {
        return print_json(&view);
    }
    show(&view);
    if !a.wait {
        say!(
            "  the daemon follows it now; `mesh subscriptions` shows its state, and jobs read {}",
            view.out.join("current").display()
        );
    }
    if matches!(view.state.as_str(), "denied" | "moved" | "failing") {
        anyhow::bail!(
            "{} is {}: {}",
            view.product,
            view.state,
            view.reason.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// `mesh unsubscribe PRODUCT`.
pub(crate) fn unsubscribe(home: &Path, a: UnsubscribeArgs, json: bool) -> anyhow::Result<()> {
    let api = client(home)?;
    let view = api.unsubscribe(&a.product.parse()?)?;
    if json {
        return print_json(&view);
    }
    say!(
        "no longer following {}; its folders stay in {}",
        view.product,
        view.out.display()
    );
    Ok(())
}

/// `mesh subscriptions`.
pub(crate) fn list(home: &Path, json: bool) -> anyhow::Result<()> {
    let list = client(home)?.subscriptions()?;
    if json {
        return print_json(&list);
    }
    if list.is_empty() {
        say!("no subscriptions (`mesh subscribe DOMAIN/NAME -o DIR` follows a product)");
        return Ok(());
    }
    say!(
        "{:<32} {:<11} {:<10} {:<10} {:>9}  DIRECTORY",
        "PRODUCT",
        "STATE",
        "CURRENT",
        "NEWEST",
        "LAG"
    );
    for v in &list {
        say!(
            "{:<32} {:<11} {:<10} {:<10} {:>9}  {}",
            v.product,
            v.state,
            v.current.as_deref().unwrap_or("-"),
            v.newest.as_deref().unwrap_or("-"),
            v.lag_ms.map_or("-".into(), lag),
            v.out.display()
        );
        if let Some(r) = &v.reason {
            say!("  {}: {r}", v.state);
        }
    }
    Ok(())
}

/// `mesh subscribers PRODUCT`.
pub(crate) fn subscribers(home: &Path, a: SubscribersArgs, json: bool) -> anyhow::Result<()> {
    let list: Vec<SubscriberView> = client(home)?.subscribers(&a.product.parse()?)?;
    if json {
        return print_json(&list);
    }
    if list.is_empty() {
        say!("no node follows {} (yet)", a.product);
        return Ok(());
    }
    for s in &list {
        say!(
            "{:<16} {}  holds {}  last seen {}{}",
            s.domain.as_deref().unwrap_or("(no domain)"),
            s.peer_id,
            if s.versions.is_empty() {
                "no version yet".to_string()
            } else {
                s.versions.join(", ")
            },
            date(s.last_seen_ms / 1000),
            if s.stale { " (stale)" } else { "" }
        );
    }
    Ok(())
}

fn show(v: &SubscriptionView) {
    say!("{} -> {}: {}", v.product, v.out.display(), v.state);
    if let Some(c) = &v.current {
        say!("  current {c} ({})", v.out.join(c).display());
    }
    if let Some(h) = v.history.last() {
        say!(
            "  last    {} materialized {}, {} after it was announced (or subscribed to) ({} of {} downloaded, {} reused from the previous version)",
            h.version,
            date(h.materialized_at_ms / 1000),
            lag(h.lag_ms()),
            human_bytes(h.transferred_bytes),
            human_bytes(h.size),
            human_bytes(h.reused_bytes)
        );
    }
    if let Some(r) = &v.reason {
        say_err!("  {}: {r}", v.state);
    }
}

/// A lag in milliseconds, short.
fn lag(ms: u64) -> String {
    if ms < 10_000 {
        format!("{ms} ms")
    } else if ms < 3_600_000 {
        format!("{:.0} s", ms as f64 / 1000.0)
    } else {
        format!("{:.1} h", ms as f64 / 3_600_000.0)
    }
}
