//! HTTP/1.1 Upgrade (the WebSocket handshake) through two sidecars on loopback: the app answers
//! `101 Switching Protocols` and from then on both directions are raw bytes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use weft_tests::Mesh;
use weft_tests::mesh::Sidecars;

const LIMIT: Duration = Duration::from_secs(10);

/// An app that switches any request to an echo of raw bytes, reporting the request head.
async fn upgrading_echo_app() -> (SocketAddr, tokio::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (heads, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(tcp);
                let head = read_head(&mut reader).await;
                let _ = heads.send(head).await;
                let mut tcp = reader.into_inner();
                tcp.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
                    .await
                    .unwrap();
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, rx)
}

async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap() == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

#[tokio::test]
async fn an_upgraded_connection_carries_raw_bytes_both_ways() {
    let mesh = Mesh::start(Duration::from_secs(3600)).await;
    let (app, mut heads) = upgrading_echo_app().await;
    let Sidecars {
        client,
        server: _server,
    } = mesh.sidecars("web", "hello", app).await;

    let tcp = TcpStream::connect(client.forward_addrs[0]).await.unwrap();
    let mut reader = BufReader::new(tcp);
    reader
        .get_mut()
        .write_all(b"GET /chat HTTP/1.1\r\nHost: hello.demo:8080\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let response = tokio::time::timeout(LIMIT, read_head(&mut reader))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("upgrade: echo"),
        "{response}"
    );

    let seen = tokio::time::timeout(LIMIT, heads.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(seen.starts_with("GET /chat HTTP/1.1\r\n"), "{seen}");
    let seen = seen.to_ascii_lowercase();
    assert!(seen.contains("upgrade: echo"), "{seen}");
    assert!(seen.contains("host: hello.demo:8080"), "{seen}");
    assert!(
        seen.contains("weft-client-identity: spiffe://cluster.local/ns/demo/sa/web"),
        "{seen}"
    );

    // After the switch: bytes that are not HTTP, in both directions, several times.
    let mut tcp = reader.into_inner();
    for round in 0..3u8 {
        let message = [0u8, 1, 2, 0xff, round];
        tcp.write_all(&message).await.unwrap();
        let mut echoed = [0u8; 5];
        tokio::time::timeout(LIMIT, tcp.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, message);
    }
}
