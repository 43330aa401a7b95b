//! `POST /api/report`: a floor manager reports a comment liveguard missed (seen on the
//! platform, typed or pasted into the console). It becomes an alert of kind `reported` (a
//! complaint gets its ticket and deadlines like any other) and a training label for the next
//! `liveguard train --feedback`.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::actions::{ActionError, MAX_BY_CHARS};
use super::AppState;
use crate::alerts::{Alert, AlertKind};
use crate::auth::Identity;
use crate::classify::Verdict;
use crate::ingest::User;
use crate::taxonomy::{Action, Class, Lang, Source, Topic};
use axum::Extension;

/// Longest reported comment (a live comment is far shorter).
pub const MAX_REPORT_CHARS: usize = 500;
/// Longest room or user id.
const MAX_ID_CHARS: usize = 128;

/// The request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// The room it was seen in.
    pub room: String,
    /// The comment, as written.
    pub text: String,
    /// `complaint` or `attack`.
    pub class: String,
    /// A topic of that class, when the floor manager knows it.
    #[serde(default)]
    pub topic: Option<String>,
    /// The writer's name or id, when known.
    #[serde(default)]
    pub user: Option<String>,
    /// Who reports it (default `console`).
    #[serde(default)]
    pub by: Option<String>,
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ActionError> {
    if value.trim().is_empty() {
        return Err(ActionError::BadRequest(format!("`{field}` is empty")));
    }
    if value.chars().count() > max {
        return Err(ActionError::BadRequest(format!(
            "`{field}` longer than {max} chars"
        )));
    }
    Ok(())
}

/// Checks a report and builds its alert (pure, for tests).
pub fn alert_for(req: &ReportRequest, by: &str, now_ms: u64) -> Result<Alert, ActionError> {
    check_len("room", &req.room, MAX_ID_CHARS)?;
    check_len("text", &req.text, MAX_REPORT_CHARS)?;
    let class = Class::parse(&req.class)
        .filter(|c| *c != Class::Neutral)
        .ok_or_else(|| {
            ActionError::BadRequest(format!(
                "`class` must be complaint or attack, not {:?}",
                req.class
            ))
        })?;
    let topic = match req.topic.as_deref() {
        None | Some("") => None,
        Some(t) => Some(Topic::parse(t).filter(|t| t.class() == class).ok_or_else(|| {
            ActionError::BadRequest(format!("`topic` {t:?} is not a {} topic", class.as_str()))
        })?),
    };
    check_len("by", by, MAX_BY_CHARS)?;
    let user_name = req.user.as_deref().map(str::trim).filter(|u| !u.is_empty());
    if let Some(u) = user_name {
        check_len("user", u, MAX_ID_CHARS)?;
    }
    let lang = if req.text.chars().any(crate::normalize::is_han) {
        Lang::Zh
    } else {
        Lang::En
    };
    let verdict = Verdict {
        class,
        topic,
        score: 1.0,
        evidence: Vec::new(),
        action: match class {
            Class::Complaint => Action::InviteCostream,
            _ => Action::PrivateResolution,
        },
        script: None,
        lang,
        purchase: class == Class::Complaint,
        source: Source::Floor,
    };
    let user = User {
        id: user_name.map_or_else(|| format!("reported-by:{by}"), str::to_string),
        handle: None,
        name: user_name.map(str::to_string),
    };
    Ok(Alert::new(
        AlertKind::Reported,
        req.room.trim().to_string(),
        user,
        req.text.clone(),
        verdict,
        now_ms,
    ))
}

/// The handler: answers `{"seq": N}` once the alert is queued for the store.
pub async fn post_report(
    State(st): State<AppState>,
    Extension(identity): Extension<Identity>,
    body: Result<Json<ReportRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ActionError> {
    let Json(req) = body.map_err(|e| super::actions::body_error(&st, &e))?;
    if !identity.may_see(req.room.trim()) {
        st.metrics.refused("room");
        return Err(ActionError::Forbidden(format!(
            "{} may not report in room {:?}",
            identity.name, req.room
        )));
    }
    let by = super::actions::actor(&identity, req.by.as_deref())?;
    let alert = alert_for(&req, &by, st.clock.now_ms())?;
    let topic = alert.verdict.topic;
    // Refused (503) rather than queued behind a full store: the floor can report it again.
    let seq = st
        .hub
        .try_publish(alert)
        .map_err(|e| ActionError::Unavailable(e.to_string()))?;
    st.metrics.console_action("report");
    st.metrics.verdict(topic, Source::Floor);
    tracing::info!(seq, room = %crate::logsafe::Esc(&req.room), class = %req.class, "missed comment reported");
    Ok(Json(serde_json::json!({ "seq": seq })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(class: &str, topic: Option<&str>, text: &str) -> ReportRequest {
        ReportRequest {
            room: "r1".into(),
            text: text.into(),
            class: class.into(),
            topic: topic.map(str::to_string),
            user: Some("amy".into()),
            by: None,
        }
    }

    #[test]
    fn a_report_becomes_a_reported_alert_with_a_ticket_class() {
        let a = alert_for(
            &req("complaint", Some("logistics"), "day 12 and nothing"),
            "console",
            5,
        )
        .expect("valid");
        assert_eq!(a.kind, AlertKind::Reported);
        assert_eq!(a.verdict.source, Source::Floor);
        assert!(a.wants_ticket());
        assert_eq!(a.user.id, "amy");
    }

    #[test]
    fn bad_reports_are_refused_with_the_field() {
        let cases = [
            (req("neutral", None, "x"), "`class`"),
            (req("complaint", Some("spam"), "x"), "`topic`"),
            (req("attack", None, " "), "`text`"),
            (req("attack", None, &"x".repeat(MAX_REPORT_CHARS + 1)), "`text`"),
        ];
        for (r, field) in cases {
            match alert_for(&r, "console", 1) {
                Err(ActionError::BadRequest(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
