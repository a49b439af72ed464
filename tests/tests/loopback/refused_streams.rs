//! A request the peer proxy refused before processing it is always sent again, whatever the
//! method and the policy: its app never saw it.
//!
//! A draining sidecar sends `GOAWAY`; a stream the caller's sidecar opened as the `GOAWAY` was on
//! its way lands above its last stream id and is not processed (RFC 9113, 6.8). That race is rare
//! on loopback (one run in two of the SIGTERM test met it once), so the endpoint here is a peer
//! that refuses every other stream ([`RefusingPeer`]) and answers the others itself: every
//! request meets the race once. The policy retries nothing (`limit: 0`) and the requests are
//! POSTs with a body.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use weft_tests::apps::refusing_peer::{Refusal, RefusingPeer};
use weft_tests::mesh::Mesh;
use weft_tests::mesh::policy_mesh::{
    self, DESTINATION, POLICY_DEADLINE, SERVICE, endpoint_addresses, policy, send, services_yaml,
};
use weft_tests::{ProxyOptions, wait};

const HOUR: Duration = Duration::from_secs(3600);
const REQUESTS: usize = 10;

async fn a_refused_post_is_sent_again(how: Refusal) {
    let (ips, port) = endpoint_addresses(1);
    let doc = policy(
        "  client:
    defaults:
      retries: {limit: 0}
",
    );
    let mesh = Mesh::start_with(HOUR, &services_yaml(port, &ips), Some(&doc)).await;
    let peer = RefusingPeer::start(&mesh, "hello", SocketAddr::from((ips[0], port)), how).await;
    let client = mesh
        .proxy("web", ProxyOptions::forward_service(SERVICE))
        .await;
    let caller = client.forward_addrs[0];
    wait::until(
        POLICY_DEADLINE,
        "the caller to know the endpoint and the policy",
        || async {
            let d = policy_mesh::destination(&client).await.ok().flatten();
            let Some(d) = d else {
                // The caller resolves on first use.
                let _ = send(caller, Method::GET, "/__warmup", Bytes::new()).await;
                return None;
            };
            let endpoints = d["endpoints"].as_array().map_or(0, Vec::len);
            let version = d["policy_version"].as_str().unwrap_or("builtin");
            (endpoints == 1 && version != "builtin").then_some(())
        },
    )
    .await;
    let refused_before = peer.refused();
    let answered_before = peer.answered().len();
    let retried_before = retries(&client).await;

    for n in 0..REQUESTS {
        let body = format!("payload {n}");
        let answer = send(caller, Method::POST, "/upload", Bytes::from(body))
            .await
            .unwrap();
        assert_eq!(
            (answer.status.as_u16(), answer.weft_error()),
            (200, None),
            "request {n}: {answer:?}"
        );
    }
    // Each request was refused once, then delivered once, with its whole body.
    assert_eq!(peer.refused() - refused_before, REQUESTS);
    let delivered = peer.answered()[answered_before..].to_vec();
    let bodies: Vec<usize> = (0..REQUESTS)
        .map(|n| format!("payload {n}").len())
        .collect();
    assert_eq!(delivered, bodies);
    assert_eq!(retries(&client).await - retried_before, REQUESTS as f64);
}

/// `weft_outbound_retries_total{reason="refused_stream"}` of the caller.
async fn retries(client: &weft_proxy::RunningProxy) -> f64 {
    let series = format!(
        r#"weft_outbound_retries_total{{destination="{DESTINATION}",reason="refused_stream"}}"#
    );
    weft_tests::observe::metrics::metric(client, &series).await
}

#[tokio::test]
async fn a_post_crossing_the_peers_goaway_is_sent_again_though_the_policy_retries_nothing() {
    a_refused_post_is_sent_again(Refusal::GoAway).await;
}

#[tokio::test]
async fn a_post_refused_by_the_peer_is_sent_again_though_the_policy_retries_nothing() {
    a_refused_post_is_sent_again(Refusal::RefusedStream).await;
}
