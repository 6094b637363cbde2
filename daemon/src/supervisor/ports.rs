//! Picking a free port on 127.0.0.1 for an app.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};

/// Whether nothing listens on `port` of 127.0.0.1 right now.
pub fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A free port in `range`: `preferred` when it is free and not `taken` by
/// another app, else the first such port. `None` when every port is busy.
pub fn pick(range: (u16, u16), preferred: Option<u16>, taken: &HashSet<u16>) -> Option<u16> {
    let usable = |p: u16| !taken.contains(&p) && is_free(p);
    if let Some(p) = preferred.filter(|p| (range.0..=range.1).contains(p)) {
        if usable(p) {
            return Some(p);
        }
    }
    (range.0..=range.1).find(|p| usable(*p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_held_by_another_process_is_skipped() {
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let range = (port, port.saturating_add(20));
        let picked = pick(range, Some(port), &HashSet::new()).unwrap();
        assert_ne!(picked, port);
        assert!(range.0 <= picked && picked <= range.1);
    }

    #[test]
    fn ports_taken_by_apps_are_skipped_and_the_preferred_one_is_kept() {
        let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let range = (port, port.saturating_add(20));
        assert_eq!(pick(range, Some(port), &HashSet::new()), Some(port));
        let taken = HashSet::from([port]);
        assert_ne!(pick(range, Some(port), &taken), Some(port));
        assert_eq!(pick((port, port), None, &taken), None);
    }
}
