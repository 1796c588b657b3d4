//! `l4vs`: a Layer-4 virtual server (the Linux Virtual Server model) on DPDK.

use clap::{Parser, Subcommand};
use l4vs_control::{config, director, logging};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "l4vs",
    version,
    about = "Layer-4 virtual server on DPDK: LVS-style NAT, IP-IP and direct routing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot EAL and the ports and forward until SIGINT/SIGTERM; SIGHUP
    /// reloads the services from the same file.
    Run {
        /// The YAML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration and print it with defaults filled in.
    CheckConfig {
        /// The YAML configuration.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = match &cli.command {
        Command::Run { config } | Command::CheckConfig { file: config } => config,
    };
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("l4vs: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::CheckConfig { .. } => {
            print!("{}", config::to_yaml(&cfg));
            ExitCode::SUCCESS
        }
        Command::Run { config } => {
            logging::init();
            match director::run(&cfg, &config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("l4vs: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
