//! Stage 1, ingest: firehose frames → [`Event`]s. [`client`] keeps one WebSocket connection
//! per source alive (backoff, pings, idle timeout); [`canonical`] and [`tiktok`] turn a frame
//! of their format into events. A frame that does not parse is a [`FrameError`] with a short
//! reason for metrics; it never closes the connection.

pub mod backoff;
pub mod canonical;
pub mod client;
pub mod tiktok;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Deserializer, Serialize};

/// An event as it left a source.
#[derive(Debug)]
pub struct Ingested {
    /// The event.
    pub event: Event,
    /// Source name (for logs).
    pub source: Arc<str>,
    /// Input format (a metric label).
    pub format: Format,
    /// When the frame arrived.
    pub received_at: Instant,
    /// When the frame arrived, ms since the epoch.
    pub received_ms: u64,
    /// When the source's current connection opened, ms since the epoch (for backlog).
    pub connected_ms: u64,
}

/// Where a source hands its events: the daemon's intake, or the bus when a bridge publishes
/// them. Each source task owns one.
pub trait Sink: Send + 'static {
    /// Hands one event on; false when whatever is downstream is gone (the source stops).
    fn push(&mut self, item: Ingested) -> impl Future<Output = bool> + Send;
}

/// A live comment, whatever platform or relay it came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// `tiktok`, `douyin`, …
    pub platform: String,
    /// Room (live session) id.
    pub room: String,
    /// Platform message id, for de-duplication and deletion.
    pub msg_id: String,
    /// When the platform says it was posted (ms since the epoch; 0 when unknown).
    pub ts_ms: u64,
    /// Who wrote it.
    pub user: User,
    /// The comment as typed.
    pub text: String,
    /// Language hint from the source.
    #[serde(default)]
    pub lang: Option<String>,
    /// The message this one replies to.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Product the comment is about, when the event says.
    #[serde(default)]
    pub product: Option<String>,
    /// What the platform tells about the writer; absent means unknown, not false.
    #[serde(default)]
    pub signals: UserSignals,
}

/// A comment's writer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Stable platform user id.
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    /// `@handle`.
    #[serde(default)]
    pub handle: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
}

impl User {
    /// The name to show and to put in scripts: display name, else handle, else id.
    pub fn display(&self) -> &str {
        self.name
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.handle.as_deref().filter(|s| !s.is_empty()))
            .unwrap_or(&self.id)
    }
}

/// User signals carried by the event. Every field is optional: absent means unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserSignals {
    /// A room moderator (exempt from alerts).
    #[serde(default)]
    pub is_moderator: Option<bool>,
    /// Follows the streamer.
    #[serde(default)]
    pub is_follower: Option<bool>,
    /// Subscribed to the streamer.
    #[serde(default)]
    pub is_subscriber: Option<bool>,
    /// Has sent gifts.
    #[serde(default)]
    pub is_gift_giver: Option<bool>,
    /// The writer's follower count.
    #[serde(default)]
    pub follower_count: Option<u64>,
    /// Account creation time, ms since the epoch.
    #[serde(default)]
    pub account_created_ms: Option<u64>,
    /// Fan-club level.
    #[serde(default)]
    pub fans_club_level: Option<u32>,
    /// Other platform flags, passed through.
    #[serde(default)]
    pub platform_flags: Vec<String>,
    /// A verified buyer of this shop.
    #[serde(default)]
    pub is_buyer: Option<bool>,
    /// An order id the event links to the writer.
    #[serde(default)]
    pub order_id: Option<String>,
}

impl UserSignals {
    /// Whether the writer is known to have bought here (a complaint ranks higher).
    pub fn buyer(&self) -> bool {
        self.is_buyer == Some(true) || self.order_id.as_deref().is_some_and(|o| !o.is_empty())
    }
}

/// What a frame can carry.
#[derive(Debug, Clone, PartialEq)]
// Comments are the common variant; boxing them would add an allocation to every one.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A live comment.
    Comment(Comment),
    /// The platform deleted messages and/or all messages of users.
    Delete {
        /// Room, when the event says.
        room: Option<String>,
        /// Deleted message ids.
        msg_ids: Vec<String>,
        /// Users whose messages were deleted.
        user_ids: Vec<String>,
    },
    /// An event of a kind liveguard does not use (gift, like, join…), counted only.
    Ignored(String),
}

/// Input format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// liveguard's own `liveguard.comment.v1` events.
    Canonical,
    /// TikTok LIVE events as relays send them (tiktok-live-connector 1.x/2.x, Euler Stream,
    /// TikTokLive, TikFinity, tik.tools, hand-rolled): see [`tiktok`].
    Tiktok,
}

impl Format {
    /// The name used in config and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canonical => "canonical",
            Self::Tiktok => "tiktok",
        }
    }
}

/// Why a frame was not understood (the reason is a metric label).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    /// Not valid JSON.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an event of this format.
    #[error("unknown event shape: {0}")]
    UnknownShape(String),
    /// An event missing something it needs (or holding it in a form that cannot be read).
    #[error("missing field {0}")]
    Missing(String),
    /// An id that must name something is empty (`msg_id`, `room`, `user.id`).
    #[error("empty {0}")]
    EmptyId(&'static str),
    /// A text frame that is not UTF-8.
    #[error("text frame is not UTF-8")]
    NotUtf8,
    /// Over the configured frame size.
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    /// A binary frame (sources send text).
    #[error("binary frame")]
    Binary,
}

impl FrameError {
    /// Short reason for the `parse_errors_total` metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "not_json",
            Self::UnknownShape(_) => "unknown_shape",
            Self::Missing(_) => "missing_field",
            Self::EmptyId(_) => "empty_id",
            Self::NotUtf8 => "invalid_utf8",
            Self::TooLarge(_) => "oversized",
            Self::Binary => "binary",
        }
    }
}

/// Where a frame came from: what a reader needs besides the frame.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The source's name (part of the synthetic id of a message that has none).
    pub source: &'a str,
    /// Room for events that carry none (TikTok v1 shapes).
    pub room: &'a str,
    /// When the frame arrived, ms since the epoch (0: unknown); the time of a synthetic id
    /// when the frame has no time of its own.
    pub received_ms: u64,
}

/// Parses one text frame of `format`. `default_room` names the room for events that carry
/// none (the legacy TikTok shape).
pub fn parse_frame(format: Format, frame: &str, default_room: &str) -> Result<Vec<Event>, FrameError> {
    let events = match format {
        Format::Canonical => canonical::parse(frame)?,
        Format::Tiktok => tiktok::parse(frame, default_room)?,
    };
    for e in &events {
        check_ids(e)?;
    }
    Ok(events)
}

/// An empty `msg_id` would skip de-duplication and deletion, an empty room or user id would
/// pool unrelated comments: such events are refused (and counted as `empty_id`).
fn check_ids(e: &Event) -> Result<(), FrameError> {
    if let Event::Comment(c) = e {
        for (name, v) in [("msg_id", &c.msg_id), ("room", &c.room), ("user.id", &c.user.id)] {
            if v.trim().is_empty() {
                return Err(FrameError::EmptyId(name));
            }
        }
    }
    Ok(())
}

/// A serde error about a field that is not there is `missing_field`, not `unknown_shape`.
pub fn shape_error(e: &serde_json::Error) -> FrameError {
    let m = e.to_string();
    match m
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        Some(field) => FrameError::Missing(field.to_string()),
        None => FrameError::UnknownShape(m),
    }
}

/// Parses one text frame of `format` that arrived from `origin`.
pub fn parse_frame_from(format: Format, frame: &str, origin: &Origin<'_>) -> Result<Vec<Event>, FrameError> {
    match format {
        Format::Canonical => canonical::parse(frame),
        Format::Tiktok => tiktok::parse_from(frame, origin),
    }
}

/// An id as platforms send it: a string or a number. Read by hand: serde's `untagged` first
/// copied every id into a buffer of its own to try each form (~3% of the workers' time).
struct Id(String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Id;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an id (a string or an integer)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Id, E> {
                Ok(Id(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Id, E> {
                Ok(Id(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl From<Id> for String {
    fn from(id: Id) -> String {
        id.0
    }
}

/// Ids arrive as strings or numbers; both become strings.
pub fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Id::deserialize(d).map(String::from)
}

/// Optional id: string, number or absent/null.
pub fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Id>::deserialize(d)?.map(String::from))
}

/// A list of ids, each a string or a number.
pub fn de_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "de_id")] String);
    Ok(Option::<Vec<W>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .map(|w| w.0)
        .collect())
}
