//! What travels on the comment stream: one event as JSON, the canonical [`Comment`] or a
//! deletion, with the source's name and the times the daemon needs (arrival, connection), and
//! the de-duplication key the bridge puts in `Nats-Msg-Id`.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::ingest::{Comment, Event, Format, Ingested};

/// One event on `liveguard.comments.<p>.<room>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireEvent {
    /// The event.
    #[serde(flatten)]
    pub body: WireBody,
    /// The source's name.
    pub source: String,
    /// Its input format.
    pub format: Format,
    /// When the bridge received the frame, ms since the epoch.
    pub received_ms: u64,
    /// When the bridge's connection opened, ms since the epoch (for backlog).
    pub connected_ms: u64,
}

/// A comment or a deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// Comments are the common variant; boxing them would add an allocation to every one.
#[allow(clippy::large_enum_variant)]
pub enum WireBody {
    /// A live comment.
    Comment {
        /// The comment.
        comment: Comment,
    },
    /// A platform deletion.
    Delete {
        /// Room, when the event says.
        room: Option<String>,
        /// Deleted message ids.
        msg_ids: Vec<String>,
        /// Users whose messages were deleted.
        user_ids: Vec<String>,
    },
}

impl WireEvent {
    /// The wire form of an ingested event; `None` for events the daemon only counts.
    pub fn from_ingested(item: Ingested) -> Option<Self> {
        let body = match item.event {
            Event::Comment(comment) => WireBody::Comment { comment },
            Event::Delete {
                room,
                msg_ids,
                user_ids,
            } => WireBody::Delete {
                room,
                msg_ids,
                user_ids,
            },
            Event::Ignored(_) => return None,
        };
        Some(Self {
            body,
            source: item.source.to_string(),
            format: item.format,
            received_ms: item.received_ms,
            connected_ms: item.connected_ms,
        })
    }

    /// The room (a deletion may name none).
    pub fn room(&self) -> Option<&str> {
        match &self.body {
            WireBody::Comment { comment } => Some(&comment.room),
            WireBody::Delete { room, .. } => room.as_deref(),
        }
    }

    /// `Nats-Msg-Id`: the same event from another bridge or a reconnect backlog has the same
    /// key, so the server drops the copy. A comment is its platform, room and message id; a
    /// deletion the hash of what it deletes.
    pub fn dedupe_key(&self) -> String {
        match &self.body {
            WireBody::Comment { comment: c } => {
                format!("c:{}:{}:{}", c.platform, c.room, c.msg_id)
            }
            WireBody::Delete {
                room,
                msg_ids,
                user_ids,
            } => {
                let mut text = room.clone().unwrap_or_default();
                for id in msg_ids.iter().chain(user_ids) {
                    text.push('\u{1f}');
                    text.push_str(id);
                }
                format!("d:{:016x}", super::fnv1a(text.as_bytes()))
            }
        }
    }

    /// Back into the daemon's envelope, arrived now.
    pub fn into_ingested(self) -> Ingested {
        let event = match self.body {
            WireBody::Comment { comment } => Event::Comment(comment),
            WireBody::Delete {
                room,
                msg_ids,
                user_ids,
            } => Event::Delete {
                room,
                msg_ids,
                user_ids,
            },
        };
        Ingested {
            event,
            source: Arc::from(self.source.as_str()),
            format: self.format,
            received_at: Instant::now(),
            received_ms: self.received_ms,
            connected_ms: self.connected_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comment_round_trips_and_its_key_ignores_arrival() {
        let c = Comment {
            platform: "tiktok".into(),
            room: "r1".into(),
            msg_id: "m1".into(),
            text: "裂了".into(),
            ..Comment::default()
        };
        let w = WireEvent {
            body: WireBody::Comment { comment: c },
            source: "s".into(),
            format: Format::Tiktok,
            received_ms: 5,
            connected_ms: 1,
        };
        let json = serde_json::to_string(&w).expect("serializes");
        let back: WireEvent = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, w);
        let again = WireEvent {
            received_ms: 9,
            source: "other bridge".into(),
            ..w.clone()
        };
        assert_eq!(w.dedupe_key(), again.dedupe_key());
        assert_eq!(w.dedupe_key(), "c:tiktok:r1:m1");
    }
}
