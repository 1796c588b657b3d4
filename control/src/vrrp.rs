//! The VRRPv3 router of an active-standby pair (RFC 5798), on the control
//! thread, over the DPDK port.
//!
//! One instance (keepalived's `vrrp_instance`, config `vrrp:`) on one
//! port. Its state machine is RFC 5798 section 6.4, with its timers
//! (section 6.1, in centiseconds):
//!
//! - `Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256`;
//! - `Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time`.
//!
//! A director starts as **backup** (Initialize with a priority below 255,
//! section 6.4.1: l4vs owns none of its virtual addresses) and becomes
//! **master** when no advertisement of an equal or higher priority came
//! for `Master_Down_Interval`; a master's advertisement of priority 0 (it
//! stops) cuts that to `Skew_Time`. A master sends an advertisement every
//! `Advertisement_Interval` and gives way to an advertisement of a higher
//! priority, or of the same priority from a higher primary address.
//!
//! **Preemption**: a backup of a higher priority than the master's
//! discards the master's advertisements (section 6.4.2), so its down timer
//! fires and it takes over — unless `preempt: false`, or it is still in
//! its hold-off: `preempt_delay_ms` after its start and, with a sync
//! daemon that receives, one whole `resync_period` and a flush
//! ([`crate::sync::FLUSH_TIME`]) more, in which the master has sent it
//! every connection ([`Router::new`]'s `preempt_from`). A failed master
//! that comes back so takes over only once it holds the connections that
//! its peer took on. During the hold-off it behaves as with
//! `preempt: false`.
//!
//! What the director does with the states (`crate::director`): a backup's
//! workers forward nothing and answer no ARP for the VIPs and the virtual
//! addresses ([`l4vs_dataplane::Snapshot::standby`]); a master's do, and
//! it sends `garp_master_repeat` gratuitous ARPs for each at once and
//! again `garp_master_delay_ms` later, from the port's MAC (keepalived's
//! default without `use_vmac`; the advertisements leave from that MAC too,
//! not from the virtual router MAC of section 7.3). Notify commands run on
//! each transition, and a master that stops sends an advertisement of
//! priority 0 (section 6.4.3, Shutdown). The sync daemon sends only
//! while master (keepalived switches its `lvs_sync_daemon` between master
//! and backup the same way): a backup's idle copies would otherwise
//! overwrite the master's live entries; a director demoted to backup
//! sends what waits at once.
//!
//! Received advertisements are checked as [`l4vs_wire::vrrp::validate`]
//! and [`l4vs_wire::vrrp::Packet::check_vrid`] say (TTL 255, version 3,
//! type, completeness, checksum, VRID) and dropped, counted by reason,
//! when they fail; a different address list is counted and the
//! advertisement still used, as keepalived does. The director's own
//! advertisements (its source address) are ignored.

use crate::config::Vrrp;
use l4vs_wire::ethernet::Address as MacAddr;
use l4vs_wire::vrrp::{self as wire, Advertisement, ChecksumMode, Ipv4Facts, RxError};
use l4vs_wire::{ipv4, Ipv4Addr};
use std::time::{Duration, Instant};

/// A VRRP state (RFC 5798 section 6.4; Initialize is passed through at
/// start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Watches the master; forwards nothing.
    Backup,
    /// Forwards, answers ARP for the virtual addresses, advertises.
    Master,
}

impl State {
    /// keepalived's words: `MASTER`, `BACKUP`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Backup => "BACKUP",
            State::Master => "MASTER",
        }
    }
}

/// A change of state, and why, in words for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state.
    pub to: State,
    /// Why: `no advertisement for 3.40 s`, `198.18.1.2 advertises
    /// priority 200`...
    pub why: String,
}

/// What the router counted, for the metrics and `l4vsadm -L --daemon`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VrrpCounts {
    /// Advertisements sent.
    pub sent: u64,
    /// Advertisements received that passed the checks.
    pub received: u64,
    /// Advertisements of priority 0 received (a master stopped).
    pub received_priority_zero: u64,
    /// Advertisements dropped, by RFC 5798 section 7.1 check: TTL,
    /// version, type, incomplete, checksum, VRID.
    pub rejected: [u64; 6],
    /// Used advertisements whose address list differs from ours.
    pub address_list_errors: u64,
    /// Transitions to master.
    pub became_master: u64,
    /// Transitions to backup (after the first).
    pub became_backup: u64,
}

/// The names of [`VrrpCounts::rejected`]'s slots, in order.
pub const REJECT_REASONS: [&str; 6] = ["ttl", "version", "type", "incomplete", "checksum", "vrid"];

/// The VRRP instance of one director.
pub struct Router {
    cfg: Vrrp,
    /// The port's MAC: the advertisements' source.
    mac: MacAddr,
    state: State,
    /// The master's interval as last advertised (centiseconds), ours
    /// until a master is heard.
    master_adver_int: u16,
    /// Backup: when the master is taken as down.
    down_at: Instant,
    /// Master: when the next advertisement is due.
    adver_at: Instant,
    /// No preemption before this.
    preempt_from: Instant,
    /// The master's address and priority, as last heard (a backup's).
    master: Option<(Ipv4Addr, u8)>,
    /// Advertisements to send, as frames.
    outbox: Vec<Vec<u8>>,
    /// A backup heard this master release (priority 0).
    released_by: Option<Ipv4Addr>,
    /// Senders whose address list differs from ours, said once each
    /// until they send ours again.
    list_differs: Vec<Ipv4Addr>,
    /// What to log, in words, since the last [`Router::take_notices`].
    notices: Vec<String>,
    ident: u16,
    /// What it counted.
    pub counts: VrrpCounts,
}

impl Router {
    /// A router for `cfg` on a port of MAC `mac`, started at `now` as
    /// backup (RFC 5798 section 6.4.1), that does not preempt before
    /// `preempt_from`.
    pub fn new(cfg: Vrrp, mac: [u8; 6], now: Instant, preempt_from: Instant) -> Router {
        let master_adver_int = cfg.advert_int_cs;
        let mut r = Router {
            cfg,
            mac: MacAddr(mac),
            state: State::Backup,
            master_adver_int,
            down_at: now,
            adver_at: now,
            preempt_from,
            master: None,
            outbox: Vec::new(),
            released_by: None,
            list_differs: Vec::new(),
            notices: Vec::new(),
            ident: 0,
            counts: VrrpCounts::default(),
        };
        r.down_at = now + r.master_down_interval();
        r
    }

    /// The instance's settings.
    pub fn config(&self) -> &Vrrp {
        &self.cfg
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The master as a backup last heard it: its address and priority.
    pub fn master(&self) -> Option<(Ipv4Addr, u8)> {
        self.master
    }

    /// `Skew_Time` (RFC 5798 section 6.1) for our priority and the
    /// master's interval.
    fn skew_time(&self) -> Duration {
        let cs = (256 - u32::from(self.cfg.priority)) * u32::from(self.master_adver_int) / 256;
        centis(cs)
    }

    /// `Master_Down_Interval` (RFC 5798 section 6.1).
    fn master_down_interval(&self) -> Duration {
        centis(3 * u32::from(self.master_adver_int)) + self.skew_time()
    }

    /// True when `frame` (an Ethernet frame the workers punted) is an
    /// IPv4 packet of protocol 112 to the VRRP group.
    pub fn is_vrrp_frame(frame: &[u8]) -> bool {
        ipv4::in_frame(frame).is_some_and(|ip| {
            ip.protocol() == ipv4::Protocol::Unknown(wire::PROTOCOL)
                && ip.dst_addr() == wire::MULTICAST_GROUP
        })
    }

    /// Takes a received advertisement (`frame`, Ethernet) at `now`: the
    /// state machine's "ADVERTISEMENT received" events. Returns the
    /// transition it caused, if any; an advertisement to send in answer
    /// goes to [`Router::take_frames`].
    pub fn receive(&mut self, frame: &[u8], now: Instant) -> Option<Transition> {
        let ip = ipv4::in_frame(frame)?;
        if ip.is_fragment() || !ip.verify_checksum() {
            self.counts.rejected[3] += 1;
            return None;
        }
        let facts = Ipv4Facts::of(&ip);
        if facts.src == self.cfg.source {
            return None;
        }
        let payload = ip.payload();
        let adv = match wire::validate(&facts, payload, self.checksum_mode())
            .and_then(|p| p.check_vrid(self.cfg.vrid, self.cfg.priority).map(|()| p))
        {
            Ok(p) => p,
            Err(e) => {
                let slot = match e {
                    RxError::Ttl(_) => 0,
                    RxError::Version(_) => 1,
                    RxError::Type(_) => 2,
                    RxError::Incomplete => 3,
                    RxError::Checksum => 4,
                    RxError::Vrid(_) | RxError::LocalOwner => 5,
                };
                self.counts.rejected[slot] += 1;
                return None;
            }
        };
        self.counts.received += 1;
        if adv.same_addresses(&self.cfg.addresses) {
            self.list_differs.retain(|a| *a != facts.src);
        } else {
            self.counts.address_list_errors += 1;
            // keepalived logs it too, and uses the advertisement.
            if !self.list_differs.contains(&facts.src) && self.list_differs.len() < 16 {
                self.list_differs.push(facts.src);
                let theirs: Vec<String> = adv.addresses().map(|a| a.to_string()).collect();
                let ours: Vec<String> =
                    self.cfg.addresses.iter().map(ToString::to_string).collect();
                self.notices.push(format!(
                    "VRRP: {} advertises the addresses {}, this director {}: the two configs' virtual_ipaddress differ (the advertisement is used)",
                    facts.src,
                    if theirs.is_empty() { "none".to_owned() } else { theirs.join(", ") },
                    ours.join(", ")
                ));
            }
        }
        let (priority, interval) = (adv.priority(), adv.max_adver_int().max(1));
        match self.state {
            State::Backup => {
                if priority == wire::PRIORITY_RELEASE {
                    // Section 6.4.2: the master stopped; take over after
                    // Skew_Time.
                    self.counts.received_priority_zero += 1;
                    self.down_at = now + self.skew_time();
                    self.released_by = Some(facts.src);
                } else if !self.may_preempt(now) || priority >= self.cfg.priority {
                    self.released_by = None;
                    self.master_adver_int = interval;
                    self.down_at = now + self.master_down_interval();
                    self.master = Some((facts.src, priority));
                }
                // Else: a lower-priority master, discarded, so that our
                // down timer fires (preemption).
                None
            }
            State::Master => {
                if priority == wire::PRIORITY_RELEASE {
                    // Section 6.4.3: answer at once.
                    self.counts.received_priority_zero += 1;
                    self.advertise(self.cfg.priority, now);
                    None
                } else if priority > self.cfg.priority
                    || (priority == self.cfg.priority && facts.src > self.cfg.source)
                {
                    self.master_adver_int = interval;
                    self.down_at = now + self.master_down_interval();
                    self.master = Some((facts.src, priority));
                    self.state = State::Backup;
                    self.counts.became_backup += 1;
                    Some(Transition {
                        to: State::Backup,
                        why: format!(
                            "{} advertises priority {priority}{}",
                            facts.src,
                            if priority == self.cfg.priority {
                                " (ours) from a higher address"
                            } else {
                                ""
                            }
                        ),
                    })
                } else {
                    None
                }
            }
        }
    }

    /// The timers at `now`: a backup whose master is down becomes master
    /// (and advertises at once); a master advertises when due.
    pub fn poll(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            State::Backup if now >= self.down_at => {
                self.state = State::Master;
                self.counts.became_master += 1;
                self.master_adver_int = self.cfg.advert_int_cs;
                self.advertise(self.cfg.priority, now);
                let released = self.released_by.take();
                let why = match self.master.take() {
                    _ if released.is_some() => format!(
                        "{} gave it up, priority 0",
                        released.unwrap_or(Ipv4Addr::UNSPECIFIED)
                    ),
                    Some((addr, p)) if p < self.cfg.priority && self.cfg.preempt => {
                        format!("preempting {addr} of priority {p}")
                    }
                    Some((addr, _)) => format!("no advertisement from {addr} in time"),
                    None => "no master advertised".to_owned(),
                };
                Some(Transition {
                    to: State::Master,
                    why,
                })
            }
            State::Master if now >= self.adver_at => {
                self.advertise(self.cfg.priority, now);
                None
            }
            _ => None,
        }
    }

    /// Takes a reloaded `cfg` of the same instance (name, port and VRID
    /// are restart-only, [`crate::config::restart_only_change`]) at `now`,
    /// as keepalived's reload does, and returns what changed in words. A
    /// master advertises at once when its priority, interval or addresses
    /// changed, so its peers know; a backup goes on with its timers (a
    /// higher priority lets it preempt once the master's next
    /// advertisement is discarded).
    pub fn reconfigure(&mut self, cfg: Vrrp, now: Instant) -> Vec<String> {
        let old = std::mem::replace(&mut self.cfg, cfg);
        let new = &self.cfg;
        let list = |a: &[Ipv4Addr]| {
            a.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut changes = Vec::new();
        if old.priority != new.priority {
            changes.push(format!("priority {} -> {}", old.priority, new.priority));
        }
        if old.advert_int_cs != new.advert_int_cs {
            changes.push(format!(
                "advert_int_ms {} -> {}",
                u32::from(old.advert_int_cs) * 10,
                u32::from(new.advert_int_cs) * 10
            ));
        }
        if old.addresses != new.addresses {
            changes.push(format!(
                "virtual_ipaddress {} -> {}",
                list(&old.addresses),
                list(&new.addresses)
            ));
        }
        if old.preempt != new.preempt || old.preempt_delay != new.preempt_delay {
            changes.push(format!(
                "preempt {} (delay {} ms) -> {} (delay {} ms)",
                old.preempt,
                old.preempt_delay.as_millis(),
                new.preempt,
                new.preempt_delay.as_millis()
            ));
        }
        let rest_changed = old.garp_repeat != new.garp_repeat
            || old.garp_delay != new.garp_delay
            || old.checksum_as_v2 != new.checksum_as_v2
            || old.notify_master != new.notify_master
            || old.notify_backup != new.notify_backup
            || old.notify_stop != new.notify_stop
            || old.notify != new.notify;
        if rest_changed {
            changes.push("garp, checksum or notify settings".to_owned());
        }
        let advertised = old.priority != new.priority
            || old.advert_int_cs != new.advert_int_cs
            || old.addresses != new.addresses;
        if self.state == State::Master {
            self.master_adver_int = self.cfg.advert_int_cs;
            if advertised {
                self.advertise(self.cfg.priority, now);
            }
        }
        changes
    }

    /// Stops (RFC 5798 section 6.4.3, Shutdown): a master sends an
    /// advertisement of priority 0, so that its backup takes over after
    /// `Skew_Time` instead of `Master_Down_Interval`. Returns whether it
    /// was master.
    pub fn shutdown(&mut self, now: Instant) -> bool {
        let was_master = self.state == State::Master;
        if was_master {
            self.advertise(wire::PRIORITY_RELEASE, now);
            self.state = State::Backup;
        }
        was_master
    }

    /// What happened that the log should say, in words, since the last
    /// call (a peer's address list that differs from ours).
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    /// The advertisements to send since the last call, as Ethernet
    /// frames for the instance's port.
    pub fn take_frames(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outbox)
    }

    /// Whether a backup may preempt at `now`.
    fn may_preempt(&self, now: Instant) -> bool {
        self.cfg.preempt && now >= self.preempt_from
    }

    fn checksum_mode(&self) -> ChecksumMode {
        if self.cfg.checksum_as_v2 {
            ChecksumMode::MessageOnly
        } else {
            ChecksumMode::PseudoHeader
        }
    }

    /// Queues an advertisement of `priority` and re-arms the
    /// advertisement timer.
    fn advertise(&mut self, priority: u8, now: Instant) {
        let adv = Advertisement {
            vrid: self.cfg.vrid,
            priority,
            max_adver_int: self.cfg.advert_int_cs,
            addresses: &self.cfg.addresses,
        };
        let mut frame = vec![0u8; adv.frame_len()];
        self.ident = self.ident.wrapping_add(1);
        // From the port's MAC, as keepalived without use_vmac: the
        // workers answer ARP with it, and the switch learns it.
        if adv
            .emit_frame_from(
                &mut frame,
                self.mac,
                self.cfg.source,
                self.ident,
                self.checksum_mode(),
            )
            .is_ok()
        {
            self.outbox.push(frame);
            self.counts.sent += 1;
        }
        self.adver_at = now + centis(u32::from(self.cfg.advert_int_cs));
    }
}

/// `cs` centiseconds.
fn centis(cs: u32) -> Duration {
    Duration::from_millis(u64::from(cs) * 10)
}

/// The gratuitous ARP requests that announce `addr` from `mac`: one
/// 60-byte frame (RFC 5798 section 6.4.2; [`l4vs_wire::arp`]).
pub fn gratuitous_arp(mac: [u8; 6], addr: Ipv4Addr) -> [u8; 60] {
    let mut frame = [0u8; 60];
    // 60 bytes is what the function needs: it cannot fail here.
    let _ = l4vs_wire::arp::emit_gratuitous_request(&mut frame, MacAddr(mac), addr);
    frame
}

#[cfg(test)]
mod tests;
