//! Apps that stand behind a proxy and report what reached them: [`HttpApp`] and [`TcpEcho`] here,
//! [`fault_app`] answering what a test scripts, [`recording_app`] recording the exact bytes it
//! receives and answering raw bytes, and peers that misbehave on purpose ([`refusing_peer`],
//! [`stalling_relay`]).

pub mod fault_app;
pub mod recording_app;
pub mod refusing_peer;
pub mod stalling_relay;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What one request looked like when it reached the app.
#[derive(Debug, Clone)]
pub struct Seen {
    pub version: http::Version,
    pub path: String,
    pub host: Option<String>,
    pub authority: Option<String>,
    pub client_identity: Option<String>,
    pub headers: HeaderMap,
}

/// An HTTP/1.1 + HTTP/2 app. `GET /…` answers `hello from <name>`; `POST /echo` streams the
/// request body back frame by frame and ends with a trailer `x-echo-trailer: done`.
pub struct HttpApp {
    pub addr: SocketAddr,
    pub name: String,
    requests: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

type AppBody = BoxBody<Bytes, hyper::Error>;

impl HttpApp {
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (r, s, n) = (requests.clone(), seen.clone(), name.to_owned());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (r, s, n) = (r.clone(), s.clone(), n.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (r, s, n) = (r.clone(), s.clone(), n.clone());
                        async move { Ok::<_, Infallible>(respond(req, &r, &s, &n)) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            name: name.to_owned(),
            requests,
            seen,
            task,
        }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last_seen(&self) -> Seen {
        self.seen()
            .last()
            .cloned()
            .expect("the app received no request")
    }

    /// Stops accepting; connections already open keep being served until they close.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for HttpApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn respond(
    req: Request<Incoming>,
    requests: &AtomicUsize,
    seen: &Mutex<Vec<Seen>>,
    name: &str,
) -> Response<AppBody> {
    requests.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    seen.lock().unwrap().push(Seen {
        version: req.version(),
        path: req.uri().path().to_owned(),
        host: header("host"),
        authority: req.uri().authority().map(|a| a.to_string()),
        client_identity: header("weft-client-identity"),
        headers: req.headers().clone(),
    });
    if req.uri().path() == "/echo" {
        // Echo each request frame as it arrives, then a trailer: proves streaming both ways.
        let frames = req.into_body().into_data_stream();
        let echoed = futures_util::StreamExt::map(frames, |chunk| chunk.map(Frame::data));
        let trailer = futures_util::stream::once(async {
            let mut trailers = HeaderMap::new();
            trailers.insert("x-echo-trailer", HeaderValue::from_static("done"));
            Ok::<_, hyper::Error>(Frame::trailers(trailers))
        });
        let body = StreamBody::new(futures_util::StreamExt::chain(echoed, trailer));
        return Response::new(BodyExt::boxed(body));
    }
    let path = req.uri().path().to_owned();
    Response::builder()
        .header("x-app", name)
        .header("x-app-path", path)
        .body(
            Full::new(Bytes::from(format!("hello from {name}\n")))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap()
}

/// Whether `tcp`, a connection that leads to a [`TcpEcho`], carries `ping` there and back
/// (within 5 s).
pub async fn echoes(tcp: &mut TcpStream) -> bool {
    if tcp.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut buf)).await,
        Ok(Ok(_)) if &buf == b"ping"
    )
}

/// A TCP echo server.
pub struct TcpEcho {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TcpEcho {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if tcp.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    /// The connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}
