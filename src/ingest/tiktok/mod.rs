//! TikTok LIVE events as relays send them (`--format tiktok`): tiktok-live-connector 1.x, 2.x
//! and its legacy flattening, the Euler Stream WebSocket service (schemas v1 and v2),
//! TikTokLive (Python), TikFinity and tik.tools, and hand-rolled relays. Tests and the tools'
//! versions: `tests/fixtures/relays/README.md`.
//!
//! A frame is read in two steps. First its envelope, without building its body: a bundle
//! `{timestamp, messages: [...]}`, a typed event `{type, data}` or `{event, data}`, or a bare
//! message (its kind from `common.method` / `method`, or from the fields it has). Then only the
//! bodies liveguard uses, chats ([`chat`]) and deletions ([`delete`]), are read, each field
//! leniently ([`lenient`]); every other kind becomes [`Event::Ignored`] with its short name.
//! A frame is rejected only when a chat's text or writer, or a deletion's ids, cannot be read,
//! and the error names the field.

mod chat;
mod delete;
mod lenient;

pub use chat::synthetic_id;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use self::lenient::{Obj, Text};
use super::{Event, FrameError, Origin};

/// What is read of every frame and bundle element before its body.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: Text,
    event: Text,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    /// Flattened messages (legacy connector 2.x) keep the method at the top.
    method: Text,
    common: Obj<Method>,
    // A bare message without a method is recognised by the fields it has.
    comment: Option<IgnoredAny>,
    content: Option<IgnoredAny>,
    delete_msg_ids_list: Option<IgnoredAny>,
    delete_user_ids_list: Option<IgnoredAny>,
    delete_msg_ids: Option<IgnoredAny>,
    delete_user_ids: Option<IgnoredAny>,
    gift_id: Option<IgnoredAny>,
    like_count: Option<IgnoredAny>,
    action_id: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Method {
    method: Text,
}

/// What a frame's kind means to liveguard.
#[derive(Debug, PartialEq)]
enum Kind {
    Chat,
    Delete,
    /// Anything else, by its short name (the `events_ignored_total` label).
    Other(String),
}

impl Kind {
    /// `WebcastChatMessage`, `CommentEvent`, `chat` and `comment` are chats; `imDelete`,
    /// `WebcastImDeleteMessage` and `ImDeleteEvent` deletions.
    fn of(name: &str) -> Kind {
        let short = short_name(name);
        match short.as_str() {
            "chat" | "comment" => Kind::Chat,
            "imdelete" | "delete" => Kind::Delete,
            _ => Kind::Other(short),
        }
    }
}

/// A kind's short, bounded name: `WebcastGiftMessage`, `GiftEvent` and `gift` are all `gift`.
fn short_name(name: &str) -> String {
    let n = name.strip_prefix("Webcast").unwrap_or(name);
    let n = n
        .strip_suffix("Message")
        .or_else(|| n.strip_suffix("Event"))
        .unwrap_or(n);
    // At most 40 characters of [a-z0-9._-]: a metric label, whatever the relay sends.
    let short: String = n
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(40)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if short.is_empty() {
        "other".into()
    } else {
        short
    }
}

/// Parses one frame with only a default room (no source name, no arrival time: a frame
/// without a message id gets a synthetic one from its writer, text and own time alone).
pub fn parse(frame: &str, default_room: &str) -> Result<Vec<Event>, FrameError> {
    parse_from(
        frame,
        &Origin {
            source: "",
            room: default_room,
            received_ms: 0,
        },
    )
}

/// Parses one frame from `origin`.
pub fn parse_from(frame: &str, origin: &Origin<'_>) -> Result<Vec<Event>, FrameError> {
    let env = envelope(frame)?;
    if let Some(list) = env.messages.filter(|m| m.get().starts_with('[')) {
        let items: Vec<&RawValue> =
            serde_json::from_str(list.get()).map_err(|e| FrameError::UnknownShape(e.to_string()))?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(one(item.get(), envelope(item.get())?, origin)?);
        }
        return Ok(out);
    }
    Ok(vec![one(frame, env, origin)?])
}

fn envelope(raw: &str) -> Result<Envelope<'_>, FrameError> {
    let not_object = || match serde_json::from_str::<IgnoredAny>(raw) {
        Ok(_) => FrameError::UnknownShape("not a JSON object".into()),
        Err(e) => FrameError::NotJson(e.to_string()),
    };
    // serde reads a struct from an array too (by position): only objects are events.
    if !is_object(raw) {
        return Err(not_object());
    }
    serde_json::from_str(raw).map_err(|e| match not_object() {
        FrameError::UnknownShape(_) => FrameError::UnknownShape(e.to_string()),
        not_json => not_json,
    })
}

fn is_object(raw: &str) -> bool {
    raw.trim_start().starts_with('{')
}

/// One event: `raw` is the message (a whole frame or a bundle element), `env` its envelope.
fn one(raw: &str, env: Envelope<'_>, origin: &Origin<'_>) -> Result<Event, FrameError> {
    // {event, data} (TikFinity, tik.tools), {type, data}, or {type: "comment", …} whose body
    // is the message itself (hand-rolled relays).
    if let Some(name) = env.event.0.or(env.kind.0) {
        let body = env.data.map_or(raw, RawValue::get);
        return read(Kind::of(&name), body, origin);
    }
    if let Some(method) = env.common.0.and_then(|c| c.method.0).or(env.method.0) {
        return read(Kind::of(&method), raw, origin);
    }
    let kind = if env.delete_msg_ids_list.is_some()
        || env.delete_user_ids_list.is_some()
        || env.delete_msg_ids.is_some()
        || env.delete_user_ids.is_some()
    {
        Kind::Delete
    } else if env.comment.is_some() || env.content.is_some() {
        Kind::Chat
    } else if env.gift_id.is_some() {
        Kind::Other("gift".into())
    } else if env.like_count.is_some() {
        Kind::Other("like".into())
    } else if env.action_id.is_some() {
        Kind::Other("member".into())
    } else {
        return Err(FrameError::UnknownShape(
            "no type, event, method, comment or deletion".into(),
        ));
    };
    read(kind, raw, origin)
}

/// Reads the body of a chat or a deletion; other kinds are not read at all.
fn read(kind: Kind, body: &str, origin: &Origin<'_>) -> Result<Event, FrameError> {
    if let Kind::Other(name) = kind {
        return Ok(Event::Ignored(name));
    }
    // The body of a chat or deletion is an object (serde would read an array by position).
    if !is_object(body) {
        return Err(FrameError::Missing("data".into()));
    }
    if kind == Kind::Chat {
        let r: chat::Record =
            serde_json::from_str(body).map_err(|e| FrameError::UnknownShape(format!("chat: {e}")))?;
        chat::comment(r, origin)
    } else {
        let r: delete::Record =
            serde_json::from_str(body).map_err(|e| FrameError::UnknownShape(format!("deletion: {e}")))?;
        delete::delete(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Comment, UserSignals};

    fn comment(ev: &[Event]) -> &Comment {
        match &ev[0] {
            Event::Comment(c) => c,
            other => panic!("want a comment, got {other:?}"),
        }
    }

    #[test]
    fn nested_shape() {
        let frame = r#"{"common":{"method":"WebcastChatMessage","msgId":"7300000000000000001","roomId":"7299999","createTime":"1764000000000"},
            "user":{"userId":"6506646277295882242","uniqueId":"gu12246","nickname":"Shîñ","followInfo":{"followerCount":803}},
            "comment":"the ring I got is cracked","userIdentity":{"isModeratorOfAnchor":false,"isFollowerOfAnchor":true,"isSubscriberOfAnchor":false}}"#;
        let ev = parse(frame, "fallback").expect("parses");
        let c = comment(&ev);
        assert_eq!(c.room, "7299999");
        assert_eq!(c.msg_id, "7300000000000000001");
        assert_eq!(c.ts_ms, 1_764_000_000_000);
        assert_eq!(c.user.handle.as_deref(), Some("gu12246"));
        assert_eq!(c.signals.is_follower, Some(true));
        assert_eq!(c.signals.is_moderator, Some(false));
        assert_eq!(c.signals.follower_count, Some(803));
    }

    #[test]
    fn legacy_flat_shape() {
        let frame = r#"{"comment":"6","userId":"6506646277295882242","secUid":"MS4w","uniqueId":"gu12246","nickname":"Shîñ",
            "followRole":1,"userBadges":[],"isModerator":true,"isNewGifter":false,"isSubscriber":false,"topGifterRank":null,
            "msgId":"7231234","createTime":"1683817200000","followInfo":{"followerCount":803}}"#;
        let ev = parse(frame, "room-a").expect("parses");
        let c = comment(&ev);
        assert_eq!(c.room, "room-a", "flat events carry no room: the source's room");
        assert_eq!(c.signals.is_moderator, Some(true));
        assert_eq!(c.signals.is_follower, Some(true));
        assert_eq!(c.text, "6");
    }

    #[test]
    fn bundle_with_chat_delete_and_others() {
        let frame = r#"{"timestamp":1764000000000,"messages":[
            {"type":"chat","data":{"msgId":1,"userId":2,"uniqueId":"a","comment":"hi"}},
            {"type":"like","data":{"likeCount":5}},
            {"type":"imDelete","data":{"deleteMsgIdsList":["1"],"deleteUserIdsList":[3]}}]}"#;
        let ev = parse(frame, "r").expect("parses");
        assert_eq!(ev.len(), 3);
        assert_eq!(comment(&ev).msg_id, "1");
        assert_eq!(ev[1], Event::Ignored("like".into()));
        assert_eq!(
            ev[2],
            Event::Delete {
                room: None,
                msg_ids: vec!["1".into()],
                user_ids: vec!["3".into()]
            }
        );
    }

    #[test]
    fn bare_im_delete() {
        let ev = parse(
            r#"{"common":{"roomId":"r9"},"deleteMsgIdsList":[11,12],"deleteUserIdsList":[]}"#,
            "r",
        )
        .expect("parses");
        assert_eq!(
            ev,
            vec![Event::Delete {
                room: Some("r9".into()),
                msg_ids: vec!["11".into(), "12".into()],
                user_ids: vec![]
            }]
        );
    }

    #[test]
    fn unknown_and_broken_frames() {
        assert_eq!(parse("{", "r").map_err(|e| e.reason()), Err("not_json"));
        assert_eq!(
            parse(r#"{"foo":1}"#, "r").map_err(|e| e.reason()),
            Err("unknown_shape")
        );
        assert_eq!(
            // No writer at all (a missing message id is no longer an error: it gets a synthetic one).
            parse(r#"{"comment":"x"}"#, "r").map_err(|e| e.reason()),
            Err("missing_field")
        );
    }

    #[test]
    fn envelopes_and_kinds() {
        let rows: &[(&str, Event)] = &[
            (
                r#"{"event":"gift","data":{"giftId":"x"}}"#,
                Event::Ignored("gift".into()),
            ),
            (
                r#"{"type":"WebcastLikeMessage","data":{}}"#,
                Event::Ignored("like".into()),
            ),
            (r#"{"type":"JoinEvent","data":{}}"#, Event::Ignored("join".into())),
            (
                r#"{"event":"roomInfo","roomId":"1"}"#,
                Event::Ignored("roominfo".into()),
            ),
            (
                r#"{"type":"tiktok.rawBytes","data":{"raw":""}}"#,
                Event::Ignored("tiktok.rawbytes".into()),
            ),
            (
                r#"{"type":"\u00e9\u00e9","data":{}}"#,
                Event::Ignored("other".into()),
            ),
            (
                r#"{"common":{"method":"WebcastMemberMessage"},"user":{}}"#,
                Event::Ignored("member".into()),
            ),
            (
                r#"{"method":"WebcastGiftMessage","giftId":"1"}"#,
                Event::Ignored("gift".into()),
            ),
            (
                r#"{"giftId":5655,"repeatCount":1,"userId":"1"}"#,
                Event::Ignored("gift".into()),
            ),
        ];
        for (frame, want) in rows {
            assert_eq!(
                parse(frame, "r").as_deref(),
                Ok(std::slice::from_ref(want)),
                "{frame}"
            );
        }
    }

    #[test]
    fn other_kinds_are_not_read_at_all() {
        // Bodies of any shape or type: a gift's is never parsed into fields.
        for data in [
            r#"[1,"x",{}]"#,
            r#""text""#,
            "7",
            r#"{"user":5,"common":[],"giftId":{"a":1}}"#,
        ] {
            let frame = format!(r#"{{"type":"gift","data":{data}}}"#);
            assert_eq!(
                parse(&frame, "r"),
                Ok(vec![Event::Ignored("gift".into())]),
                "{frame}"
            );
        }
    }

    #[test]
    fn odd_types_in_a_chat_cost_a_signal_not_the_frame() {
        let frame = r#"{"type":"chat","data":{"comment":"hi","userId":42,"msgId":"9","createTime":[1],
            "followInfo":"none","followRole":"x","isModerator":"maybe","userIdentity":7,"common":"?","user":true,
            "teamMemberLevel":{"a":1},"emotes":{"k":"v"}}}"#;
        let c = comment_of(frame);
        assert_eq!(
            (c.text.as_str(), c.user.id.as_str(), c.msg_id.as_str(), c.ts_ms),
            ("hi", "42", "9", 0)
        );
        assert_eq!(c.signals, UserSignals::default());
    }

    #[test]
    fn a_frame_is_rejected_only_for_the_comment_and_says_which_field() {
        let rows = [
            (
                r#"{"type":"chat","data":{"userId":"1","comment":{"text":"hi"}}}"#,
                "comment",
            ),
            (r#"{"type":"chat","data":{"userId":"1"}}"#, "comment"),
            (r#"{"type":"comment","user":null,"comment":"hi"}"#, "userId"),
            (
                r#"{"type":"imDelete","data":{"common":{"roomId":"1"}}}"#,
                "deleteMsgIds",
            ),
        ];
        for (frame, field) in rows {
            match parse(frame, "r") {
                Err(FrameError::Missing(f)) => assert_eq!(f, field, "{frame}"),
                other => panic!("{frame}: want missing {field}, got {other:?}"),
            }
        }
        assert_eq!(parse("[1,2]", "r").map_err(|e| e.reason()), Err("unknown_shape"));
        assert_eq!(
            parse(r#""chat""#, "r").map_err(|e| e.reason()),
            Err("unknown_shape")
        );
        assert_eq!(
            parse(r#"{"type":"chat","data":["hi","1"]}"#, "r"),
            Err(FrameError::Missing("data".into()))
        );
    }

    #[test]
    fn an_emote_only_chat_is_a_comment_with_empty_text() {
        let c = comment_of(
            r#"{"content":"","user":{"id":"1"},"common":{"msgId":"5"},"emotes":[{"emoteId":"e"}]}"#,
        );
        assert_eq!((c.text.as_str(), c.msg_id.as_str()), ("", "5"));
    }

    #[test]
    fn synthetic_ids_name_the_source_and_fall_back_to_arrival_time() {
        let frame = r#"{"event":"chat","data":{"comment":"hi","user":{"userId":"7","uniqueId":"amy"}}}"#;
        let at = |source, received_ms| {
            let o = Origin {
                source,
                room: "r",
                received_ms,
            };
            match &parse_from(frame, &o).expect("parses")[0] {
                Event::Comment(c) => c.msg_id.clone(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            at("a", 1_764_000_000_100),
            at("a", 1_764_000_000_900),
            "same second: same id"
        );
        assert_ne!(at("a", 1_764_000_000_100), at("a", 1_764_000_001_100));
        assert_ne!(at("a", 1_764_000_000_100), at("b", 1_764_000_000_100));
        assert_eq!(at("a", 1), synthetic_id("a", "7", "hi", 0));
    }

    #[test]
    fn gifter_from_the_badge_fan_level_and_follower_from_status() {
        let c = comment_of(
            r#"{"comment":"x","userId":"1","isNewGifter":true,"teamMemberLevel":3,"followRole":"2"}"#,
        );
        assert_eq!(
            (
                c.signals.is_gift_giver,
                c.signals.fans_club_level,
                c.signals.is_follower
            ),
            (Some(true), Some(3), Some(true)),
            "live_ng_ marks a user who has gifted"
        );
        let c = comment_of(
            r#"{"content":"x","user":{"id":"1","followInfo":{"followStatus":"1"},"fansClub":{"data":{"level":7}}}}"#,
        );
        assert_eq!(
            (c.signals.is_follower, c.signals.fans_club_level),
            (Some(true), Some(7))
        );
        let c = comment_of(r#"{"content":"x","user":{"id":"1"},"userIdentity":{"isFollowerOfAnchor":true}}"#);
        assert_eq!(
            (
                c.signals.is_follower,
                c.signals.is_moderator,
                c.signals.is_gift_giver
            ),
            (Some(true), Some(false), Some(false)),
            "proto3 JSON leaves out false flags"
        );
    }

    fn comment_of(frame: &str) -> Comment {
        match parse(frame, "r").expect("parses").remove(0) {
            Event::Comment(c) => c,
            other => panic!("want a comment, got {other:?}"),
        }
    }
}
