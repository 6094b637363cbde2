//! Connection slots per client process, so one process holding idle
//! connections cannot take every slot of the daemon.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Open connections by the pid of the process that holds them.
#[derive(Debug)]
pub struct PeerSlots {
    limit: usize,
    held: Arc<Mutex<HashMap<i32, usize>>>,
}

/// One connection's slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    pid: i32,
    held: Arc<Mutex<HashMap<i32, usize>>>,
}

impl PeerSlots {
    /// Slots of at most `limit` connections per process.
    pub fn new(limit: usize) -> PeerSlots {
        PeerSlots {
            limit: limit.max(1),
            held: Arc::default(),
        }
    }

    /// Connections one process may hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for one more connection of `pid`, unless it holds its limit.
    pub fn take(&self, pid: i32) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(pid).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            pid,
            held: Arc::clone(&self.held),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.pid) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.pid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_has_its_own_slots() {
        let slots = PeerSlots::new(2);
        let a1 = slots.take(10).expect("first");
        let _a2 = slots.take(10).expect("second");
        assert!(slots.take(10).is_none(), "a third for the same process");
        let _b = slots.take(11).expect("another process is not kept out");
        drop(a1);
        assert!(slots.take(10).is_some(), "a slot comes back when dropped");
    }
}
