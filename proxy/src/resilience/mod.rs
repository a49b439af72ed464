//! The layers of the client half of a ServicePolicy, each in its own file: [`timeout`],
//! [`retry`] (with its budget), [`breaker`] and [`limit`]. They hold state and decide; the
//! request path in [`crate::outbound::request`] puts them in order, once per request. The one
//! exponential [`backoff`] is here too: retries, breaker ejections, reconnects to the control
//! plane and the HTTP/2 pool's connects all wait by it.

pub mod backoff;
pub mod breaker;
pub mod limit;
pub mod retry;
pub mod timeout;
