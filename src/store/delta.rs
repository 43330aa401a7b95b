//! What changed between two versions of an alert, as a set of its top-level JSON fields. The
//! store writes a version as the fields it changed (a small row, not the whole body), and an
//! `update` on the alert socket carries the fields changed since the last one sent.

use std::io::Write as _;

use super::record::Alert;
use crate::classify::Verdict;

macro_rules! fields {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// A top-level field of an alert's JSON (the verdict's fields are inline).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(missing_docs)] // each is the JSON field it names
        pub enum Field {
            $($variant),*
        }

        impl Field {
            /// Every field, in the body's order.
            pub const ALL: &'static [Field] = &[$(Field::$variant),*];

            /// Its name in the JSON.
            pub fn name(self) -> &'static str {
                match self {
                    $(Field::$variant => $name),*
                }
            }
        }
    };
}

fields! {
    Seq = "seq",
    Version = "version",
    Kind = "kind",
    Room = "room",
    User = "user",
    Users = "users",
    UserNames = "user_names",
    UsersTotal = "users_total",
    MsgIds = "msg_ids",
    MsgIdsTotal = "msg_ids_total",
    Text = "text",
    Class = "class",
    Topic = "topic",
    Score = "score",
    Evidence = "evidence",
    Action = "action",
    Script = "script",
    Lang = "lang",
    Purchase = "purchase",
    Source = "source",
    Product = "product",
    Count = "count",
    Buyer = "buyer",
    NewAccount = "new_account",
    Backlog = "backlog",
    Retracted = "retracted",
    Status = "status",
    Actions = "actions",
    TsMs = "ts_ms",
    ReceivedMs = "received_ms",
    ClassifiedMs = "classified_ms",
    UpdatedMs = "updated_ms",
    Rooms = "rooms",
    RoomsTotal = "rooms_total",
    Ticket = "ticket",
    Id = "id",
}

/// A set of [`Field`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields(u64);

impl Fields {
    /// No field.
    pub const NONE: Fields = Fields(0);

    /// Every field.
    pub fn all() -> Self {
        Field::ALL.iter().fold(Self::NONE, |m, &f| m.with(f))
    }

    /// This set and `f`.
    pub fn with(self, f: Field) -> Self {
        Self(self.0 | 1 << f as u32)
    }

    /// Whether `f` is in the set.
    pub fn has(self, f: Field) -> bool {
        self.0 & 1 << f as u32 != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The fields, in the body's order.
    pub fn iter(self) -> impl Iterator<Item = Field> {
        Field::ALL.iter().copied().filter(move |&f| self.has(f))
    }
}

impl std::ops::BitOr for Fields {
    type Output = Fields;

    fn bitor(self, o: Fields) -> Fields {
        Fields(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for Fields {
    fn bitor_assign(&mut self, o: Fields) {
        self.0 |= o.0;
    }
}

/// The fields whose values differ between `old` and `new`; never `seq` or `version`, which every
/// message names anyway.
pub fn changed(old: &Alert, new: &Alert) -> Fields {
    // Destructured without `..`: a field added to `Alert` or `Verdict` does not compile here
    // until it is compared.
    let Alert {
        seq: _,
        version: _,
        id,
        kind,
        room,
        user,
        users,
        user_names,
        users_total,
        msg_ids,
        msg_ids_total,
        text,
        verdict,
        product,
        count,
        buyer,
        new_account,
        backlog,
        retracted,
        status,
        actions,
        ts_ms,
        received_ms,
        classified_ms,
        updated_ms,
        rooms,
        rooms_total,
        ticket,
    } = new;
    let Verdict {
        class,
        topic,
        score,
        evidence,
        action,
        script,
        lang,
        purchase,
        source,
    } = verdict;
    let v = &old.verdict;
    let mut m = Fields::NONE;
    for (f, differs) in [
        (Field::Kind, *kind != old.kind),
        (Field::Room, *room != old.room),
        (Field::User, *user != old.user),
        (Field::Users, *users != old.users),
        (Field::UserNames, *user_names != old.user_names),
        (Field::UsersTotal, *users_total != old.users_total),
        (Field::MsgIds, *msg_ids != old.msg_ids),
        (Field::MsgIdsTotal, *msg_ids_total != old.msg_ids_total),
        (Field::Text, *text != old.text),
        (Field::Class, *class != v.class),
        (Field::Topic, *topic != v.topic),
        (Field::Score, score.to_bits() != v.score.to_bits()),
        (Field::Evidence, *evidence != v.evidence),
        (Field::Action, *action != v.action),
        (Field::Script, *script != v.script),
        (Field::Lang, *lang != v.lang),
        (Field::Purchase, *purchase != v.purchase),
        (Field::Source, *source != v.source),
        (Field::Product, *product != old.product),
        (Field::Count, *count != old.count),
        (Field::Buyer, *buyer != old.buyer),
        (Field::NewAccount, *new_account != old.new_account),
        (Field::Backlog, *backlog != old.backlog),
        (Field::Retracted, *retracted != old.retracted),
        (Field::Status, *status != old.status),
        (Field::Actions, *actions != old.actions),
        (Field::TsMs, *ts_ms != old.ts_ms),
        (Field::ReceivedMs, *received_ms != old.received_ms),
        (Field::ClassifiedMs, *classified_ms != old.classified_ms),
        (Field::UpdatedMs, *updated_ms != old.updated_ms),
        (Field::Rooms, *rooms != old.rooms),
        (Field::RoomsTotal, *rooms_total != old.rooms_total),
        (Field::Ticket, *ticket != old.ticket),
        (Field::Id, *id != old.id),
    ] {
        if differs {
            m = m.with(f);
        }
    }
    m
}

/// Appends `"name":value` for field `f` of `a`; a field the body leaves out when empty (rooms,
/// rooms_total, ticket) is `null`, so a client drops it.
fn write_field(out: &mut Vec<u8>, a: &Alert, f: Field) -> serde_json::Result<()> {
    use serde_json::to_writer as w;
    // Field names are plain ASCII: no escaping needed.
    let _ = write!(out, "\"{}\":", f.name());
    let v = &a.verdict;
    match f {
        Field::Seq => w(&mut *out, &a.seq),
        Field::Version => w(&mut *out, &a.version),
        Field::Kind => w(&mut *out, &a.kind),
        Field::Room => w(&mut *out, &a.room),
        Field::User => w(&mut *out, &a.user),
        Field::Users => w(&mut *out, &a.users),
        Field::UserNames => w(&mut *out, &a.user_names),
        Field::UsersTotal => w(&mut *out, &a.users_total),
        Field::MsgIds => w(&mut *out, &a.msg_ids),
        Field::MsgIdsTotal => w(&mut *out, &a.msg_ids_total),
        Field::Text => w(&mut *out, &a.text),
        Field::Class => w(&mut *out, &v.class),
        Field::Topic => w(&mut *out, &v.topic),
        Field::Score => w(&mut *out, &v.score),
        Field::Evidence => w(&mut *out, &v.evidence),
        Field::Action => w(&mut *out, &v.action),
        Field::Script => w(&mut *out, &v.script),
        Field::Lang => w(&mut *out, &v.lang),
        Field::Purchase => w(&mut *out, &v.purchase),
        Field::Source => w(&mut *out, &v.source),
        Field::Product => w(&mut *out, &a.product),
        Field::Count => w(&mut *out, &a.count),
        Field::Buyer => w(&mut *out, &a.buyer),
        Field::NewAccount => w(&mut *out, &a.new_account),
        Field::Backlog => w(&mut *out, &a.backlog),
        Field::Retracted => w(&mut *out, &a.retracted),
        Field::Status => w(&mut *out, &a.status),
        Field::Actions => w(&mut *out, &a.actions),
        Field::TsMs => w(&mut *out, &a.ts_ms),
        Field::ReceivedMs => w(&mut *out, &a.received_ms),
        Field::ClassifiedMs => w(&mut *out, &a.classified_ms),
        Field::UpdatedMs => w(&mut *out, &a.updated_ms),
        Field::Rooms if a.rooms.is_empty() => w(&mut *out, &()),
        Field::Rooms => w(&mut *out, &a.rooms),
        Field::RoomsTotal if a.rooms_total == 0 => w(&mut *out, &()),
        Field::RoomsTotal => w(&mut *out, &a.rooms_total),
        Field::Ticket => w(&mut *out, &a.ticket),
        Field::Id => w(&mut *out, &a.id),
    }
}

/// `{` + `head` + the fields `fields` of `a` + `}`.
fn object(a: &Alert, head: &str, fields: Fields) -> String {
    let mut out = Vec::with_capacity(64 + head.len());
    out.push(b'{');
    out.extend_from_slice(head.as_bytes());
    for f in fields.iter() {
        let mark = out.len();
        if mark > 1 {
            out.push(b',');
        }
        // Serializing a plain value into a Vec cannot fail; a field that somehow did is left
        // out rather than sent half written.
        if write_field(&mut out, a, f).is_err() {
            out.truncate(mark);
        }
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// The store's row for a version: `{"count":3,…}`, the fields in `fields` as they are in `a`.
pub fn row(a: &Alert, fields: Fields) -> String {
    object(a, "", fields)
}

/// The socket's `update` message: `{"type":"update","seq":N,"version":V,…}` with the fields in
/// `fields` as they are in `a`.
pub fn update(a: &Alert, fields: Fields) -> String {
    object(
        a,
        &format!(r#""type":"update","seq":{},"version":{}"#, a.seq, a.version),
        fields,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Evidence;
    use crate::ingest::User;
    use crate::store::record::{ActionRecord, AlertKind};
    use crate::taxonomy::{Action, Class, Lang, Topic};
    use crate::tickets::{Deadlines, Ticket};
    use serde_json::Value;

    fn full() -> Alert {
        let v = Verdict {
            class: Class::Complaint,
            topic: Some(Topic::Defect),
            score: 0.75,
            evidence: vec![Evidence {
                rule: std::sync::Arc::from("r"),
                start: 0,
                end: 3,
                text: "裂".into(),
                context: false,
            }],
            action: Action::InviteCostream,
            script: Some("s".into()),
            lang: Lang::Zh,
            purchase: true,
            source: Default::default(),
        };
        let user = User {
            id: "u".into(),
            handle: Some("h".into()),
            name: Some("n".into()),
        };
        let mut a = Alert::new(AlertKind::Comment, "r".into(), user, "裂了".into(), v, 5);
        a.seq = 9;
        a.version = 4;
        a.add_msg_id("m".into());
        a.product = Some("p".into());
        a.actions.push(ActionRecord {
            action: "invite".into(),
            by: "fm".into(),
            at_ms: 6,
            script: None,
            choice: None,
        });
        a.rooms = vec!["x".into()];
        a.rooms_total = 1;
        a.ticket = Some(Ticket::open(5, &Deadlines::default()));
        a
    }

    fn parse(s: &str) -> serde_json::Map<String, Value> {
        match serde_json::from_str(s) {
            Ok(Value::Object(m)) => m,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn every_field_is_named_and_written_as_the_body_writes_it() {
        let a = full();
        let body = parse(&serde_json::to_string(&a).expect("serializes"));
        let all = parse(&row(&a, Fields::all()));
        assert_eq!(
            body.keys().collect::<Vec<_>>(),
            all.keys().collect::<Vec<_>>(),
            "every body field is a Field, in the body's order"
        );
        assert_eq!(body, all);
    }

    #[test]
    fn changes_name_exactly_the_fields_that_changed_and_removed_ones_are_null() {
        let old = full();
        let mut new = old.clone();
        assert_eq!(changed(&old, &new), Fields::NONE);
        new.version += 1;
        new.count += 1;
        new.add_msg_id("m2".into());
        new.rooms.clear();
        new.rooms_total = 0;
        new.verdict.score = 0.5;
        let fields = changed(&old, &new);
        let names: Vec<&str> = fields.iter().map(Field::name).collect();
        assert_eq!(
            names,
            [
                "msg_ids",
                "msg_ids_total",
                "score",
                "count",
                "rooms",
                "rooms_total"
            ]
        );
        let msg = parse(&update(&new, fields));
        assert_eq!(msg["type"], "update");
        assert_eq!((msg["seq"].as_u64(), msg["version"].as_u64()), (Some(9), Some(5)));
        assert_eq!(msg["count"], 2);
        assert_eq!(msg["rooms"], Value::Null);
        assert_eq!(msg["rooms_total"], Value::Null);
        assert_eq!(msg.len(), 3 + names.len());
        assert_eq!(row(&new, Fields::NONE), "{}");
    }
}
