//! keepalived's health checkers as l4vs checks.
//!
//! keepalived checks each real server with the checkers of its
//! `real_server` block (check/check_api.c, check_tcp.c, check_http.c,
//! check_misc.c; check_data.c `validate_check_config` fills in the
//! defaults). l4vs has a [`Check`] per service, for its reals, and a real
//! may have its own ([`crate::health`]): the import gives the service the
//! check every real has when all have the same, and otherwise each real
//! its own (a real without a checker is then not checked, as keepalived
//! does not check it).
//!
//! | keepalived                                   | l4vs service                              |
//! |----------------------------------------------|-------------------------------------------|
//! | `TCP_CHECK`                                  | `check: { type: tcp }`                    |
//! | `HTTP_GET`, its first `url`'s `path`, `status_code` | `type: http`, `path`, `status_code` |
//! | `SSL_GET` (the same keys), `enable_sni`      | `type: https`, `enable_sni`               |
//! | `url`'s `digest`                             | `digest`                                  |
//! | `url`'s `regex` of plain text                | `contains`                                |
//! | `UDP_CHECK` `payload`, `require_reply`       | `type: udp`, `payload`, `require_reply`   |
//! | `DNS_CHECK` `type`, `name`                   | `type: dns`, `dns_type`, `dns_name`       |
//! | `virtualhost` (url, checker, real_server, virtual_server) | `virtualhost`                |
//! | `MISC_CHECK` `misc_path`, `misc_timeout`, `misc_dynamic` | `type: misc`, `misc_path`, ... |
//! | `connect_port`                               | `connect_port`                            |
//! | `delay_loop`, `connect_timeout`, `retry` (`nb_get_retry`), `delay_before_retry`, `warmup`, `alpha` | the same keys |
//! | `inhibit_on_failure` (real_server, virtual_server) | `inhibit_on_failure`                |
//!
//! The values are keepalived's, each written out: a timing setting of the
//! checker, else of its `real_server`, else of the `virtual_server`, else
//! the checker's default: `delay_loop` 60 s, `connect_timeout` 5 s,
//! `retry` 1 (MISC_CHECK 0, DNS_CHECK 3), `delay_before_retry` 3 s for
//! HTTP_GET and SSL_GET and 1 s otherwise, `alpha` off, and `warmup` the checker's `delay_loop`
//! (keepalived scatters the first checks over a delay_loop unless told
//! otherwise). A url without `status_code` takes 200-299, which the output
//! lists code by code (l4vs takes a list; ranges are expanded too).
//! `misc_timeout` 0 or none is the virtual_server's `delay_loop`
//! (check_misc.c takes the virtual server's, not the checker's). A checker
//! connects to the port of its `real_server` line as written (the real's
//! address is copied when the checker is read, before keepalived corrects
//! a DR real's port), so where l4vs gives the real another port the
//! written one becomes `connect_port`. keepalived passes a MISC_CHECK
//! command nothing, so configs name each real in its own command; the
//! real's address in `misc_path` becomes `${L4VS_REAL_ADDRESS}`, which
//! l4vs sets, so that the reals' commands are one.
//!
//! What l4vs cannot say is a warning with its line: a second checker of a
//! real (keepalived needs all to pass, l4vs runs one), a second url, a
//! regex that is not plain text, `min_reply_length` and
//! `max_reply_length`, SMTP_CHECK, PING_CHECK, FILE_CHECK and BFD_CHECK, a
//! TCP_CHECK, HTTP_GET or SSL_GET of a UDP service and a UDP_CHECK of a
//! TCP one (l4vs refuses those; the reals stay unchecked), the source address and
//! mark options. A time or retry count
//! beyond what l4vs takes is brought within it, with a warning; a
//! `misc_path` with shell characters is a warning too, as l4vs runs it with
//! `sh -c` where keepalived ran it without a shell; and so is a TCP or
//! HTTP checker of a real without a port on its line and without
//! `connect_port` (keepalived's connects to port 0 and always fails, l4vs's
//! to the real's port). keepalived sends HTTP/1.0 unless told
//! `http_protocol 1.1`, and `Host: IP:PORT` without a virtualhost; l4vs
//! always sends HTTP/1.1 with `Connection: close` and `Host: IP`, which
//! servers answer alike.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::{arg, extra_words, no_block, number, refuse_condition, warn_not_carried, UNKNOWN};
use crate::config::{self, Check, CheckKind};
use crate::import::kaconf::{shown, Stmt};
use crate::import::{error, ImportError, Pos, Warnings};

/// The shortest time l4vs takes for `delay_loop`, `connect_timeout`,
/// `delay_before_retry` and `misc_timeout` (config/validate.rs
/// `health_check`), in seconds.
const MIN_SECONDS: f64 = 0.01;
/// The longest time l4vs takes for any of them, in seconds.
const MAX_SECONDS: f64 = 86_400.0;
/// The most retries l4vs takes.
const MAX_RETRY: u32 = 100;
/// keepalived's `delay_loop` when none is written (KEEPALIVED_DEFAULT_DELAY).
const DEFAULT_DELAY_LOOP: f64 = 60.0;
/// keepalived's `connect_timeout` when none is written (check_data.c
/// `alloc_vs`).
const DEFAULT_CONNECT_TIMEOUT: f64 = 5.0;
/// keepalived's status codes of a url without `status_code`
/// (HTTP_DEFAULT_STATUS_CODE_MIN..=MAX).
const DEFAULT_STATUS_CODES: std::ops::RangeInclusive<u16> = 200..=299;
/// The status codes keepalived takes (HTTP_STATUS_CODE_MIN..=MAX), as
/// l4vs does.
const STATUS_CODES: std::ops::RangeInclusive<u16> = 100..=599;

/// A setting as written, with its line.
#[derive(Debug, Clone)]
pub(super) struct Setting<T> {
    pos: Pos,
    value: T,
}

/// The block a setting is written in: keepalived takes the timing keys in
/// a `virtual_server`, a `real_server` and a checker, the nearest winning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    VirtualServer,
    RealServer,
    Checker,
}

/// The checker settings of one block.
#[derive(Debug, Clone, Default)]
pub(super) struct Settings {
    delay_loop: Option<Setting<f64>>,
    connect_timeout: Option<Setting<f64>>,
    retry: Option<Setting<u32>>,
    delay_before_retry: Option<Setting<f64>>,
    warmup: Option<Setting<f64>>,
    alpha: Option<Setting<bool>>,
    /// `inhibit_on_failure` (virtual_server and real_server only).
    inhibit: Option<Setting<bool>>,
    /// `virtualhost`: HTTP_GET's Host header.
    virtualhost: Option<Setting<String>>,
}

impl Settings {
    /// Reads `t` if it is a checker setting a `level` block takes, and
    /// says whether it was; `ctx` names the block for warnings.
    ///
    /// # Errors
    /// A value keepalived would not read, with its line.
    pub(super) fn read(
        &mut self,
        t: &Stmt,
        level: Level,
        ctx: &str,
        w: &mut Warnings,
    ) -> Result<bool, ImportError> {
        let pos = t.pos.clone();
        let kw = t.keyword();
        match kw {
            "delay_loop" | "connect_timeout" | "delay_before_retry" | "warmup" => {
                let value = seconds(t)?;
                if value == 0.0 && matches!(kw, "delay_loop" | "connect_timeout") {
                    // read_timer's minimum for these is 1 µs.
                    w.warn(
                        &pos,
                        format!("{kw} 0 is not carried over ({ctx}): keepalived takes more than 0, and ignores it"),
                    );
                    return Ok(true);
                }
                let slot = match kw {
                    "delay_loop" => &mut self.delay_loop,
                    "connect_timeout" => &mut self.connect_timeout,
                    "delay_before_retry" => &mut self.delay_before_retry,
                    _ => &mut self.warmup,
                };
                *slot = Some(Setting { pos, value });
            }
            // nb_get_retry: keepalived 1.x's name for a checker's retry.
            "retry" | "nb_get_retry" if kw == "retry" || level == Level::Checker => {
                no_block(t)?;
                extra_words(t, 2)?;
                let value = number(t, arg(t, 1, "a number of retries")?, 0, u32::MAX)?;
                if level == Level::VirtualServer && value == 0 {
                    // check_parser.c `vs_retry_handler` reads 1 or more.
                    w.warn(
                        &pos,
                        format!("retry 0 is not carried over ({ctx}): keepalived takes 1 or more here, and ignores it"),
                    );
                } else {
                    self.retry = Some(Setting { pos, value });
                }
            }
            "alpha" => {
                let value = if level == Level::VirtualServer {
                    on(t, ctx, w)?
                } else {
                    flag(t)?
                };
                self.alpha = Some(Setting { pos, value });
            }
            "inhibit_on_failure" if level != Level::Checker => {
                let value = if level == Level::VirtualServer {
                    on(t, ctx, w)?
                } else {
                    flag(t)?
                };
                self.inhibit = Some(Setting { pos, value });
            }
            "virtualhost" => {
                no_block(t)?;
                extra_words(t, 2)?;
                let value = arg(t, 1, "a host name")?.to_owned();
                self.virtualhost = Some(Setting { pos, value });
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The timing settings written, by keyword (all but
    /// `inhibit_on_failure`, which is the service's whether it is checked
    /// or not, and `virtualhost`).
    fn timing(&self) -> Vec<(&'static str, &Pos)> {
        [
            ("delay_loop", self.delay_loop.as_ref().map(|s| &s.pos)),
            (
                "connect_timeout",
                self.connect_timeout.as_ref().map(|s| &s.pos),
            ),
            ("retry", self.retry.as_ref().map(|s| &s.pos)),
            (
                "delay_before_retry",
                self.delay_before_retry.as_ref().map(|s| &s.pos),
            ),
            ("warmup", self.warmup.as_ref().map(|s| &s.pos)),
            ("alpha", self.alpha.as_ref().map(|s| &s.pos)),
        ]
        .into_iter()
        .filter_map(|(kw, pos)| pos.map(|p| (kw, p)))
        .collect()
    }
}

/// A checker l4vs carries over, as written.
#[derive(Debug, Clone)]
pub(super) struct Checker {
    pos: Pos,
    keyword: &'static str,
    kind: Kind,
    connect_port: Option<u16>,
    /// Its own timing settings and `virtualhost`.
    own: Settings,
}

#[derive(Debug, Clone)]
enum Kind {
    /// TCP_CHECK, HTTP_GET, SSL_GET, UDP_CHECK and DNS_CHECK as l4vs
    /// checks them; an HTTP check's `virtualhost` is its url's own, which
    /// [`resolve`] fills in from the checker, real or virtual server.
    Ready(CheckKind),
    /// MISC_CHECK, whose timeout and command [`resolve`] settles.
    Misc {
        path: String,
        timeout: Option<Setting<u32>>,
        dynamic: bool,
    },
}

/// The checker block `t` of `real` (`real_server IP [PORT]`), or None
/// with a warning when l4vs does not carry it over.
///
/// # Errors
/// A value keepalived would not read, with its line.
pub(super) fn checker(
    t: &Stmt,
    real: &str,
    w: &mut Warnings,
) -> Result<Option<Checker>, ImportError> {
    refuse_condition(t)?;
    let keyword = match t.keyword() {
        "TCP_CHECK" => "TCP_CHECK",
        "HTTP_GET" => "HTTP_GET",
        "MISC_CHECK" => "MISC_CHECK",
        "SSL_GET" => "SSL_GET",
        "UDP_CHECK" => "UDP_CHECK",
        "DNS_CHECK" => "DNS_CHECK",
        other => {
            let reason = match other {
                "SMTP_CHECK" => "l4vs has no SMTP check (a MISC_CHECK with a command that talks SMTP can check it)",
                "PING_CHECK" => "l4vs has no ICMP echo check (a MISC_CHECK running ping can check it)",
                "FILE_CHECK" => "l4vs has no file check (a MISC_CHECK testing the file can check it)",
                "BFD_CHECK" => "l4vs has no BFD",
                _ => "the import carries over TCP_CHECK, HTTP_GET, SSL_GET, UDP_CHECK, DNS_CHECK and MISC_CHECK",
            };
            w.warn(
                &t.pos,
                format!("{other} is not carried over ({real}): {reason}"),
            );
            return Ok(None);
        }
    };
    extra_words(t, 1)?;
    let ctx = format!("{keyword} of {real}");
    let tls = keyword == "SSL_GET";
    let (http, misc) = (keyword == "HTTP_GET" || tls, keyword == "MISC_CHECK");
    let (udp, dns) = (keyword == "UDP_CHECK", keyword == "DNS_CHECK");
    let mut own = Settings::default();
    let mut connect_port = None;
    let mut urls: Vec<Url> = Vec::new();
    let mut misc_path: Option<String> = None;
    let mut misc_timeout = None;
    let mut misc_dynamic = false;
    let mut enable_sni = false;
    let mut payload: Vec<u8> = Vec::new();
    let mut require_reply: Option<Vec<u8>> = None;
    let mut record_type = config::DnsRecordType::Soa;
    let mut dns_name = ".".to_owned();
    for u in t.block.iter().flatten() {
        refuse_condition(u)?;
        let kw = u.keyword();
        // The common keys each checker takes (check_api.c
        // `install_checker_common_keywords`: MISC_CHECK has no connection
        // keys; only HTTP_GET has virtualhost and nb_get_retry, which the
        // import takes in TCP_CHECK too, as keepalived 1.x's name for retry).
        let common = match kw {
            "virtualhost" => http,
            "connect_timeout" | "nb_get_retry" => !misc,
            _ => true,
        };
        if common && own.read(u, Level::Checker, &ctx, w)? {
            continue;
        }
        let mut not_carried = |reason: &str| warn_not_carried(w, u, &ctx, reason);
        match kw {
            "connect_port" if !misc => {
                no_block(u)?;
                extra_words(u, 2)?;
                connect_port = Some(number(u, arg(u, 1, "a port")?, 1, 65535)? as u16);
            }
            "connect_ip" if !misc => not_carried("l4vs checks the real server's own address"),
            "bindto" | "bind_port" | "bind_if" if !misc => not_carried(
                "l4vs's checks leave from the director's own address on the real server's subnet",
            ),
            "fwmark" if !misc => not_carried("l4vs does not mark its checks' packets"),
            "log_all_failures" => not_carried("l4vs logs each change of a real's health, once"),
            "url" if http => urls.push(url(u, &ctx)?),
            "http_protocol" if http => {
                no_block(u)?;
                extra_words(u, 2)?;
                match arg(u, 1, "1.0, 1.0C or 1.1")? {
                    "1.1" => {}
                    "1.0" | "1.0C" => not_carried(
                        "l4vs sends HTTP/1.1 requests with Connection: close (keepalived's http_protocol 1.1)",
                    ),
                    other => {
                        return Err(error(
                            &u.pos,
                            format!(
                                "unknown http_protocol {}: keepalived knows 1.0, 1.0C and 1.1",
                                config::echo(other)
                            ),
                        ))
                    }
                }
            }
            "fast_recovery" if http => not_carried(
                "l4vs checks one url, and a real that was down is up again at its first success",
            ),
            "enable_sni" if tls => enable_sni = flag(u)?,
            "tls_compliant" if tls => not_carried(
                "l4vs's TLS client reads the answer to its end and closes as rustls does",
            ),
            "enable_sni" | "tls_compliant" if http => {
                not_carried("it is for SSL_GET, and HTTP_GET has no TLS")
            }
            "payload" if udp => {
                no_block(u)?;
                extra_words(u, 2)?;
                payload = hex_bytes(u, arg(u, 1, "bytes in hex")?)?;
            }
            "require_reply" if udp => {
                no_block(u)?;
                extra_words(u, 2)?;
                // With no bytes keepalived wants any reply, as l4vs's
                // udp check always does.
                require_reply = match u.words.get(1) {
                    Some(h) => Some(hex_bytes(u, h)?),
                    None => None,
                };
            }
            "min_reply_length" | "max_reply_length" if udp => not_carried(
                "l4vs's udp check wants a reply that starts with require_reply, of any length",
            ),
            "type" if dns => {
                no_block(u)?;
                extra_words(u, 2)?;
                let word = arg(u, 1, "a DNS record type")?;
                match config::DnsRecordType::parse(word) {
                    Some(t) => record_type = t,
                    // check_dns.c `dns_type_handler` logs and keeps SOA.
                    None => not_carried("keepalived knows A, NS, CNAME, SOA, MX, TXT and AAAA, and keeps SOA for others, as l4vs does"),
                }
            }
            "name" if dns => {
                no_block(u)?;
                extra_words(u, 2)?;
                let name = arg(u, 1, "a domain name")?;
                if hickory_proto::rr::Name::from_ascii(name).is_ok() {
                    dns_name = name.to_owned();
                } else {
                    not_carried("it is not a domain name l4vs can send; the root (.) is asked for");
                }
            }
            "misc_path" if misc => {
                no_block(u)?;
                misc_path = Some(command(u, &ctx, w)?);
            }
            "misc_timeout" if misc => {
                no_block(u)?;
                extra_words(u, 2)?;
                let value = number(u, arg(u, 1, "a time in seconds")?, 0, u32::MAX)?;
                misc_timeout = Some(Setting {
                    pos: u.pos.clone(),
                    value,
                });
            }
            "misc_dynamic" if misc => misc_dynamic = on(u, &ctx, w)?,
            "user" if misc => not_carried("l4vs runs the command as the user l4vs runs as"),
            _ => not_carried(UNKNOWN),
        }
    }
    let kind = if http {
        // keepalived checks each url with a path in turn and needs all to
        // pass (check_http.c `url_check` drops a url without a path, and
        // `http_get_check_end` a checker without urls).
        let mut with_path = Vec::new();
        for u in urls {
            match u.path.clone() {
                Some(p) => with_path.push((u, p)),
                None => w.warn(
                    &u.pos,
                    format!("url is not carried over ({ctx}): it has no path, and keepalived ignores such a url too"),
                ),
            }
        }
        let mut with_path = with_path.into_iter();
        let Some((first, path)) = with_path.next() else {
            w.warn(
                &t.pos,
                format!("{keyword} is not carried over ({real}): it has no url with a path, and keepalived ignores such a checker too"),
            );
            return Ok(None);
        };
        for (other, _) in with_path {
            w.warn(
                &other.pos,
                format!(
                    "url is not carried over ({ctx}): l4vs checks one path, where keepalived needs every url to pass; the first, {} ({}), is carried over",
                    config::echo(&path.value),
                    path.pos
                ),
            );
        }
        for (pos, message) in &first.notes {
            w.warn(pos, message.clone());
        }
        // What config/validate.rs takes and hyper can send.
        if !path.value.starts_with('/')
            || path.value.chars().any(char::is_whitespace)
            || path.value.parse::<hyper::Uri>().is_err()
        {
            w.warn(
                &path.pos,
                format!(
                    "{keyword} is not carried over ({real}): its path {} is not one l4vs sends (a URL path: it starts with / and has no spaces)",
                    config::echo(&path.value)
                ),
            );
            return Ok(None);
        }
        let status_codes = if first.status_codes.is_empty() {
            DEFAULT_STATUS_CODES.collect()
        } else {
            first.status_codes.into_iter().collect()
        };
        Kind::Ready(CheckKind::Http {
            path: path.value,
            status_codes,
            virtualhost: first.virtualhost,
            digest: first.digest,
            contains: first.contains,
            tls,
            enable_sni,
        })
    } else if udp {
        Kind::Ready(CheckKind::Udp {
            payload,
            require_reply,
        })
    } else if dns {
        Kind::Ready(CheckKind::Dns {
            record_type,
            name: dns_name,
        })
    } else if misc {
        let Some(path) = misc_path else {
            w.warn(
                &t.pos,
                format!("{keyword} is not carried over ({real}): it has no misc_path, and keepalived ignores such a checker too"),
            );
            return Ok(None);
        };
        Kind::Misc {
            path,
            timeout: misc_timeout,
            dynamic: misc_dynamic,
        }
    } else {
        Kind::Ready(CheckKind::Tcp)
    };
    Ok(Some(Checker {
        pos: t.pos.clone(),
        keyword,
        kind,
        connect_port,
        own,
    }))
}

/// One `url { }` block of an HTTP_GET.
struct Url {
    pos: Pos,
    path: Option<Setting<String>>,
    status_codes: BTreeSet<u16>,
    virtualhost: Option<String>,
    digest: Option<[u8; 16]>,
    contains: Option<String>,
    /// Warnings about its statements, given only if it is the url carried
    /// over.
    notes: Vec<(Pos, String)>,
}

/// Reads a `url` block of the checker `ctx`.
fn url(u: &Stmt, ctx: &str) -> Result<Url, ImportError> {
    extra_words(u, 1)?;
    let mut out = Url {
        pos: u.pos.clone(),
        path: None,
        status_codes: BTreeSet::new(),
        virtualhost: None,
        digest: None,
        contains: None,
        notes: Vec::new(),
    };
    let mut regex: Option<(&Stmt, &str)> = None;
    let mut regex_options: Vec<&Stmt> = Vec::new();
    for v in u.block.iter().flatten() {
        refuse_condition(v)?;
        let kw = v.keyword();
        let mut not_carried = |reason: &str| {
            out.notes.push((
                v.pos.clone(),
                format!("{kw} is not carried over ({ctx}): {reason}"),
            ));
        };
        match kw {
            "path" => {
                no_block(v)?;
                extra_words(v, 2)?;
                out.path = Some(Setting {
                    pos: v.pos.clone(),
                    value: arg(v, 1, "a URL path")?.to_owned(),
                });
            }
            "status_code" => {
                no_block(v)?;
                arg(v, 1, "status codes or ranges (200, 200-299)")?;
                for word in &v.words[1..] {
                    let (lo, hi) = status_range(word).ok_or_else(|| {
                        error(
                            &v.pos,
                            format!(
                                "status_code {}: not a status code or range of them (100..=599, as 200 or 200-299)",
                                config::echo(word)
                            ),
                        )
                    })?;
                    out.status_codes.extend(lo..=hi);
                }
            }
            "virtualhost" => {
                no_block(v)?;
                extra_words(v, 2)?;
                out.virtualhost = Some(arg(v, 1, "a host name")?.to_owned());
            }
            "regex" => {
                no_block(v)?;
                extra_words(v, 2)?;
                regex = Some((v, arg(v, 1, "a regular expression")?));
            }
            "regex_no_match" | "regex_options" | "regex_min_offset" | "regex_max_offset"
            | "regex_stack" => regex_options.push(v),
            "digest" => {
                no_block(v)?;
                extra_words(v, 2)?;
                let text = arg(v, 1, "an MD5 digest")?;
                // check_http.c `digest_handler` takes 32 hex digits and
                // ignores anything else, as the import does.
                match config::from_hex(text).and_then(|b| <[u8; 16]>::try_from(b).ok()) {
                    Some(d) => out.digest = Some(d),
                    None => not_carried(&format!(
                        "{} is not an MD5 digest (32 hex digits, as genhash prints it; this has {} characters), and keepalived ignores it too",
                        config::echo(text),
                        text.len()
                    )),
                }
            }
            _ => not_carried(UNKNOWN),
        }
    }
    // A regex of plain text with no options matches where the text is:
    // l4vs's `contains`.
    const SPECIAL: &[char] = &[
        '\\', '^', '$', '.', '|', '?', '*', '+', '(', ')', '[', ']', '{', '}',
    ];
    match regex {
        Some((_, re)) if regex_options.is_empty() && !re.contains(SPECIAL) => {
            out.contains = Some(re.to_owned());
        }
        Some((r, _)) => {
            for v in std::iter::once(r).chain(regex_options) {
                out.notes.push((
                    v.pos.clone(),
                    format!(
                        "{} is not carried over ({ctx}): l4vs checks for a plain text the body contains (`contains`), not a regular expression",
                        v.keyword()
                    ),
                ));
            }
        }
        None => {
            for v in regex_options {
                out.notes.push((
                    v.pos.clone(),
                    format!(
                        "{} is not carried over ({ctx}): there is no regex, and keepalived ignores it too",
                        v.keyword()
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// `text` (of statement `t`) as bytes written in hex, two digits each, as
/// keepalived writes a UDP_CHECK payload or an MD5 digest.
///
/// # Errors
/// Not hex digits in pairs, with the line.
fn hex_bytes(t: &Stmt, text: &str) -> Result<Vec<u8>, ImportError> {
    config::from_hex(text).ok_or_else(|| {
        error(
            &t.pos,
            format!(
                "{} {}: not bytes in hex (pairs of 0-9 a-f)",
                t.keyword(),
                config::echo(text)
            ),
        )
    })
}

/// A `status_code` word: `200` or `200-299`, within 100..=599.
fn status_range(word: &str) -> Option<(u16, u16)> {
    let code = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|c| s.bytes().all(|b| b.is_ascii_digit()) && STATUS_CODES.contains(c))
    };
    let (lo, hi) = match word.split_once('-') {
        Some((a, b)) => (code(a)?, code(b)?),
        None => (code(word)?, code(word)?),
    };
    (lo <= hi).then_some((lo, hi))
}

/// The command line of a script keyword (`misc_path`, `quorum_up`,
/// `quorum_down`). keepalived runs the first word after the keyword (a
/// quoted string is one word), split as a shell would split it, without a
/// shell (core/notify.c `set_script_params_array`); l4vs runs it with
/// `sh -c`.
pub(super) fn command(u: &Stmt, ctx: &str, w: &mut Warnings) -> Result<String, ImportError> {
    let cmd = arg(u, 1, "a command")?;
    if u.words.len() > 2 {
        w.warn(
            &u.pos,
            format!(
                "the words after {}'s first, {}, are not carried over ({ctx}): keepalived runs only the first word (quote the whole command line to pass arguments)",
                u.keyword(),
                config::echo(&u.words[2..].join(" "))
            ),
        );
    }
    const SHELL: &[char] = &[
        '$', '`', ';', '|', '&', '<', '>', '(', ')', '*', '?', '[', ']', '{', '}', '~', '\\', '!',
        '#',
    ];
    if cmd.contains(SHELL) {
        w.warn(
            &u.pos,
            format!(
                "{} {} is carried over, but l4vs runs it with sh -c, which reads its $ ` ; | & < > ( ) * ? [ ] {{ }} ~ \\ as the shell does, where keepalived ran the command without a shell ({ctx}): check that it means the same",
                u.keyword(),
                config::echo(cmd)
            ),
        );
    }
    Ok(cmd.to_owned())
}

/// A carried-over checker of one real server, resolved as keepalived
/// resolves it.
#[derive(Debug, Clone)]
pub(super) struct Resolved {
    pos: Pos,
    keyword: &'static str,
    check: Check,
    /// The block whose `virtualhost` it took, if not its own or its url's.
    vhost_from: Option<Level>,
}

impl Resolved {
    /// The block whose `virtualhost` it took, if not its own or its url's.
    pub(super) fn vhost_from(&self) -> Option<Level> {
        self.vhost_from
    }
}

/// `c`, a checker of the real server at `addr` with settings `rs` in the
/// virtual server with settings `vs`, with every value keepalived would
/// use.
pub(super) fn resolve(
    vs: &Settings,
    rs: &Settings,
    c: &Checker,
    addr: Ipv4Addr,
    w: &mut Warnings,
) -> Resolved {
    fn pick<'a, T>(
        c: &'a Option<Setting<T>>,
        r: &'a Option<Setting<T>>,
        v: &'a Option<Setting<T>>,
    ) -> Option<&'a Setting<T>> {
        c.as_ref().or(r.as_ref()).or(v.as_ref())
    }
    let o = &c.own;
    let mut time = |s: Option<&Setting<f64>>, kw: &str, min: f64, default: f64| {
        Duration::from_secs_f64(s.map_or(default, |s| fit(w, &s.pos, kw, s.value, min)))
    };
    let delay_loop = time(
        pick(&o.delay_loop, &rs.delay_loop, &vs.delay_loop),
        "delay_loop",
        MIN_SECONDS,
        DEFAULT_DELAY_LOOP,
    );
    let connect_timeout = time(
        pick(&o.connect_timeout, &rs.connect_timeout, &vs.connect_timeout),
        "connect_timeout",
        MIN_SECONDS,
        DEFAULT_CONNECT_TIMEOUT,
    );
    let delay_before_retry = time(
        pick(
            &o.delay_before_retry,
            &rs.delay_before_retry,
            &vs.delay_before_retry,
        ),
        "delay_before_retry",
        MIN_SECONDS,
        if matches!(c.keyword, "HTTP_GET" | "SSL_GET") {
            3.0
        } else {
            1.0
        },
    );
    let warmup = time(
        pick(&o.warmup, &rs.warmup, &vs.warmup),
        "warmup",
        0.0,
        delay_loop.as_secs_f64(),
    );
    // check_misc.c: without misc_timeout, the virtual server's delay_loop.
    let misc_default = vs
        .delay_loop
        .as_ref()
        .map_or(DEFAULT_DELAY_LOOP, |s| s.value);
    // check_misc.c and check_dns.c set their own.
    let default_retry = match c.keyword {
        "MISC_CHECK" => 0,
        "DNS_CHECK" => 3,
        _ => 1,
    };
    let retry = match pick(&o.retry, &rs.retry, &vs.retry) {
        None => default_retry,
        Some(s) if s.value > MAX_RETRY => {
            w.warn(
                &s.pos,
                format!(
                    "retry {} is carried over as {MAX_RETRY}: l4vs takes 0 to {MAX_RETRY} retries",
                    s.value
                ),
            );
            MAX_RETRY
        }
        Some(s) => s.value,
    };
    let mut vhost_from = None;
    let kind = match &c.kind {
        Kind::Ready(k) => {
            let mut k = k.clone();
            if let CheckKind::Http {
                virtualhost,
                enable_sni,
                ..
            } = &mut k
            {
                if virtualhost.is_none() {
                    *virtualhost = match (&o.virtualhost, &rs.virtualhost, &vs.virtualhost) {
                        (Some(v), ..) => Some(v.value.clone()),
                        (None, Some(v), _) => {
                            vhost_from = Some(Level::RealServer);
                            Some(v.value.clone())
                        }
                        (None, None, Some(v)) => {
                            vhost_from = Some(Level::VirtualServer);
                            Some(v.value.clone())
                        }
                        (None, None, None) => None,
                    };
                }
                if *enable_sni && virtualhost.is_none() {
                    w.warn(
                        &c.pos,
                        format!(
                            "enable_sni is not carried over ({} of {addr}): there is no virtualhost to name, and keepalived sends no name either",
                            c.keyword
                        ),
                    );
                    *enable_sni = false;
                }
            }
            k
        }
        Kind::Misc {
            path,
            timeout,
            dynamic,
        } => {
            let timeout = match timeout {
                Some(s) if s.value != 0 => {
                    fit(w, &s.pos, "misc_timeout", f64::from(s.value), MIN_SECONDS)
                }
                _ => match &vs.delay_loop {
                    Some(s) => fit(w, &s.pos, "delay_loop", s.value, MIN_SECONDS),
                    None => misc_default,
                },
            };
            CheckKind::Misc {
                path: address_variable(path, addr),
                timeout: Duration::from_secs_f64(timeout),
                dynamic: *dynamic,
            }
        }
    };
    Resolved {
        pos: c.pos.clone(),
        keyword: c.keyword,
        check: Check {
            kind,
            connect_port: c.connect_port,
            delay_loop,
            connect_timeout,
            retry,
            delay_before_retry,
            alpha: pick(&o.alpha, &rs.alpha, &vs.alpha).is_some_and(|s| s.value),
            warmup,
            // keepalived's notify_up/notify_down name the real in their
            // command; they stay warnings (see the real_server keys).
            notify_up: None,
            notify_down: None,
            through_vip: false,
        },
        vhost_from,
    }
}

/// `cmd` with each mention of the real's address `addr` as
/// `${L4VS_REAL_ADDRESS}`, which l4vs sets for the command
/// ([`crate::health`]): keepalived passes a command nothing, so its
/// configs name each real in its own MISC_CHECK, where l4vs runs one
/// command for every real of a service. Left as it is when the command
/// has a single quote (the variable would not be expanded inside one).
fn address_variable(cmd: &str, addr: Ipv4Addr) -> String {
    if cmd.contains('\'') {
        return cmd.to_owned();
    }
    let a = addr.to_string();
    let part_of_address = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == '.');
    let mut out = String::new();
    let mut rest = cmd;
    while let Some(at) = rest.find(&a) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + a.len()..].chars().next();
        out.push_str(&rest[..at]);
        if part_of_address(before) || part_of_address(after) {
            out.push_str(&a);
        } else {
            out.push_str("${L4VS_REAL_ADDRESS}");
        }
        rest = &rest[at + a.len()..];
    }
    out.push_str(rest);
    out
}

/// `value` (seconds) within what l4vs takes (`min` to [`MAX_SECONDS`]),
/// with a warning at `pos` when it is not.
fn fit(w: &mut Warnings, pos: &Pos, kw: &str, value: f64, min: f64) -> f64 {
    let v = value.clamp(min, MAX_SECONDS);
    if v != value {
        w.warn(
            pos,
            format!(
                "{kw} {value} is carried over as {v}: l4vs takes {min} to {MAX_SECONDS} seconds"
            ),
        );
    }
    v
}

/// Whether a real server with settings `rs` in a virtual server with
/// settings `vs` has `inhibit_on_failure`, and the line that says so.
pub(super) fn inhibit<'a>(vs: &'a Settings, rs: &'a Settings) -> Option<&'a Pos> {
    rs.inhibit
        .as_ref()
        .or(vs.inhibit.as_ref())
        .filter(|s| s.value)
        .map(|s| &s.pos)
}

/// One real server of a service, for [`service_check`].
pub(super) struct RealRef<'a> {
    pub pos: &'a Pos,
    /// `real_server IP [PORT]`.
    pub name: String,
    /// The port of its `real_server` line; 0: none.
    pub written_port: u16,
    /// The port l4vs gives it; 0 in a firewall-mark service (the
    /// packet's).
    pub port: u16,
    /// Its checkers l4vs carries over, resolved.
    pub checks: &'a [Resolved],
    /// Where it gets `inhibit_on_failure`, if it does.
    pub inhibit: Option<&'a Pos>,
}

/// A service's check and `inhibit_on_failure`.
pub(super) struct ServiceCheck {
    /// The check of every real, when they all have the same.
    pub check: Option<Check>,
    /// Otherwise each real's own, in the order of the reals (`None`: not
    /// checked); empty when `check` says it all.
    pub real_checks: Vec<Option<Check>>,
    pub inhibit_on_failure: bool,
    /// For each real, the index of its checker carried over (as the
    /// service's or not), if any.
    pub carried: Vec<Option<usize>>,
}

/// A service's checks from its reals' checkers: one for the service when
/// every real's is the same, else each real's own. `only`: the protocol of the service, whose reals answer that
/// protocol only (config/validate.rs refuses TCP, HTTP and HTTPS checks
/// of a UDP service, and UDP checks of a TCP one); `None` for a
/// firewall-mark service, which takes every kind.
pub(super) fn service_check(
    reals: &[RealRef<'_>],
    only: Option<config::Protocol>,
    w: &mut Warnings,
) -> ServiceCheck {
    let mut each: Vec<Option<(usize, Check)>> = Vec::new();
    for r in reals {
        let mut kept: Option<(usize, Check)> = None;
        for (i, c) in r.checks.iter().enumerate() {
            // All but MISC_CHECK send something to the real's port.
            let connects = !matches!(c.check.kind, CheckKind::Misc { .. });
            let over_tcp = matches!(c.check.kind, CheckKind::Tcp | CheckKind::Http { .. });
            let refused = match only {
                Some(config::Protocol::Udp) if over_tcp => Some(
                    "l4vs refuses TCP, HTTP and HTTPS checks of a UDP service, whose reals answer UDP (a UDP_CHECK or DNS_CHECK can check them)",
                ),
                Some(config::Protocol::Tcp) if matches!(c.check.kind, CheckKind::Udp { .. }) => Some(
                    "l4vs refuses UDP checks of a TCP service, whose reals answer TCP (a TCP_CHECK can check them)",
                ),
                _ => None,
            };
            if let Some(why) = refused {
                w.warn(
                    &c.pos,
                    format!("{} is not carried over ({}): {why}", c.keyword, r.name),
                );
                continue;
            }
            if let Some((k, _)) = &kept {
                let first = &r.checks[*k];
                w.warn(
                    &c.pos,
                    format!(
                        "{} is not carried over ({}): l4vs runs one check per real server, where keepalived needs all of a real's checkers to pass; {} ({}) is carried over",
                        c.keyword, r.name, first.keyword, first.pos
                    ),
                );
                continue;
            }
            let mut check = c.check.clone();
            if connects && check.connect_port.is_none() && r.written_port != r.port {
                if r.written_port != 0 {
                    check.connect_port = Some(r.written_port);
                } else {
                    w.warn(
                        &c.pos,
                        format!(
                            "{} of {} has no connect_port and the real_server line no port: keepalived's checker connects to port 0, which always fails; l4vs checks port {}",
                            c.keyword, r.name, r.port
                        ),
                    );
                }
            }
            kept = Some((i, check));
        }
        each.push(kept);
    }
    let carried = each.iter().map(|k| k.as_ref().map(|(i, _)| *i)).collect();
    // One check for the service when every real has the same; else each
    // real its own (keepalived's checkers are a real's), and a real
    // without one is not checked, as in keepalived.
    let first = each.iter().flatten().next().map(|(_, c)| c.clone());
    let same = first.as_ref().filter(|f| {
        each.iter()
            .all(|k| k.as_ref().is_some_and(|(_, c)| c == *f))
    });
    let (check, own) = match (same, first.is_some()) {
        (Some(c), _) => (Some(c.clone()), Vec::new()),
        (None, true) => (
            None,
            each.iter()
                .map(|k| k.as_ref().map(|(_, c)| c.clone()))
                .collect(),
        ),
        (None, false) => (None, Vec::new()),
    };
    // l4vs has inhibit_on_failure per service: on if any real has it.
    let inhibit_on_failure = match reals.iter().find_map(|r| r.inhibit.map(|p| (r, p))) {
        None => false,
        Some((by, at)) => {
            for r in reals.iter().filter(|r| r.inhibit.is_none()) {
                w.warn(
                    r.pos,
                    format!(
                        "{} has no inhibit_on_failure, but l4vs has it per service: this real too keeps weight 0 when its check fails, like {} (inhibit_on_failure at {at})",
                        r.name, by.name
                    ),
                );
            }
            true
        }
    };
    ServiceCheck {
        check,
        real_checks: own,
        inhibit_on_failure,
        carried,
    }
}

/// Warns about the timing settings of a block (`ctx`) when none of its
/// checkers is carried over (`checked` false; `why` says so), and about
/// its `virtualhost` when no carried HTTP check takes it (`vhost_used`).
pub(super) fn warn_unused(
    s: &Settings,
    ctx: &str,
    checked: bool,
    why: &str,
    vhost_used: bool,
    w: &mut Warnings,
) {
    if !checked {
        for (kw, pos) in s.timing() {
            w.warn(pos, format!("{kw} is not carried over ({ctx}): {why}"));
        }
    }
    if let Some(v) = &s.virtualhost {
        if !vhost_used {
            w.warn(
                &v.pos,
                format!("virtualhost is not carried over ({ctx}): no HTTP_GET or SSL_GET carried over takes its Host from it"),
            );
        }
    }
}

/// A time in seconds as keepalived reads one (`read_timer`): digits with
/// an optional fraction.
pub(super) fn seconds(t: &Stmt) -> Result<f64, ImportError> {
    no_block(t)?;
    extra_words(t, 2)?;
    let v = arg(t, 1, "a time in seconds")?;
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    match v.parse::<f64>() {
        Ok(s) if digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty()) => Ok(s),
        _ => Err(error(
            &t.pos,
            format!(
                "{}: {} is not a time in seconds (such as 6 or 0.5)",
                t.keyword(),
                config::echo(v)
            ),
        )),
    }
}

/// An on/off setting of a real server or checker: no word or `true`,
/// `on`, `yes` is on; `false`, `off`, `no` off (lib/parser.c
/// `check_true_false`).
fn flag(t: &Stmt) -> Result<bool, ImportError> {
    no_block(t)?;
    extra_words(t, 2)?;
    match t.words.get(1).map(String::as_str) {
        None | Some("true" | "on" | "yes") => Ok(true),
        Some("false" | "off" | "no") => Ok(false),
        Some(other) => Err(error(
            &t.pos,
            format!(
                "{}: {} is not true or false (nor yes, no, on, off)",
                t.keyword(),
                config::echo(other)
            ),
        )),
    }
}

/// A setting keepalived turns on whatever follows it (a virtual server's
/// `alpha` and `inhibit_on_failure`, `misc_dynamic`); a word after it is
/// a warning.
fn on(t: &Stmt, ctx: &str, w: &mut Warnings) -> Result<bool, ImportError> {
    no_block(t)?;
    if t.words.len() > 1 {
        w.warn(
            &t.pos,
            format!(
                "{} is carried over as on ({ctx}): keepalived reads no value here and turns it on whatever follows",
                shown(&t.words)
            ),
        );
    }
    Ok(true)
}
