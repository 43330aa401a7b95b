//! Takeover: before an instance consumes a partition, it reads that partition's alerts from
//! the alert stream (every version still kept, keeping the highest per alert id), so what the
//! previous owner committed and published is here, with its ticket, before the first comment
//! is handled. A short-lived consumer reads the subjects `liveguard.alerts.<p>.>` from the start.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;

use super::streams::ALERT_STREAM;
use super::{BusError, ALERTS};
use crate::store::record::Alert;

/// The newest version of every alert on the alert stream under `subject_filter`
/// (`liveguard.alerts.<p>.>`, or `liveguard.alerts.>` for all), oldest first.
pub async fn latest(js: &jetstream::Context, subject_filter: &str) -> Result<Vec<Alert>, BusError> {
    let stream = js
        .get_stream(ALERT_STREAM)
        .await
        .map_err(|e| BusError::js("opening the alert stream", e))?;
    let mut c: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: subject_filter.to_string(),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            // Removed by the server soon after this reader is gone, whatever happens to it.
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::js("a reader of the alert stream", e))?;
    let mut remaining = c
        .info()
        .await
        .map_err(|e| BusError::js("reading the alert stream", e))?
        .num_pending;
    let mut newest: HashMap<String, Alert> = HashMap::new();
    let mut bad = 0u64;
    while remaining > 0 {
        let mut batch = c
            .batch()
            .max_messages(remaining.min(1_000) as usize)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .map_err(|e| BusError::js("reading the alert stream", e))?;
        let mut got = 0;
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| BusError::js("reading the alert stream", e))?;
            got += 1;
            remaining = m.info().map_or(0, |i| i.pending);
            match serde_json::from_slice::<Alert>(&m.payload) {
                Ok(a) if !a.id.is_empty() => match newest.get(&a.id) {
                    Some(have) if have.version >= a.version => {}
                    _ => {
                        newest.insert(a.id.clone(), a);
                    }
                },
                _ => bad += 1,
            }
        }
        if got == 0 {
            return Err(BusError::js(
                "reading the alert stream",
                format!("no messages within 2 s with {remaining} still pending"),
            ));
        }
    }
    if bad > 0 {
        tracing::warn!(bad, "alert stream messages that are not alerts were skipped");
    }
    let _ = stream.delete_consumer(&c.cached_info().name).await;
    // In the order they were raised (the previous owner's numbering breaks ties), so local
    // numbers follow the alerts' history.
    let mut out: Vec<Alert> = newest.into_values().collect();
    out.sort_by_key(|a| (a.classified_ms, a.seq));
    Ok(out)
}

/// The newest version of every alert of `partitions`.
pub async fn partitions(js: &jetstream::Context, partitions: &[u32]) -> Result<Vec<Alert>, BusError> {
    let mut out = Vec::new();
    for p in partitions {
        let alerts = latest(js, &format!("{ALERTS}.{p}.>")).await?;
        tracing::info!(
            partition = p,
            alerts = alerts.len(),
            "partition rebuilt from the alert stream"
        );
        out.extend(alerts);
    }
    Ok(out)
}
