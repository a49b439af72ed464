//! ServicePolicy on loopback meshes: the client half (retries, timeouts, breakers, budgets) and
//! the server half (authorization, rate limits, fault injection), HTTP ports that parse every
//! request, Gateway API routes (`routes`), and the harness those suites stand on (the fault app,
//! the policy mesh).

// A failed step fails the test on the spot, with its message.
#![allow(clippy::unwrap_used)]

mod breaker_blame;
mod fault_app;
mod http_ports;
mod policy_harness;
mod resilience;
mod routes;
mod server_policy;

/// The timing assertions of `resilience` and `server_policy` need the machine to themselves as
/// far as this binary goes: their tests take this lock for their whole run, and so do the
/// request-heavy tests of `routes`.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}
