//! Where an app connection's requests go (its *target*, not to be confused with a policy's
//! routes, which classify requests): a fixed destination (a `--forward IDENTITY@ADDRESS`
//! listener) or a live discovery answer (an intercepted connection's original destination, or a
//! `--forward NAME.NAMESPACE:PORT` listener), read again for every request so that a long-lived
//! connection follows endpoint and policy changes.

use std::sync::Arc;
use std::time::Duration;

use crate::destination::Destination;
use crate::discovery::{Answer, Resolution};

#[derive(Clone)]
pub enum Target {
    Fixed(Arc<Destination>),
    Discovered(Answer),
}

impl Target {
    /// Waits (at most `limit`) for discovery's first answer, if there is none yet.
    pub async fn wait_ready(&self, limit: Duration) {
        if let Target::Discovered(answer) = self {
            let mut answer = answer.clone();
            let _ = tokio::time::timeout(limit, answer.wait_for(Option::is_some)).await;
        }
    }

    /// The destination now, or `None` if the service has since left the mesh (or discovery has
    /// not answered yet).
    pub fn current(&self) -> Option<Arc<Destination>> {
        match self {
            Target::Fixed(destination) => Some(destination.clone()),
            Target::Discovered(answer) => match &*answer.borrow() {
                Some(Resolution::Known(destination)) => Some(destination.clone()),
                _ => None,
            },
        }
    }
}
