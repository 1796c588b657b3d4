//! What passes between the control thread and a worker besides packets,
//! and the rings that carry it.
//!
//! Per worker, two bounded single-producer single-consumer rings (`rtrb`:
//! fixed capacity allocated at creation, wait-free push and pop, no lock):
//!
//! - **commands**, control to worker: insert a connection entry (what
//!   connection sync's backup side needs), flush the connections of a
//!   service or of one real server, list the whole table. The worker
//!   applies a bounded number per poll round, between bursts.
//! - **events**, worker to control: a connection was created, changed
//!   state, or ended (expired, closed, flushed). What the sync daemon and
//!   later the rate estimator read. A full ring never blocks a worker: the
//!   event is dropped and counted (`events_dropped`). The entries of a
//!   listing (`l4vsadm -c`, a sync daemon's bulk resync) come this way
//!   too, paced by the room left in the ring: none is dropped.
//!
//! Packets the worker hands to the control thread (verdict `ToControl`:
//! traffic for the director's own addresses it does not answer itself)
//! travel on the port glue's punt ring, not here: they are mbufs.

use crate::conn::Conn;
use core::net::Ipv4Addr;

/// Commands a worker holds at most before the control thread must wait
/// (the default size of the command ring).
pub const COMMAND_SLOTS: usize = 1024;
/// Events a worker can leave unread before it drops them (the default size
/// of the event ring): about 0.4 MB per worker.
pub const EVENT_SLOTS: usize = 8192;

/// A command from the control thread to one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Insert this connection entry (built with [`Conn::new`]), or refresh
    /// the entry of the same client tuple: its state, timer and real server
    /// (as `ip_vs_proc_conn` does for a synced connection). The entry's
    /// `service` and `real` index the worker's current snapshot; its
    /// `expires` is the seconds it has left (the worker adds its clock),
    /// as a sync message carries a timeout; it is marked
    /// [`crate::conn::flags::SYNCED`].
    InsertConn(Conn),
    /// Remove every connection and template of the service in this slot.
    FlushService {
        /// Service id (slot).
        service: u16,
    },
    /// Remove every connection and template of one real server of a
    /// service (ipvsadm has no such command; `expire_nodest_conn` and
    /// health checks with `inhibit_on_failure` off want it).
    FlushReal {
        /// Service id (slot).
        service: u16,
        /// The real server's address.
        addr: Ipv4Addr,
        /// Its port (the connection's rewritten port for NAT).
        port: u16,
    },
    /// Send a copy of every entry of the table (connections and
    /// templates) as [`Event::Listed`], then [`Event::ListDone`]; a few
    /// hundred a poll round, as the event ring has room, keeping a quarter
    /// of it for the traffic's events. A listing in progress starts over.
    /// Not atomic: entries made or ended meanwhile may or may not be in
    /// it, as with `/proc/net/ip_vs_conn`.
    ListConns,
}

/// What a worker tells the control thread about its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A connection (or persistence template) was created.
    Created(Conn),
    /// A connection's state changed (TCP state machine).
    StateChanged(Conn),
    /// A connection left the table: expired, closed, replaced or flushed.
    Ended(Conn),
    /// One entry of a listing ([`Command::ListConns`]): a copy whose
    /// `expires` is the seconds it has left, not a time.
    Listed(Conn),
    /// The listing is complete.
    ListDone,
}

/// The control thread's ends of one worker's rings.
#[derive(Debug)]
pub struct ControlEnd {
    /// Commands to the worker.
    pub commands: rtrb::Producer<Command>,
    /// Events from the worker.
    pub events: rtrb::Consumer<Event>,
}

/// A worker's ends of its rings.
#[derive(Debug)]
pub struct WorkerEnd {
    /// Commands from the control thread.
    pub commands: rtrb::Consumer<Command>,
    /// Events to the control thread.
    pub events: rtrb::Producer<Event>,
}

/// A command ring of `command_slots` and an event ring of `event_slots`
/// between the control thread and one worker (allocated here, once).
pub fn pair(command_slots: usize, event_slots: usize) -> (ControlEnd, WorkerEnd) {
    let (cp, cc) = rtrb::RingBuffer::new(command_slots.max(1));
    let (ep, ec) = rtrb::RingBuffer::new(event_slots.max(1));
    (
        ControlEnd {
            commands: cp,
            events: ec,
        },
        WorkerEnd {
            commands: cc,
            events: ep,
        },
    )
}

impl ControlEnd {
    /// Queues a command for the worker.
    ///
    /// # Errors
    /// The command back when the ring is full (the worker is behind).
    pub fn send(&mut self, cmd: Command) -> Result<(), Command> {
        self.commands
            .push(cmd)
            .map_err(|rtrb::PushError::Full(c)| c)
    }

    /// Hands every waiting event to `f`; returns how many.
    pub fn drain_events(&mut self, mut f: impl FnMut(Event)) -> usize {
        let mut n = 0;
        while let Ok(e) = self.events.pop() {
            f(e);
            n += 1;
        }
        n
    }
}
