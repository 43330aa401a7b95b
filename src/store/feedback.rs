//! Labels from the floor: what floor managers did with alerts says what the comments were.
//! Invite and resolve confirm a complaint; a script confirms the alert's own class (the
//! complaint reply or the anti-diversion script); mute confirms an attack; dismiss marks a
//! false positive (neutral); a reported comment carries the class the manager gave it. Read by
//! `liveguard feedback export` and `liveguard train --feedback`.

use rusqlite::Connection;
use serde::Serialize;

use super::record::{Alert, AlertKind};
use super::{parse, StoreError};
use crate::taxonomy::{Class, Lang, Source, Topic};

/// One labelled comment from the floor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FloorLabel {
    /// The comment as written.
    pub text: String,
    /// What it was, by the floor's decision.
    pub label: Class,
    /// Its topic, when the decision says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<Topic>,
    /// The comment's language.
    pub lang: Lang,
    /// The decision: `invite`, `send_script`, `resolve`, `mute`, `dismiss` or `report`.
    pub action: String,
    /// Who decided.
    pub by: String,
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// The alert.
    pub alert: u64,
    /// The verdict the decision confirmed or corrected.
    pub verdict: Corrected,
}

/// The verdict a floor decision was about.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Corrected {
    /// Class liveguard gave.
    pub class: Class,
    /// Topic liveguard gave.
    pub topic: Option<Topic>,
    /// Who decided it.
    pub source: Source,
}

/// The label an alert's last decisive action gives, if any.
pub fn label_of(a: &Alert) -> Option<FloorLabel> {
    let v = &a.verdict;
    let own_topic = |c: Class| v.topic.filter(|t| t.class() == c);
    let (label, topic, action, by, at_ms) = if a.kind == AlertKind::Reported {
        (
            v.class,
            v.topic,
            "report".to_string(),
            a.user.id.clone(),
            a.classified_ms,
        )
    } else {
        let act = a.actions.iter().rev().find(|x| {
            matches!(
                x.action.as_str(),
                "invite" | "resolve" | "send_script" | "mute" | "dismiss"
            )
        })?;
        let label = match act.action.as_str() {
            "invite" | "resolve" => Class::Complaint,
            "mute" => Class::Attack,
            "dismiss" => Class::Neutral,
            _ => v.class,
        };
        if label == Class::Neutral && act.action != "dismiss" {
            return None;
        }
        (
            label,
            own_topic(label),
            act.action.clone(),
            act.by.clone(),
            act.at_ms,
        )
    };
    Some(FloorLabel {
        text: a.text.clone(),
        label,
        topic,
        lang: v.lang,
        action,
        by,
        at_ms,
        alert: a.seq,
        verdict: Corrected {
            class: v.class,
            topic: v.topic,
            source: v.source,
        },
    })
}

/// Every floor label from alerts changed since `since_ms`, oldest alert first. Ops alerts
/// (a silent firehose) say nothing about comments and are skipped.
pub fn floor_labels(conn: &Connection, since_ms: u64) -> Result<Vec<FloorLabel>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT seq, body FROM alerts
         WHERE updated_ms >= ?1 AND kind != 'ops' AND (status != 'open' OR kind = 'reported')
         ORDER BY seq",
    )?;
    let rows = stmt.query_map([since_ms as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, body) = row?;
        if let Some(l) = label_of(&parse(seq, &body)?) {
            out.push(l);
        }
    }
    Ok(out)
}
