//! Admission: how many connections one client address may hold on a server
//! while they speak HTTP (`http.service` `max_connections_per_address`).
//!
//! Every accepted connection takes a slot for its address before the HTTP
//! layer sees it and gives it back when the HTTP layer is done with it: when
//! the connection closes, or when it becomes a WebSocket and leaves for the
//! relay (an open socket is authenticated and bounded by the relay's own
//! limits). A connection over the cap gets a fixed `429` JSON answer and is
//! closed at once, before any request is read, so one address cannot fill
//! the descriptor table with connections that trickle their heads or bodies.
//! Slow heads and bodies are cut by the server's deadlines
//! (`request_timeout`, `body_timeout`, `body_idle_timeout`), so every slot
//! comes back in bounded time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::metrics::CounterVec;

/// Default cap on one address's connections in the HTTP phase.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 256;

/// The answer a connection over the cap gets, written once without waiting.
pub(crate) const REFUSAL: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\n\
content-type: application/json\r\n\
content-length: 50\r\n\
retry-after: 1\r\n\
connection: close\r\n\
\r\n\
{\"error\":\"too many connections from this address\"}";

/// Open connections per client address, shared by a server's workers.
pub(crate) struct Admission {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    refusals: Arc<CounterVec>,
    server: Arc<str>,
}

impl Admission {
    /// A cap of `max` connections per address (0 means no cap) for
    /// `server`, counting refusals in `refusals` (labels server, reason).
    pub fn new(max: usize, refusals: Arc<CounterVec>, server: Arc<str>) -> Arc<Self> {
        Arc::new(Admission {
            max,
            open: Mutex::default(),
            refusals,
            server,
        })
    }

    /// Counts a connection refused for its address's cap.
    pub fn refused(&self) {
        self.refusals.inc(&[&self.server, "per_address_cap"]);
    }

    /// A slot for `addr`, or `None` when the address is at its cap.
    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Option<Slot> {
        if self.max == 0 {
            return Some(Slot(None));
        }
        let addr = crate::util::client_net(addr);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(addr).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot(Some((self.clone(), addr))))
    }

    /// Connections `addr` holds now.
    #[cfg(test)]
    fn held(&self, addr: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&addr).copied().unwrap_or(0)
    }
}

/// One admitted connection; dropping it frees the slot.
pub(crate) struct Slot(Option<(Arc<Admission>, IpAddr)>);

impl Drop for Slot {
    fn drop(&mut self) {
        let Some((admission, addr)) = self.0.take() else {
            return;
        };
        let mut open = admission.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&addr) {
            *n -= 1;
            if *n == 0 {
                // The table holds only addresses with open connections.
                open.remove(&addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn admission(max: usize) -> Arc<Admission> {
        let metrics = Metrics::default();
        let refusals = metrics.counter_vec("refused", "help", &["server", "reason"]);
        Admission::new(max, refusals, "app:test".into())
    }

    #[test]
    fn an_address_at_its_cap_is_refused_until_a_slot_is_freed() {
        let admission = admission(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert!(admission.admit(a).is_none());
        assert!(
            admission.admit(b).is_some(),
            "other addresses are not affected"
        );
        drop(first);
        assert_eq!(admission.held(a), 1);
        assert!(admission.admit(a).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_bit_prefix() {
        let admission = admission(1);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _held = admission.admit(a).unwrap();
        assert!(admission.admit(b).is_none(), "same /64");
        assert!(admission.admit(other).is_some());
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let _v4 = admission.admit(mapped).unwrap();
        assert!(admission.admit("127.0.0.1".parse().unwrap()).is_none());
    }

    #[test]
    fn a_zero_cap_admits_everyone_and_tracks_nothing() {
        let admission = admission(0);
        let a: IpAddr = "::1".parse().unwrap();
        let slots: Vec<_> = (0..1000).map(|_| admission.admit(a).unwrap()).collect();
        assert_eq!(admission.held(a), 0);
        drop(slots);
    }

    #[test]
    fn the_refusal_declares_its_exact_body_length() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(text.contains(&format!("content-length: {}\r\n", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "too many connections from this address");
    }
}
