//! `leaseq-bench`: the load generator. Performance is measured here, never by a timed test.
//!
//! Every HTTP figure is reported next to the same lease cycle run directly on Redis
//! (`raw-redis`: the same Lua scripts, no HTTP, no JSON), measured in the same run, so
//! the ratio says how much of the design's ceiling the broker delivers on this machine.

mod bench;
mod listeners;
mod redis_info;
mod report;
mod target;
mod workload;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = bench::BenchArgs::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("leaseq-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::run(args, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leaseq-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
