//! Identity: HS256 JSON Web Tokens signed with a secret of this server.
//!
//! Why tokens rather than sessions in a database: WebSocket and REST clients (and other server
//! nodes sharing the secret) verify a token without a round trip anywhere. The secret is
//! generated into the data dir on first start (or configured), so a fresh server is secure by
//! default and `stream-server token` can mint tokens for users and scripts.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// File (in the data dir) holding the generated secret.
pub const SECRET_FILE: &str = "jwt-secret";
/// Longest accepted user id (as for bare `user_id`s).
pub const MAX_USER_ID: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read or create the token secret {path}: {source}")]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the token secret must be at least 32 bytes")]
    WeakSecret,
    #[error("no randomness available for the token secret: {0}")]
    Random(String),
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("invalid user id {0:?}")]
    BadUser(String),
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch (required).
    pub exp: u64,
    /// Issued at.
    #[serde(default)]
    pub iat: u64,
    /// May send `ServerMessage`s and read anyone's analytics.
    #[serde(default)]
    pub admin: bool,
}

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct Authenticator {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator { .. }")
    }
}

impl Authenticator {
    pub fn from_secret(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < 32 {
            return Err(AuthError::WeakSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // Expired means expired: no grace period.
        validation.leeway = 0;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// The configured secret, or the one in `data_dir` (created with 256 random bits, readable
    /// by its owner only, on first use).
    pub fn load_or_create(data_dir: &Path, configured: Option<&str>) -> Result<Self, AuthError> {
        if let Some(s) = configured {
            return Self::from_secret(s.as_bytes());
        }
        let path = data_dir.join(SECRET_FILE);
        let io = |source| AuthError::Secret {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_secret(text.trim().as_bytes()).map_err(|e| match e {
                // Say which secret: the file, not the configuration, is too short.
                AuthError::WeakSecret => io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "holds fewer than 32 bytes (delete it to have a new one generated)",
                )),
                e => e,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(&path) {
                    Ok(mut f) => {
                        f.write_all(hex.as_bytes()).map_err(io)?;
                        f.sync_all().map_err(io)?;
                        tracing::info!(path = %path.display(), "generated the token secret");
                        Self::from_secret(hex.as_bytes())
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(data_dir, None)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A token for `user`, valid for `ttl`.
    pub fn mint(&self, user: &str, ttl: Duration, admin: bool) -> Result<String, AuthError> {
        if !valid_user_id(user) {
            return Err(AuthError::BadUser(user.to_string()));
        }
        let now = unix_now();
        let claims = Claims {
            sub: user.to_string(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: now,
            admin,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The claims of a valid, unexpired token signed with our secret (HS256 only: a token
    /// naming another algorithm, `none` included, is refused).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?;
        if !valid_user_id(&data.claims.sub) {
            return Err(AuthError::BadUser(data.claims.sub));
        }
        Ok(data.claims)
    }
}

/// A user id we accept anywhere: 1–128 bytes, no control characters.
pub fn valid_user_id(id: &str) -> bool {
    !id.trim().is_empty() && id.len() <= MAX_USER_ID && !id.chars().any(char::is_control)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_secret_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SECRET_FILE), "short").unwrap();
        let err = Authenticator::load_or_create(dir.path(), None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(SECRET_FILE) && err.contains("32 bytes"),
            "{err}"
        );
    }

    #[test]
    fn mint_verify_and_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authenticator::load_or_create(dir.path(), None).unwrap();
        let secret = std::fs::read_to_string(dir.path().join(SECRET_FILE)).unwrap();
        assert_eq!(secret.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The same secret on the next start.
        let again = Authenticator::load_or_create(dir.path(), None).unwrap();
        let t = a.mint("alice", Duration::from_secs(60), false).unwrap();
        let c = again.verify(&t).unwrap();
        assert_eq!((c.sub.as_str(), c.admin), ("alice", false));

        // Another server's secret, an expired token, a tampered one, alg=none.
        let other = Authenticator::from_secret(&[7u8; 32]).unwrap();
        assert!(other.verify(&t).is_err());
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "alice".into(),
                exp: unix_now() - 10,
                iat: 0,
                admin: false,
            },
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert!(a.verify(&expired).is_err());
        let mut tampered = t.clone();
        tampered.pop();
        tampered.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(a.verify(&tampered).is_err());
        let payload = t.split('.').nth(1).unwrap();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(a.verify(&none).is_err());
        // A token without exp is refused.
        #[derive(Serialize)]
        struct NoExp {
            sub: String,
        }
        let no_exp = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &NoExp { sub: "bob".into() },
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert!(a.verify(&no_exp).is_err());
        assert!(a.verify("garbage").is_err());
        assert!(a.mint("", Duration::from_secs(1), false).is_err());
        assert!(Authenticator::from_secret(b"short").is_err());
    }
}
