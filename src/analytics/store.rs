//! The database behind analytics: one schema and one set of queries for SQLite and PostgreSQL
//! through sqlx's `Any` driver.
//!
//! Placeholders are written `$1, $2, …`: PostgreSQL requires them and SQLite reads `$N` as
//! parameter N, so the same SQL text serves both.

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use super::AnalyticsError;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Store {
    pub pool: AnyPool,
    pub backend: Backend,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self, AnalyticsError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.trim_start_matches("//");
            let url = if rest.contains("mode=") {
                format!("sqlite:{rest}")
            } else if rest.contains('?') {
                format!("sqlite:{rest}&mode=rwc")
            } else {
                format!("sqlite:{rest}?mode=rwc")
            };
            check_sqlite_file(rest.split('?').next().unwrap_or(rest))?;
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(AnalyticsError::Url(url.to_string()));
        };
        let options = AnyConnectOptions::from_str(&url).map_err(AnalyticsError::Db)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer; NORMAL sync is safe against a
                        // crash of this process (only power loss can drop the last commits).
                        conn.execute("PRAGMA journal_mode=WAL").await?;
                        conn.execute("PRAGMA synchronous=NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout=5000").await?;
                    }
                    Ok(())
                })
            })
            // A database that cannot be opened fails at once, not after the pool's 30 s of
            // retries with a timeout that names nothing.
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| AnalyticsError::Open {
                location: redact(&url),
                reason: e.to_string(),
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| AnalyticsError::Migrate(e.to_string()))?;
        Ok(Self { pool, backend })
    }
}

/// Refuses, by name, what SQLite would only fail on obscurely: a folder where the file should
/// be, or a file that is not a database (it would be retried until the pool times out).
fn check_sqlite_file(path: &str) -> Result<(), AnalyticsError> {
    let refuse = |reason: &str| AnalyticsError::Open {
        location: path.to_string(),
        reason: reason.to_string(),
    };
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(refuse("is a folder, not a database file")),
        Ok(m) if m.len() >= 16 => {
            let mut head = [0u8; 16];
            use std::io::Read as _;
            std::fs::File::open(path)
                .and_then(|mut f| f.read_exact(&mut head))
                .map_err(|e| refuse(&e.to_string()))?;
            if &head == b"SQLite format 3\0" {
                Ok(())
            } else {
                Err(refuse("is not a SQLite database (wrong header)"))
            }
        }
        _ => Ok(()),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| {
        let (auth, host) = rest.split_once('@')?;
        let user = auth.split(':').next().unwrap_or("");
        Some(format!("{scheme}://{user}:***@{host}"))
    }) {
        Some(r) => r,
        None => url.to_string(),
    }
}

/// `($1,$2,$3),($4,$5,$6)…` for `rows` rows of `cols` values; `(?,?,?),…` on SQLite, whose
/// named-parameter lookup is linear per parameter (sqlx asks each one's name), which made large
/// multi-row inserts quadratic: half the writer's time at 4000 parameters.
pub fn values_placeholders(rows: usize, cols: usize, backend: Backend) -> String {
    if backend == Backend::Sqlite {
        let row = format!("({})", vec!["?"; cols].join(","));
        return vec![row; rows].join(",");
    }
    let mut out = String::with_capacity(rows * cols * 5);
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push(',');
            }
            out.push('$');
            out.push_str(&n.to_string());
            n += 1;
        }
        out.push(')');
    }
    out
}

/// A transaction that will write. SQLite's default (deferred) transaction takes the write lock
/// at its first write: one that reads first, while another connection commits (the writer, a
/// playlist edit), fails with `SQLITE_BUSY` (snapshot), which no busy timeout waits out, and a
/// writer batch failing so loses every event in it. `BEGIN IMMEDIATE` takes the lock at the
/// start, where the busy timeout does wait. PostgreSQL's default is fine for our statements.
pub async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_database_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("db");
        std::fs::create_dir(&folder).unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, [7u8; 4096]).unwrap();
        for (path, why) in [(&folder, "folder"), (&junk, "not a SQLite database")] {
            let err = check_sqlite_file(path.to_str().unwrap())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(path.to_str().unwrap()) && err.contains(why),
                "{err}"
            );
        }
        // A new file (absent or empty) is fine.
        check_sqlite_file(dir.path().join("new.db").to_str().unwrap()).unwrap();
        assert_eq!(
            redact("postgres://app:secret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
    }

    /// A writer that reads before it writes, while another connection commits in between,
    /// still commits: with SQLite's deferred `BEGIN` its write failed with `SQLITE_BUSY`
    /// (snapshot), and the analytics writer lost its whole batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_after_a_read_survives_another_connection_s_commit() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("a.db").display());
        let store = Store::open(&url).await.unwrap();
        let insert = "INSERT INTO social_events (kind, user_id, target_type, target_id, at) \
                      VALUES ('like', $1, 'track', 't', 0)";
        let mut first = begin_write(&store.pool, store.backend).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM social_events")
            .fetch_one(&mut *first)
            .await
            .unwrap();
        assert_eq!(n, 0);
        let pool = store.pool.clone();
        let other = tokio::spawn(async move {
            let mut tx = begin_write(&pool, Backend::Sqlite).await?;
            sqlx::query(insert).bind("other").execute(&mut *tx).await?;
            tx.commit().await
        });
        // Give the other connection time to commit, if it can.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        sqlx::query(insert)
            .bind("first")
            .execute(&mut *first)
            .await
            .unwrap();
        first.commit().await.unwrap();
        other.await.unwrap().unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM social_events")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            values_placeholders(2, 3, Backend::Postgres),
            "($1,$2,$3),($4,$5,$6)"
        );
        assert_eq!(values_placeholders(1, 1, Backend::Postgres), "($1)");
        assert_eq!(values_placeholders(2, 2, Backend::Sqlite), "(?,?),(?,?)");
    }
}
