//! `weft demo --dashboard`: after the report, the mesh keeps running with traffic (the flaky app
//! answering 503 to some requests again, so retries and the breaker have work) and `weft
//! dashboard`'s page is served for its sidecars until Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use crate::dashboard::{Dashboard, serve};
use crate::views::sidecars::Sidecar;
use crate::views::{Reader, Source};

/// Where the page is served when free; otherwise any free loopback port.
const LISTEN: &str = "127.0.0.1:8084";
/// Long enough to outlast any session: the traffic stops with the process.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// Serves the dashboard for `admins` while traffic flows to `forward`, until Ctrl-C.
pub async fn run(forward: SocketAddr, admins: &[SocketAddr]) -> anyhow::Result<()> {
    let listener = match tokio::net::TcpListener::bind(LISTEN).await {
        Ok(listener) => listener,
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    };
    let addresses: Vec<String> = admins.iter().map(ToString::to_string).collect();
    let source = Source::Sidecars(addresses.iter().cloned().map(Sidecar::Addr).collect());
    let dashboard = Dashboard::start(Reader::new(source, None), Duration::from_secs(2), addresses);
    let fast = tokio::spawn(super::traffic::run(
        forward,
        "/",
        FOREVER,
        2,
        Duration::from_millis(20),
    ));
    let slow = tokio::spawn(super::traffic::run(
        forward,
        "/slow/report",
        FOREVER,
        1,
        Duration::from_millis(500),
    ));
    println!(
        "\nthe dashboard: http://{}/  (the mesh keeps running with traffic; Ctrl-C to stop)",
        listener.local_addr()?
    );
    tokio::select! {
        () = serve(listener, dashboard) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    fast.abort();
    slow.abort();
    Ok(())
}
