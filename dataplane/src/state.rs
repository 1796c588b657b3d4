//! IPVS's connection state machine.
//!
//! TCP follows `tcp_states` in the kernel's
//! `net/netfilter/ipvs/ip_vs_proto_tcp.c`: three tables (INPUT for the
//! client's packets, OUTPUT for the real server's packets seen by a NAT
//! director, INPUT-ONLY for connections whose replies bypass the director
//! — DR, IP-IP, or NAT before its first reply), indexed by the first of
//! RST, SYN, FIN, ACK present in the segment. A segment with none of them
//! moves the connection to CLOSE, as `set_tcp_state` does. UDP has one
//! state. A connection is *active* on its real server in ESTABLISHED,
//! SYN_SENT, SYN_RECV and SYNACK (`tcp_state_active_table`); leaving or
//! entering that set is reported so the per-real counters stay right.

use crate::conn::{flags, Conn, ConnState, Direction, Timeouts};
use l4vs_wire::tcp;

use ConnState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// Rows: syn, fin, ack, rst. Columns: NONE, ES, SS, SR, FW, TW, CL, CW, LA,
/// LI, SA (the order of `ConnState`'s first eleven values).
type Table = [[ConnState; 11]; 4];

const INPUT: Table = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];

const OUTPUT: Table = [
    [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];

const INPUT_ONLY: Table = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// How a transition changed the connection's standing on its real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// No change.
    Unchanged,
    /// Inactive -> active.
    Activated,
    /// Active -> inactive.
    Deactivated,
}

/// The TCP state after a segment with `tcp_flags` travelling `dir`.
pub fn next_tcp_state(
    state: ConnState,
    conn_flags: u8,
    dir: Direction,
    tcp_flags: u8,
) -> ConnState {
    let row = if tcp_flags & tcp::flags::RST != 0 {
        3
    } else if tcp_flags & tcp::flags::SYN != 0 {
        0
    } else if tcp_flags & tcp::flags::FIN != 0 {
        1
    } else if tcp_flags & tcp::flags::ACK != 0 {
        2
    } else {
        return ConnState::Close;
    };
    let col = state as usize;
    if col >= 11 {
        return state;
    }
    let table = match dir {
        Direction::Out => &OUTPUT,
        Direction::In if conn_flags & flags::NO_OUTPUT != 0 => &INPUT_ONLY,
        Direction::In => &INPUT,
    };
    table[row][col]
}

/// Applies a packet to a connection: state, INACTIVE/NO_OUTPUT flags and
/// expiry (`now + timeout of the new state`). `tcp_flags` is `None` for UDP.
///
/// Inlined for the commonest packets, which change no state: a UDP
/// datagram, and a segment with ACK and none of SYN, FIN and RST on an
/// ESTABLISHED connection (ESTABLISHED again in all three tables). The
/// rest goes to the tables, out of line.
#[inline(always)]
pub fn transition(
    c: &mut Conn,
    dir: Direction,
    tcp_flags: Option<u8>,
    now: u32,
    t: &Timeouts,
) -> Activity {
    use tcp::flags::{ACK, FIN, RST, SYN};
    match tcp_flags {
        None => {
            c.state = ConnState::Udp;
            c.expires = now.saturating_add(t.udp);
            Activity::Unchanged
        }
        Some(f) if c.state == ES && f & (SYN | FIN | RST | ACK) == ACK => {
            if dir == Direction::Out {
                c.flags &= !flags::NO_OUTPUT;
            }
            c.expires = now.saturating_add(t.tcp_established);
            Activity::Unchanged
        }
        Some(f) => tcp_transition(c, dir, f, now, t),
    }
}

/// [`transition`] of a TCP segment through the tables.
#[inline(never)]
fn tcp_transition(c: &mut Conn, dir: Direction, f: u8, now: u32, t: &Timeouts) -> Activity {
    // A reply through the director: from now on the full tables apply.
    if dir == Direction::Out {
        c.flags &= !flags::NO_OUTPUT;
    }
    let new = next_tcp_state(c.state, c.flags, dir, f);
    let mut activity = Activity::Unchanged;
    if new != c.state {
        let inactive = c.flags & flags::INACTIVE != 0;
        if !inactive && !new.is_active() {
            c.flags |= flags::INACTIVE;
            activity = Activity::Deactivated;
        } else if inactive && new.is_active() {
            c.flags &= !flags::INACTIVE;
            activity = Activity::Activated;
        }
        c.state = new;
    }
    c.expires = now.saturating_add(t.of(new));
    activity
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Tuple;
    use crate::model::ForwardMethod;
    use core::net::Ipv4Addr;
    use tcp::flags::{ACK, FIN, PSH, RST, SYN};

    fn conn(method: ForwardMethod) -> Conn {
        let t = Tuple {
            proto: 6,
            src: Ipv4Addr::new(198, 18, 1, 10),
            sport: 40000,
            dst: Ipv4Addr::new(198, 18, 0, 100),
            dport: 80,
        };
        Conn::new(
            &t,
            Ipv4Addr::new(198, 18, 2, 11),
            80,
            0,
            0,
            method,
            ConnState::None,
            0,
        )
    }

    fn run(c: &mut Conn, steps: &[(Direction, u8)]) -> Vec<(ConnState, Activity)> {
        steps
            .iter()
            .map(|(d, f)| {
                let a = transition(c, *d, Some(*f), 100, &Timeouts::default());
                (c.state, a)
            })
            .collect()
    }

    #[test]
    fn nat_handshake_and_close() {
        use Direction::{In, Out};
        let mut c = conn(ForwardMethod::Nat);
        let got = run(
            &mut c,
            &[
                (In, SYN),
                (Out, SYN | ACK),
                (In, ACK),
                (In, ACK | PSH),
                (In, FIN | ACK),
                (Out, FIN | ACK),
                (In, ACK),
            ],
        );
        let states: Vec<ConnState> = got.iter().map(|g| g.0).collect();
        // Client FIN in ES -> CLOSE_WAIT (INPUT table); server FIN in CW ->
        // TIME_WAIT (OUTPUT table); the last ACK keeps TIME_WAIT.
        assert_eq!(states, [SR, SR, ES, ES, CW, TW, TW]);
        assert_eq!(got[0].1, Activity::Activated, "SYN_RECV is active");
        assert_eq!(got[4].1, Activity::Deactivated, "CLOSE_WAIT is not");
        assert_eq!(c.expires, 100 + Timeouts::default().tcp_time_wait);
    }

    #[test]
    fn dr_uses_the_input_only_table() {
        use Direction::In;
        let mut c = conn(ForwardMethod::DirectRouting);
        let got = run(&mut c, &[(In, SYN), (In, ACK), (In, FIN | ACK), (In, ACK)]);
        let states: Vec<ConnState> = got.iter().map(|g| g.0).collect();
        // INPUT-ONLY: FIN in ES -> FIN_WAIT (not CLOSE_WAIT), ACK keeps it.
        assert_eq!(states, [SR, ES, FW, FW]);
        assert_eq!(c.expires, 100 + Timeouts::default().tcp_fin_wait);
    }

    #[test]
    fn rst_closes_and_no_flags_close() {
        let mut c = conn(ForwardMethod::Nat);
        run(
            &mut c,
            &[
                (Direction::In, SYN),
                (Direction::Out, SYN | ACK),
                (Direction::In, ACK),
            ],
        );
        assert_eq!(c.state, ES);
        assert_eq!(
            run(&mut c, &[(Direction::In, RST)])[0],
            (CL, Activity::Deactivated)
        );
        assert_eq!(c.expires, 100 + 10);
        let mut d = conn(ForwardMethod::Nat);
        run(&mut d, &[(Direction::In, SYN)]);
        assert_eq!(
            run(&mut d, &[(Direction::In, 0)])[0].0,
            CL,
            "a segment without flags closes, as IPVS"
        );
        // RST in SYN_RECV keeps SYN_RECV (INPUT table), as IPVS.
        let mut e = conn(ForwardMethod::Nat);
        run(&mut e, &[(Direction::In, SYN)]);
        assert_eq!(run(&mut e, &[(Direction::In, RST)])[0].0, SR);
    }

    #[test]
    fn a_reply_clears_no_output() {
        let c = conn(ForwardMethod::Nat);
        assert_eq!(c.flags & flags::NO_OUTPUT, 0);
        let mut d = conn(ForwardMethod::Tunnel);
        assert_ne!(d.flags & flags::NO_OUTPUT, 0);
        assert_ne!(
            d.flags & flags::INACTIVE,
            0,
            "new connections start inactive"
        );
        transition(&mut d, Direction::Out, Some(ACK), 0, &Timeouts::default());
        assert_eq!(d.flags & flags::NO_OUTPUT, 0);
        assert_eq!(next_tcp_state(ES, flags::NO_OUTPUT, Direction::In, FIN), FW);
        assert_eq!(next_tcp_state(ES, 0, Direction::In, FIN), CW);
    }

    /// The inlined steps give what the tables give: every state, both
    /// directions, with and without NO_OUTPUT and INACTIVE, every flag
    /// byte.
    #[test]
    fn the_inlined_steps_agree_with_the_tables() {
        let t = Timeouts::default();
        for state in [
            ConnState::None,
            ES,
            SS,
            SR,
            FW,
            TW,
            CL,
            CW,
            LA,
            LI,
            ConnState::SynAck,
        ] {
            for dir in [Direction::In, Direction::Out] {
                for conn_flags in [
                    0,
                    flags::NO_OUTPUT,
                    flags::INACTIVE,
                    flags::NO_OUTPUT | flags::INACTIVE,
                ] {
                    for f in 0..=u8::MAX {
                        let mut c = conn(ForwardMethod::Nat);
                        (c.state, c.flags) = (state, conn_flags);
                        let mut d = c;
                        let a = transition(&mut c, dir, Some(f), 7, &t);
                        let b = tcp_transition(&mut d, dir, f, 7, &t);
                        assert_eq!((a, c), (b, d), "{state:?} {dir:?} {conn_flags} {f:#04x}");
                    }
                }
            }
        }
    }

    #[test]
    fn udp_has_one_state() {
        let mut c = conn(ForwardMethod::Nat);
        assert_eq!(
            transition(&mut c, Direction::In, None, 5, &Timeouts::default()),
            Activity::Unchanged
        );
        assert_eq!((c.state, c.expires), (ConnState::Udp, 305));
    }
}
