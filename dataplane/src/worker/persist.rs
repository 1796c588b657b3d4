//! Persistence: `ip_vs_sched_persist` (ip_vs_core.c), the template that
//! keeps a client (masked by the persistence netmask) on one real server.

use super::{emit, Worker};
use crate::conn::{self, Conn};
use crate::model::{prefix_mask, ConnState, Persistence, Tuple};
use crate::rings::Event;
use crate::sched::SchedPacket;
use crate::snapshot::CompiledService;
use core::net::Ipv4Addr;

impl Worker {
    /// ip_vs_sched_persist: the real of the client's template if it has a
    /// live one whose real can still take connections (renewing it), else
    /// a freshly scheduled real, recorded in a new template.
    ///
    /// A template is a table entry that no packet can match: protocol 0,
    /// the masked client address, the service's protocol number as client
    /// port, and the VIP and port — or, for a fwmark service, the mark as
    /// address and port 0, so every port and address of the mark shares it.
    pub(super) fn persistent_real(
        &mut self,
        sid: u16,
        svc: &CompiledService,
        t: &SchedPacket,
        p: Persistence,
        now_s: u32,
    ) -> Option<usize> {
        let masked = Ipv4Addr::from_bits(t.src.to_bits() & prefix_mask(p.netmask));
        let key = if svc.options.fwmark != 0 {
            Tuple {
                proto: 0,
                src: masked,
                sport: 0,
                dst: Ipv4Addr::from_bits(svc.options.fwmark),
                dport: 0,
            }
        } else {
            Tuple {
                proto: 0,
                src: masked,
                sport: u16::from(t.proto),
                dst: svc.vip,
                dport: svc.port,
            }
        };
        if let Some((ti, _)) = self.conns.lookup(&key) {
            let tpl = *self.conns.get(ti);
            let real = svc
                .reals
                .get(usize::from(tpl.real))
                .filter(|r| r.addr == tpl.rip);
            let usable =
                real.is_some_and(|r| r.weight > 0 || !svc.options.expire_quiescent_template);
            if tpl.expires > now_s && tpl.service == sid && usable {
                let expires = now_s.saturating_add(p.timeout);
                self.conns.get_mut(ti).expires = expires;
                // A reload that shortened the persistence timeout.
                if expires < tpl.expires {
                    self.conns.refile(ti);
                }
                return Some(usize::from(tpl.real));
            }
            let gone = self.conns.remove(ti);
            emit(&mut self.events, &self.counters, Event::Ended(gone));
        }
        let ri = self.schedule(sid, svc, t, now_s)?;
        let real = &svc.reals[ri];
        let mut tpl = Conn::new(
            &key,
            real.addr,
            real.port,
            sid,
            ri as u16,
            real.method,
            ConnState::None,
            now_s.saturating_add(p.timeout),
        );
        tpl.flags = conn::flags::TEMPLATE;
        // A full table only costs persistence for this client, not the
        // connection: the connection's own insert decides that.
        if self.conns.insert(tpl).is_ok() {
            self.counters.templates_created.inc();
            emit(&mut self.events, &self.counters, Event::Created(tpl));
        }
        Some(ri)
    }
}
