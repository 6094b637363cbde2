//! Ports picked for apps, reserved until the app's task shows them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::{ports, RunError, Supervisor};

/// A port picked for an app, kept from others until its task shows it.
pub(super) struct PortReservation {
    pub(super) port: u16,
    reserved: Arc<Mutex<HashSet<u16>>>,
}

impl Drop for PortReservation {
    fn drop(&mut self) {
        self.reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.port);
    }
}

impl Supervisor {
    /// Reserves the port asked for, if it is in the range and free.
    pub(super) fn check_port(&self, port: u16) -> Result<PortReservation, RunError> {
        let (first, last) = self.settings.ports;
        if !(first..=last).contains(&port) {
            return Err(RunError::PortOutOfRange { port, first, last });
        }
        // The one global step, and a brief one: no await while it is held.
        let mut reserved = self
            .reserved_ports
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.live_ports().contains(&port) || reserved.contains(&port) || !ports::is_free(port) {
            return Err(RunError::PortTaken(port));
        }
        reserved.insert(port);
        Ok(self.reservation(port))
    }

    /// Picks and reserves a free port, the project's last one when it can.
    pub(super) fn pick_port(&self, last: Option<u16>) -> Result<PortReservation, RunError> {
        let (first, end) = self.settings.ports;
        let mut reserved = self
            .reserved_ports
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut taken = self.live_ports();
        taken.extend(reserved.iter().copied());
        let port =
            ports::pick(self.settings.ports, last, &taken).ok_or(RunError::NoPort(first, end))?;
        reserved.insert(port);
        Ok(self.reservation(port))
    }

    /// Reserves a port already known to be the app's (an adopted one).
    pub(super) fn reserve(&self, port: u16) -> PortReservation {
        self.reserved_ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(port);
        self.reservation(port)
    }

    pub(super) fn reservation(&self, port: u16) -> PortReservation {
        PortReservation {
            port,
            reserved: Arc::clone(&self.reserved_ports),
        }
    }

    /// The ports of the apps that are up or coming up.
    pub(super) fn live_ports(&self) -> HashSet<u16> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.values()
            .map(|h| h.status.borrow().clone())
            .filter(|s| s.state.is_live())
            .map(|s| s.port)
            .collect()
    }
}
