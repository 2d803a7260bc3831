//! Settings for the server, layered: built-in defaults < TOML file < `STREAM_SERVER_*`
//! environment variables < command-line flags (applied by the binary).
//!
//! Every field has a default so that `Config::from_env()` works on a bare machine, as the spec's
//! examples expect.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors while loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid value for {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("invalid profile {quality_id:?}: {reason}")]
    Profile { quality_id: String, reason: String },
}

/// An extra quality profile declared in the TOML file (`[[profiles]]`), added to the spec's four.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    pub quality_id: String,
    pub bitrate_kbps: u32,
    pub sample_rate: u32,
    /// `aac` or `mp3`.
    pub codec: String,
    pub bandwidth_estimate_kbps: Option<u32>,
}

/// Server configuration. Field docs name the TOML key; the environment variable is the key in
/// upper case prefixed with `STREAM_SERVER_`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `bind`: address to listen on.
    pub bind: SocketAddr,
    /// `library`: music folder to serve. `None` means the demo library.
    pub library: Option<PathBuf>,
    /// `data_dir`: transcode cache, analytics database, demo library, secrets.
    pub data_dir: PathBuf,
    /// `demo`: synthesise and serve the demo library (implied when no library is given).
    pub demo: bool,
    /// `cache_max_mb`: size cap of the transcode cache; least recently used entries go first.
    pub cache_max_mb: u64,
    /// `segment_memory_mb`: recently served segments kept in memory.
    pub segment_memory_mb: u64,
    /// `transcode_workers`: encodes running at once (0 = number of cores).
    pub transcode_workers: usize,
    /// `segment_target_secs`: wanted HLS segment length; the packager rounds it to exact
    /// frame and 90 kHz clock boundaries.
    pub segment_target_secs: f64,
    /// `cors_origins`: origins allowed by CORS; `["*"]` allows any.
    pub cors_origins: Vec<String>,
    /// `max_track_secs`: longest source accepted (untrusted media limit).
    pub max_track_secs: u64,
    /// `library_rescan_secs`: how often the library folder is scanned again for added, changed
    /// and removed files (0 = only at start and on demand). Unchanged files are not re-read.
    pub library_rescan_secs: u64,
    /// `profiles`: extra quality profiles beyond the spec's four.
    pub profiles: Vec<ProfileConfig>,
    /// `web_dir`: the built web player served at `/` (default: `web/dist` when it exists).
    pub web_dir: Option<PathBuf>,
    /// `analytics_url`: `sqlite:PATH` or `postgres://…` (default `sqlite:<data_dir>/analytics.db`).
    pub analytics_url: Option<String>,
    /// `analytics_ip`: how listener IPs are stored: `truncate` (/24, /48), `hash`, `drop`, `keep`.
    pub analytics_ip: String,
    /// `analytics_retention_days`: play data older than this is pruned daily (0 keeps it).
    pub analytics_retention_days: u32,
    /// `[auth]`: how listeners prove who they are.
    pub auth: AuthConfig,
    /// `live_stats_secs`: how often `LiveStats` is broadcast over the WebSocket (0 = never).
    pub live_stats_secs: u64,
    /// `broker`: `redis://…` to fan WebSocket events and live counts out across server nodes
    /// sharing that Redis; none keeps everything in process.
    pub broker: Option<String>,
    /// `broker_namespace`: prefix of the Redis channel and keys (nodes of one deployment share
    /// it; separate deployments on one Redis use different ones).
    pub broker_namespace: String,
}

/// `[auth]` in TOML; `STREAM_SERVER_AUTH_MODE`, `STREAM_SERVER_AUTH_SECRET`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `mode`: `token` (a bare `user_id` is trusted from loopback clients only) or `open`
    /// (any client may say who it is: for a private network).
    pub mode: AuthMode,
    /// `secret`: HS256 secret (at least 32 bytes); default: generated into
    /// `<data_dir>/jwt-secret` on first start.
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    Token,
    Open,
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "token" => Ok(Self::Token),
            "open" => Ok(Self::Open),
            other => Err(format!("expected `token` or `open`, got {other:?}")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 8082)),
            library: None,
            data_dir: PathBuf::from("data"),
            demo: false,
            cache_max_mb: 2048,
            segment_memory_mb: 128,
            transcode_workers: 0,
            segment_target_secs: 6.0,
            cors_origins: vec!["*".to_string()],
            max_track_secs: 6 * 3600,
            library_rescan_secs: 300,
            profiles: Vec::new(),
            web_dir: None,
            analytics_url: None,
            analytics_ip: "truncate".to_string(),
            analytics_retention_days: 365,
            auth: AuthConfig::default(),
            live_stats_secs: 5,
            broker: None,
            broker_namespace: "stream-server".to_string(),
        }
    }
}

impl Config {
    /// Defaults overridden by `STREAM_SERVER_*` variables (and by the TOML file named in
    /// `STREAM_SERVER_CONFIG`, if set).
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::from_sources(None, &vars)
    }

    /// Defaults < `file` (TOML) < the given environment.
    pub fn from_sources(
        file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let from_env = |k: &str| {
            env.iter()
                .find(|(n, _)| n == &format!("STREAM_SERVER_{k}"))
                .map(|(_, v)| v.clone())
        };
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| from_env("CONFIG").map(PathBuf::from));
        let mut config = match file {
            Some(path) => Self::from_toml_file(&path)?,
            None => Self::default(),
        };
        config.apply_env(&from_env)?;
        config.validate()?;
        Ok(config)
    }

    fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    fn apply_env(&mut self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                var: format!("STREAM_SERVER_{var}"),
                reason: e.to_string(),
            })
        }
        if let Some(v) = get("BIND") {
            self.bind = parse("BIND", &v)?;
        }
        if let Some(v) = get("LIBRARY") {
            self.library = (!v.is_empty()).then(|| PathBuf::from(v));
        }
        if let Some(v) = get("DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("DEMO") {
            self.demo = parse_bool("DEMO", &v)?;
        }
        if let Some(v) = get("CACHE_MAX_MB") {
            self.cache_max_mb = parse("CACHE_MAX_MB", &v)?;
        }
        if let Some(v) = get("SEGMENT_MEMORY_MB") {
            self.segment_memory_mb = parse("SEGMENT_MEMORY_MB", &v)?;
        }
        if let Some(v) = get("TRANSCODE_WORKERS") {
            self.transcode_workers = parse("TRANSCODE_WORKERS", &v)?;
        }
        if let Some(v) = get("SEGMENT_TARGET_SECS") {
            self.segment_target_secs = parse("SEGMENT_TARGET_SECS", &v)?;
        }
        if let Some(v) = get("CORS_ORIGINS") {
            self.cors_origins = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = get("WEB_DIR") {
            self.web_dir = (!v.is_empty()).then(|| PathBuf::from(v));
        }
        if let Some(v) = get("ANALYTICS_URL") {
            self.analytics_url = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = get("ANALYTICS_IP") {
            self.analytics_ip = v.trim().to_string();
        }
        if let Some(v) = get("ANALYTICS_RETENTION_DAYS") {
            self.analytics_retention_days = parse("ANALYTICS_RETENTION_DAYS", &v)?;
        }
        if let Some(v) = get("AUTH_MODE") {
            self.auth.mode = parse("AUTH_MODE", &v)?;
        }
        if let Some(v) = get("AUTH_SECRET") {
            self.auth.secret = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = get("BROKER") {
            self.broker = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = get("BROKER_NAMESPACE") {
            self.broker_namespace = v.trim().to_string();
        }
        if let Some(v) = get("LIVE_STATS_SECS") {
            self.live_stats_secs = parse("LIVE_STATS_SECS", &v)?;
        }
        if let Some(v) = get("MAX_TRACK_SECS") {
            self.max_track_secs = parse("MAX_TRACK_SECS", &v)?;
        }
        if let Some(v) = get("LIBRARY_RESCAN_SECS") {
            self.library_rescan_secs = parse("LIBRARY_RESCAN_SECS", &v)?;
        }
        Ok(())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(b) = &self.broker {
            if !(b.starts_with("redis://") || b.starts_with("rediss://")) {
                return Err(ConfigError::Env {
                    var: "broker".into(),
                    reason: format!("{b:?} is not a redis:// URL"),
                });
            }
        }
        if self.broker_namespace.is_empty() {
            return Err(ConfigError::Env {
                var: "broker_namespace".into(),
                reason: "must not be empty".into(),
            });
        }
        if !(1.0..=30.0).contains(&self.segment_target_secs) {
            return Err(ConfigError::Env {
                var: "segment_target_secs".into(),
                reason: "must be between 1 and 30 seconds".into(),
            });
        }
        if !matches!(
            self.analytics_ip.as_str(),
            "truncate" | "hash" | "drop" | "keep"
        ) {
            return Err(ConfigError::Env {
                var: "analytics_ip".into(),
                reason: format!(
                    "{:?} is not one of truncate, hash, drop, keep",
                    self.analytics_ip
                ),
            });
        }
        for p in &self.profiles {
            let bad = |reason: &str| ConfigError::Profile {
                quality_id: p.quality_id.clone(),
                reason: reason.to_string(),
            };
            if p.quality_id.is_empty()
                || !p
                    .quality_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(bad(
                    "quality_id must be non-empty ASCII letters, digits, '-' or '_'",
                ));
            }
            if !matches!(p.codec.as_str(), "aac" | "mp3") {
                return Err(bad("codec must be \"aac\" or \"mp3\""));
            }
            if !(8..=640).contains(&p.bitrate_kbps) {
                return Err(bad("bitrate_kbps must be between 8 and 640"));
            }
            // Rates both LAME (MPEG-1 and MPEG-2 Layer III) and fdk-aac accept.
            if ![16000, 22050, 24000, 32000, 44100, 48000].contains(&p.sample_rate) {
                return Err(bad(
                    "sample_rate must be one of 16000, 22050, 24000, 32000, 44100, 48000",
                ));
            }
        }
        Ok(())
    }

    /// The demo library is served when asked for, or when no library is given.
    pub fn uses_demo(&self) -> bool {
        self.demo || self.library.is_none()
    }

    /// The web player's folder, if there is one to serve.
    pub fn web_root(&self) -> Option<PathBuf> {
        let dir = self
            .web_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("web/dist"));
        dir.join("index.html").is_file().then_some(dir)
    }

    /// The analytics database URL.
    pub fn analytics_database_url(&self) -> String {
        self.analytics_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("analytics.db").display()))
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache")
    }

    pub fn demo_dir(&self) -> PathBuf {
        self.data_dir.join("demo-library")
    }

    /// Number of encodes allowed at once.
    pub fn effective_workers(&self) -> usize {
        if self.transcode_workers > 0 {
            self.transcode_workers
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}

fn parse_bool(var: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(ConfigError::Env {
            var: format!("STREAM_SERVER_{var}"),
            reason: format!("{other:?} is not a boolean"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_with_nothing_set() {
        let c = Config::from_sources(None, &[]).unwrap();
        assert_eq!(c.bind.to_string(), "0.0.0.0:8082");
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert!(c.uses_demo());
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\ncache_max_mb = 10\n[auth]\nmode = \"open\"\n\n[[profiles]]\nquality_id = \"hifi\"\nbitrate_kbps = 256\nsample_rate = 48000\ncodec = \"aac\"\n",
        )
        .unwrap();
        let c = Config::from_sources(
            Some(&path),
            &env(&[("STREAM_SERVER_CACHE_MAX_MB", "20"), ("OTHER", "x")]),
        )
        .unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:9000");
        assert_eq!(c.cache_max_mb, 20);
        assert_eq!(c.profiles.len(), 1);
        assert_eq!(c.auth.mode, AuthMode::Open);
        let c = Config::from_sources(Some(&path), &env(&[("STREAM_SERVER_AUTH_MODE", "token")]))
            .unwrap();
        assert_eq!(c.auth.mode, AuthMode::Token);
        assert!(
            Config::from_sources(None, &env(&[("STREAM_SERVER_AUTH_MODE", "nobody")])).is_err()
        );
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::from_sources(None, &env(&[("STREAM_SERVER_BIND", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("STREAM_SERVER_BIND"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "bogus_key = 1\n").unwrap();
        let err = Config::from_sources(Some(&path), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus_key"), "{err}");
        std::fs::write(&path, "[[profiles]]\nquality_id = \"x\"\nbitrate_kbps = 96\nsample_rate = 11025\ncodec = \"aac\"\n").unwrap();
        assert!(Config::from_sources(Some(&path), &[]).is_err());
    }
}
