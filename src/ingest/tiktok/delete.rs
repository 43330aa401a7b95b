//! `WebcastImDeleteMessage` in every generation → [`Event::Delete`]: v2 nested and Euler v2
//! name the lists `deleteMsgIdsList` / `deleteUserIdsList`, v3 (connector 2.4, TikTokLive)
//! `deleteMsgIds` / `deleteUserIds`; ids are numbers or strings; the room is `common.roomId`
//! or, flattened, `roomId`.

use serde::Deserialize;

use super::lenient::{Ids, Obj, Text};
use crate::ingest::{Event, FrameError};

/// The fields of a deletion, in any generation.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Record {
    common: Obj<Header>,
    room_id: Text,
    delete_msg_ids_list: Ids,
    delete_user_ids_list: Ids,
    delete_msg_ids: Ids,
    delete_user_ids: Ids,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Header {
    room_id: Text,
}

/// The deletion a record carries; one that names no message and no user cannot be read.
pub fn delete(r: Record) -> Result<Event, FrameError> {
    let mut msg_ids = r.delete_msg_ids_list.0;
    msg_ids.extend(r.delete_msg_ids.0);
    let mut user_ids = r.delete_user_ids_list.0;
    user_ids.extend(r.delete_user_ids.0);
    if msg_ids.is_empty() && user_ids.is_empty() {
        return Err(FrameError::Missing("deleteMsgIds".into()));
    }
    let room = r.common.0.and_then(|c| c.room_id.id()).or(r.room_id.id());
    Ok(Event::Delete {
        room,
        msg_ids,
        user_ids,
    })
}
