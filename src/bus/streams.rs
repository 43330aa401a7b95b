//! The two streams and the consumers, defined in one place with their retention:
//! - `LIVEGUARD_COMMENTS` (`liveguard.comments.>`): limits retention, `comments_max_age_ms`
//!   (a day by default), file storage, de-duplication over `duplicate_window_ms`. Each
//!   partition has one durable pull consumer `liveguard-p<N>`, each message acked on its own.
//! - `LIVEGUARD_ALERTS` (`liveguard.alerts.>`): limits retention, `alerts_max_age_ms` (a week),
//!   the last 8 versions of each alert (one subject per alert), file storage.
//!
//! The partition count is written into both streams' descriptions by whoever creates them, so
//! an instance reads it instead of trusting its own flag to match the bridge's.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use super::{BusConfig, BusError, ALERTS, COMMENTS};

/// The comment stream's name.
pub const COMMENT_STREAM: &str = "LIVEGUARD_COMMENTS";
/// The alert stream's name.
pub const ALERT_STREAM: &str = "LIVEGUARD_ALERTS";
/// Versions kept per alert: the newest is what a takeover needs; a few more for audits.
pub const ALERT_HISTORY: i64 = 8;

fn description(kind: &str, partitions: u32) -> String {
    format!("liveguard {kind}; partitions={partitions}")
}

/// The partition count a stream's description records.
pub fn recorded_partitions(info: &stream::Info) -> Option<u32> {
    info.config
        .description
        .as_deref()?
        .rsplit_once("partitions=")?
        .1
        .trim()
        .parse()
        .ok()
}

fn comment_config(cfg: &BusConfig, partitions: u32) -> stream::Config {
    stream::Config {
        name: COMMENT_STREAM.into(),
        description: Some(description("comments", partitions)),
        subjects: vec![format!("{COMMENTS}.>")],
        retention: stream::RetentionPolicy::Limits,
        max_age: Duration::from_millis(cfg.comments_max_age_ms),
        duplicate_window: cfg.duplicate_window(),
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

fn alert_config(cfg: &BusConfig, partitions: u32) -> stream::Config {
    stream::Config {
        name: ALERT_STREAM.into(),
        description: Some(description("alerts", partitions)),
        subjects: vec![format!("{ALERTS}.>")],
        retention: stream::RetentionPolicy::Limits,
        max_age: Duration::from_millis(cfg.alerts_max_age_ms),
        max_messages_per_subject: ALERT_HISTORY,
        duplicate_window: cfg.duplicate_window(),
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// Creates both streams if missing and returns the partition count they record: `partitions`
/// when given (a bridge, or an instance told explicitly; a stream recording another count is
/// an error), else what the comment stream says.
pub async fn ensure(
    js: &jetstream::Context,
    cfg: &BusConfig,
    partitions: Option<u32>,
) -> Result<u32, BusError> {
    let existing = match js.get_stream(COMMENT_STREAM).await {
        Ok(mut s) => Some(
            s.info()
                .await
                .map_err(|e| BusError::js("reading the comment stream", e))?
                .clone(),
        ),
        Err(e)
            if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            None
        }
        Err(e) => return Err(BusError::js("looking up the comment stream", e)),
    };
    let recorded = existing.as_ref().and_then(recorded_partitions);
    let count = match (partitions, recorded) {
        (Some(p), Some(r)) if p != r => {
            return Err(BusError::Config(format!(
                "the comment stream was made for {r} partitions, not {p}: rooms would move (see README, Operations)"
            )))
        }
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => {
            return Err(BusError::Config(
                "no comment stream yet and no partition count: start a bridge first or set [bus] partition_count".into(),
            ))
        }
    };
    if count == 0 {
        return Err(BusError::Config("the partition count must be at least 1".into()));
    }
    if existing.is_none() {
        js.get_or_create_stream(comment_config(cfg, count))
            .await
            .map_err(|e| BusError::js("creating the comment stream", e))?;
    }
    js.get_or_create_stream(alert_config(cfg, count))
        .await
        .map_err(|e| BusError::js("creating the alert stream", e))?;
    Ok(count)
}

/// The durable consumer's name for `partition`.
pub fn consumer_name(partition: u32) -> String {
    format!("liveguard-p{partition}")
}

/// The durable pull consumer of `partition`: every comment of its rooms, in order.
pub async fn partition_consumer(
    js: &jetstream::Context,
    cfg: &BusConfig,
    partition: u32,
) -> Result<consumer::PullConsumer, BusError> {
    let name = consumer_name(partition);
    let stream = js
        .get_stream(COMMENT_STREAM)
        .await
        .map_err(|e| BusError::js("opening the comment stream", e))?;
    stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: format!("{COMMENTS}.{partition}.>"),
                // Explicit, not All: after a takeover, an ack of a new message must not cover the
                // ones the dead owner held, which come back only once their ack wait passes.
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_millis(cfg.ack_wait_ms),
                max_ack_pending: cfg.max_ack_pending.max(cfg.batch as i64),
                deliver_policy: consumer::DeliverPolicy::All,
                num_replicas: cfg.replicas,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| BusError::js(format!("consumer {name}"), e))
}
