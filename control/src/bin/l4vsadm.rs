//! `l4vsadm`: ipvsadm's command line for a running l4vs (see
//! [`l4vs_control::adm`]). Exit status as ipvsadm's: 0 on success, 1 when
//! the director refused the operation, 2 for a usage error.

use clap::Parser;
use l4vs_control::adm::{format_list, Action, Cli};
use l4vs_control::admin::{self, Response};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let action = match cli.action() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let path = cli.socket.clone().unwrap_or_else(admin::default_path);
    let response = match admin::call(&path, &action.request(), Duration::from_secs(10)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    match (action, response) {
        (Action::List(only), Response::Listing { size, services }) => {
            print!("{}", format_list(&services, only, size));
            ExitCode::SUCCESS
        }
        (Action::Apply(_), Response::Applied { .. }) => ExitCode::SUCCESS,
        (_, Response::Error { message, .. }) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
        (_, other) => {
            eprintln!("l4vsadm: unexpected answer from l4vs: {}", kind(&other));
            ExitCode::from(1)
        }
    }
}

fn kind(r: &Response) -> &'static str {
    match r {
        Response::Applied { .. } => "applied",
        Response::Listing { .. } => "listing",
        Response::Error { .. } => "error",
    }
}
