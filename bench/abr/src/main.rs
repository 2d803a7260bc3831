//! `abr-sim`: runs our quality policy, BOLA and hls.js's rule over directories of throughput
//! traces, on the real segment sizes of our packager, and prints the results as Markdown.
//!
//! ```text
//! cargo run --release -p abr-sim -- ../shared/traces/norway-3g-raw ../shared/traces/fcc-broadband
//! ```

use std::path::PathBuf;

use abr_sim::report::{gains, markdown, per_trace, run_set};
use abr_sim::sim::PlayerModel;
use abr_sim::trace::Trace;
use anyhow::Context as _;
use clap::Parser;
use stream_server::streaming::adaptive::policy::AbrTuning;

#[derive(Parser, Debug)]
#[command(name = "abr-sim", about, long_about = None)]
struct Args {
    /// Directories of traces (`seconds<TAB>Mbps` per line); each is reported as one set.
    #[arg(required = true, value_name = "DIR")]
    sets: Vec<PathBuf>,
    /// Music library whose tracks make the ladder [default: the demo library].
    #[arg(long, value_name = "DIR")]
    library: Option<PathBuf>,
    /// Where the encodes are cached between runs.
    #[arg(long, value_name = "DIR", default_value = "target/abr-data")]
    data_dir: PathBuf,
    /// Throughput scales to run every trace at.
    #[arg(long, value_delimiter = ',', default_value = "1,0.5,0.25")]
    scales: Vec<f64>,
    /// Player buffer cap in seconds (hls.js's maxBufferLength default).
    #[arg(long, default_value_t = 30.0)]
    buffer_max_s: f64,
    /// Round trip per request, milliseconds.
    #[arg(long, default_value_t = 100.0)]
    rtt_ms: f64,
    /// Skip the offline optimum (dynamic programming; the slow part).
    #[arg(long)]
    no_ceiling: bool,
    /// Also print one line per trace.
    #[arg(long)]
    per_trace: bool,
    /// Print every policy's rung per segment (and the buffer) on the trace of this name.
    #[arg(long, value_name = "TRACE")]
    dump: Option<String>,
    /// Our controller's parameters, `key=value,…` over the server's defaults.
    #[arg(long, value_name = "SETTINGS", default_value = "")]
    ours: String,
    /// Also locate the room between our controller and the perfect-foresight planner: our
    /// controller taking the planner's rung in one situation at a time, and hedges an online
    /// rule could make (`src/room.rs`).
    #[arg(long)]
    room: bool,
    /// Let players abandon a request in flight, each policy by its own player's rule (hls.js's
    /// emergency switch-down, dash.js's AbandonRequestsRule, ours); off by default, as the
    /// issue's model has it.
    #[arg(long)]
    abandon: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tuning = AbrTuning::default()
        .parse_overrides(&args.ours)
        .map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let ladder = runtime.block_on(abr_sim::ladder::from_library(
        args.library.clone(),
        args.data_dir.clone(),
    ))?;
    let media: f64 = ladder.durations_s.iter().sum();
    println!(
        "ladder: {} rungs ({:?} kbps), {} segments, {:.0} s of audio; buffer cap {} s, RTT {} ms, abandonment {}\n",
        ladder.rungs(),
        ladder.bitrates_kbps,
        ladder.segments(),
        media,
        args.buffer_max_s,
        args.rtt_ms,
        if args.abandon { "on" } else { "off" }
    );
    let mut results = Vec::new();
    let mut rooms = Vec::new();
    for dir in &args.sets {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let set = dir
            .file_name()
            .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
        for &scale in &args.scales {
            let mut traces = Vec::new();
            for f in &files {
                match Trace::load(f, scale) {
                    Ok(t) => traces.push(t),
                    Err(e) => eprintln!("skipping trace: {e}"),
                }
            }
            anyhow::ensure!(!traces.is_empty(), "no usable traces in {}", dir.display());
            let model_for = |t: &Trace| PlayerModel {
                buffer_max_s: args.buffer_max_s,
                rtt_s: args.rtt_ms / 1000.0,
                session_s: t.duration(),
                abandon: args.abandon,
            };
            if let Some(name) = &args.dump {
                for t in traces.iter().filter(|t| &t.name == name) {
                    let model = model_for(t);
                    let foresight = || -> Box<dyn abr_sim::policy::Policy> {
                        Box::new(abr_sim::foresight::Foresight::new(
                            t.clone(),
                            model,
                            abr_sim::report::FORESIGHT_HORIZON,
                        ))
                    };
                    let policies = abr_sim::report::POLICIES
                        .iter()
                        .map(|p| (*p, abr_sim::report::make_policy(p, &model, &tuning)))
                        .chain(std::iter::once(("foresight", foresight())));
                    for (p, mut pol) in policies {
                        let recs = abr_sim::sim::simulate(pol.as_mut(), &ladder, t, &model);
                        let line: String = recs
                            .iter()
                            .map(|r| {
                                let c = char::from(b'0' + r.rung as u8);
                                if r.stall_s > 0.0 {
                                    format!("{c}!")
                                } else {
                                    c.to_string()
                                }
                            })
                            .collect();
                        println!("{p:>9} ×{scale}: {line}");
                    }
                }
            }
            let r = run_set(
                &set,
                scale,
                &traces,
                &ladder,
                model_for,
                !args.no_ceiling,
                &tuning,
            );
            eprintln!("{set} ×{scale}: done ({} traces)", traces.len());
            results.push(r);
            if args.room {
                rooms.push(abr_sim::room::room(
                    &set, scale, &traces, &ladder, model_for, &tuning,
                ));
            }
        }
    }
    println!("{}", markdown(&results, !args.no_ceiling));
    println!("{}", gains(&results));
    if args.per_trace {
        println!("{}", per_trace(&results));
    }
    if args.room {
        println!("{}", abr_sim::room::markdown(&rooms));
    }
    Ok(())
}
