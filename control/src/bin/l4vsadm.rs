//! `l4vsadm`: ipvsadm's command line for a running l4vs (see
//! [`l4vs_control::adm`]). Exit status as ipvsadm 1.31's: 0 on success, 1
//! when a listing fails ("No such service"), 2 for a command-line error or
//! when l4vs cannot be reached, 255 when the director refused the
//! operation.

use clap::Parser;
use l4vs_control::adm::{
    count_templates, format_connections, format_daemons, format_list, format_save, format_timeouts,
    parse_restore_bytes, Action, Cli, View, MAX_RESTORE_BYTES,
};
use l4vs_control::admin::{self, Request, Response};
use l4vs_control::printable::{parse_args, printable};
use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    // As ipvsadm: no arguments lists the table.
    let cli = if std::env::args_os().len() <= 1 {
        Cli::parse_from(["l4vsadm", "-L"])
    } else {
        parse_args::<Cli>()
    };
    let action = match cli.action() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{}", printable(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    let request = match &action {
        Action::Restore => {
            let mut bytes = Vec::new();
            let limit = MAX_RESTORE_BYTES as u64 + 1;
            if let Err(e) = std::io::stdin().take(limit).read_to_end(&mut bytes) {
                eprintln!(
                    "reading the commands to restore: {}",
                    printable(&e.to_string())
                );
                return ExitCode::from(2);
            }
            if bytes.len() > MAX_RESTORE_BYTES {
                eprintln!(
                    "the input to restore is over {} MiB: more than one request may carry",
                    MAX_RESTORE_BYTES >> 20
                );
                return ExitCode::from(2);
            }
            match parse_restore_bytes(&bytes) {
                Ok(commands) => Request::Apply { commands },
                Err((line, why)) => {
                    eprintln!("line {line}: {}", printable(&why));
                    return ExitCode::from(2);
                }
            }
        }
        other => other.request(),
    };
    let path = cli.socket.clone().unwrap_or_else(admin::default_path);
    // A connection listing takes the workers a while at a million entries.
    let timeout = Duration::from_secs(if matches!(action, Action::Connections { .. }) {
        30
    } else {
        10
    });
    let response = match admin::call(&path, &request, timeout) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}", printable(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    match (action, response) {
        (Action::Timeouts, Response::Listing { timeouts, .. }) => {
            print!("{}", format_timeouts(timeouts));
            ExitCode::SUCCESS
        }
        (Action::Daemons, Response::Listing { daemons, vrrp, .. }) => {
            print!("{}", format_daemons(&daemons));
            if let Some(v) = &vrrp {
                print!("{}", l4vs_control::adm::format_vrrp(v));
            }
            ExitCode::SUCCESS
        }
        (Action::Connections { persistent_conn }, Response::Connections { entries }) => {
            print!(
                "{}",
                format_connections(&entries, persistent_conn, cli.names())
            );
            ExitCode::SUCCESS
        }
        (
            Action::List(only, view),
            Response::Listing {
                size, mut services, ..
            },
        ) => {
            if view == View::PersistentConn {
                // The director keeps no count of templates per real:
                // they are counted from its connection listing.
                match admin::call(&path, &Request::Connections, Duration::from_secs(30)) {
                    Ok(Response::Connections { entries }) => {
                        count_templates(&mut services, &entries)
                    }
                    Ok(Response::Error { message, .. }) => {
                        eprintln!("{}", printable(&message));
                        return ExitCode::from(1);
                    }
                    Ok(_) => {
                        eprintln!("l4vsadm: l4vs answered with something else than was asked");
                        return ExitCode::from(2);
                    }
                    Err(e) => {
                        eprintln!("{}", printable(&e.to_string()));
                        return ExitCode::from(2);
                    }
                }
            }
            match format_list(&services, only, size, view, cli.names()) {
                Some(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("No such service");
                    ExitCode::from(1)
                }
            }
        }
        (Action::Yaml, Response::Yaml { text }) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        (Action::Save, Response::Listing { services, .. }) => {
            print!("{}", format_save(&services));
            ExitCode::SUCCESS
        }
        (
            Action::Apply(_) | Action::Restore | Action::StartDaemon(_) | Action::StopDaemon(_),
            Response::Applied { .. },
        ) => ExitCode::SUCCESS,
        (_, Response::Error { message, .. }) => {
            eprintln!("{}", printable(&message));
            ExitCode::from(255)
        }
        (_, _) => {
            eprintln!("l4vsadm: l4vs answered with something else than was asked");
            ExitCode::from(2)
        }
    }
}
