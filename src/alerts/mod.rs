//! Stage 6, alerts: a classified comment worth attention becomes an [`Alert`]. [`route`]
//! decides, once per comment, what it does to the alerts (a new one, a repeat counted on an
//! open one, a brigade grown, a follow-up on the buyer's ticket); [`hub`] numbers them and
//! queues them to the store, which commits before anyone hears of them.

pub mod hub;
pub mod route;

pub use crate::store::record::{
    room_user_key, wire, ActionRecord, Alert, AlertKind, AlertStatus, HubMsg, MsgKind, MAX_ALERT_BYTES,
    SAMPLE,
};
pub use hub::{Hub, TryUpdate};
