//! The `nginx-ha` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nginx-ha",
    version,
    about = "High availability for nginx: VRRP with built-in nginx health checks"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a declaration; print a summary, or one line per problem.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::CheckConfig { config } => check_config(&config),
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match nginx_ha::config::load(path) {
        Ok(d) => {
            println!("{}: OK: {}", path.display(), nginx_ha::config::summary(&d));
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.lines() {
                eprintln!("{}: {line}", path.display());
            }
            ExitCode::FAILURE
        }
    }
}
