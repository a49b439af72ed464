//! Where an app connection's requests go: a fixed destination (a `--forward` listener) or the
//! live discovery answer for its original destination, read again for every request so that a
//! long-lived connection follows endpoint changes.

use std::sync::Arc;

use super::Destination;
use crate::discovery::{Answer, Resolution};

pub enum Route {
    Fixed(Arc<Destination>),
    Discovered(Answer),
}

impl Route {
    /// The destination now, or `None` if the service has since left the mesh.
    pub fn current(&self) -> Option<Arc<Destination>> {
        match self {
            Route::Fixed(destination) => Some(destination.clone()),
            Route::Discovered(answer) => match &*answer.borrow() {
                Some(Resolution::Known(destination)) => Some(destination.clone()),
                _ => None,
            },
        }
    }
}
