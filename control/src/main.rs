//! `l4vs`: a Layer-4 virtual server (the Linux Virtual Server model) on DPDK.

use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use l4vs_control::printable::{parse_args, printable};
use l4vs_control::{config, director, import, logging};
use std::path::{Path, PathBuf};
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
    // One of the two, named so in the usage line and its error.
    #[command(group(ArgGroup::new("configuration").required(true).args(["file", "config"])))]
    CheckConfig {
        /// The YAML configuration (or `--config FILE`, as `run` takes it).
        file: Option<PathBuf>,
        /// The YAML configuration, as `run` takes it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print an l4vs config equivalent to an ipvsadm-save file or a
    /// keepalived.conf. What is not carried over is listed on stderr with
    /// its file and line; what cannot be kept is an error (exit status 2).
    Import {
        /// What FILE is: `ipvsadm` (what `ipvsadm -Sn` prints) or
        /// `keepalived` (a keepalived.conf; includes are followed).
        #[arg(value_enum)]
        kind: ImportKind,
        /// The file to import.
        file: PathBuf,
        /// An l4vs config to take everything but the services from (EAL,
        /// workers, ports, addresses); its services are replaced. Without
        /// it those are placeholders to edit, marked in the output.
        #[arg(long, value_name = "BASE.yaml")]
        base: Option<PathBuf>,
    },
}

/// The kinds of file `l4vs import` reads.
#[derive(Clone, Copy, ValueEnum)]
enum ImportKind {
    /// ipvsadm-save output (`ipvsadm -Sn`).
    Ipvsadm,
    /// A keepalived.conf.
    Keepalived,
}

fn main() -> ExitCode {
    match parse_args::<Cli>().command {
        Command::CheckConfig { file, config } => match file.or(config).map(|f| load(&f)) {
            // clap requires one of them.
            None => ExitCode::from(2),
            Some(Ok(cfg)) => {
                print!("{}", config::to_yaml(&cfg));
                ExitCode::SUCCESS
            }
            Some(Err(code)) => code,
        },
        Command::Run { config } => match load(&config) {
            Ok(cfg) => {
                logging::init();
                match director::run(&cfg, &config) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("l4vs: {}", printable(&format!("{e:#}")));
                        ExitCode::FAILURE
                    }
                }
            }
            Err(code) => code,
        },
        Command::Import { kind, file, base } => run_import(kind, &file, base.as_deref()),
    }
}

/// The config at `path`, or exit status 2 once the error is printed.
fn load(path: &Path) -> Result<config::Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("l4vs: invalid configuration: {}", printable(&e.to_string()));
        ExitCode::from(2)
    })
}

/// `l4vs import`: the config on stdout, each warning on stderr; exit 2,
/// printing nothing on stdout, when the file cannot be carried over.
fn run_import(kind: ImportKind, file: &Path, base: Option<&Path>) -> ExitCode {
    let source = match kind {
        ImportKind::Ipvsadm => import::Source::Ipvsadm,
        ImportKind::Keepalived => import::Source::Keepalived,
    };
    match import::import(source, file, base) {
        Ok(imported) => {
            for w in &imported.warnings {
                eprintln!("l4vs: import: {}", printable(&w.to_string()));
            }
            print!("{}", imported.yaml);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("l4vs: import: {}", printable(&e.to_string()));
            ExitCode::from(2)
        }
    }
}
