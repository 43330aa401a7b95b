//! Console sessions: a manager logs in with a token once and gets a random session id in an
//! `HttpOnly; SameSite=Strict` cookie, so the token never sits in the page, a URL or a log.
//! Only the id's hash is kept, with the hash of the token that opened it: a session lasts
//! until it expires, is logged out, or its token leaves the config (checked on every use).

use std::sync::Arc;

use dashmap::DashMap;

use super::{hash, Identity, Keyring};

/// The cookie's name.
pub const COOKIE: &str = "lg_session";

/// At most this many live sessions (a login beyond it first drops expired ones, then is
/// refused): a bound on memory whatever a client does.
pub const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Session {
    token: [u8; 32],
    expires_ms: u64,
}

/// Live sessions, by the SHA-256 of their id.
#[derive(Debug, Default)]
pub struct Sessions {
    map: DashMap<[u8; 32], Session>,
}

/// Why no session was opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The system's random source failed.
    #[error("no randomness for a session id: {0}")]
    Random(String),
    /// [`MAX_SESSIONS`] live sessions already.
    #[error("too many sessions")]
    Full,
}

impl Sessions {
    /// A new session for the token hashed as `token`, valid for `ttl_ms`; returns its id.
    pub fn open(&self, token: [u8; 32], now_ms: u64, ttl_ms: u64) -> Result<String, SessionError> {
        if self.map.len() >= MAX_SESSIONS {
            self.map.retain(|_, s| s.expires_ms > now_ms);
            if self.map.len() >= MAX_SESSIONS {
                return Err(SessionError::Full);
            }
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| SessionError::Random(e.to_string()))?;
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        self.map.insert(
            hash(&id),
            Session {
                token,
                expires_ms: now_ms.saturating_add(ttl_ms),
            },
        );
        Ok(id)
    }

    /// The identity behind session `id`, from the tokens in force now.
    pub fn identity(&self, id: &str, keyring: &Keyring, now_ms: u64) -> Option<Identity> {
        let key = hash(id);
        let s = *self.map.get(&key)?;
        if s.expires_ms <= now_ms {
            self.map.remove(&key);
            return None;
        }
        keyring.verify_hash(&s.token)
    }

    /// Ends session `id`.
    pub fn close(&self, id: &str) {
        self.map.remove(&hash(id));
    }

    /// Live sessions (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The session id in a `Cookie` header, if any.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value for a new session (`Secure` when served over TLS).
pub fn set_cookie(id: &str, ttl_ms: u64, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl_ms / 1000,
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Shared sessions.
pub type SharedSessions = Arc<Sessions>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthConfig, Role, TokenConfig};

    fn ring(secret: &str) -> Keyring {
        Keyring::build(&AuthConfig {
            token: vec![TokenConfig {
                name: "li".into(),
                role: Role::Manager,
                rooms: vec![],
                token: Some(secret.into()),
                token_file: None,
                token_env: None,
            }],
            ..AuthConfig::default()
        })
        .expect("valid")
    }

    #[test]
    fn a_session_lives_until_it_expires_or_its_token_goes() {
        let s = Sessions::default();
        let old = ring("first-secret-0123456789");
        let id = s.open(hash("first-secret-0123456789"), 0, 1_000).expect("opens");
        assert_eq!(id.len(), 64);
        assert_eq!(s.identity(&id, &old, 999).map(|i| i.name), Some(Arc::from("li")));
        assert_eq!(s.identity(&id, &old, 1_000), None, "expired");
        let id = s.open(hash("first-secret-0123456789"), 0, 1_000).expect("opens");
        assert_eq!(
            s.identity(&id, &ring("rotated-secret-0123456789"), 1),
            None,
            "token rotated"
        );
        assert_eq!(s.identity("guess", &old, 1), None);
        s.close(&id);
        assert_eq!(s.identity(&id, &old, 1), None, "logged out");
    }

    #[test]
    fn cookies() {
        assert_eq!(from_cookie_header("a=1; lg_session=abc ; b=2"), Some("abc"));
        assert_eq!(from_cookie_header("a=1"), None);
        let c = set_cookie("abc", 60_000, true);
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"),
            "{c}"
        );
    }
}
