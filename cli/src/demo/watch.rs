//! Watching the sidecars' certificates change while traffic flows, through their admin
//! `/identity` endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A certificate a sidecar was seen holding.
#[derive(Debug, Clone)]
pub struct Seen {
    pub sidecar: &'static str,
    pub serial: String,
    pub not_after: String,
}

/// Polls each sidecar's `/identity` every 100 ms until `stop`, printing each new certificate.
pub async fn certificates(
    sidecars: Vec<(&'static str, SocketAddr)>,
    started: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Seen> {
    let mut seen: Vec<Seen> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        for (sidecar, admin) in &sidecars {
            let Ok((200, body)) = super::http_get(*admin, "/identity").await else {
                continue;
            };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
                continue;
            };
            let (Some(serial), Some(not_after)) =
                (json["serial"].as_str(), json["not_after"].as_str())
            else {
                continue;
            };
            let known = seen
                .iter()
                .any(|s| s.sidecar == *sidecar && s.serial == serial);
            if !known {
                let first = !seen.iter().any(|s| s.sidecar == *sidecar);
                println!(
                    "  +{:>4.1}s  {sidecar:<6}  {} certificate {}…  expires {not_after}",
                    started.elapsed().as_secs_f64(),
                    if first { "holds  " } else { "rotated" },
                    &serial[..12.min(serial.len())],
                );
                seen.push(Seen {
                    sidecar,
                    serial: serial.to_owned(),
                    not_after: not_after.to_owned(),
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}
