//! keepalived's `vrrp_instance` as l4vs's `vrrp:` block.
//!
//! Keys and defaults are keepalived's (keepalived/vrrp/vrrp_parser.c for
//! the keywords, vrrp_data.c `alloc_vrrp` for the defaults):
//!
//! | keepalived                                  | l4vs `vrrp:`                          |
//! |---------------------------------------------|---------------------------------------|
//! | `virtual_router_id N`                       | `virtual_router_id`                   |
//! | `priority N` (default 100)                  | `priority` (255, an owner's, is 254)  |
//! | `advert_int S` (seconds, default 1)         | `advert_int_ms`, to the centisecond   |
//! | `nopreempt`, `preempt`                      | `preempt: false`, `preempt: true`     |
//! | `preempt_delay S`                           | `preempt_delay_ms`                    |
//! | `virtual_ipaddress { ADDR[/LEN] ... }`      | `virtual_ipaddress` (the addresses)   |
//! | `garp_master_repeat N`, `garp_master_delay S` | `garp_master_repeat`, `garp_master_delay_ms` |
//! | `notify_master`, `notify_backup`, `notify_stop`, `notify` | the same keys (`sh -c`)   |
//!
//! The instance goes on the config's first port (as `lvs_sync_daemon`'s
//! daemon does), with a warning that names keepalived's interface. `state
//! MASTER` is a warning: l4vs starts every director as backup and lets the
//! priorities decide (RFC 5798 section 6.4.1 below priority 255). What
//! l4vs has no equivalent for is a warning with its line: VRRPv2's
//! `authentication`, unicast peers, tracking, `use_vmac`,
//! `notify_fault`, excluded addresses, virtual routes and rules, a second
//! instance and sync groups.

use std::net::Ipv4Addr;

use super::super::kaconf::{shown, Stmt};
use super::super::{error, ImportError, Pos, Warnings};
use super::{arg, extra_words, no_block, number, refuse_condition};
use crate::config;

/// A VRRP instance to run: what l4vs takes of a `vrrp_instance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedVrrp {
    /// The statement.
    pub pos: Pos,
    /// The instance's name, when l4vs takes it (1 to 32 of A-Z a-z 0-9
    /// _ -).
    pub name: Option<String>,
    pub vrid: u8,
    pub priority: u8,
    /// Milliseconds, a multiple of 10 in 10..=40950.
    pub advert_int_ms: u32,
    pub preempt: bool,
    pub preempt_delay_ms: u64,
    /// Each with the position of its line.
    pub addresses: Vec<(Pos, Ipv4Addr)>,
    pub garp_repeat: Option<u32>,
    pub garp_delay_ms: Option<u64>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_stop: Option<String>,
    pub notify: Option<String>,
    /// The instance says `version 3`.
    pub v3: bool,
}

/// A `KEYWORD SECONDS` line as keepalived reads a time
/// ([`super::checks::seconds`]: `0.1`, `3`), in milliseconds, at most
/// `max_ms`.
fn seconds_ms(t: &Stmt, max_ms: u64) -> Result<u64, ImportError> {
    let ms = (super::checks::seconds(t)? * 1000.0).round() as u64;
    if ms > max_ms {
        return Err(error(
            &t.pos,
            format!(
                "{}: {} is more than {} seconds",
                t.keyword(),
                config::echo(&t.words[1]),
                max_ms / 1000
            ),
        ));
    }
    Ok(ms)
}

/// A command of a `notify*` line: its words after the keyword, as
/// keepalived runs the script with them.
fn command(t: &Stmt) -> Result<String, ImportError> {
    arg(t, 1, "a script")?;
    no_block(t)?;
    Ok(t.words[1..].join(" "))
}

/// `vrrp_instance NAME { ... }`: the instance l4vs runs; none, with a
/// warning, without a `virtual_router_id` (keepalived drops such an
/// instance too); or the error that keeps the import from carrying its
/// meaning.
pub(super) fn vrrp_instance(
    s: &Stmt,
    w: &mut Warnings,
) -> Result<Option<PlannedVrrp>, ImportError> {
    refuse_condition(s)?;
    let name = arg(s, 1, "a name")?;
    let Some(block) = &s.block else {
        return Err(error(&s.pos, "vrrp_instance needs a { } block"));
    };
    if !block.iter().any(|t| t.keyword() == "virtual_router_id") {
        w.warn(
            &s.pos,
            format!(
                "{} is not carried over: it has no virtual_router_id (keepalived drops it too)",
                shown(&s.words[..2])
            ),
        );
        return Ok(None);
    }
    let valid = config::valid_name(name, 32);
    if !valid {
        w.warn(
            &s.pos,
            format!(
                "the instance's name {} is not carried over: l4vs takes 1 to 32 of A-Z a-z 0-9 _ - (it is VI_<virtual_router_id> then)",
                config::echo(name)
            ),
        );
    }
    let mut v = PlannedVrrp {
        pos: s.pos.clone(),
        name: valid.then(|| name.to_owned()),
        vrid: 0,
        priority: l4vs_wire::vrrp::PRIORITY_DEFAULT,
        advert_int_ms: 1000,
        preempt: true,
        preempt_delay_ms: 0,
        addresses: Vec::new(),
        garp_repeat: None,
        garp_delay_ms: None,
        notify_master: None,
        notify_backup: None,
        notify_stop: None,
        notify: None,
        v3: false,
    };
    let ctx = format!(
        "vrrp_instance {}",
        shown(std::slice::from_ref(&name.to_owned()))
    );
    let not_carried = |w: &mut Warnings, t: &Stmt, why: &str| {
        w.warn(
            &t.pos,
            format!("{} is not carried over ({ctx}){why}", shown(&t.words[..1])),
        );
    };
    for t in block {
        refuse_condition(t)?;
        match t.keyword() {
            "virtual_router_id" => {
                extra_words(t, 2)?;
                v.vrid = number(t, arg(t, 1, "a number")?, 1, 255)? as u8;
            }
            "priority" => {
                extra_words(t, 2)?;
                let p = number(t, arg(t, 1, "a number")?, 1, 255)?;
                if p == 255 {
                    w.warn(&t.pos, "priority 255 (the address owner's) becomes 254: a director owns none of its virtual addresses, and starts as backup");
                }
                v.priority = p.min(254) as u8;
            }
            "advert_int" => {
                let ms = seconds_ms(t, 40_950)?;
                let rounded = ((ms + 5) / 10 * 10).max(10);
                if rounded != ms {
                    w.warn(&t.pos, format!("advert_int is {rounded} ms: VRRPv3 carries centiseconds"));
                }
                v.advert_int_ms = rounded as u32;
            }
            "nopreempt" => v.preempt = false,
            "preempt" => v.preempt = true,
            "preempt_delay" => v.preempt_delay_ms = seconds_ms(t, 1_000_000)?,
            "garp_master_repeat" => {
                extra_words(t, 2)?;
                v.garp_repeat = Some(number(t, arg(t, 1, "a number")?, 1, 255)?);
            }
            "garp_master_delay" => {
                extra_words(t, 2)?;
                v.garp_delay_ms = Some(u64::from(number(t, arg(t, 1, "seconds")?, 0, 3600)?) * 1000);
            }
            "notify_master" => v.notify_master = Some(command(t)?),
            "notify_backup" => v.notify_backup = Some(command(t)?),
            "notify_stop" => v.notify_stop = Some(command(t)?),
            "notify" => v.notify = Some(command(t)?),
            "virtual_ipaddress" => {
                let Some(lines) = &t.block else {
                    return Err(error(&t.pos, "virtual_ipaddress needs a { } block"));
                };
                for a in lines {
                    refuse_condition(a)?;
                    let text = a.words[0].split('/').next().unwrap_or_default();
                    match text.parse::<Ipv4Addr>() {
                        Ok(addr) => {
                            if v.addresses.iter().any(|(_, b)| *b == addr) {
                                w.warn(&a.pos, format!("{addr} is listed twice: once is kept"));
                                continue;
                            }
                            v.addresses.push((a.pos.clone(), addr));
                        }
                        Err(_) if text.contains(':') => {
                            w.warn(&a.pos, format!("{} is not carried over: l4vs forwards IPv4 only so far", shown(&a.words[..1])))
                        }
                        Err(_) => {
                            return Err(error(
                                &a.pos,
                                format!("virtual_ipaddress: {} is not an address", config::echo(&a.words[0])),
                            ))
                        }
                    }
                }
            }
            "interface" => {
                extra_words(t, 2)?;
                w.warn(
                    &t.pos,
                    format!(
                        "interface {} becomes the config's first port: check vrrp.interface",
                        config::echo(arg(t, 1, "an interface")?)
                    ),
                );
            }
            "state" => {
                if t.words.get(1).is_some_and(|s| s == "MASTER") {
                    w.warn(&t.pos, "state MASTER is not carried over: l4vs starts every director as backup, and the priorities decide which becomes master (RFC 5798 section 6.4.1)");
                }
            }
            "version" if t.words.get(1).is_some_and(|s| s == "3") => v.v3 = true,
            "version" => not_carried(w, t, ": l4vs speaks VRRPv3 only; a keepalived peer needs vrrp_version 3"),
            "authentication" => not_carried(w, t, ": VRRPv2's; VRRPv3 has no authentication"),
            "unicast_src_ip" | "unicast_peer" => not_carried(w, t, ": l4vs advertises to the multicast group 224.0.0.18 only"),
            "track_interface" | "track_script" | "track_process" | "track_file" | "track_bfd" => {
                not_carried(w, t, ": l4vs tracks nothing yet")
            }
            "use_vmac" | "vmac_xmit_base" => not_carried(w, t, ": l4vs answers ARP and advertises with the port's own MAC, as keepalived without use_vmac"),
            "notify_fault" => not_carried(w, t, ": l4vs has no FAULT state"),
            "virtual_ipaddress_excluded" => not_carried(w, t, ": list the addresses in virtual_ipaddress"),
            _ => not_carried(w, t, ""),
        }
    }
    Ok(Some(v))
}
