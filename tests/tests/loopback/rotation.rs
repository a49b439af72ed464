//! Certificates that live a few seconds: rotation under traffic, and a control plane outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use weft_proxy::RunningProxy;
use weft_tests::apps::HttpApp;
use weft_tests::clients::tls_probe::Answer;
use weft_tests::mesh::wait_ready;
use weft_tests::observe::metrics::find_metric;
use weft_tests::{Mesh, clients, wait};

fn renewals(proxy: &RunningProxy) -> u64 {
    proxy.metrics.identity.renewals.get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_every_few_seconds_under_traffic_loses_no_request() {
    let mesh = Mesh::start(Duration::from_secs(3)).await;
    let app = HttpApp::start("hello").await;
    let weft_tests::mesh::Sidecars { client, server } =
        mesh.sidecars("web", "hello", app.addr).await;
    let first_serial = server.store.current().unwrap().info.serial.clone();

    let sent = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let target = format!("http://{}/", client.forward_addrs[0]);
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (sent, ok, failures, done, target) = (
                sent.clone(),
                ok.clone(),
                failures.clone(),
                done.clone(),
                target.clone(),
            );
            tokio::spawn(async move {
                let http = clients::keep_alive_client();
                // Bounded in count and time.
                for _ in 0..100_000 {
                    if done.load(Ordering::SeqCst) == 1 {
                        return;
                    }
                    let req = http::Request::get(&target)
                        .header("host", "hello.demo")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    sent.fetch_add(1, Ordering::SeqCst);
                    match http.request(req).await {
                        Ok(resp) if resp.status() == 200 => {
                            resp.into_body().collect().await.unwrap();
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(resp) => failures
                            .lock()
                            .unwrap()
                            .push(format!("status {}", resp.status())),
                        Err(e) => failures.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();

    wait::until(
        Duration::from_secs(30),
        "three rotations on both proxies",
        || async { (renewals(&server) >= 3 && renewals(&client) >= 3).then_some(()) },
    )
    .await;
    done.store(1, Ordering::SeqCst);
    for l in loops {
        l.await.unwrap();
    }

    let (sent, ok) = (sent.load(Ordering::SeqCst), ok.load(Ordering::SeqCst));
    assert_eq!(*failures.lock().unwrap(), Vec::<String>::new());
    assert_eq!(sent, ok, "requests sent == successful responses");
    assert!(sent > 100, "only {sent} requests were sent");
    assert_eq!(app.requests(), sent);

    // New handshakes use the newest certificate.
    let current = server.store.current().unwrap();
    assert_ne!(current.info.serial, first_serial);
    match mesh.probe_as("web", server.inbound_addr, "hello").await {
        Answer::Accepted { serial, .. } => {
            let newest = server.store.current().unwrap().info.serial.clone();
            assert_eq!(serial, newest, "the handshake used an old certificate");
        }
        refused => panic!("{refused:?}"),
    }
    // The client proxy moved its pooled connection to each new certificate.
    let metrics = server.metrics.render();
    let mtls =
        find_metric(&metrics, r#"weft_inbound_connections_total{tls="mtls"}"#).unwrap() as u64;
    assert!(
        mtls >= 4,
        "expected a new mesh connection per client rotation, saw {mtls}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_control_plane_the_proxy_serves_until_expiry_then_recovers() {
    let mut mesh = Mesh::start(Duration::from_secs(4)).await;
    let app = HttpApp::start("hello").await;
    let weft_tests::mesh::Sidecars { client, server } =
        mesh.sidecars("web", "hello", app.addr).await;
    let target = client.forward_addrs[0];
    assert_eq!(
        clients::get(target, "/", "hello.demo")
            .await
            .unwrap()
            .status,
        200
    );

    mesh.stop_control_plane().await;
    let expiry = server
        .store
        .current()
        .unwrap()
        .not_after()
        .min(client.store.current().unwrap().not_after());

    // Until the certificates expire, everything keeps working.
    let mut served = 0;
    while SystemTime::now() + Duration::from_millis(300) < expiry && served < 10_000 {
        let reply = clients::get(target, "/", "hello.demo").await.unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(server.store.readiness(SystemTime::now()).is_ok());
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served > 0);

    // Once expired: not ready, and a new peer refuses the expired certificate.
    let why = wait::until(
        Duration::from_secs(10),
        "the proxy to report its expiry",
        || async { server.store.readiness(SystemTime::now()).err() },
    )
    .await;
    assert!(why.contains("expired"), "{why}");
    // X.509 validity has one-second resolution and WebPKI treats the last second as valid.
    let past_expiry = server.store.current().unwrap().not_after() + Duration::from_secs(1);
    wait::until(
        Duration::from_secs(5),
        "a full second past expiry",
        || async { (SystemTime::now() > past_expiry).then_some(()) },
    )
    .await;
    match mesh.probe_as("web", server.inbound_addr, "hello").await {
        Answer::Refused(why) => assert!(why.contains("xpired"), "{why}"),
        accepted => panic!("a peer accepted an expired certificate: {accepted:?}"),
    }

    // The control plane comes back: both proxies recover by themselves.
    let outage_ended = Instant::now();
    mesh.start_control_plane().await;
    wait_ready(&server).await;
    wait_ready(&client).await;
    let reply = wait::until(Duration::from_secs(10), "traffic to flow again", || async {
        clients::get(target, "/", "hello.demo")
            .await
            .ok()
            .filter(|r| r.status == 200)
    })
    .await;
    assert_eq!(reply.body, "hello from hello\n");
    assert!(outage_ended.elapsed() < Duration::from_secs(15));
}
