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
            .connect_with(options)
            .await
            .map_err(AnalyticsError::Db)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| AnalyticsError::Migrate(e.to_string()))?;
        Ok(Self { pool, backend })
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

#[cfg(test)]
mod tests {
    use super::*;

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
