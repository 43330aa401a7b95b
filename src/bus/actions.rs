//! Console actions across the bus. A console attached to a gateway acts on a copy: the action
//! goes as a NATS request to the owner of the alert's partition (`liveguard.actions.<p>`),
//! which applies it exactly as its own server would ([`crate::server::actions::apply`], one
//! change at a time in its hub) and answers with the new version or the same refusal (404,
//! 409, 422, 503). The change reaches every console through the alert stream.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::partition_of;
use crate::alerts::{Alert, Hub, TryUpdate};
use crate::server::actions::{apply, ActionError, ActionRequest};
use crate::shutdown::Shutdown;

/// Subject prefix of action requests.
pub const ACTIONS: &str = "liveguard.actions";

/// An owner answers within this long, or the console is told the owner is unavailable.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// What a gateway asks the owner.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    /// The alert's stable id.
    id: String,
    /// What the floor manager asked.
    action: String,
    script: Option<String>,
    choice: Option<String>,
    /// Who (already checked by the gateway).
    by: String,
    /// When, ms since the epoch.
    now_ms: u64,
}

/// The owner's answer: the new version, or an HTTP status and message.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum Answer {
    Ok { alert: Box<Alert> },
    Refused { status: u16, error: String },
}

fn refusal(e: ActionError) -> Answer {
    let (status, error) = match e {
        ActionError::BadRequest(m) => (400, m),
        ActionError::NotFound(seq) => (404, format!("no alert {seq}")),
        ActionError::Unavailable(m) => (503, m),
        ActionError::Conflict(m) => (409, m),
        ActionError::Unfit(m) => (422, m),
        ActionError::Forbidden(m) => (403, m),
    };
    Answer::Refused { status, error }
}

fn action_error(status: u16, error: String, seq: u64) -> ActionError {
    match status {
        400 => ActionError::BadRequest(error),
        404 => ActionError::NotFound(seq),
        409 => ActionError::Conflict(error),
        422 => ActionError::Unfit(error),
        403 => ActionError::Forbidden(error),
        _ => ActionError::Unavailable(error),
    }
}

/// The gateway's side: forwards an action on a mirrored alert to its owner.
#[derive(Debug, Clone)]
pub struct Remote {
    client: async_nats::Client,
    partitions: u32,
}

impl Remote {
    /// Requests over `client`; rooms hashed over `partitions`.
    pub fn new(client: async_nats::Client, partitions: u32) -> Self {
        Self { client, partitions }
    }

    /// Applies `req` (by `by`, at `now_ms`) to `alert` (the local copy, its local `seq`) at the
    /// owner; the new version comes back with the local sequence number.
    async fn request(
        &self,
        alert: &Alert,
        req: &ActionRequest,
        by: &str,
        now_ms: u64,
    ) -> Result<Arc<Alert>, TryUpdate<ActionError>> {
        let body = Request {
            id: alert.id.clone(),
            action: req.action.clone(),
            script: req.script.clone(),
            choice: req.choice.clone(),
            by: by.to_string(),
            now_ms,
        };
        let payload = serde_json::to_vec(&body).map_err(|e| TryUpdate::Unavailable(e.to_string()))?;
        let subject = format!("{ACTIONS}.{}", partition_of(&alert.room, self.partitions));
        let reply = tokio::time::timeout(ANSWER_WITHIN, self.client.request(subject, payload.into()))
            .await
            .map_err(|_| TryUpdate::Unavailable("the room's owner did not answer in time".into()))?
            .map_err(|e| TryUpdate::Unavailable(format!("the room's owner is unreachable: {e}")))?;
        match serde_json::from_slice::<Answer>(&reply.payload) {
            Ok(Answer::Ok { alert: mut a }) => {
                a.seq = alert.seq;
                Ok(Arc::new(*a))
            }
            Ok(Answer::Refused { status: 404, .. }) => Err(TryUpdate::NotFound),
            Ok(Answer::Refused { status, error }) => {
                Err(TryUpdate::Refused(action_error(status, error, alert.seq)))
            }
            Err(e) => Err(TryUpdate::Unavailable(format!(
                "a bad answer from the owner: {e}"
            ))),
        }
    }
}

impl crate::server::actions::RemoteActions for Remote {
    fn act<'a>(
        &'a self,
        alert: &'a Alert,
        req: &'a ActionRequest,
        by: &'a str,
        now_ms: u64,
    ) -> crate::server::actions::RemoteAnswer<'a> {
        Box::pin(self.request(alert, req, by, now_ms))
    }
}

/// The owner's side: answers action requests for `partitions` until shutdown.
pub fn serve(
    client: async_nats::Client,
    hub: Arc<Hub>,
    partitions: Vec<u32>,
    mut shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut subs = Vec::new();
        for p in partitions {
            match client.subscribe(format!("{ACTIONS}.{p}")).await {
                Ok(s) => subs.push(s),
                Err(e) => {
                    tracing::error!(partition = p, error = %e, "cannot take console actions for this partition");
                }
            }
        }
        let mut all = futures_util::stream::select_all(subs);
        loop {
            let m = tokio::select! {
                _ = shutdown.wait() => break,
                m = all.next() => m,
            };
            let Some(m) = m else { break };
            let Some(reply) = m.reply.clone() else { continue };
            let answer = match serde_json::from_slice::<Request>(&m.payload) {
                Ok(r) => answer(&hub, r).await,
                Err(e) => Answer::Refused {
                    status: 400,
                    error: format!("not an action request: {e}"),
                },
            };
            if let Ok(body) = serde_json::to_vec(&answer) {
                if let Err(e) = client.publish(reply, body.into()).await {
                    tracing::warn!(error = %e, "cannot answer an action request");
                }
            }
        }
    })
}

async fn answer(hub: &Hub, r: Request) -> Answer {
    let Some(seq) = hub.known_seq(&r.id) else {
        return refusal(ActionError::NotFound(0));
    };
    let req = ActionRequest {
        action: r.action,
        by: None,
        script: r.script,
        choice: r.choice,
    };
    let (by, now) = (r.by, r.now_ms);
    let span = tracing::info_span!("remote_action", seq, by = %crate::logsafe::Esc(&by));
    let update = hub.try_update(seq, now, move |a| apply(a, &req, &by, now));
    match tracing::Instrument::instrument(update, span).await {
        Ok(a) => {
            tracing::info!(room = %crate::logsafe::Esc(&a.room), user = %crate::logsafe::Esc(&a.user.id), action = ?a.actions.last().map(|x| &x.action), "console action from a gateway");
            Answer::Ok {
                alert: Box::new(Alert::clone(&a)),
            }
        }
        Err(TryUpdate::NotFound) => refusal(ActionError::NotFound(seq)),
        Err(TryUpdate::Refused(e)) => refusal(e),
        Err(TryUpdate::Unavailable(why)) => refusal(ActionError::Unavailable(why)),
    }
}
