use super::*;
use crate::table::{RealSpec, ServiceKey};
use l4vs_dataplane::model::{ForwardMethod, Protocol};
use std::net::{IpAddr, Ipv4Addr};

fn add_real() -> Request {
    Request::Apply {
        commands: vec![Command::AddReal(
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                vip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
                port: 80,
            },
            RealSpec {
                addr: IpAddr::V4(Ipv4Addr::new(198, 18, 2, 14)),
                port: 80,
                weight: 1,
                method: ForwardMethod::Nat,
                upper_threshold: 0,
                lower_threshold: 0,
            },
        )],
    }
}

/// `n` copies of [`add_real`]'s command in one request: 20 000 make a
/// request larger than a socket's buffer.
fn add_reals(n: usize) -> Request {
    let Request::Apply { commands } = add_real() else {
        unreachable!("add_real is an Apply")
    };
    Request::Apply {
        commands: vec![commands[0].clone(); n],
    }
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("l4vs-admin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("admin.sock")
}

#[test]
fn frames_round_trip_and_partial_frames_wait() {
    let frame = encode(&add_real());
    assert_eq!(decode_request(&frame), Ok(Some(add_real())));
    for cut in 0..frame.len() {
        assert_eq!(decode_request(&frame[..cut]), Ok(None), "cut at {cut}");
    }
    let list = encode(&Request::List);
    assert_eq!(&list[4..], br#"{"request":"list"}"#);
    assert_eq!(decode_request(&list), Ok(Some(Request::List)));
}

/// Bad input: a 1 GiB length prefix is refused on its 4 bytes alone;
/// not-JSON, JSON of something else and trailing bytes are refused.
#[test]
fn bad_frames_are_refused() {
    let giant = (1u32 << 30).to_be_bytes();
    assert_eq!(decode_request(&giant), Err(FrameError::TooLong(1 << 30)));
    let frame = |body: &[u8]| {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    for body in [
        &b"not json"[..],
        br#"{"request":"format_disk"}"#,
        br#"[1,2]"#,
        b"",
    ] {
        assert!(
            matches!(decode_request(&frame(body)), Err(FrameError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    let mut two = encode(&Request::List);
    two.extend_from_slice(&encode(&Request::List));
    assert!(matches!(
        decode_request(&two),
        Err(FrameError::Malformed(_))
    ));
}

proptest::proptest! {
    /// The decoder takes any bytes without panicking (the fuzz-style
    /// property over random frames and random prefixes of real ones).
    #[test]
    fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512), cut in 0usize..200) {
        let _ = decode_request(&bytes);
        let real = encode(&add_real());
        let mut mixed = real[..cut.min(real.len())].to_vec();
        mixed.extend_from_slice(&bytes);
        let _ = decode_request(&mixed);
    }
}

/// Polls `server` until `done` holds or a second passes.
fn poll_until(
    server: &mut AdminServer,
    mut handle: impl FnMut(Request) -> Response,
    done: impl Fn() -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !done() && Instant::now() < deadline {
        server.poll(|req, _| Some(handle(req)));
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Over a real socket: a good client is answered while a client that
/// sent a 1 GiB length prefix gets an error and one that sends half a
/// request and stops is cut off at the deadline; none of them holds the
/// others up. The socket is 0600.
#[test]
fn the_server_answers_and_sheds_bad_clients() {
    let path = temp_path("serve");
    let mut server = AdminServer::bind_with_deadline(&path, Duration::from_millis(200)).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let mut slow = UnixStream::connect(&path).unwrap();
    slow.write_all(&encode(&Request::List)[..6]).unwrap();
    let mut giant = UnixStream::connect(&path).unwrap();
    giant.write_all(&(1u32 << 30).to_be_bytes()).unwrap();

    let p = path.clone();
    let good = std::thread::spawn(move || call(&p, &add_real(), Duration::from_secs(2)));
    let mut seen = Vec::new();
    poll_until(
        &mut server,
        |req| {
            seen.push(req);
            Response::Applied {
                changes: vec!["real 198.18.2.14:80 added".into()],
            }
        },
        || good.is_finished(),
    );
    let answer = good.join().unwrap().unwrap();
    assert_eq!(
        answer,
        Response::Applied {
            changes: vec!["real 198.18.2.14:80 added".into()]
        }
    );
    assert_eq!(seen, [add_real()]);

    let read_error = |s: &mut UnixStream| -> String {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        match serde_json::from_slice(&body).unwrap() {
            Response::Error { message, .. } => message,
            other => panic!("{other:?}"),
        }
    };
    server.poll(|_, _| unreachable!());
    assert!(read_error(&mut giant).contains("over the"), "giant");
    std::thread::sleep(Duration::from_millis(250));
    server.poll(|_, _| unreachable!());
    assert!(
        read_error(&mut slow).contains("did not arrive whole"),
        "slow"
    );
    assert!(server.clients.is_empty(), "every client closed");
}

/// A socket file left by a director that is gone is replaced; a live
/// director's is not taken over.
#[test]
fn a_stale_socket_is_replaced_a_live_one_is_not() {
    let path = temp_path("stale");
    {
        let _left = std::os::unix::net::UnixListener::bind(&path).unwrap();
    }
    assert!(path.exists());
    let live = AdminServer::bind(&path).expect("stale file replaced");
    let e = AdminServer::bind(&path)
        .err()
        .expect("a second one refused");
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    drop(live);
    assert!(!path.exists(), "removed on exit");
}

/// A request answered later: the client waits past the request deadline
/// until the ticket is answered, and other clients are served meanwhile.
#[test]
fn a_deferred_request_is_answered_by_its_ticket() {
    let path = temp_path("deferred");
    let mut server = AdminServer::bind_with_deadline(&path, Duration::from_millis(100)).unwrap();
    let p = path.clone();
    let waiting =
        std::thread::spawn(move || call(&p, &Request::Connections, Duration::from_secs(5)));
    let mut ticket = None;
    let deadline = Instant::now() + Duration::from_secs(2);
    while ticket.is_none() && Instant::now() < deadline {
        server.poll(|req, t| {
            assert_eq!(req, Request::Connections);
            ticket = Some(t);
            None
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    let ticket = ticket.expect("the request was never handed over");
    // Past the 100 ms request deadline, another client is answered while
    // the first still waits.
    std::thread::sleep(Duration::from_millis(300));
    let p = path.clone();
    let other = std::thread::spawn(move || call(&p, &Request::Yaml, Duration::from_secs(2)));
    poll_until(
        &mut server,
        |_| Response::Yaml { text: "x".into() },
        || other.is_finished(),
    );
    assert_eq!(
        other.join().unwrap().unwrap(),
        Response::Yaml { text: "x".into() }
    );
    assert!(!waiting.is_finished());
    let entries = Response::Connections { entries: vec![] };
    server.answer(ticket, &entries);
    poll_until(&mut server, |_| unreachable!(), || waiting.is_finished());
    assert_eq!(waiting.join().unwrap().unwrap(), entries);
}

/// `call`'s errors say what happened, with the socket's path: a director
/// that closes the connection without answering, and one that does not
/// answer in time (not the bare "failed to fill whole buffer" or
/// "Resource temporarily unavailable").
#[test]
fn a_call_that_gets_no_answer_says_why() {
    let path = temp_path("no-answer");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        // The first client: read its request, close without answering.
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
        drop(s);
        // The second: keep it open, silent, until it gives up.
        let (mut s, _) = listener.accept().unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let closed = call(&path, &Request::List, Duration::from_secs(5)).unwrap_err();
    assert_eq!(
        closed.to_string(),
        format!(
            "l4vs on {}: it closed the connection without answering (see its log)",
            path.display()
        )
    );
    let silent = call(&path, &add_real(), Duration::from_millis(200)).unwrap_err();
    assert_eq!(
        silent.to_string(),
        format!(
            "l4vs on {}: no answer within 0.2 s; the change may or may not have been made: list with -Ln",
            path.display()
        )
    );
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// A director that closes the connection before reading the request
/// (the client's write then fails with a broken pipe, or its read sees
/// the end) is told as one that closed without answering, whichever way
/// the race goes; a path that is not a socket is named so.
#[test]
fn a_call_to_a_closed_or_wrong_socket_says_so() {
    let path = temp_path("closes-at-once");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    // A request larger than the socket's buffer, so that the write is
    // still going on when the server closes.
    let big = add_reals(20_000);
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            drop(listener.accept().unwrap());
        }
    });
    for req in [&Request::List, &big] {
        let e = call(&path, req, Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "l4vs on {}: it closed the connection without answering (see its log)",
                path.display()
            )
        );
    }
    server.join().unwrap();
    // Over the director's limit: refused before connecting, in words.
    let huge = add_reals(MAX_REQUEST / 100);
    let e = call(&path, &huge, Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().starts_with("the request is "), "{e}");
    assert!(
        e.to_string().ends_with(
            "A file split at a service's -A line restores in parts, each part all or nothing"
        ),
        "{e}"
    );
    let file = path.with_file_name("regular");
    std::fs::write(&file, b"").unwrap();
    let e = call(&file, &Request::List, Duration::from_secs(5)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("cannot reach l4vs on {}: not a socket", file.display())
    );
    // Nothing there, and a socket nobody listens on: the likely causes.
    let hint = "is l4vs running in this network namespace, and is that its admin_socket \
                (--socket PATH names another)?";
    let missing = path.with_file_name("missing.sock");
    let e = call(&missing, &Request::List, Duration::from_secs(5)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "cannot reach l4vs on {}: no director listens there (no such socket); {hint}",
            missing.display()
        )
    );
    let e = call(&path, &Request::List, Duration::from_secs(5)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "cannot reach l4vs on {}: no director listens there (connection refused); {hint}",
            path.display()
        )
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// A director that accepts but does not read a large request: the
/// client's send times out, and it says that nothing was applied (the
/// director takes a request only whole), not that it did not answer.
#[test]
fn a_request_not_taken_in_time_was_not_applied() {
    let path = temp_path("not-reading");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (_kept, _) = listener.accept().unwrap();
        let _ = wait.recv();
    });
    let big = add_reals(20_000);
    let e = call(&path, &big, Duration::from_millis(200)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "l4vs on {}: it did not take the request within 0.2 s; nothing was applied",
            path.display()
        )
    );
    done.send(()).unwrap();
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// The listing a timed-out change points at shows what it changes.
#[test]
fn a_timed_out_change_points_at_its_listing() {
    let set = Command::SetTimeouts {
        tcp: 10,
        tcp_fin: 0,
        udp: 0,
    };
    let zero = Command::Zero(None);
    let Request::Apply { commands } = add_reals(1) else {
        unreachable!()
    };
    let add = commands[0].clone();
    assert_eq!(listing_of(std::slice::from_ref(&set)), "-L --timeout");
    assert_eq!(listing_of(std::slice::from_ref(&zero)), "-Ln --stats");
    assert_eq!(listing_of(std::slice::from_ref(&add)), "-Ln");
    assert_eq!(listing_of(&[zero, add, set]), "-Ln");
}
