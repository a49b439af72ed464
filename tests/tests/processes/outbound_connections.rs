//! What the app's connections cost through its client sidecar: an idle connection opens nothing
//! upstream until the app sends its first byte (no mutual-TLS tunnel, no connection to the
//! server's app), everything is given back when the connections close, and past
//! `--outbound-max-connections` a new connection is closed at once and counted.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_tests::apps::{TcpEcho, echoes};
use weft_tests::mesh::{identity, wait_ready};
use weft_tests::observe::metrics::metric_in as metric;
use weft_tests::process::proxy_process::ProxyProcess;
use weft_tests::{Mesh, ProxyOptions, clients, wait};

const HOUR: Duration = Duration::from_secs(3600);
const IDLE: usize = 300;
const DEADLINE: Duration = Duration::from_secs(10);

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn idle_connections_open_nothing_upstream_and_everything_is_given_back_on_close() {
    let mesh = Mesh::start(HOUR).await;
    let echo = TcpEcho::start().await;
    let server = mesh.proxy("db", ProxyOptions::app(echo.addr)).await;
    let options = ProxyOptions::forward_to(vec![(identity("db"), server.inbound_addr)]);
    let client = ProxyProcess::start(&mesh, "web", &options, &[]).await;
    let pid = client.pid();
    let listener = client.forward_addrs[0];
    let client_metrics = || async { client.admin("/metrics").await.map(|r| r.body) };
    let baseline = descriptors(pid);

    let mut idle = Vec::new();
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(listener).await.unwrap());
    }
    // Each is detected opaque once the detection wait (300 ms) passes with nothing sent.
    wait::until(DEADLINE, "every idle connection to be detected", || async {
        let metrics = client_metrics().await?;
        let opaque = r#"weft_protocol_detections_total{direction="outbound",protocol="opaque"}"#;
        (metric(&metrics, opaque) == IDLE as f64).then_some(())
    })
    .await;
    // Past detection, a connection that costs an upstream would have opened it by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        echo.connections(),
        0,
        "the server's app sees no idle client"
    );
    let metrics = client_metrics().await.unwrap();
    assert_eq!(
        metric(
            &metrics,
            r#"weft_tcp_connections_opened_total{direction="outbound"}"#
        ),
        0.0,
        "no tunnel opened for an idle connection:\n{metrics}"
    );
    let held = descriptors(pid) - baseline;
    assert!(
        held <= IDLE + 5,
        "an idle connection holds one descriptor (its own), not two: {held} for {IDLE}"
    );

    // The first byte opens the tunnel: the opaque stream works as before.
    assert!(echoes(&mut idle[0]).await, "the first byte is carried");
    assert_eq!(echo.connections(), 1);

    // Closed, everything is given back: the gauges and the descriptors.
    drop(idle);
    wait::until(
        DEADLINE,
        "the client sidecar to give everything back",
        || async {
            let metrics = client_metrics().await?;
            let open = metric(
                &metrics,
                r#"weft_tcp_connections_open{direction="outbound"}"#,
            );
            let fds = descriptors(pid);
            (open == 0.0 && fds <= baseline + 2).then_some(())
        },
    )
    .await;
    wait::until(
        DEADLINE,
        "the server sidecar to give everything back",
        || async {
            let metrics = server.metrics.render();
            let open = metric(
                &metrics,
                r#"weft_tcp_connections_open{direction="inbound"}"#,
            );
            (open == 0.0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn past_the_outbound_connection_limit_a_new_connection_is_closed_at_once_and_counted() {
    let mesh = Mesh::start(HOUR).await;
    let echo = TcpEcho::start().await;
    let server = mesh.proxy("db", ProxyOptions::app(echo.addr)).await;
    let options = ProxyOptions::forward_to(vec![(identity("db"), server.inbound_addr)]);
    let mut args = mesh.proxy_args("web", &options);
    args.outbound_max_connections = Some("2".to_owned());
    let config = weft_proxy::ProxyConfig::from_args(args).unwrap();
    let client = weft_proxy::start(config, None).await.unwrap();
    wait_ready(&client).await;
    let config = clients::get(client.admin_addr, "/config", "admin")
        .await
        .unwrap()
        .body;
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["outbound_max_connections"], 2, "{config}");
    let listener: SocketAddr = client.forward_addrs[0];

    let mut first = TcpStream::connect(listener).await.unwrap();
    let mut second = TcpStream::connect(listener).await.unwrap();
    assert!(echoes(&mut first).await && echoes(&mut second).await);

    // The third is accepted by the kernel, then closed without anything opened for it.
    let mut third = TcpStream::connect(listener).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf))
        .await
        .expect("the sidecar closes the third connection at once");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed, not served: {read:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    let metrics = client.metrics.render();
    assert_eq!(
        metric(
            &metrics,
            r#"weft_outbound_connections_total{protocol="refused"}"#
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            r#"weft_proxy_errors_total{direction="outbound",reason="connection_limit"}"#
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(echo.connections(), 2);

    // The two held connections were not disturbed; once one closes, its slot is free again.
    assert!(echoes(&mut second).await);
    drop(first);
    let mut fourth = wait::until(DEADLINE, "a slot to be free again", || async {
        let mut tcp = TcpStream::connect(listener).await.ok()?;
        echoes(&mut tcp).await.then_some(tcp)
    })
    .await;
    assert!(echoes(&mut fourth).await && echoes(&mut second).await);
}

/// A server-speaks-first app: `220 ready` to every connection, counted.
async fn greeter() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = tcp.write_all(b"220 ready\r\n").await;
                let mut rest = Vec::new();
                let _ = tcp.read_to_end(&mut rest).await;
            });
        }
    });
    (addr, accepted)
}

fn greeter_service(name: &str, target_port: u16, ip: std::net::Ipv4Addr, opaque: bool) -> String {
    let protocol = if opaque {
        "\n      protocol: opaque"
    } else {
        ""
    };
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata:\n  name: {name}\n  namespace: demo\nspec:\n  ports:\n    - port: 2525\n      targetPort: {target_port}{protocol}\n  endpoints:\n    - address: {ip}\n      serviceAccount: hello\n"
    )
}

#[tokio::test]
async fn a_server_first_protocol_greets_on_a_declared_opaque_port_and_waits_on_any_other() {
    // One server sidecar per service (an address belongs to one service), both before one app.
    let (ips, port) = weft_tests::mesh::policy_mesh::endpoint_addresses(2);
    let services = format!(
        "{}---\n{}",
        greeter_service("declared", port, ips[0], true),
        greeter_service("undeclared", port, ips[1], false)
    );
    let mesh = Mesh::start_with(HOUR, &services, None).await;
    let (app, greeted) = greeter().await;
    let mut servers = Vec::new();
    for ip in &ips {
        let options = ProxyOptions {
            app: Some(app),
            inbound_listen: Some(SocketAddr::from((*ip, port))),
            ..ProxyOptions::default()
        };
        servers.push(mesh.proxy("hello", options).await);
    }
    let options = ProxyOptions {
        forward_services: vec!["declared.demo:2525".into(), "undeclared.demo:2525".into()],
        ..ProxyOptions::default()
    };
    let client = mesh.proxy("web", options).await;

    // Declared opaque: carried at once, the greeting comes without the client saying anything.
    let mut declared = TcpStream::connect(client.forward_addrs[0]).await.unwrap();
    let mut greeting = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(3), declared.read_exact(&mut greeting))
        .await
        .expect("the greeting within 3 s")
        .unwrap();
    assert_eq!(&greeting, b"220 ready\r\n");

    // Any other port: nothing is opened until the client speaks, so no greeting ever comes.
    let mut undeclared = TcpStream::connect(client.forward_addrs[1]).await.unwrap();
    let mut buf = [0u8; 11];
    let read = tokio::time::timeout(Duration::from_millis(1500), undeclared.read(&mut buf)).await;
    assert!(read.is_err(), "no greeting on an undeclared port: {read:?}");
    assert_eq!(
        greeted.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the app saw only the declared port's connection"
    );
    // Once the client speaks first, the connection is carried.
    undeclared.write_all(b"HELO\r\n").await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), undeclared.read_exact(&mut buf))
        .await
        .expect("carried once the client spoke")
        .unwrap();
    assert_eq!(&buf, b"220 ready\r\n");
}
