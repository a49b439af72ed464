//! A Service named by a Gateway API route (a backend or a mirror), resolved by name through
//! discovery (`<name>.<namespace>:<port>`) rather than by the address the app connected to.

use std::sync::Arc;

use super::Outbound;
use crate::destination::Destination;
use crate::discovery::Resolution;

/// The destination of `address` (`<name>.<namespace>:<port>`) now, waiting (bounded) for
/// discovery's first answer if this is the first request to it; `None` when no service has that
/// name and port.
pub async fn resolve(outbound: &Outbound, address: &str) -> Option<Arc<Destination>> {
    let discovery = outbound.discovery.as_ref()?;
    let mut answer = discovery.answer(address);
    if answer.borrow().is_none() {
        answer = discovery.resolve_key(address.to_owned()).await.ok()?;
    }
    let resolution = answer.borrow();
    match &*resolution {
        Some(Resolution::Known(destination)) => Some(destination.clone()),
        _ => None,
    }
}
