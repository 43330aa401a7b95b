//! Who may do what: `[[auth.token]]` entries (a name, a role, optional rooms, the secret from
//! `token`, `token_file` or `token_env`) become a [`Keyring`] of SHA-256 hashes, checked in
//! constant time; a console login turns a manager token into a session cookie ([`session`]).
//! With no tokens the daemon is in protected mode: loopback only, every caller the local
//! operator (see [`Keyring::is_open`]).

pub mod session;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shortest secret accepted: a guessable token is no protection.
pub const MIN_SECRET_CHARS: usize = 16;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The floor manager: the console, alerts, tickets, stats, actions, reports, metrics.
    Manager,
    /// The streamer's overlay (OBS): the overlay page and its socket, for its rooms only.
    Overlay,
    /// A Prometheus scraper: `/metrics` only.
    Metrics,
}

impl Role {
    /// The name in config and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manager => "manager",
            Self::Overlay => "overlay",
            Self::Metrics => "metrics",
        }
    }
}

/// `[auth]`: tokens and the browser-facing checks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `[[auth.token]]` entries; none: protected mode (loopback only).
    pub token: Vec<TokenConfig>,
    /// Origins allowed on WebSocket upgrades and state-changing requests, besides the
    /// defaults (`http(s)://` + the listen address, `localhost` and `127.0.0.1` on its port).
    pub allowed_origins: Vec<String>,
    /// Host names allowed in the `Host` header, besides the defaults (the listen address,
    /// `localhost`, `127.0.0.1`, `::1`): what stops DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Origins that get CORS headers (none: CORS off, the default).
    pub cors_origins: Vec<String>,
    /// How long a console login lasts (ms; default 12 h, a shift).
    pub session_ttl_ms: u64,
}

/// Default of [`AuthConfig::session_ttl_ms`]: 12 h.
pub const SESSION_TTL_MS: u64 = 12 * 3_600_000;

/// One `[[auth.token]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it: actions are attributed to this name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Overlay: the rooms it may show (required). Manager: restricts it to these rooms.
    #[serde(default)]
    pub rooms: Vec<String>,
    /// The secret, inline.
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the secret (surrounding whitespace ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the secret.
    #[serde(default)]
    pub token_env: Option<String>,
}

/// Why the tokens could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A token entry is unusable.
    #[error("auth.token[{index}] ({name}): {message}")]
    Token {
        /// Position in the file, from 0.
        index: usize,
        /// Its name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

impl TokenConfig {
    /// The secret, read from where the entry says (a file or the environment: blocking).
    pub fn secret(&self) -> Result<String, String> {
        let sources = [
            self.token.is_some(),
            self.token_file.is_some(),
            self.token_env.is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            0 => return Err("needs one of token, token_file or token_env".into()),
            1 => {}
            _ => return Err("give only one of token, token_file or token_env".into()),
        }
        let secret = if let Some(t) = &self.token {
            t.clone()
        } else if let Some(path) = &self.token_file {
            std::fs::read_to_string(path)
                .map_err(|e| format!("token_file {}: {e}", path.display()))?
                .trim()
                .to_string()
        } else if let Some(var) = &self.token_env {
            std::env::var(var).map_err(|_| format!("token_env {var} is not set"))?
        } else {
            String::new()
        };
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(format!(
                "the secret is shorter than {MIN_SECRET_CHARS} characters (make one with `openssl rand -hex 32`)"
            ));
        }
        Ok(secret)
    }
}

/// The caller a request was made by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's name (`local` in protected mode).
    pub name: Arc<str>,
    /// Its role.
    pub role: Role,
    /// Rooms it is limited to (empty: every room).
    pub rooms: Arc<[String]>,
    /// False in protected mode (no tokens: the local operator).
    pub token: bool,
}

impl Identity {
    /// The local operator of a daemon without tokens (loopback only).
    pub fn local() -> Self {
        Self {
            name: Arc::from("local"),
            role: Role::Manager,
            rooms: Arc::from(Vec::new()),
            token: false,
        }
    }

    /// Whether it may see `room`.
    pub fn may_see(&self, room: &str) -> bool {
        self.rooms.is_empty() || self.rooms.iter().any(|r| r == room)
    }

    /// The room a request is limited to: `asked` when allowed; a room-limited identity
    /// that asked for none gets its only room, else an error naming its rooms.
    pub fn room_for(&self, asked: Option<&str>) -> Result<Option<String>, String> {
        match (asked.filter(|r| !r.is_empty()), self.rooms.len()) {
            (Some(r), _) if self.may_see(r) => Ok(Some(r.to_string())),
            (Some(r), _) => Err(format!("{} may not read room {r:?}", self.name)),
            (None, 0) => Ok(None),
            (None, 1) => Ok(self.rooms.first().cloned()),
            (None, _) => Err(format!(
                "{} is limited to rooms {:?}: name one with room=",
                self.name, self.rooms
            )),
        }
    }
}

/// One token, hashed.
#[derive(Debug, Clone)]
struct Key {
    hash: [u8; 32],
    identity: Identity,
}

/// The tokens in force, stored as SHA-256 hashes (the secrets themselves are not kept).
///
/// Cheap to share behind an `Arc`; a reload builds a new one and swaps it in.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

/// SHA-256 of a secret.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Keyring {
    /// Reads every token's secret (files, environment: blocking) and hashes it; every
    /// problem at once.
    pub fn build(cfg: &AuthConfig) -> Result<Self, Vec<AuthError>> {
        let mut keys = Vec::new();
        let mut errors = Vec::new();
        for (index, t) in cfg.token.iter().enumerate() {
            let err = |message: String| AuthError::Token {
                index,
                name: t.name.clone(),
                message,
            };
            if t.name.trim().is_empty() || t.name.chars().count() > 64 {
                errors.push(err("name must be 1 to 64 characters".into()));
            }
            if cfg.token[..index].iter().any(|o| o.name == t.name) {
                errors.push(err(
                    "a second token with this name: give each a distinct name".into()
                ));
            }
            if t.role == Role::Overlay && t.rooms.is_empty() {
                errors.push(err(
                    "an overlay token needs rooms = [\"ROOM\"]: it may show only those".into(),
                ));
            }
            match t.secret() {
                Ok(secret) => {
                    let hash = hash(&secret);
                    if keys.iter().any(|k: &Key| bool::from(k.hash.ct_eq(&hash))) {
                        errors.push(err("the same secret as another token".into()));
                    }
                    keys.push(Key {
                        hash,
                        identity: Identity {
                            name: Arc::from(t.name.as_str()),
                            role: t.role,
                            rooms: Arc::from(t.rooms.clone()),
                            token: true,
                        },
                    });
                }
                Err(m) => errors.push(err(m)),
            }
        }
        if errors.is_empty() {
            Ok(Self { keys })
        } else {
            Err(errors)
        }
    }

    /// No tokens: protected mode.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many tokens.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The identity a secret belongs to. Every key is compared, each in constant time, so the
    /// time taken says nothing about which (or whether one) matched.
    pub fn verify(&self, secret: &str) -> Option<Identity> {
        self.verify_hash(&hash(secret))
    }

    /// [`verify`](Self::verify) for an already hashed secret.
    pub fn verify_hash(&self, h: &[u8; 32]) -> Option<Identity> {
        let mut found = None;
        for k in &self.keys {
            if bool::from(k.hash.ct_eq(h)) {
                found = Some(k.identity.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, role: Role, secret: &str) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            role,
            rooms: if role == Role::Overlay {
                vec!["r1".into()]
            } else {
                vec![]
            },
            token: Some(secret.into()),
            token_file: None,
            token_env: None,
        }
    }

    #[test]
    fn secrets_verify_to_their_identity_and_nothing_else() {
        let cfg = AuthConfig {
            token: vec![
                token("li", Role::Manager, "manager-secret-0123456789"),
                token("obs", Role::Overlay, "overlay-secret-0123456789"),
            ],
            ..AuthConfig::default()
        };
        let ring = Keyring::build(&cfg).expect("valid");
        assert_eq!(
            ring.verify("manager-secret-0123456789").map(|i| i.role),
            Some(Role::Manager)
        );
        assert_eq!(
            ring.verify("overlay-secret-0123456789").map(|i| i.name),
            Some(Arc::from("obs"))
        );
        assert_eq!(ring.verify("manager-secret-012345678"), None);
        assert_eq!(ring.verify(""), None);
        assert!(!ring.is_open());
    }

    #[test]
    fn bad_entries_are_all_reported() {
        let mut short = token("a", Role::Manager, "short");
        short.token_env = Some("X".into());
        let cfg = AuthConfig {
            token: vec![
                short,
                token("b", Role::Manager, "short"),
                TokenConfig {
                    rooms: vec![],
                    ..token("c", Role::Overlay, "overlay-secret-0123456789")
                },
                token("c", Role::Metrics, "metrics-secret-0123456789"),
            ],
            ..AuthConfig::default()
        };
        let errs: Vec<String> = Keyring::build(&cfg)
            .expect_err("invalid")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(errs[0].contains("only one of"), "{errs:?}");
        assert!(errs[1].contains("shorter than 16"), "{errs:?}");
        assert!(errs[2].contains("needs rooms"), "{errs:?}");
        assert!(errs[3].contains("distinct name"), "{errs:?}");
    }

    #[test]
    fn room_limits() {
        let mut id = Identity::local();
        assert_eq!(id.room_for(None), Ok(None));
        id.rooms = Arc::from(vec!["r1".to_string()]);
        assert_eq!(id.room_for(None), Ok(Some("r1".into())));
        assert!(id.room_for(Some("r2")).is_err());
        id.rooms = Arc::from(vec!["r1".to_string(), "r2".to_string()]);
        assert!(id.room_for(None).is_err());
        assert_eq!(id.room_for(Some("r2")), Ok(Some("r2".into())));
    }
}
