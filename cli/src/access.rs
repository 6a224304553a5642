//! `mesh access`: ask for access to a restricted product, and, as its owner, grant,
//! deny or revoke it; list and show the requests and agreements.

use std::path::Path;

use mesh_node::api::{AccessDecideBody, AccessFilter, AccessRequestBody, AccessView};
use mesh_protocol::duration::parse_duration;

use crate::args::{AccessArgs, AccessCommand};
use crate::client;
use crate::output::{date, print_json, say};

/// `mesh access ...`.
pub(crate) fn run(home: &Path, a: AccessArgs, json: bool) -> anyhow::Result<()> {
    let api = client(home)?;
    let view = match a.command {
        AccessCommand::Request { product, reason } => {
            api.access_request(&AccessRequestBody { product, reason })?
        }
        AccessCommand::Grant {
            consumer,
            product,
            until,
            purpose,
            terms,
        } => api.access_decide(&AccessDecideBody {
            product,
            consumer,
            decision: "grant".into(),
            until_ms: until.as_deref().map(until_ms).transpose()?,
            purpose,
            terms,
            reason: String::new(),
        })?,
        AccessCommand::Deny {
            consumer,
            product,
            reason,
        } => decide(&api, "deny", consumer, product, reason)?,
        AccessCommand::Revoke {
            consumer,
            product,
            reason,
        } => decide(&api, "revoke", consumer, product, reason)?,
        AccessCommand::Requests {
            product,
            owner,
            consumer,
        } => {
            let list = api.access(&AccessFilter {
                product,
                owner,
                consumer,
            })?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                say!(
                    "no access requests or decisions yet (`mesh access request DOMAIN/NAME` asks)"
                );
            }
            for v in &list {
                say!("{}", line(v));
            }
            return Ok(());
        }
        AccessCommand::Show { product, consumer } => {
            let list = api.access(&AccessFilter {
                product: Some(product.clone()),
                consumer: Some(consumer.clone()),
                ..AccessFilter::default()
            })?;
            let Some(v) = list.into_iter().next() else {
                anyhow::bail!(
                    "no request or decision of {consumer} on {product} is known here; `mesh access requests --product {product}` lists them"
                );
            };
            if json {
                return print_json(&v);
            }
            show(&v);
            return Ok(());
        }
    };
    if json {
        return print_json(&view);
    }
    show(&view);
    Ok(())
}

fn decide(
    api: &mesh_node::ApiClient,
    decision: &str,
    consumer: String,
    product: String,
    reason: String,
) -> anyhow::Result<AccessView> {
    Ok(api.access_decide(&AccessDecideBody {
        product,
        consumer,
        decision: decision.into(),
        until_ms: None,
        purpose: String::new(),
        terms: String::new(),
        reason,
    })?)
}

/// `--until`: a date (`2027-06-30`, midnight UTC), an RFC 3339 time, or a duration
/// from now (`90d`).
pub(crate) fn until_ms(text: &str) -> anyhow::Result<u64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(secs) = parse_duration(text) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        return Ok((u64::try_from(now)? + secs) * 1000);
    }
    let t = time::OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{text}T00:00:00Z"), &Rfc3339))
        .map_err(|_| {
            anyhow::anyhow!(
                "--until {text:?} is not a date (2027-06-30), a time (2027-06-30T12:00:00Z) or a duration (90d)"
            )
        })?;
    Ok(u64::try_from(t.unix_timestamp())
        .map_err(|_| anyhow::anyhow!("--until {text:?} is before 1970"))?
        * 1000)
}

/// One line per pair: state, product, consumer and what matters for the state.
fn line(v: &AccessView) -> String {
    let detail = match (&v.decision, v.state.as_str()) {
        (_, "pending") => format!("asks: {}", v.reason.as_deref().unwrap_or("")),
        (Some(d), "granted") => match d.until_ms {
            Some(u) => format!("until {}; purpose: {}", date(u / 1000), d.purpose),
            None => format!("until revoked; purpose: {}", d.purpose),
        },
        (Some(d), _) if !d.reason.is_empty() => d.reason.clone(),
        _ => String::new(),
    };
    format!(
        "{:<9} {:<32} {:<16} {detail}",
        v.state, v.product, v.consumer
    )
}

fn show(v: &AccessView) {
    say!("{} for {}: {}", v.product, v.consumer, v.state);
    if let Some(r) = &v.reason {
        let at = v
            .requested_at_ms
            .map(|t| date(t / 1000))
            .unwrap_or_default();
        say!("  requested {at}: {r}");
    }
    if let Some(d) = &v.decision {
        say!(
            "  {} {} (id {}, signed by {})",
            d.kind,
            date(d.issued_at_ms / 1000),
            d.id,
            d.signed_by
        );
        match d.until_ms {
            Some(u) if d.kind == "grant" => say!("  until   {}", date(u / 1000)),
            None if d.kind == "grant" => say!("  until   revoked"),
            _ => {}
        }
        if !d.purpose.is_empty() {
            say!("  purpose {}", d.purpose);
        }
        if !d.terms.is_empty() {
            say!("  terms   {}", d.terms);
        }
        if !d.reason.is_empty() {
            say!("  reason  {}", d.reason);
        }
    }
    if v.state == "pending" {
        say!(
            "  the owner answers with `mesh access grant {} {}` (or deny)",
            v.consumer,
            v.product
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn until_takes_a_date_a_time_or_a_duration() {
        assert_eq!(super::until_ms("2027-06-30").ok(), Some(1_814_313_600_000));
        assert_eq!(
            super::until_ms("2027-06-30T12:00:00Z").ok(),
            Some(1_814_313_600_000 + 12 * 3_600_000)
        );
        let in_a_day = super::until_ms("1d").unwrap_or(0);
        let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64 * 1000;
        assert!(in_a_day >= now + 86_399_000 && in_a_day <= now + 86_401_000);
        let err = super::until_ms("next tuesday").unwrap_err().to_string();
        assert!(err.contains("not a date"), "{err}");
    }
}
