//! TikTok LIVE events as relayed by tools built on `tiktok-live-connector`: the nested shape
//! (`common{msgId, roomId, createTime}`, `user{userId, uniqueId, nickname}`, `comment`,
//! `userIdentity{…}`), the legacy flat shape (`msgId`, `userId`, `uniqueId`, `nickname`,
//! `comment`, `isModerator`, `followRole`, …), typed events `{type, data}`, bundles
//! `{timestamp, messages: [{type, data}]}`, and `imDelete` (`deleteMsgIdsList`,
//! `deleteUserIdsList`). The shape is detected per frame.

use serde::Deserialize;

use super::{de_ids, de_opt_id, Comment, Event, FrameError, User, UserSignals};

/// Everything any of the shapes may carry; which fields are present decides the shape.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Any {
    messages: Option<Vec<Typed>>,
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Option<Box<Any>>,
    // nested chat
    common: Option<Common>,
    user: Option<NestedUser>,
    user_identity: Option<Identity>,
    // both chat shapes
    comment: Option<String>,
    content: Option<String>,
    // flat chat
    #[serde(deserialize_with = "de_opt_id")]
    msg_id: Option<String>,
    #[serde(deserialize_with = "de_opt_id")]
    user_id: Option<String>,
    unique_id: Option<String>,
    nickname: Option<String>,
    #[serde(deserialize_with = "de_opt_id")]
    create_time: Option<String>,
    #[serde(deserialize_with = "de_opt_id")]
    room_id: Option<String>,
    is_moderator: Option<bool>,
    is_subscriber: Option<bool>,
    is_new_gifter: Option<bool>,
    follow_role: Option<u32>,
    top_gifter_rank: Option<u32>,
    follow_info: Option<FollowInfo>,
    // imDelete
    #[serde(deserialize_with = "de_ids")]
    delete_msg_ids_list: Vec<String>,
    #[serde(deserialize_with = "de_ids")]
    delete_user_ids_list: Vec<String>,
}

#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Any,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Common {
    #[serde(deserialize_with = "de_opt_id")]
    msg_id: Option<String>,
    #[serde(deserialize_with = "de_opt_id")]
    room_id: Option<String>,
    #[serde(deserialize_with = "de_opt_id")]
    create_time: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct NestedUser {
    #[serde(deserialize_with = "de_opt_id")]
    user_id: Option<String>,
    unique_id: Option<String>,
    nickname: Option<String>,
    follow_info: Option<FollowInfo>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FollowInfo {
    follower_count: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Identity {
    is_moderator_of_anchor: Option<bool>,
    is_follower_of_anchor: Option<bool>,
    is_subscriber_of_anchor: Option<bool>,
    is_gift_giver_of_anchor: Option<bool>,
}

/// Parses one frame of the TikTok relay format.
pub fn parse(frame: &str, default_room: &str) -> Result<Vec<Event>, FrameError> {
    let any: Any = serde_json::from_str(frame).map_err(|e| FrameError::NotJson(e.to_string()))?;
    let mut out = Vec::new();
    if let Some(messages) = any.messages {
        for m in messages {
            out.push(typed(&m.kind, m.data, default_room)?);
        }
        return Ok(out);
    }
    let mut any = any;
    if let (Some(kind), Some(data)) = (any.kind.take(), any.data.take()) {
        return Ok(vec![typed(&kind, *data, default_room)?]);
    }
    Ok(vec![untyped(any, default_room)?])
}

fn typed(kind: &str, data: Any, default_room: &str) -> Result<Event, FrameError> {
    match kind {
        "chat" | "comment" | "WebcastChatMessage" => chat(data, default_room),
        "imDelete" | "WebcastImDeleteMessage" => Ok(delete(data)),
        other => Ok(Event::Ignored(other.to_string())),
    }
}

fn untyped(any: Any, default_room: &str) -> Result<Event, FrameError> {
    if !any.delete_msg_ids_list.is_empty() || !any.delete_user_ids_list.is_empty() {
        return Ok(delete(any));
    }
    if any.comment.is_some() || any.content.is_some() {
        return chat(any, default_room);
    }
    Err(FrameError::UnknownShape(
        "no comment, messages or deleteMsgIdsList".into(),
    ))
}

fn delete(d: Any) -> Event {
    let room = d.common.and_then(|c| c.room_id).or(d.room_id);
    Event::Delete {
        room,
        msg_ids: d.delete_msg_ids_list,
        user_ids: d.delete_user_ids_list,
    }
}

fn chat(d: Any, default_room: &str) -> Result<Event, FrameError> {
    let text = d
        .comment
        .or(d.content)
        .ok_or(FrameError::Missing("comment".into()))?;
    let common = d.common.unwrap_or_default();
    let nested = d.user.unwrap_or_default();
    let msg_id = common
        .msg_id
        .or(d.msg_id)
        .ok_or(FrameError::Missing("msgId".into()))?;
    let user_id = nested
        .user_id
        .or(d.user_id)
        .ok_or(FrameError::Missing("userId".into()))?;
    let id = d.user_identity.unwrap_or_default();
    let follower_count = nested
        .follow_info
        .or(d.follow_info)
        .and_then(|f| f.follower_count);
    let mut flags = Vec::new();
    if let Some(rank) = d.top_gifter_rank.filter(|r| *r > 0) {
        flags.push(format!("top_gifter_rank:{rank}"));
    }
    let signals = UserSignals {
        is_moderator: id.is_moderator_of_anchor.or(d.is_moderator),
        // followRole: 0 none, 1 follower, 2 friend.
        is_follower: id.is_follower_of_anchor.or(d.follow_role.map(|r| r >= 1)),
        is_subscriber: id.is_subscriber_of_anchor.or(d.is_subscriber),
        is_gift_giver: id.is_gift_giver_of_anchor.or(d.is_new_gifter.map(|n| !n)),
        follower_count,
        platform_flags: flags,
        ..UserSignals::default()
    };
    let ts_ms = common
        .create_time
        .or(d.create_time)
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(Event::Comment(Comment {
        platform: "tiktok".into(),
        room: common
            .room_id
            .or(d.room_id)
            .unwrap_or_else(|| default_room.to_string()),
        msg_id,
        ts_ms,
        user: User {
            id: user_id,
            handle: nested.unique_id.or(d.unique_id),
            name: nested.nickname.or(d.nickname),
        },
        text,
        signals,
        ..Comment::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            parse(r#"{"comment":"x","userId":"1"}"#, "r").map_err(|e| e.reason()),
            Err("missing_field")
        );
    }
}
