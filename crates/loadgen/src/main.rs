//! `roomgate-load`: drives a running Roomgate over its wire contract (HTTP and WebSocket, many
//! connections from one process) and reports what a capacity planner needs.
//!
//! Exit codes: 0 when the run completed and every invariant held; 1 when the run could not be
//! carried out; 2 for a command line that was refused (a bad value, or a target that is not on
//! this machine); 3 when an invariant broke (over-admission, a leaked seat, or, for `soak`,
//! memory that grew past its limit).

mod api;
mod cli;
mod common;
mod fault;
mod headline;
mod invariants;
mod latency;
mod memory;
mod plot;
mod progress;
mod report;
mod scenario;
mod server;
mod target;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::report::Report;

/// The command line was refused.
const EXIT_USAGE: u8 = 2;
/// An invariant broke.
const EXIT_VIOLATION: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("roomgate-load: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("roomgate-load: {error:#}");
            if error.is::<cli::UsageError>() || error.is::<target::TargetError>() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let output = cli.output.clone();
    let report: Report = match cli.command {
        Command::Storm(args) => scenario::storm::run(args, &output).await?,
        Command::Churn(args) => scenario::churn::run(args, &output).await?,
        Command::Fanout(args) => scenario::fanout::run(args, &output).await?,
        Command::Idle(args) => scenario::idle::run(args, &output).await?,
        Command::Compare(args) => scenario::compare::run(args, &output).await?,
        Command::Soak(args) => scenario::soak::run(args, &output).await?,
        Command::Queue(args) => scenario::queue::run(args, &output).await?,
        Command::Charts(args) => {
            for path in headline::draw_all(&args.figures, &args.out)? {
                println!("{}", path.display());
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    if output.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
        if !output.quiet {
            eprint!("{}", report.human());
        }
    } else if !output.quiet {
        print!("{}", report.human());
    }
    if let Some(path) = &output.plot {
        plot::draw(&report.chart, path)
            .map_err(|e| anyhow::anyhow!("drawing {}: {e:#}", path.display()))?;
        if !output.quiet {
            eprintln!("chart written to {}", path.display());
        }
    }
    Ok(if !report.violations.is_empty() {
        ExitCode::from(EXIT_VIOLATION)
    } else if !report.errors.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
