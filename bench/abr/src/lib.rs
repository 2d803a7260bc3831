//! Trace-driven ABR simulator: plays our packager's real segment sizes over throughput traces
//! and scores our quality policy against BOLA (dash.js) and hls.js's throughput rule, with the
//! offline optimum as the ceiling. See `bench/abr/README.md`.

pub mod ceiling;
pub mod foresight;
pub mod ladder;
pub mod ours;
pub mod policy;
pub mod reference;
pub mod report;
pub mod room;
pub mod sim;
pub mod trace;
