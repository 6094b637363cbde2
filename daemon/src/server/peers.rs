//! Who may hold a connection: at most so many per client process, so one
//! process cannot take every slot; and a pool for all, of which
//! connections without a session may fill only part, so the rest is kept
//! for signed-in ones. When that part is full, a newcomer takes the slot
//! of the oldest connection without a session of the process holding the
//! most of them, so silent connections from many processes cannot keep a
//! signed-in client out: its connection, new and its process's only one,
//! is the last that would be dropped. A newcomer that finds no slot to
//! take may still come in on a valid session shown at once (see
//! `connection`), into the part kept for signed-in connections. File
//! descriptors stay bounded by the pool (a dropped connection's slot is
//! handed over, not added), plus newcomers for their first second at most.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Connection slots: per process, and in the pool.
#[derive(Debug)]
pub struct PeerSlots {
    per_client: usize,
    total: usize,
    without_session: usize,
    table: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    /// Connections per process: claimed, and admitted without a session.
    by_pid: HashMap<i32, Held>,
    /// Admitted connections, by the order they came in.
    admitted: HashMap<u64, Entry>,
    /// How many of `admitted` have no session.
    without_session: usize,
    next_id: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Held {
    claimed: usize,
    without_session: usize,
}

#[derive(Debug)]
struct Entry {
    pid: i32,
    /// Tells a connection without a session that its slot went to another;
    /// `None` once it has shown a session.
    evict: Option<oneshot::Sender<()>>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The process already holds its share.
    #[error(
        "this process already holds its limit of {0} connections to appforged; close some first"
    )]
    PerClient(usize),
    /// Every slot is taken, and none may be given to this connection.
    #[error("appforged is already serving its limit of {0} clients; try again shortly")]
    Full(usize),
}

/// One connection's claim on its process's slots, and once admitted, on a
/// slot of the pool. Given back when dropped.
#[derive(Debug)]
pub struct Slot {
    pid: i32,
    id: Option<u64>,
    table: Arc<Mutex<Table>>,
}

/// Resolves when the connection's slot was given to another.
pub type Evicted = oneshot::Receiver<()>;

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PeerSlots {
    /// Slots for `total` connections at once, `per_client` of them per
    /// process; an eighth of the pool is kept for signed-in connections.
    pub fn new(total: usize, per_client: usize) -> PeerSlots {
        let total = total.max(1);
        let kept = total / 8;
        PeerSlots {
            per_client: per_client.max(1),
            total,
            without_session: (total - kept).max(1),
            table: Arc::default(),
        }
    }

    /// Connections without a session the pool holds at most.
    pub fn without_session(&self) -> usize {
        self.without_session
    }

    /// Claims one of `pid`'s own slots: the cheapest check, done first.
    pub fn take(&self, pid: i32) -> Result<Slot, Refused> {
        let mut table = lock(&self.table);
        let held = table.by_pid.entry(pid).or_default();
        if held.claimed >= self.per_client {
            return Err(Refused::PerClient(self.per_client));
        }
        held.claimed += 1;
        Ok(Slot {
            pid,
            id: None,
            table: Arc::clone(&self.table),
        })
    }

    /// Admits a claimed connection, still without a session, to the pool,
    /// taking another's slot if the part without sessions is full.
    pub fn admit(&self, slot: &mut Slot) -> Result<Evicted, Refused> {
        debug_assert!(slot.id.is_none(), "a slot is admitted once");
        let mut table = lock(&self.table);
        let full =
            table.admitted.len() >= self.total || table.without_session >= self.without_session;
        if full && !table.evict_for(slot.pid) {
            return Err(Refused::Full(self.total));
        }
        let (tx, rx) = oneshot::channel();
        slot.id = Some(table.insert(slot.pid, Some(tx)));
        table.without_session += 1;
        table.by_pid.entry(slot.pid).or_default().without_session += 1;
        Ok(rx)
    }

    /// Admits a claimed connection that came when the part without sessions
    /// was full and has shown a valid session since: it takes a slot of the
    /// part kept for signed-in connections, and may not be dropped for
    /// another.
    pub fn admit_signed_in(&self, slot: &mut Slot) -> Result<(), Refused> {
        debug_assert!(slot.id.is_none(), "a slot is admitted once");
        let mut table = lock(&self.table);
        if table.admitted.len() >= self.total {
            return Err(Refused::Full(self.total));
        }
        slot.id = Some(table.insert(slot.pid, None));
        Ok(())
    }

    /// The connection has shown a session: it may no longer be dropped for
    /// another. False if it already was.
    pub fn signed_in(&self, slot: &Slot) -> bool {
        let mut table = lock(&self.table);
        let Some(entry) = slot.id.and_then(|id| table.admitted.get_mut(&id)) else {
            return false;
        };
        if entry.evict.take().is_some() {
            table.without_session -= 1;
            if let Some(held) = table.by_pid.get_mut(&slot.pid) {
                held.without_session -= 1;
            }
        }
        true
    }
}

impl Table {
    /// Admits a connection of `pid`: its id.
    fn insert(&mut self, pid: i32, evict: Option<oneshot::Sender<()>>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.admitted.insert(id, Entry { pid, evict });
        id
    }

    /// Drops the oldest connection without a session of the process that
    /// holds the most of them, if that process holds at least two more than
    /// `pid` does: so processes evict each other down to fair shares, and
    /// one connection of a process is never dropped for another process's.
    fn evict_for(&mut self, pid: i32) -> bool {
        let mine = self.by_pid.get(&pid).map_or(0, |h| h.without_session);
        let Some((&victim, most)) = self
            .by_pid
            .iter()
            .map(|(p, h)| (p, h.without_session))
            .max_by_key(|(_, n)| *n)
        else {
            return false;
        };
        if most < mine + 2 {
            return false;
        }
        let Some(id) = self
            .admitted
            .iter()
            .filter(|(_, e)| e.pid == victim && e.evict.is_some())
            .map(|(id, _)| *id)
            .min()
        else {
            return false;
        };
        let entry = self.admitted.remove(&id).expect("found above");
        self.without_session -= 1;
        self.release(victim, true);
        if let Some(tx) = entry.evict {
            let _ = tx.send(());
        }
        true
    }

    /// Gives back a claimed slot of `pid`.
    fn release(&mut self, pid: i32, without_session: bool) {
        if let Some(held) = self.by_pid.get_mut(&pid) {
            held.claimed -= 1;
            if without_session {
                held.without_session -= 1;
            }
            if held.claimed == 0 {
                self.by_pid.remove(&pid);
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = lock(&self.table);
        match self.id {
            None => table.release(self.pid, false),
            Some(id) => {
                // An evicted connection's slot was handed over already.
                if let Some(entry) = table.admitted.remove(&id) {
                    let without_session = entry.evict.is_some();
                    if without_session {
                        table.without_session -= 1;
                    }
                    table.release(self.pid, without_session);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(slots: &PeerSlots, pid: i32) -> (Slot, Evicted) {
        let mut slot = slots.take(pid).expect("a slot of its own");
        let evicted = slots.admit(&mut slot).expect("admitted");
        (slot, evicted)
    }

    #[test]
    fn each_process_has_its_own_slots() {
        let slots = PeerSlots::new(100, 2);
        let a1 = slots.take(10).expect("first");
        let _a2 = slots.take(10).expect("second");
        assert_eq!(slots.take(10).unwrap_err(), Refused::PerClient(2));
        let _b = slots.take(11).expect("another process is not kept out");
        drop(a1);
        assert!(slots.take(10).is_ok(), "a slot comes back when dropped");
    }

    #[test]
    fn a_newcomer_takes_the_oldest_slot_of_the_process_holding_most() {
        // 16 slots, 14 of them for connections without a session.
        let slots = PeerSlots::new(16, 16);
        let mut hog: Vec<_> = (0..14).map(|_| admitted(&slots, 1)).collect();
        let (signed, _) = admitted(&slots, 2);
        let (_, first_hogged) = &mut hog[0];
        assert!(first_hogged.try_recv().is_ok(), "the oldest was dropped");
        assert!(hog[1].1.try_recv().is_err(), "only one");
        assert!(slots.signed_in(&signed));
        // The hog, back to 13, may retake one, and no more: then the
        // newcomer's process holds as many as it may.
        hog.remove(0);
        let (_again, _) = admitted(&slots, 1);
        assert_eq!(
            slots.admit(&mut slots.take(1).unwrap()).unwrap_err(),
            Refused::Full(16)
        );
        // A third process takes a slot from the hog, never the signed-in one.
        let (other, _) = admitted(&slots, 3);
        assert!(slots.signed_in(&signed), "the signed-in connection stays");
        drop(other);
        let t = lock(&slots.table);
        assert_eq!((t.admitted.len(), t.without_session), (14, 13));
    }

    #[test]
    fn one_connection_of_a_process_is_not_dropped_for_another_process() {
        let slots = PeerSlots::new(8, 8);
        let held: Vec<_> = (0..7).map(|pid| admitted(&slots, pid)).collect();
        let mut late = slots.take(100).unwrap();
        assert_eq!(slots.admit(&mut late).unwrap_err(), Refused::Full(8));
        drop(held);
        assert!(slots.admit(&mut late).is_ok());
    }

    #[test]
    fn a_newcomer_with_a_session_gets_a_kept_slot_past_a_full_pool() {
        // 8 slots, 7 of them for connections without a session.
        let slots = PeerSlots::new(8, 8);
        let _held: Vec<_> = (0..7).map(|pid| admitted(&slots, pid)).collect();
        let mut late = slots.take(100).unwrap();
        assert_eq!(slots.admit(&mut late).unwrap_err(), Refused::Full(8));
        slots.admit_signed_in(&mut late).expect("the kept slot");
        assert!(slots.signed_in(&late));
        let mut another = slots.take(101).unwrap();
        assert_eq!(
            slots.admit_signed_in(&mut another).unwrap_err(),
            Refused::Full(8),
            "the pool as a whole is still bounded"
        );
        drop(late);
        assert!(slots.admit_signed_in(&mut another).is_ok());
    }

    #[test]
    fn slots_come_back_whatever_happened_to_them() {
        let slots = PeerSlots::new(3, 4);
        let (a, mut a_evicted) = admitted(&slots, 1);
        let (b, _) = admitted(&slots, 1);
        let (c, _) = admitted(&slots, 1);
        assert!(slots.signed_in(&b));
        let (d, _) = admitted(&slots, 3);
        assert!(a_evicted.try_recv().is_ok());
        drop((a, b, c, d));
        let t = lock(&slots.table);
        assert!(t.admitted.is_empty() && t.by_pid.is_empty(), "{t:?}");
        assert_eq!(t.without_session, 0);
    }
}
