//! A chat message of any generation → [`Comment`]. One lenient [`Record`] covers them all,
//! because the generations differ in where a field lives more than in what it means:
//!
//! | | text | message id, room, time | user id, handle | signals |
//! |---|---|---|---|---|
//! | v1 flat (connector 1.x, TikFinity) | `comment` | `msgId`, —, `createTime` | `userId`, `uniqueId` | `isModerator`, `followRole`, `isNewGifter`, `teamMemberLevel` |
//! | legacy flattening of v3 (connector 2.x) | `content` | `msgId`, `roomId`, `createTime` | `userId`, `uniqueId` | as v1, int64 as strings |
//! | v1 proto (Euler schema v1) | `comment` | `event.{msgId, createTime}` | `user.{userId, uniqueId}` | `userIdentity`, `user.followInfo` |
//! | v2 nested (connector 2.0–2.3, Euler v2) | `comment` | `common.{msgId, roomId, createTime}` | `user.{userId, uniqueId}` | `userIdentity`, `user.followInfo`, `user.fansClub` |
//! | v3 nested (connector 2.4, TikTokLive 7) | `content` | `common.…` | `user.{id, idStr, displayId}` | same |
//! | tik.tools | `comment` | — | `user.{userId, uniqueId}` | `user.{isModerator, followRole, …}` |
//! | hand-rolled | `comment` | `ts` | `user` (a name) | — |
//!
//! Only the text and some way to name the writer are required; a missing message id becomes a
//! stable synthetic one ([`synthetic_id`]).

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::lenient::{Flag, Int, Obj, Text, Words};
use crate::ingest::{Comment, Event, FrameError, Origin, User, UserSignals};

/// Every field liveguard reads from a chat, at the top level or inside `user` (the flat
/// generations put user fields at the top, tik.tools inside `user`, with the same names).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Record {
    comment: Words,
    content: Words,
    /// v2/v3 message header.
    common: Obj<Header>,
    /// v1 proto message header (Euler schema v1).
    event: Obj<Header>,
    msg_id: Text,
    room_id: Text,
    create_time: Int,
    /// Hand-rolled relays: the time of the comment.
    ts: Int,
    user: UserField,
    user_identity: Obj<Identity>,
    user_id: Text,
    id: Text,
    id_str: Text,
    unique_id: Text,
    display_id: Text,
    nickname: Text,
    follow_role: Int,
    follow_info: Obj<FollowInfo>,
    is_moderator: Flag,
    is_subscriber: Flag,
    /// Set by the connectors from a `live_ng_` badge, which marks a user who has gifted.
    is_new_gifter: Flag,
    team_member_level: Int,
    top_gifter_rank: Int,
    fans_club: Obj<FansClub>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Header {
    msg_id: Text,
    room_id: Text,
    create_time: Int,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FollowInfo {
    follower_count: Int,
    /// 0 none, 1 follows, 2 friends.
    follow_status: Int,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FansClub {
    data: Obj<FansClubData>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FansClubData {
    level: Int,
}

/// `userIdentity`: proto3 JSON leaves out false values, so inside a present object an absent
/// flag is false, not unknown.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Identity {
    is_moderator_of_anchor: Flag,
    is_follower_of_anchor: Flag,
    is_subscriber_of_anchor: Flag,
    is_gift_giver_of_anchor: Flag,
}

/// `user`: an object (nested generations, tik.tools) or a bare name (hand-rolled relays).
#[derive(Default)]
enum UserField {
    #[default]
    Absent,
    Object(Box<Record>),
    Name(String),
}

struct UserVisitor;

impl<'de> Visitor<'de> for UserVisitor {
    type Value = UserField;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<UserField, A::Error> {
        Record::deserialize(de::value::MapAccessDeserializer::new(map))
            .map(|r| UserField::Object(Box::new(r)))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<UserField, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_str<E>(self, v: &str) -> Result<UserField, E> {
        Ok(if v.is_empty() {
            UserField::Absent
        } else {
            UserField::Name(v.to_string())
        })
    }
    fn visit_u64<E>(self, v: u64) -> Result<UserField, E> {
        Ok(UserField::Name(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<UserField, E> {
        Ok(UserField::Name(v.to_string()))
    }
    fn visit_f64<E>(self, _: f64) -> Result<UserField, E> {
        Ok(UserField::Absent)
    }
    fn visit_bool<E>(self, _: bool) -> Result<UserField, E> {
        Ok(UserField::Absent)
    }
    fn visit_unit<E>(self) -> Result<UserField, E> {
        Ok(UserField::Absent)
    }
    fn visit_none<E>(self) -> Result<UserField, E> {
        Ok(UserField::Absent)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UserField, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(UserField::Absent)
    }
}

impl<'de> Deserialize<'de> for UserField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UserVisitor)
    }
}

/// Builds the comment a chat record carries; `Missing` names the field that could not be read.
pub fn comment(r: Record, origin: &Origin<'_>) -> Result<Event, FrameError> {
    // A non-empty one of the two wins over an empty one.
    let text = match (r.comment.0, r.content.0) {
        (Some(c), Some(t)) if c.is_empty() => t,
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => return Err(FrameError::Missing("comment".into())),
    };
    let header = r.common.0.or(r.event.0).unwrap_or_default();
    let (nested, name_only) = match r.user {
        UserField::Object(u) => (Some(*u), None),
        UserField::Name(n) => (None, Some(n)),
        UserField::Absent => (None, None),
    };
    let u = nested.unwrap_or_default();
    let handle = u
        .unique_id
        .0
        .or(u.display_id.0)
        .or(r.unique_id.0)
        .or(name_only.clone());
    let user_id = u
        .user_id
        .id()
        .or(u.id_str.id())
        .or(u.id.id())
        .or(r.user_id.id())
        .or(r.id_str.id())
        .or(name_only)
        .or(handle.clone())
        .ok_or(FrameError::Missing("userId".into()))?;
    let name = u.nickname.0.or(r.nickname.0);
    // TikTok's createTime is ms in every generation; a hand-rolled `ts` may be seconds.
    let ts_ms = header
        .create_time
        .0
        .or(r.create_time.0)
        .or(r.ts.0.map(to_ms))
        .unwrap_or(0);
    let msg_id = match header.msg_id.id().or(r.msg_id.id()) {
        Some(id) => id,
        None => {
            // No time in the frame: the second it arrived, so a relay's double send within
            // a second collapses while a repeat a few seconds later stays a repeat.
            let time = if ts_ms > 0 {
                ts_ms
            } else {
                origin.received_ms / 1000 * 1000
            };
            synthetic_id(origin.source, &user_id, &text, time)
        }
    };
    let room = header
        .room_id
        .id()
        .or(r.room_id.id())
        .unwrap_or_else(|| origin.room.to_string());
    let identity = r.user_identity.0;
    let follow = u.follow_info.0.or(r.follow_info.0).unwrap_or_default();
    let mut flags = Vec::new();
    if let Some(rank) = u.top_gifter_rank.0.or(r.top_gifter_rank.0).filter(|r| *r > 0) {
        flags.push(format!("top_gifter_rank:{rank}"));
    }
    let fan_level = u.team_member_level.0.or(r.team_member_level.0).or(u
        .fans_club
        .0
        .and_then(|f| f.data.0)
        .and_then(|d| d.level.0));
    let signals = UserSignals {
        is_moderator: identity
            .as_ref()
            .map(|i| i.is_moderator_of_anchor.0.unwrap_or(false))
            .or(u.is_moderator.0)
            .or(r.is_moderator.0),
        is_follower: identity
            .as_ref()
            .map(|i| i.is_follower_of_anchor.0.unwrap_or(false))
            .or(u.follow_role.0.or(r.follow_role.0).map(|s| s >= 1))
            .or(follow.follow_status.0.map(|s| s >= 1)),
        is_subscriber: identity
            .as_ref()
            .map(|i| i.is_subscriber_of_anchor.0.unwrap_or(false))
            .or(u.is_subscriber.0)
            .or(r.is_subscriber.0),
        is_gift_giver: identity
            .as_ref()
            .map(|i| i.is_gift_giver_of_anchor.0.unwrap_or(false))
            .or(u.is_new_gifter.0)
            .or(r.is_new_gifter.0),
        follower_count: follow.follower_count.0,
        fans_club_level: fan_level.map(|l| u32::try_from(l).unwrap_or(u32::MAX)),
        platform_flags: flags,
        ..UserSignals::default()
    };
    Ok(Event::Comment(Comment {
        platform: "tiktok".into(),
        room,
        msg_id,
        ts_ms,
        user: User {
            id: user_id,
            handle,
            name,
        },
        text,
        signals,
        ..Comment::default()
    }))
}

/// Milliseconds from a hand-rolled relay's `ts`: anything below 10^11 (a date in 1973 as ms)
/// is taken for seconds.
fn to_ms(t: u64) -> u64 {
    if t > 0 && t < 100_000_000_000 {
        t.saturating_mul(1000)
    } else {
        t
    }
}

/// A message id for a frame without one: a hash of where it came from, who wrote what, and
/// when, so the same frame sent twice gets the same id (and de-duplication still works) and
/// the id stays the same across restarts. FNV-1a, 64 bits, fields separated by 0x1f.
pub fn synthetic_id(source: &str, user: &str, text: &str, time_ms: u64) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let time = time_ms.to_string();
    for part in [source, user, text, time.as_str()] {
        for b in part.bytes().chain(std::iter::once(0x1f)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("syn-{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_ids_are_stable_and_distinct() {
        let a = synthetic_id("tikfinity", "u1", "hi", 1_764_000_000_000);
        assert_eq!(a, synthetic_id("tikfinity", "u1", "hi", 1_764_000_000_000));
        assert!(a.starts_with("syn-") && a.len() == 20, "{a}");
        for other in [
            synthetic_id("other", "u1", "hi", 1_764_000_000_000),
            synthetic_id("tikfinity", "u2", "hi", 1_764_000_000_000),
            synthetic_id("tikfinity", "u1", "hi!", 1_764_000_000_000),
            synthetic_id("tikfinity", "u1", "hi", 1_764_000_001_000),
            // The separator keeps field boundaries: "u1"+"hi" is not "u"+"1hi".
            synthetic_id("tikfinity", "u", "1hi", 1_764_000_000_000),
        ] {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn seconds_become_milliseconds() {
        assert_eq!(to_ms(1_764_000_000), 1_764_000_000_000);
        assert_eq!(to_ms(1_764_000_000_123), 1_764_000_000_123);
        assert_eq!(to_ms(0), 0);
    }
}
