//! Subscriptions into object storage (`mesh subscribe ID -o s3://bucket/prefix`):
//! each new version is fetched into this node's store and delivered as
//! `prefix/VERSION/...` with `prefix/current` switched last (see `ops/deliver`),
//! keeping `keep` versions there. The follower's loop, rules and retries are the
//! directory subscriptions' own (`mod.rs`); only where a version goes differs.

use mesh_protocol::{ProductId, ProductRef};
use mesh_storage::objects::ObjectUrl;
use tracing::info;

use super::{
    check_keep, existing_or, save_new, Failed, SubscribeError, Subscriber, SubscriptionView,
};
use crate::clock::unix_now_ms;
use crate::ops::fetch::FetchOptions;
use crate::state::catalog::CatalogEntry;
use crate::state::subscriptions::{Materialized, Subscription};
use crate::task::blocking;

impl Subscriber {
    /// Subscribes to `product` into `url`: refused unless the store is reachable
    /// with the node's credentials and the prefix is empty or already this
    /// product's.
    pub(super) async fn subscribe_objects(
        &self,
        product: ProductId,
        url: ObjectUrl,
        keep: usize,
        skip_flagged: bool,
    ) -> Result<SubscriptionView, SubscribeError> {
        check_keep(keep)?;
        let refused = |e: crate::ops::deliver::DeliverError| SubscribeError::Refused(e.to_string());
        let bucket = self.deliverer.open(&url).await.map_err(refused)?;
        self.deliverer
            .claim(&bucket, &product.to_string())
            .await
            .map_err(refused)?;
        let (book, catalog) = (self.book.clone(), self.catalog.clone());
        let id = product.clone();
        let out = std::path::PathBuf::from(url.to_string());
        let sub = blocking(move || -> Result<Subscription, SubscribeError> {
            let mut new = Subscription::new(id.clone(), out, keep, unix_now_ms());
            new.objects = Some(url.clone());
            let mut sub = existing_or(&book, &catalog, new, |s| s.objects.as_ref() == Some(&url))?;
            sub.skip_flagged = skip_flagged;
            save_new(&book, sub)
        })
        .await?;
        info!(product = %product, out = %sub.out.display(), keep, "subscribed into object storage");
        self.book.notify();
        self.view(sub).await
    }

    /// Fetches `entry`'s version into the store and delivers it to the
    /// subscription's prefix.
    pub(super) async fn deliver_version(
        &self,
        sub: &Subscription,
        entry: &CatalogEntry,
    ) -> Result<Materialized, Failed> {
        let Some(url) = &sub.objects else {
            return Err(Failed::Other("not an object storage subscription".into()));
        };
        let other = |e: &dyn std::fmt::Display| Failed::Other(e.to_string());
        let a = &entry.announcement;
        let target = ProductRef {
            id: a.product.clone(),
            version: Some(a.version.clone()),
        };
        let _shared_work = self.work_lock.read().await;
        let bucket = self.deliverer.open(url).await.map_err(|e| other(&e))?;
        let outcome = self
            .fetcher
            .fetch(&target, None, FetchOptions::default(), None)
            .await?;
        let report = self
            .deliverer
            .deliver_fetched(&bucket, &outcome, Some(sub.keep), &None)
            .await
            .map_err(|e| other(&e))?;
        Ok(Materialized {
            version: a.version.to_string(),
            manifest: outcome.manifest,
            due_at_ms: a.issued_at_ms.max(sub.created_at_ms),
            materialized_at_ms: unix_now_ms(),
            transferred_bytes: outcome.transferred_bytes,
            size: outcome.size,
            reused_bytes: report.copied_bytes,
        })
    }
}
