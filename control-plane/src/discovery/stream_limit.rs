//! At most N open discovery watches per caller identity on this replica.
//!
//! Each watch is a stream and a task on the control plane; a proxy opens one per destination it
//! meets, and forgets idle ones. A runaway (or hostile) workload dialling endless distinct
//! addresses would otherwise hold the control plane's memory hostage for everyone; with a limit
//! per identity it exhausts only its own share, and other identities are unaffected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use weft_certs::SpiffeId;

/// The open watches of every identity.
#[derive(Debug)]
pub struct StreamLimit {
    max: usize,
    open: Arc<Mutex<HashMap<SpiffeId, usize>>>,
}

/// One open watch of `identity`; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    identity: SpiffeId,
    open: Arc<Mutex<HashMap<SpiffeId, usize>>>,
}

impl StreamLimit {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for one more watch of `identity`, or `None` if it has `max` open already.
    pub fn acquire(&self, identity: &SpiffeId) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(identity.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            identity: identity.clone(),
            open: self.open.clone(),
        })
    }

    /// Watches `identity` has open now.
    pub fn open(&self, identity: &SpiffeId) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(identity).copied().unwrap_or(0)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.identity) {
            *count -= 1;
            if *count == 0 {
                // Identities come and go: keep the map as small as the set of current callers.
                open.remove(&self.identity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_identity_has_its_own_share_and_slots_come_back() {
        let limit = StreamLimit::new(2);
        let web = SpiffeId::new("cluster.local", "demo", "web").unwrap();
        let db = SpiffeId::new("cluster.local", "demo", "db").unwrap();
        let first = limit.acquire(&web).unwrap();
        let _second = limit.acquire(&web).unwrap();
        assert!(limit.acquire(&web).is_none());
        assert!(
            limit.acquire(&db).is_some(),
            "another identity is unaffected"
        );
        drop(first);
        assert_eq!(limit.open(&web), 1);
        assert!(limit.acquire(&web).is_some());
    }
}
