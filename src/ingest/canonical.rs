//! liveguard's own event format, `liveguard.comment.v1` (and `liveguard.delete.v1`), as
//! documented in README "Event formats". Strict: a frame must name its type.

use serde::Deserialize;

use super::{de_id, de_ids, Comment, Event, FrameError, User, UserSignals};

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Room {
    #[serde(deserialize_with = "de_id")]
    id: String,
}

#[derive(Deserialize)]
struct CommentV1 {
    /// Read here too, so that a comment frame needs one pass (see [`parse`]).
    #[serde(rename = "type", default)]
    kind: Option<String>,
    platform: String,
    room: Room,
    #[serde(deserialize_with = "de_id")]
    msg_id: String,
    #[serde(default)]
    ts_ms: u64,
    user: User,
    text: String,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default, deserialize_with = "super::de_opt_id")]
    reply_to: Option<String>,
    #[serde(default)]
    product: Option<Product>,
    #[serde(default)]
    signals: UserSignals,
}

#[derive(Deserialize)]
struct Product {
    #[serde(default, deserialize_with = "super::de_opt_id")]
    id: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
struct DeleteV1 {
    #[serde(default)]
    room: Option<Room>,
    #[serde(default, deserialize_with = "de_ids")]
    msg_ids: Vec<String>,
    #[serde(default, deserialize_with = "de_ids")]
    user_ids: Vec<String>,
}

const COMMENT: &str = "liveguard.comment.v1";

fn comment(c: CommentV1) -> Event {
    Event::Comment(Comment {
        platform: c.platform,
        room: c.room.id,
        msg_id: c.msg_id,
        ts_ms: c.ts_ms,
        user: c.user,
        text: c.text,
        lang: c.lang,
        reply_to: c.reply_to,
        product: c.product.and_then(|p| p.title.or(p.id)),
        signals: c.signals,
    })
}

/// Parses one canonical frame.
pub fn parse(frame: &str) -> Result<Vec<Event>, FrameError> {
    // Nearly every frame is a comment: one pass. It succeeds with this type only where the
    // two passes below would (valid JSON, one `type`, the comment's fields), so anything else
    // takes them, and their error is the one reported.
    if let Ok(c) = serde_json::from_str::<CommentV1>(frame) {
        if c.kind.as_deref() == Some(COMMENT) {
            return Ok(vec![comment(c)]);
        }
    }
    let env: Envelope = serde_json::from_str(frame).map_err(|e| FrameError::NotJson(e.to_string()))?;
    match env.kind.as_deref() {
        Some(COMMENT) => {
            let c: CommentV1 = serde_json::from_str(frame).map_err(|e| super::shape_error(&e))?;
            Ok(vec![comment(c)])
        }
        Some("liveguard.delete.v1") => {
            let d: DeleteV1 = serde_json::from_str(frame).map_err(|e| super::shape_error(&e))?;
            Ok(vec![Event::Delete {
                room: d.room.map(|r| r.id),
                msg_ids: d.msg_ids,
                user_ids: d.user_ids,
            }])
        }
        Some(other) => Err(FrameError::UnknownShape(format!("type {other:?}"))),
        None => Err(FrameError::Missing("type".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_comment_parses() {
        let frame = r#"{"type":"liveguard.comment.v1","platform":"tiktok","room":{"id":"r1","title":"jade"},
            "msg_id":"m1","ts_ms":1764000000000,"user":{"id":"u1","handle":"amy","name":"Amy"},
            "text":"上次买的有裂","lang":"zh","reply_to":null,"product":{"id":"p9","title":"jade bangle"},
            "signals":{"is_moderator":false,"follower_count":12,"order_id":"o-1"}}"#;
        let ev = parse(frame).expect("parses");
        let Event::Comment(c) = &ev[0] else {
            panic!("a comment")
        };
        assert_eq!(
            (c.room.as_str(), c.msg_id.as_str(), c.user.display()),
            ("r1", "m1", "Amy")
        );
        assert_eq!(c.product.as_deref(), Some("jade bangle"));
        assert_eq!(c.signals.is_moderator, Some(false));
        assert_eq!(c.signals.is_follower, None, "absent means unknown");
        assert!(c.signals.buyer());
    }

    #[test]
    fn numeric_ids_become_strings() {
        let frame = r#"{"type":"liveguard.comment.v1","platform":"x","room":{"id":42},"msg_id":7,"user":{"id":9},"text":"hi"}"#;
        let Event::Comment(c) = &parse(frame).expect("parses")[0] else {
            panic!("a comment")
        };
        assert_eq!(
            (c.room.as_str(), c.msg_id.as_str(), c.user.id.as_str()),
            ("42", "7", "9")
        );
        let negative = r#"{"type":"liveguard.comment.v1","platform":"x","room":{"id":"r"},"msg_id":-7,"user":{"id":"u"},"text":"hi"}"#;
        let Event::Comment(c) = &parse(negative).expect("parses")[0] else {
            panic!("a comment")
        };
        assert_eq!(c.msg_id, "-7");
        for id in ["1.5", "true", "[1]", "{}"] {
            let frame = format!(
                r#"{{"type":"liveguard.comment.v1","platform":"x","room":{{"id":"r"}},"msg_id":{id},"user":{{"id":"u"}},"text":"hi"}}"#
            );
            assert_eq!(
                parse(&frame).map_err(|e| e.reason()),
                Err("unknown_shape"),
                "msg_id {id}"
            );
        }
    }

    #[test]
    fn delete_event() {
        let ev =
            parse(r#"{"type":"liveguard.delete.v1","room":{"id":"r1"},"msg_ids":["m1",2],"user_ids":[]}"#)
                .expect("parses");
        assert_eq!(
            ev,
            vec![Event::Delete {
                room: Some("r1".into()),
                msg_ids: vec!["m1".into(), "2".into()],
                user_ids: vec![]
            }]
        );
    }

    #[test]
    fn bad_frames_say_why() {
        assert_eq!(parse("not json").map_err(|e| e.reason()), Err("not_json"));
        assert_eq!(
            parse(r#"{"text":"x"}"#).map_err(|e| e.reason()),
            Err("missing_field")
        );
        assert_eq!(
            parse(r#"{"type":"other.v9"}"#).map_err(|e| e.reason()),
            Err("unknown_shape")
        );
        assert_eq!(
            parse(r#"{"type":"liveguard.comment.v1","text":"no room"}"#).map_err(|e| e.reason()),
            Err("missing_field"),
            "a comment without its required fields"
        );
        assert_eq!(
            parse(r#"{"type":"liveguard.comment.v1","platform":"x","room":{"id":"r"},"msg_id":"m","user":{"id":"u"},"text":5}"#)
                .map_err(|e| e.reason()),
            Err("unknown_shape"),
            "a field of the wrong type"
        );
        assert_eq!(
            parse(r#"{"type":"liveguard.comment.v1","platform":"x","room":{"id":"r"},"msg_id":"m","user":{"id":"u"},"text":"a","type":"x"}"#)
                .map_err(|e| e.reason()),
            Err("not_json"),
            "two types: the one-pass read must not pick one"
        );
        assert!(
            parse(r#"{"platform":"x","room":{"id":"r"},"msg_id":"m","user":{"id":"u"},"text":"a","type":"liveguard.comment.v1"}"#).is_ok(),
            "the type may come last"
        );
        let empty = |field: &str| {
            let mut v = serde_json::json!({"type":"liveguard.comment.v1","platform":"x","room":{"id":"r"},
                "msg_id":"m","user":{"id":"u"},"text":"hi"});
            match field {
                "msg_id" => v["msg_id"] = "".into(),
                "room" => v["room"]["id"] = " ".into(),
                _ => v["user"]["id"] = "".into(),
            }
            crate::ingest::parse_frame(crate::ingest::Format::Canonical, &v.to_string(), "d")
                .map_err(|e| e.to_string())
        };
        for field in ["msg_id", "room", "user.id"] {
            assert_eq!(empty(field), Err(format!("empty {field}")));
        }
    }
}
