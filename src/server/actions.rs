//! `POST /api/alerts/{seq}/actions`: what a floor manager did with an alert (invite to
//! co-stream, send a script, mute, dismiss as a false positive). Validated, applied atomically
//! in the hub (two consoles cannot both act on one alert), broadcast to every console as an
//! `update`, and — for invites and scripts — pushed to the room's overlay as a prompt.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::alerts::{ActionRecord, Alert, AlertStatus, TryUpdate};
use crate::auth::Identity;
use crate::logsafe::Esc;
use crate::metrics::Metrics;
use crate::taxonomy::{Class, Lang, Topic};
use crate::tickets::TicketStatus;
use axum::Extension;

/// Longest script a console may send.
pub const MAX_SCRIPT_CHARS: usize = 2_000;
/// Longest operator name.
pub const MAX_BY_CHARS: usize = 64;

/// The request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// `invite`, `send_script`, `mute`, `dismiss` or `resolve` (a complaint's ticket).
    pub action: String,
    /// Operator name (default `console`).
    #[serde(default)]
    pub by: Option<String>,
    /// The script text, for `send_script`.
    #[serde(default)]
    pub script: Option<String>,
    /// Which script, for `send_script`: `refund`, `exchange`, `explain`, `private`, `suggested`;
    /// the outcome, for `resolve`: `refund` (方案A), `exchange` (方案B) or `other`.
    #[serde(default)]
    pub choice: Option<String>,
}

/// A refused action, as an HTTP answer with `{"error": "..."}`.
#[derive(Debug, PartialEq, Eq)]
pub enum ActionError {
    /// 400: the request is malformed.
    BadRequest(String),
    /// 404: no such alert.
    NotFound(u64),
    /// 503: the store cannot take the change now (why).
    Unavailable(String),
    /// 409: someone already acted, or it was retracted.
    Conflict(String),
    /// 422: the action does not fit the alert (inviting an attacker on mic).
    Unfit(String),
    /// 403: the caller may not act on this room.
    Forbidden(String),
}

impl IntoResponse for ActionError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Self::NotFound(seq) => (StatusCode::NOT_FOUND, format!("no alert {seq}")),
            Self::Unavailable(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
            Self::Conflict(m) => (StatusCode::CONFLICT, m),
            Self::Unfit(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, m),
        };
        (code, Json(serde_json::json!({ "error": msg }))).into_response()
    }
}

/// A prompt on the streamer's overlay. Never carries the raw comment: an invite names the
/// user and the issue in a few words; a script is what the floor manager chose to send.
#[derive(Debug, Clone, Serialize)]
pub struct Prompt {
    /// Room.
    pub room: String,
    /// `invite` or `script`.
    pub kind: &'static str,
    /// The alert it came from.
    pub seq: u64,
    /// Display name of the user.
    pub user: String,
    /// The complaint topic (the overlay shows it in a few words).
    pub topic: Option<Topic>,
    /// Language of the comment.
    pub lang: Lang,
    /// What to show.
    pub text: String,
    /// When, ms since the epoch.
    pub at_ms: u64,
}

/// What a floor manager can do with an alert from the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleAction {
    /// Invite the buyer to co-stream.
    Invite,
    /// Send a script (copied for the streamer, shown on the overlay).
    SendScript,
    /// Mute or flag the user.
    Mute,
    /// Dismiss as a false positive.
    Dismiss,
    /// Resolve the complaint's ticket.
    Resolve,
}

/// When a console action is allowed. [`ConsoleAction::check`] enforces these rows and
/// `GET /api/console` hands them to the console, which enables its buttons by them: one
/// table, so the buttons and the endpoint cannot drift.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rule {
    /// The alert statuses it acts from (409 from any other).
    pub from: &'static [AlertStatus],
    /// The classes it fits (422 for another).
    pub classes: &'static [Class],
    /// Needs a ticket (422 without one) that is still active (409 once closed).
    pub ticket: bool,
    /// At most once per alert (409 the second time).
    pub once: bool,
    /// Still allowed after the platform deleted the comment (409 otherwise).
    pub after_retraction: bool,
    /// The 422's reason.
    #[serde(skip)]
    pub unfit: &'static str,
}

const EVERY_CLASS: &[Class] = &[Class::Complaint, Class::Attack, Class::Neutral];
const EVERY_STATUS: &[AlertStatus] = &[
    AlertStatus::Open,
    AlertStatus::Invited,
    AlertStatus::Scripted,
    AlertStatus::Muted,
    AlertStatus::Dismissed,
    AlertStatus::Resolved,
];

impl ConsoleAction {
    /// The action named `s` (as in a request), if any.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "invite" => Self::Invite,
            "send_script" => Self::SendScript,
            "mute" => Self::Mute,
            "dismiss" => Self::Dismiss,
            "resolve" => Self::Resolve,
            _ => return None,
        })
    }

    /// The snake_case name (as requested and recorded).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::SendScript => "send_script",
            Self::Mute => "mute",
            Self::Dismiss => "dismiss",
            Self::Resolve => "resolve",
        }
    }

    /// The SOP, one row per action.
    pub fn rule(self) -> Rule {
        use AlertStatus::{Invited, Open, Scripted};
        let r = Rule {
            from: &[Open],
            classes: EVERY_CLASS,
            ticket: false,
            once: false,
            after_retraction: false,
            unfit: "",
        };
        match self {
            Self::Invite => Rule {
                classes: &[Class::Complaint],
                unfit: "only genuine complaints are invited on mic",
                ..r
            },
            Self::SendScript => Rule {
                from: &[Open, Invited, Scripted],
                once: true,
                ..r
            },
            Self::Mute => Rule {
                from: &[Open, Scripted],
                classes: &[Class::Attack, Class::Neutral],
                unfit: "a genuine complaint is answered, not muted",
                ..r
            },
            Self::Dismiss => r,
            // Resolving works even after a deletion: the buyer still waits for the fix.
            Self::Resolve => Rule {
                from: EVERY_STATUS,
                ticket: true,
                after_retraction: true,
                unfit: "only complaints have tickets to resolve",
                ..r
            },
        }
    }

    /// Whether `alert`, as it stands, allows this action: the one check behind the endpoint
    /// (see [`Rule`]).
    pub fn check(self, alert: &Alert) -> Result<(), ActionError> {
        let rule = self.rule();
        let already = || {
            alert.actions.last().map_or_else(
                || "already handled".to_string(),
                |r| format!("already handled: {} by {}", r.action, r.by),
            )
        };
        if alert.retracted && !rule.after_retraction {
            return Err(ActionError::Conflict("the platform deleted this comment".into()));
        }
        if !rule.classes.contains(&alert.verdict.class) {
            return Err(ActionError::Unfit(rule.unfit.into()));
        }
        if rule.ticket {
            let Some(t) = &alert.ticket else {
                return Err(ActionError::Unfit(rule.unfit.into()));
            };
            if !t.status.is_active() {
                return Err(ActionError::Conflict(format!(
                    "ticket already {}",
                    t.status.as_str()
                )));
            }
        }
        if rule.once && alert.actions.iter().any(|a| a.action == self.as_str()) {
            return Err(ActionError::Conflict(already()));
        }
        if !rule.from.contains(&alert.status) {
            return Err(ActionError::Conflict(already()));
        }
        Ok(())
    }
}

/// Checks `req` against `alert` and applies it. Pure, so the rules are testable. A malformed
/// request is refused (400) before the alert's state is looked at.
pub fn apply(alert: &mut Alert, req: &ActionRequest, by: &str, now_ms: u64) -> Result<(), ActionError> {
    let Some(action) = ConsoleAction::parse(&req.action) else {
        return Err(ActionError::BadRequest(format!(
            "unknown action {:?}",
            req.action
        )));
    };
    let (script, choice) = match action {
        ConsoleAction::SendScript => {
            let text = req.script.as_deref().map(str::trim).unwrap_or("");
            if text.is_empty() {
                return Err(ActionError::BadRequest(
                    "send_script needs a non-empty script".into(),
                ));
            }
            if text.chars().count() > MAX_SCRIPT_CHARS {
                return Err(ActionError::BadRequest(format!(
                    "script longer than {MAX_SCRIPT_CHARS} chars"
                )));
            }
            let choice = req.choice.as_deref().unwrap_or("suggested");
            if !matches!(
                choice,
                "refund" | "exchange" | "explain" | "private" | "suggested"
            ) {
                return Err(ActionError::BadRequest(format!(
                    "unknown script choice {choice:?}"
                )));
            }
            (Some(text.to_string()), Some(choice.to_string()))
        }
        ConsoleAction::Resolve => {
            let outcome = req.choice.as_deref().unwrap_or("");
            if TicketStatus::resolved(outcome).is_none() {
                return Err(ActionError::BadRequest(format!(
                    "resolve needs choice \"refund\", \"exchange\" or \"other\", not {outcome:?}"
                )));
            }
            (None, Some(outcome.to_string()))
        }
        ConsoleAction::Invite | ConsoleAction::Mute | ConsoleAction::Dismiss => (None, None),
    };
    action.check(alert)?;
    let status = match action {
        ConsoleAction::Invite => AlertStatus::Invited,
        // A script after an invite keeps the alert invited.
        ConsoleAction::SendScript if alert.status == AlertStatus::Invited => AlertStatus::Invited,
        ConsoleAction::SendScript => AlertStatus::Scripted,
        ConsoleAction::Mute => AlertStatus::Muted,
        ConsoleAction::Dismiss => AlertStatus::Dismissed,
        ConsoleAction::Resolve => AlertStatus::Resolved,
    };
    if let Some(t) = &mut alert.ticket {
        match status {
            AlertStatus::Invited | AlertStatus::Scripted => t.respond(now_ms),
            AlertStatus::Dismissed => t.close(TicketStatus::Dismissed, now_ms),
            AlertStatus::Resolved => {
                if let Some(closed) = choice.as_deref().and_then(TicketStatus::resolved) {
                    t.close(closed, now_ms);
                }
            }
            AlertStatus::Open | AlertStatus::Muted => {}
        }
    }
    alert.status = status;
    alert.actions.push(ActionRecord {
        action: action.as_str().to_string(),
        by: by.to_string(),
        at_ms: now_ms,
        script,
        choice,
    });
    Ok(())
}

/// Who an action is attributed to: the token's name. Only in protected mode (no tokens,
/// loopback only: the local operator) does the body's `by` label it.
pub fn actor(identity: &Identity, by: Option<&str>) -> Result<String, ActionError> {
    if identity.token {
        return Ok(identity.name.to_string());
    }
    let by = by.map(str::trim).filter(|b| !b.is_empty()).unwrap_or("console");
    if by.chars().count() > MAX_BY_CHARS {
        return Err(ActionError::BadRequest(format!(
            "`by` longer than {MAX_BY_CHARS} chars"
        )));
    }
    Ok(by.to_string())
}

/// Counts a body axum refused for its size.
pub fn body_error(st: &AppState, e: &JsonRejection) -> ActionError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        st.metrics.refused("body");
    }
    ActionError::BadRequest(e.body_text())
}

/// What [`RemoteActions::act`] resolves to.
pub type RemoteAnswer<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Arc<Alert>, TryUpdate<ActionError>>> + Send + 'a>,
>;

/// Where a console action on a copied alert goes to be applied: the alert's owner (a console
/// gateway over the bus implements it). Answers as a local change would.
pub trait RemoteActions: Send + Sync + std::fmt::Debug {
    /// Applies `req` (by `by`, at `now_ms`) to `alert`, a local copy, at its owner.
    fn act<'a>(
        &'a self,
        alert: &'a Alert,
        req: &'a ActionRequest,
        by: &'a str,
        now_ms: u64,
    ) -> RemoteAnswer<'a>;
}

/// [`post_action`] on a gateway: the room check here, the change at the alert's owner.
async fn remote_action(
    st: &AppState,
    remote: &dyn RemoteActions,
    seq: u64,
    req: &ActionRequest,
    by: &str,
    identity: &Identity,
    now: u64,
) -> Result<Arc<Alert>, TryUpdate<ActionError>> {
    let hub = st.hub.clone();
    let copy = tokio::task::spawn_blocking(move || hub.get(seq))
        .await
        .map_err(|e| TryUpdate::Unavailable(e.to_string()))?
        .map_err(|e| TryUpdate::Unavailable(e.to_string()))?
        .ok_or(TryUpdate::NotFound)?;
    if !identity.may_see(&copy.room) {
        return Err(TryUpdate::Refused(ActionError::Forbidden(format!(
            "{} may not act in room {:?}",
            identity.name, copy.room
        ))));
    }
    remote.act(&copy, req, by, now).await
}

/// The handler.
pub async fn post_action(
    State(st): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(seq): Path<u64>,
    body: Result<Json<ActionRequest>, JsonRejection>,
) -> Result<Json<Arc<Alert>>, ActionError> {
    let Json(req) = body.map_err(|e| body_error(&st, &e))?;
    let by = actor(&identity, req.by.as_deref())?;
    let now = st.clock.now_ms();
    let (r, who, id) = (req.clone(), by.clone(), identity.clone());
    let done = match &st.remote {
        // A gateway's copy: the owner applies it.
        Some(remote) => remote_action(&st, remote.as_ref(), seq, &req, &by, &identity, now).await,
        None => {
            st.hub
                .try_update(seq, now, move |a| {
                    if !id.may_see(&a.room) {
                        return Err(ActionError::Forbidden(format!(
                            "{} may not act in room {:?}",
                            id.name, a.room
                        )));
                    }
                    apply(a, &r, &who, now)
                })
                .await
        }
    };
    let alert = match done {
        Ok(a) => a,
        Err(TryUpdate::NotFound) => return Err(ActionError::NotFound(seq)),
        Err(TryUpdate::Refused(e)) => {
            if matches!(e, ActionError::Forbidden(_)) {
                st.metrics.refused("room");
            }
            return Err(e);
        }
        Err(TryUpdate::Unavailable(why)) => return Err(ActionError::Unavailable(why)),
    };
    st.metrics.console_action(&req.action);
    tracing::info!(seq, room = %Esc(&alert.room), user = %Esc(&alert.user.id), action = %Esc(&req.action), by = %Esc(&by), "console action");
    if req.action == "dismiss" {
        // The feedback ops use to fix rules: which rules fired on a false positive (context
        // such as a purchase word decided nothing).
        let rules: Vec<&str> = alert
            .verdict
            .evidence
            .iter()
            .filter(|e| !e.context)
            .map(|e| &*e.rule)
            .collect();
        for r in &rules {
            st.metrics.dismissed(r);
        }
        tracing::info!(seq, rules = ?rules, text = %Esc(&alert.text), "dismissed as false positive");
    }
    if let Some(p) = prompt_for(&alert, &req.action, now, &OnAir::from(&st.limits), &st.metrics) {
        let _ = st.overlay.send(Arc::new(p));
    }
    Ok(Json(alert))
}

/// How much of a viewer's name and of a prompt goes on air.
#[derive(Debug, Clone, Copy)]
pub struct OnAir {
    /// A name is cut to this many characters (links stripped first).
    pub name_chars: usize,
    /// A prompt is cut to this many characters.
    pub prompt_chars: usize,
}

impl From<&crate::limits::Limits> for OnAir {
    fn from(l: &crate::limits::Limits) -> Self {
        Self {
            name_chars: l.overlay_name_chars,
            prompt_chars: l.overlay_prompt_chars,
        }
    }
}

/// Links in a viewer's name (`http…`, `www.…`, `shop.example.com`), which must never go on air.
static LINK: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"(?i)(?:[a-z][a-z0-9+.-]*://|www\.)\S*|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|cn|io|co|shop|top|xyz|me|cc|tv|vip|link|app|site|store|online|info|biz|ly|gg)\b\S*",
    )
    .expect("a constant, tested pattern")
});

/// A viewer's name as it may appear on air: links removed, whitespace squeezed, cut.
pub fn on_air_name(name: &str, max_chars: usize) -> (String, bool) {
    let stripped = LINK.replace_all(name, "");
    let squeezed = stripped.split_whitespace().collect::<Vec<_>>().join(" ");
    let changed = squeezed != name;
    let squeezed = if squeezed.is_empty() {
        "…".to_string()
    } else {
        squeezed
    };
    let (cut, was_cut) = crate::limits::cut(&squeezed, max_chars);
    (cut, changed || was_cut)
}

/// The overlay prompt an action produces, if any, within the on-air limits (counted in
/// `liveguard_limited_total` when they cut).
pub fn prompt_for(
    alert: &Alert,
    action: &str,
    now_ms: u64,
    air: &OnAir,
    metrics: &Metrics,
) -> Option<Prompt> {
    let (user, name_cut) = on_air_name(alert.user.display(), air.name_chars);
    if name_cut {
        metrics.limited("overlay_name");
    }
    let lang = alert.verdict.lang;
    let (kind, text) = match action {
        "invite" => {
            let text = match lang {
                Lang::Zh => format!("邀请 {user} 连麦，现场为您解决"),
                Lang::En => format!("Inviting {user} on mic: let's fix this live"),
            };
            ("invite", text)
        }
        "send_script" => ("script", alert.actions.last()?.script.clone()?),
        _ => return None,
    };
    let (text, text_cut) = crate::limits::cut(&text, air.prompt_chars);
    if text_cut {
        metrics.limited("overlay_prompt");
    }
    Some(Prompt {
        room: alert.room.clone(),
        kind,
        seq: alert.seq,
        user,
        topic: alert.verdict.topic,
        lang,
        text,
        at_ms: now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::AlertKind;

    #[test]
    fn names_on_air_lose_links_and_length() {
        let cases = [
            ("阿珍", "阿珍"),
            ("amy www.evil.example/x", "amy"),
            ("buy at https://evil.example now", "buy at now"),
            ("shop.scam.com 小美", "小美"),
            ("http://x.io", "…"),
        ];
        for (name, want) in cases {
            assert_eq!(on_air_name(name, 24).0, want, "{name}");
        }
        let long = "名".repeat(3_000);
        let (cut, was) = on_air_name(&long, 24);
        assert!(was);
        assert_eq!(cut.chars().count(), 24);
    }
    use crate::classify::Verdict;
    use crate::ingest::User;
    use crate::taxonomy::Action;

    fn alert(class: Class) -> Alert {
        let v = Verdict {
            class,
            topic: Some(if class == Class::Complaint {
                Topic::Defect
            } else {
                Topic::Insult
            }),
            score: 0.9,
            evidence: vec![],
            action: Action::InviteCostream,
            script: Some("s".into()),
            lang: Lang::Zh,
            purchase: true,
            source: Default::default(),
        };
        Alert::new(
            AlertKind::Comment,
            "r".into(),
            User {
                id: "u".into(),
                ..User::default()
            },
            "t".into(),
            v,
            0,
        )
    }

    fn req(action: &str, script: Option<&str>) -> ActionRequest {
        ActionRequest {
            action: action.into(),
            by: None,
            script: script.map(str::to_string),
            choice: None,
        }
    }

    #[test]
    fn actions_follow_the_sop() {
        let mut c = alert(Class::Complaint);
        assert_eq!(apply(&mut c, &req("invite", None), "fm1", 1), Ok(()));
        assert_eq!(c.status, AlertStatus::Invited);
        let again = apply(&mut c, &req("invite", None), "fm2", 2);
        assert_eq!(
            again,
            Err(ActionError::Conflict("already handled: invite by fm1".into()))
        );
        assert_eq!(
            apply(&mut c, &req("send_script", Some("方案A")), "fm1", 3),
            Ok(())
        );
        assert_eq!(
            c.status,
            AlertStatus::Invited,
            "a script after an invite keeps it invited"
        );
        assert!(matches!(
            apply(&mut c, &req("send_script", Some("again")), "fm2", 4),
            Err(ActionError::Conflict(_))
        ));
        assert!(matches!(
            apply(&mut c, &req("dismiss", None), "fm2", 5),
            Err(ActionError::Conflict(_))
        ));
        assert_eq!(c.actions.len(), 2);

        assert!(
            matches!(
                apply(&mut alert(Class::Complaint), &req("mute", None), "fm1", 1),
                Err(ActionError::Unfit(_))
            ),
            "no mute for a buyer with a genuine complaint"
        );

        let mut a = alert(Class::Attack);
        assert!(
            matches!(
                apply(&mut a, &req("invite", None), "fm1", 1),
                Err(ActionError::Unfit(_))
            ),
            "no troll on mic"
        );
        assert_eq!(apply(&mut a, &req("mute", None), "fm1", 2), Ok(()));
        assert!(matches!(
            apply(&mut a, &req("dismiss", None), "fm1", 3),
            Err(ActionError::Conflict(_))
        ));

        let mut d = alert(Class::Attack);
        assert!(matches!(
            apply(&mut d, &req("send_script", Some("  ")), "fm", 1),
            Err(ActionError::BadRequest(_))
        ));
        assert!(matches!(
            apply(&mut d, &req("wave", None), "fm", 1),
            Err(ActionError::BadRequest(_))
        ));
        assert_eq!(apply(&mut d, &req("dismiss", None), "fm", 1), Ok(()));
        d.retracted = true;
        assert!(matches!(
            apply(&mut d, &req("mute", None), "fm", 2),
            Err(ActionError::Conflict(_))
        ));
    }

    #[test]
    fn overlay_prompts_never_carry_the_raw_comment() {
        let mut c = alert(Class::Complaint);
        c.text = "垃圾！收到就裂了".into();
        c.user.name = Some("阿珍".into());
        let (air, m) = (OnAir::from(&crate::limits::Limits::default()), Metrics::new());
        let p = prompt_for(&c, "invite", 9, &air, &m).expect("an invite prompts");
        assert_eq!(p.text, "邀请 阿珍 连麦，现场为您解决");
        assert!(!p.text.contains("垃圾"));
        assert!(prompt_for(&c, "dismiss", 9, &air, &m).is_none());
    }
}
