//! Waiting for an owner's apps to change, for whoever shows them live (the
//! dashboard's event stream). The truth stays where it is: each app's
//! status watch, written by its task, and the table of supervised apps.
//! The table's own watch, [`Roster`], carries no state of an app, only a
//! count an owner that moves when one of their apps joins or leaves it or
//! when what `ps` shows of it besides its status (its version, a newer one)
//! changes: an owner's watchers wake for their own apps alone.

use std::collections::HashMap;

use futures_util::future::select_all;
use tokio::sync::watch;

use super::app::Status;
use super::Supervisor;

/// The table of supervised apps changed: a count an owner, bumped with
/// each change of one of theirs.
#[derive(Debug)]
pub(super) struct Roster(watch::Sender<HashMap<i64, u64>>);

impl Default for Roster {
    fn default() -> Roster {
        Roster(watch::Sender::new(HashMap::new()))
    }
}

impl Roster {
    /// Wakes whoever waits on a change of `owner_id`'s apps.
    pub(super) fn bump(&self, owner_id: i64) {
        self.0.send_modify(|counts| {
            let n = counts.entry(owner_id).or_default();
            *n = n.wrapping_add(1);
        });
    }
}

/// A watch on one owner's supervised apps, from [`Supervisor::watch_owner`].
pub struct OwnerWatch {
    owner_id: i64,
    roster: watch::Receiver<HashMap<i64, u64>>,
    /// The owner's count in the roster when last seen.
    seen: Option<u64>,
    /// The status watches of the owner's apps whose task still runs.
    statuses: Vec<watch::Receiver<Status>>,
}

impl Supervisor {
    /// A watch on `owner_id`'s apps; [`OwnerWatch::changed`] returns at
    /// their next change.
    pub fn watch_owner(&self, owner_id: i64) -> OwnerWatch {
        let mut watch = OwnerWatch {
            owner_id,
            roster: self.roster.0.subscribe(),
            seen: None,
            statuses: Vec::new(),
        };
        watch.relist(self);
        watch
    }
}

impl OwnerWatch {
    /// Returns once one of the owner's apps changed state (or joined or
    /// left the supervised apps) since the last call, or since the watch
    /// was made. Waits for ever while nothing changes: an idle app costs
    /// its watchers nothing.
    pub async fn changed(&mut self, supervisor: &Supervisor) {
        let OwnerWatch {
            owner_id,
            roster,
            seen,
            statuses,
        } = self;
        let any_status = async {
            if statuses.is_empty() {
                std::future::pending::<()>().await;
            }
            // An ended task's watch answers at once; the relist below
            // drops it.
            let _ = select_all(statuses.iter_mut().map(|s| Box::pin(s.changed()))).await;
        };
        // Another owner's change wakes the roster's watchers too: they
        // wait on.
        let own_roster = async {
            loop {
                if roster.changed().await.is_err() {
                    // The supervisor is gone: nothing changes any more.
                    std::future::pending::<()>().await;
                }
                if roster.borrow_and_update().get(owner_id).copied() != *seen {
                    return;
                }
            }
        };
        tokio::select! {
            () = own_roster => {}
            () = any_status => {}
        }
        self.relist(supervisor);
    }

    /// Takes the status watches of the owner's apps now, each marked seen.
    fn relist(&mut self, supervisor: &Supervisor) {
        self.seen = self.roster.borrow_and_update().get(&self.owner_id).copied();
        let apps = supervisor.apps.lock().unwrap_or_else(|p| p.into_inner());
        self.statuses = apps
            .values()
            .filter(|h| h.owner_id == self.owner_id)
            .map(|h| {
                let mut status = h.status.clone();
                status.borrow_and_update();
                status
            })
            .filter(|s| s.has_changed().is_ok())
            .collect();
    }
}
