//! The `stream-server` command line: serve, scan, transcode.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use stream_server::config::Config;
use stream_server::server;

/// Self-hosted adaptive audio streaming: HLS and progressive delivery of your music library,
/// transcoded in process to four quality profiles (AAC 320/192/96 kbps, MP3 128 kbps).
///
/// Settings come from built-in defaults, then the TOML file (--config or STREAM_SERVER_CONFIG),
/// then STREAM_SERVER_* environment variables, then these flags.
#[derive(Parser, Debug)]
#[command(name = "stream-server", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Scan the library, print what was found and what was skipped, and exit.
    Scan(CommonArgs),
    /// Encode tracks into the transcode cache ahead of time.
    Transcode(TranscodeArgs),
    /// Mint a token (HS256 JWT) for a user, signed with the server's secret (the one in the data
    /// dir, created if needed, or STREAM_SERVER_AUTH_SECRET / [auth] secret), and print it.
    Token(TokenArgs),
}

#[derive(Args, Debug)]
struct TokenArgs {
    /// Where the server keeps its secret [env: STREAM_SERVER_DATA_DIR] [default: ./data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file [env: STREAM_SERVER_CONFIG].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The user the token names (its `sub`).
    #[arg(long, value_name = "ID")]
    user: String,
    /// How long the token is valid: seconds, or a number with s, m, h or d.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = parse_ttl)]
    ttl: std::time::Duration,
    /// The token may send server messages and read anyone's analytics.
    #[arg(long)]
    admin: bool,
}

fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?} (use s, m, h or d)")),
    };
    match n.checked_mul(unit_secs) {
        Some(0) => Err("a token must be valid for some time".into()),
        Some(secs) if secs <= MAX_TTL_SECS => Ok(std::time::Duration::from_secs(secs)),
        _ => Err(format!(
            "{s:?} is too long: a token may be valid for at most {} days",
            MAX_TTL_SECS / 86_400
        )),
    }
}

/// Ten years: beyond, a lifetime is a mistake (and a large enough one overflowed into an
/// already expired token).
const MAX_TTL_SECS: u64 = 3650 * 86_400;

#[derive(Args, Debug, Default, Clone)]
struct CommonArgs {
    /// Music folder to serve, scanned recursively [env: STREAM_SERVER_LIBRARY]. Without it the
    /// demo library is used.
    #[arg(long, value_name = "DIR")]
    library: Option<PathBuf>,
    /// Where the transcode cache, the library index and the demo library live
    /// [env: STREAM_SERVER_DATA_DIR] [default: ./data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file [env: STREAM_SERVER_CONFIG].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve the synthesised demo library (implied when no library is given)
    /// [env: STREAM_SERVER_DEMO].
    #[arg(long)]
    demo: bool,
    /// Size cap of the transcode cache in MiB [env: STREAM_SERVER_CACHE_MAX_MB] [default: 2048].
    #[arg(long, value_name = "MIB")]
    cache_max_mb: Option<u64>,
    /// Encodes allowed at once; 0 means one per core [env: STREAM_SERVER_TRANSCODE_WORKERS].
    #[arg(long, value_name = "N")]
    transcode_workers: Option<usize>,
}

#[derive(Args, Debug, Default)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address to listen on [env: STREAM_SERVER_BIND] [default: 0.0.0.0:8082].
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
    /// Allowed CORS origins, comma-separated; `*` allows any [env: STREAM_SERVER_CORS_ORIGINS]
    /// [default: *].
    #[arg(long, value_name = "ORIGINS", value_delimiter = ',')]
    cors_origins: Option<Vec<String>>,
    /// The built web player to serve at `/` [env: STREAM_SERVER_WEB_DIR] [default: web/dist].
    #[arg(long, value_name = "DIR")]
    web_dir: Option<PathBuf>,
    /// `token`: a bare user_id is trusted from this machine only; `open`: from anyone (private
    /// networks) [env: STREAM_SERVER_AUTH_MODE] [default: token].
    #[arg(long, value_name = "MODE")]
    auth_mode: Option<stream_server::config::AuthMode>,
    /// Seconds between LiveStats broadcasts, 0 for none [env: STREAM_SERVER_LIVE_STATS_SECS]
    /// [default: 5].
    #[arg(long, value_name = "SECS")]
    live_stats_secs: Option<u64>,
    /// Redis URL (redis://host:port) shared by several server nodes: WebSocket events and live
    /// counts reach every node's clients [env: STREAM_SERVER_BROKER] [default: none, in process].
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
}

#[derive(Args, Debug)]
struct TranscodeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Encode every track of the library.
    #[arg(long, conflicts_with = "tracks")]
    all: bool,
    /// Only these profiles (default: all of them).
    #[arg(long = "quality", value_name = "QUALITY")]
    qualities: Vec<String>,
    /// Track ids or library-relative paths to encode.
    #[arg(value_name = "TRACK")]
    tracks: Vec<String>,
}

fn load_config(common: &CommonArgs) -> anyhow::Result<Config> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let mut config = Config::from_sources(common.config.as_deref(), &env)?;
    if let Some(l) = &common.library {
        config.library = Some(l.clone());
    }
    if let Some(d) = &common.data_dir {
        config.data_dir = d.clone();
    }
    if common.demo {
        config.demo = true;
    }
    if let Some(c) = common.cache_max_mb {
        config.cache_max_mb = c;
    }
    if let Some(w) = common.transcode_workers {
        config.transcode_workers = w;
    }
    config.validate()?;
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    stream_server::telemetry::init_tracing();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
            Command::Serve(args) => serve(args).await,
            Command::Scan(args) => scan(args).await,
            Command::Transcode(args) => transcode(args).await,
            Command::Token(args) => token(args),
        }
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = load_config(&args.common)?;
    if let Some(b) = args.bind {
        config.bind = b;
    }
    if let Some(o) = args.cors_origins {
        config.cors_origins = o;
    }
    if let Some(w) = args.web_dir {
        config.web_dir = Some(w);
    }
    if let Some(m) = args.auth_mode {
        config.auth.mode = m;
    }
    if let Some(s) = args.live_stats_secs {
        config.live_stats_secs = s;
    }
    if let Some(b) = args.broker {
        config.broker = Some(b);
    }
    config.validate()?;
    raise_open_file_limit();
    let bind = config.bind;
    let state = server::build_state(config).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    eprintln!(
        "stream-server listening on http://{}/ (library: {})",
        listener.local_addr()?,
        state.library.root().display()
    );
    let shutdown = async {
        server::shutdown_signal().await;
        // A second signal while shutting down means "now": whatever is still draining is cut.
        tokio::spawn(async {
            server::shutdown_signal().await;
            eprintln!("stream-server: second signal, exiting now");
            std::process::exit(130);
        });
    };
    server::run(listener, state, shutdown).await?;
    Ok(())
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let config = load_config(&CommonArgs {
        data_dir: args.data_dir,
        config: args.config,
        ..CommonArgs::default()
    })?;
    let auth = stream_server::auth::Authenticator::load_or_create(
        &config.data_dir,
        config.auth.secret.as_deref(),
    )?;
    println!("{}", auth.mint(&args.user, args.ttl, args.admin)?);
    Ok(())
}

async fn scan(args: CommonArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    let root = if config.uses_demo() {
        config.demo_dir()
    } else {
        config.library.clone().unwrap_or_default()
    };
    let state = server::build_state(config).await?;
    let data_dir = state.config.data_dir.clone();
    let report = tokio::task::spawn_blocking(move || {
        stream_server::library::scan::scan(
            &root,
            Some(&data_dir.join("library-index.json")),
            6 * 3600,
            2,
        )
    })
    .await??;
    for t in &report.tracks {
        println!(
            "{}  {:>8.1}s  {:>6} Hz  {}ch  {:<6}  {}",
            t.id,
            t.duration_ms as f64 / 1000.0,
            t.sample_rate,
            t.channels,
            t.codec,
            t.filename
        );
    }
    for p in &report.problems {
        println!("skipped  {}: {}", p.path.display(), p.reason);
    }
    for p in &report.settling {
        println!(
            "settling {}: changed while read (still being copied?); scan again once it is whole",
            p.display()
        );
    }
    println!(
        "{} tracks, {} skipped, {} settling",
        report.tracks.len(),
        report.problems.len(),
        report.settling.len()
    );
    Ok(())
}

async fn transcode(args: TranscodeArgs) -> anyhow::Result<()> {
    if !args.all && args.tracks.is_empty() {
        anyhow::bail!("name tracks to encode, or pass --all");
    }
    let config = load_config(&args.common)?;
    let state = server::build_state(config).await?;
    state.scan_library().await?;
    let catalog = state.library.catalog();
    let tracks: Vec<_> = if args.all {
        catalog.tracks().to_vec()
    } else {
        args.tracks
            .iter()
            .map(|t| {
                catalog
                    .get(t)
                    .or_else(|| catalog.by_filename(t))
                    .with_context(|| format!("no track {t:?} in the library"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let qualities: Vec<String> = if args.qualities.is_empty() {
        state
            .streaming
            .profiles()
            .iter()
            .map(|p| p.quality_id.clone())
            .collect()
    } else {
        args.qualities.clone()
    };
    let bar = indicatif::ProgressBar::new(tracks.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} tracks  {elapsed_precise} (eta {eta})  {msg}",
        )
        .expect("valid template"),
    );
    let mut failed = 0;
    for track in &tracks {
        bar.set_message(track.title.clone());
        let reqs = qualities
            .iter()
            .map(|q| state.streaming.transcode_request(&track.id, q))
            .collect::<Result<Vec<_>, _>>()?;
        if let Err(e) = state.cache.warm(&reqs).await {
            bar.println(format!("failed: {}: {e}", track.filename));
            failed += 1;
        }
        bar.inc(1);
    }
    bar.finish_with_message("done");
    println!(
        "{} tracks encoded, {failed} failed; cache holds {:.1} MiB",
        tracks.len() - failed,
        state.cache.size_bytes() as f64 / 1048576.0
    );
    if failed > 0 {
        anyhow::bail!("{failed} tracks failed");
    }
    Ok(())
}

/// Lifts the soft limit on open files to the hard one. Every client connection is a descriptor,
/// and so is every segment held in memory (its file stays open for `sendfile`): the usual soft
/// default of 1,024 would refuse connections long before the machine is busy.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::debug!(from = ?limit.current, to = ?limit.maximum, "open file limit raised")
            }
            Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_are_parsed_and_bounded() {
        assert_eq!(parse_ttl("90").unwrap().as_secs(), 90);
        assert_eq!(parse_ttl("30d").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(parse_ttl("3650d").unwrap().as_secs(), MAX_TTL_SECS);
        for bad in [
            "0",
            "0d",
            "3651d",
            "213503982334601d",
            "18446744073709551615s",
            "5w",
            "x",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
