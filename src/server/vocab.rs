//! The words the pages show for the daemon's types, in Chinese and English, and which console
//! action each alert state allows: one table per enum here, generated into JSON once and sent
//! to the console (`GET /api/console`) and the overlay (inlined in its page), so the two pages
//! and the Rust side cannot disagree.

use std::sync::LazyLock;

use serde_json::{json, Value};

use super::actions::ConsoleAction;
use crate::alerts::{AlertKind, AlertStatus};
use crate::taxonomy::{Action, Class, Topic};
use crate::tickets::{Due, Stage, TicketStatus};

/// An enum the pages name: every variant, its wire name and its two labels.
pub trait Labelled: Copy + 'static {
    /// Every variant, in the order the pages list them.
    const ALL: &'static [Self];
    /// The snake_case name on the wire.
    fn name(self) -> &'static str;
    /// (Chinese, English).
    fn labels(self) -> (&'static str, &'static str);
}

/// Implements [`Labelled`] from one row per variant. The `match` is exhaustive, so a new
/// variant does not compile until it has its labels, and `ALL` comes from the same rows.
macro_rules! labelled {
    ($ty:ident { $($variant:ident => $zh:literal, $en:literal;)* }) => {
        impl Labelled for $ty {
            const ALL: &'static [Self] = &[$($ty::$variant),*];
            fn name(self) -> &'static str {
                self.as_str()
            }
            fn labels(self) -> (&'static str, &'static str) {
                match self { $($ty::$variant => ($zh, $en)),* }
            }
        }
    };
}

// In the console, neutral alerts are the operational ones (a blind source).
labelled!(Class {
    Complaint => "真实投诉", "complaint";
    Attack => "恶意攻击", "attack";
    Neutral => "运营", "ops";
});

// Also what the overlay shows on air after "问题：" / "About: ": plain, never accusing.
labelled!(Topic {
    Defect => "质量问题", "quality problem";
    NotAsShown => "与直播不符", "not as shown";
    Authenticity => "真假疑问", "authenticity doubts";
    SizeFit => "尺寸不合适", "size and fit";
    Logistics => "物流问题", "delivery";
    AfterSales => "售后问题", "after-sales";
    RefundRequest => "要求退款", "refund request";
    Insult => "辱骂", "insult";
    Diversion => "引流", "diversion";
    Smear => "抹黑", "smear";
    Spam => "广告刷屏", "spam";
    Threat => "威胁", "threat";
    Hate => "仇恨言论", "hate";
});

labelled!(Action {
    InviteCostream => "建议连麦", "invite to co-stream";
    ScriptedReply => "建议话术回复", "scripted reply";
    PrivateResolution => "引导私下解决", "private resolution";
    MuteReview => "建议禁言审核", "mute & review";
    None => "—", "—";
});

labelled!(AlertKind {
    Comment => "评论", "comment";
    Split => "拆字", "split word";
    Repetition => "重复刷屏", "repetition";
    Flood => "刷屏", "flood";
    Brigade => "团伙刷屏", "brigade";
    Ops => "运维", "ops";
    Reported => "场控上报", "reported";
});

labelled!(AlertStatus {
    Open => "待处理", "open";
    Invited => "已邀请连麦", "invited on mic";
    Scripted => "已发话术", "script sent";
    Muted => "已禁言", "muted";
    Dismissed => "已忽略(误报)", "dismissed (false positive)";
    Resolved => "已解决", "resolved";
});

labelled!(TicketStatus {
    Open => "待回应", "open";
    Responding => "处理中", "responding";
    ResolvedRefund => "已解决 · 方案A 退款", "resolved: refund (方案A)";
    ResolvedExchange => "已解决 · 方案B 换货", "resolved: exchange (方案B)";
    ResolvedOther => "已解决 · 其他", "resolved: other";
    Dismissed => "已忽略", "dismissed";
});

labelled!(Due {
    Response => "首次回应", "first response";
    Resolution => "解决承诺", "resolution";
});

labelled!(Stage {
    Nearing => "即将到期", "due soon";
    Overdue => "已超时", "overdue";
});

labelled!(ConsoleAction {
    Invite => "邀请连麦", "Invite to co-stream";
    SendScript => "发送话术", "Send script";
    Mute => "禁言/标记", "Mute / flag";
    Dismiss => "误报忽略", "Dismiss (false positive)";
    Resolve => "结案", "Resolve";
});

/// `{"name", "zh", "en"}` for every variant of `T`, plus what `extra` adds to each.
fn list<T: Labelled>(extra: impl Fn(T) -> Value) -> Value {
    T::ALL
        .iter()
        .map(|&v| {
            let (zh, en) = v.labels();
            let mut row = json!({ "name": v.name(), "zh": zh, "en": en });
            if let (Value::Object(row), Value::Object(more)) = (&mut row, extra(v)) {
                row.extend(more);
            }
            row
        })
        .collect()
}

fn nothing<T>(_: T) -> Value {
    Value::Null
}

/// The vocabulary, built once: `classes`, `topics` (with their `class`), `actions` (what the
/// verdict suggests), `alert_kinds`, `alert_statuses`, `ticket_statuses` (with `active`),
/// `dues` and `stages` (of reminders), and `console_actions` with the [`Rule`] of each
/// (`from`, `classes`, `ticket`, `once`, `after_retraction`).
///
/// [`Rule`]: super::actions::Rule
pub fn vocabulary() -> &'static Value {
    static VOCAB: LazyLock<Value> = LazyLock::new(|| {
        json!({
            "classes": list::<Class>(nothing),
            "topics": list(|t: Topic| json!({ "class": t.class() })),
            "actions": list::<Action>(nothing),
            "alert_kinds": list::<AlertKind>(nothing),
            "alert_statuses": list::<AlertStatus>(nothing),
            "ticket_statuses": list(|s: TicketStatus| json!({ "active": s.is_active() })),
            "dues": list::<Due>(nothing),
            "stages": list::<Stage>(nothing),
            "console_actions": list(|a: ConsoleAction| json!(a.rule())),
        })
    });
    &VOCAB
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{ActionRecord, Alert};
    use crate::classify::Verdict;
    use crate::server::actions::{apply, ActionRequest};
    use crate::tickets::{Deadlines, Ticket};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use std::collections::HashSet;

    /// Every variant of `T`: both labels there, no two alike in one language, names unique.
    fn complete<T: Labelled + std::fmt::Debug>() {
        let (mut names, mut zhs, mut ens) = (HashSet::new(), HashSet::new(), HashSet::new());
        for &v in T::ALL {
            let (zh, en) = v.labels();
            assert!(!zh.trim().is_empty() && !en.trim().is_empty(), "{v:?}");
            assert!(names.insert(v.name()), "{v:?} named twice");
            assert!(zhs.insert(zh), "{v:?}: zh label {zh} twice");
            assert!(ens.insert(en), "{v:?}: en label {en} twice");
        }
    }

    #[test]
    fn every_variant_has_both_labels() {
        complete::<Class>();
        complete::<Topic>();
        complete::<Action>();
        complete::<AlertKind>();
        complete::<AlertStatus>();
        complete::<TicketStatus>();
        complete::<Due>();
        complete::<Stage>();
        complete::<ConsoleAction>();
        assert_eq!(<Topic as Labelled>::ALL, Topic::ALL);
        let v = vocabulary();
        for (group, n) in [
            ("classes", 3),
            ("topics", Topic::ALL.len()),
            ("actions", 5),
            ("alert_kinds", 7),
            ("alert_statuses", 6),
            ("ticket_statuses", 6),
            ("dues", 2),
            ("stages", 2),
            ("console_actions", 5),
        ] {
            let rows = v[group].as_array().expect(group);
            assert_eq!(rows.len(), n, "{group}");
            for r in rows {
                assert!(r["zh"].is_string() && r["en"].is_string(), "{group}: {r}");
            }
        }
        // Names are what serde writes into alerts, so a page finds an alert's label.
        assert_eq!(
            serde_json::to_value(Topic::NotAsShown).ok(),
            Some(v["topics"][1]["name"].clone())
        );
        assert_eq!(
            serde_json::to_value(TicketStatus::ResolvedRefund).ok(),
            Some(v["ticket_statuses"][2]["name"].clone())
        );
    }

    fn alert(
        class: Class,
        status: AlertStatus,
        retracted: bool,
        scripted: bool,
        ticket: Option<TicketStatus>,
    ) -> Alert {
        let v = Verdict {
            class,
            topic: None,
            score: 0.9,
            evidence: vec![],
            action: Action::None,
            script: None,
            lang: crate::taxonomy::Lang::Zh,
            purchase: true,
            source: Default::default(),
        };
        let mut a = Alert::new(
            AlertKind::Comment,
            "r".into(),
            Default::default(),
            "t".into(),
            v,
            0,
        );
        a.status = status;
        a.retracted = retracted;
        if scripted {
            a.actions.push(ActionRecord {
                action: "send_script".into(),
                by: "fm".into(),
                at_ms: 0,
                script: Some("s".into()),
                choice: None,
            });
        }
        a.ticket = ticket.map(|s| {
            let mut t = Ticket::open(0, &Deadlines::default());
            t.status = s;
            t
        });
        a
    }

    /// What the console decides from the vocabulary's row for `action` (as `allowed()` in
    /// `assets/vocab.js` does).
    fn console_allows(row: &Value, a: &Alert) -> bool {
        let has = |key: &str, v: Value| row[key].as_array().is_some_and(|l| l.contains(&v));
        let active = a.ticket.as_ref().is_some_and(|t| t.status.is_active());
        let name = row["name"].as_str().unwrap_or_default();
        (!a.retracted || row["after_retraction"] == true)
            && has("classes", json!(a.verdict.class))
            && (row["ticket"] != true || active)
            && !(row["once"] == true && a.actions.iter().any(|r| r.action == name))
            && has("from", json!(a.status))
    }

    /// Over every state an alert can be in, what the console enables is what the endpoint
    /// accepts, and what it refuses is a 409 or a 422, never a 400 or a 500.
    #[test]
    fn the_console_table_agrees_with_the_endpoint() {
        let rows = vocabulary()["console_actions"].as_array().expect("rows").clone();
        let tickets = [None]
            .into_iter()
            .chain(TicketStatus::ALL.iter().map(|&s| Some(s)));
        let mut checked = 0;
        for ticket in tickets {
            for &class in Class::ALL {
                for &status in AlertStatus::ALL {
                    for retracted in [false, true] {
                        for scripted in [false, true] {
                            let a = alert(class, status, retracted, scripted, ticket);
                            for row in &rows {
                                let name = row["name"].as_str().expect("name");
                                let req = ActionRequest {
                                    action: name.into(),
                                    by: None,
                                    script: Some("方案".into()),
                                    choice: (name == "resolve").then(|| "refund".into()),
                                };
                                let got = apply(&mut a.clone(), &req, "fm", 1)
                                    .map_or_else(|e| e.into_response().status(), |()| StatusCode::OK);
                                let want = console_allows(row, &a);
                                assert!(
                                    if want { got == StatusCode::OK } else { [StatusCode::CONFLICT, StatusCode::UNPROCESSABLE_ENTITY].contains(&got) },
                                    "{name} on {class:?}/{status:?} retracted={retracted} scripted={scripted} ticket={ticket:?}: console {want}, endpoint {got}"
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 7 * 3 * 6 * 2 * 2 * 5);
    }
}
