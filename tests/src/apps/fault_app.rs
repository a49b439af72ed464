//! A scriptable app for resilience tests: it answers what the test tells it to, and records what
//! reached it, so a test can say "the third attempt succeeds" and then check that the app saw three
//! attempts carrying `weft-attempt: 2, 3` (the first carries none).
//!
//! Replies come from queues of scripted [`Reply`]s, each queue bound to a path prefix and
//! consumed one reply per request, then from a default reply (`200 ok` unless changed). Besides
//! plain statuses the app can wait before answering, reset or close its connection without
//! answering, cut a body short, and answer gRPC with the status in trailers — the failures a
//! caller's proxy has to tell apart.
//!
//! Every request is recorded when it arrives, and again when its handling ends: answered, or
//! dropped before it finished (the caller's side gave up: its stream was reset or its connection
//! closed). That is how a test proves that no attempt outlives a deadline.
//!
//! Times are [`tokio::time::Instant`], so the app also runs under tokio's paused clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the app does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An HTTP answer.
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// Waits, then does the inner reply.
    Delay(Duration, Box<Reply>),
    /// Drops the connection without answering, with a TCP reset (`SO_LINGER` 0). Over HTTP/2 this
    /// ends every stream of the connection.
    Reset,
    /// Closes the connection without answering (an orderly FIN).
    Close,
    /// Fails the request in the server: HTTP/2 resets just this stream (`RST_STREAM`); HTTP/1.1
    /// closes the connection.
    ResetStream,
    /// Sends the head with `content-length: declared` and the first `sent` bytes of the body,
    /// then breaks off.
    Truncated {
        status: u16,
        declared: usize,
        sent: usize,
    },
    /// A gRPC answer: `200`, `content-type: application/grpc`, one length-prefixed message when
    /// `message` is set, then `grpc-status` (and `grpc-message`, extra trailers) in trailers.
    Grpc {
        code: u32,
        message: Option<Bytes>,
        trailers: Vec<(String, String)>,
    },
}

impl Reply {
    /// `status` with the body `<status>\n`.
    pub fn status(status: u16) -> Self {
        Reply::Status {
            status,
            headers: Vec::new(),
            body: Bytes::from(format!("{status}\n")),
        }
    }

    pub fn ok() -> Self {
        Self::status(200)
    }

    /// Adds a response header (a status or gRPC reply; gRPC puts it in the trailers).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match &mut self {
            Reply::Status { headers, .. } => headers.push((name.to_owned(), value.to_owned())),
            Reply::Grpc { trailers, .. } => trailers.push((name.to_owned(), value.to_owned())),
            Reply::Delay(_, inner) => **inner = inner.as_ref().clone().header(name, value),
            other => panic!("{other:?} has no headers"),
        }
        self
    }

    /// Replaces the body of a status reply.
    pub fn body(mut self, text: impl Into<Bytes>) -> Self {
        match &mut self {
            Reply::Status { body, .. } => *body = text.into(),
            other => panic!("{other:?} has no body to set"),
        }
        self
    }

    /// This reply, `delay` after the request arrived.
    pub fn after(self, delay: Duration) -> Self {
        Reply::Delay(delay, Box::new(self))
    }

    /// gRPC OK with a message `payload`.
    pub fn grpc_ok(payload: impl Into<Bytes>) -> Self {
        Reply::Grpc {
            code: 0,
            message: Some(payload.into()),
            trailers: Vec::new(),
        }
    }

    /// gRPC failure `code` (no message, status in trailers).
    pub fn grpc_error(code: u32) -> Self {
        Reply::Grpc {
            code,
            message: None,
            trailers: Vec::new(),
        }
    }
}

/// How the handling of a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still being handled (waiting in a delay, or the body is being read).
    Pending,
    /// The app produced its reply (a response head, or a deliberate reset/close).
    Answered(Instant),
    /// The handling was dropped before the app answered: the caller gave up.
    Cancelled(Instant),
}

/// One request as it reached the app.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub at: Instant,
    pub version: Version,
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    /// Bytes of request body received (set once the body was read to its end).
    pub body_len: Option<usize>,
    pub outcome: Outcome,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `weft-attempt` as a number, if present and numeric.
    pub fn attempt(&self) -> Option<u32> {
        self.header("weft-attempt").and_then(|v| v.parse().ok())
    }
}

#[derive(Default)]
struct Script {
    /// `(path prefix, replies)`, searched in the order they were first scripted.
    queues: Vec<(String, VecDeque<Reply>)>,
    default: Option<Reply>,
}

impl Script {
    fn next(&mut self, path: &str) -> Reply {
        for (prefix, queue) in &mut self.queues {
            if path.starts_with(prefix.as_str())
                && let Some(reply) = queue.pop_front()
            {
                return reply;
            }
        }
        self.default.clone().unwrap_or_else(Reply::ok)
    }
}

struct State {
    name: String,
    script: Mutex<Script>,
    seen: Mutex<Vec<SeenRequest>>,
}

/// Per connection: how a reply reaches the socket when it must not answer.
struct Connection {
    kill: Notify,
    reset: AtomicBool,
}

/// The scriptable HTTP/1.1 + HTTP/2 app (see the module doc).
pub struct FaultApp {
    pub addr: SocketAddr,
    pub name: String,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl FaultApp {
    /// Listens on `127.0.0.1:0`.
    pub async fn start(name: &str) -> Self {
        Self::start_on(name, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(name: &str, listen: SocketAddr) -> Self {
        let listener = TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            name: name.to_owned(),
            script: Mutex::new(Script::default()),
            seen: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, state.clone(), stopped));
        Self {
            addr,
            name: name.to_owned(),
            state,
            stop,
            accept: Mutex::new(Some(accept)),
        }
    }

    /// Appends `replies` to the queue of requests whose path starts with `path_prefix` (`"/"`
    /// for every request). Queues are searched in the order they were first scripted.
    pub fn script(&self, path_prefix: &str, replies: impl IntoIterator<Item = Reply>) {
        let mut script = self.state.script.lock().unwrap();
        let index = match script.queues.iter().position(|(p, _)| p == path_prefix) {
            Some(index) => index,
            None => {
                script
                    .queues
                    .push((path_prefix.to_owned(), VecDeque::new()));
                script.queues.len() - 1
            }
        };
        script.queues[index].1.extend(replies);
    }

    /// The reply once every matching queue is empty.
    pub fn set_default(&self, reply: Reply) {
        self.state.script.lock().unwrap().default = Some(reply);
    }

    /// Scripted replies not yet consumed, over every queue.
    pub fn pending_replies(&self) -> usize {
        let script = self.state.script.lock().unwrap();
        script.queues.iter().map(|(_, q)| q.len()).sum()
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn seen_path(&self, prefix: &str) -> Vec<SeenRequest> {
        self.seen()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    pub fn count(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }

    /// Forgets the requests seen so far and every scripted reply (the default stays).
    pub fn clear(&self) {
        self.state.seen.lock().unwrap().clear();
        self.state.script.lock().unwrap().queues.clear();
    }

    /// Closes the listener and drops every connection (requests in progress are never
    /// answered): the app dies mid-traffic.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let accept = self.accept.lock().unwrap().take();
        if let Some(accept) = accept {
            accept.abort();
            let _ = accept.await;
        }
    }
}

impl Drop for FaultApp {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(accept) = self.accept.lock().unwrap().take() {
            accept.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, stopped: watch::Receiver<bool>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(serve(tcp, state.clone(), stopped.clone()));
    }
}

async fn serve(tcp: TcpStream, state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    // A second descriptor of the socket, to set SO_LINGER 0 (a reset on close) only when a
    // reply asks for it; it is dropped before the connection is, so the close is the reset.
    let duplicate: Option<OwnedFd> = tcp.as_fd().try_clone_to_owned().ok();
    let connection = Arc::new(Connection {
        kill: Notify::new(),
        reset: AtomicBool::new(false),
    });
    let conn = connection.clone();
    let service = service_fn(move |req| {
        let (state, conn) = (state.clone(), conn.clone());
        async move { handle(req, state, conn).await }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let serving = builder.serve_connection(TokioIo::new(tcp), service);
    tokio::select! {
        _ = serving => {}
        _ = connection.kill.notified() => {}
        _ = stopped.wait_for(|stop| *stop) => {}
    }
    if connection.reset.load(Ordering::SeqCst)
        && let Some(fd) = &duplicate
    {
        let _ = socket2::SockRef::from(fd).set_linger(Some(Duration::ZERO));
    }
    drop(duplicate);
    // `serving` (and with it the socket) is dropped here: a reset or a FIN.
}

type AppBody = BoxBody<Bytes, std::io::Error>;

/// Marks the request cancelled if its handling is dropped before [`Record::answered`].
struct Record {
    state: Arc<State>,
    index: usize,
    done: bool,
}

impl Record {
    fn set(&self, f: impl FnOnce(&mut SeenRequest)) {
        if let Some(seen) = self.state.seen.lock().unwrap().get_mut(self.index) {
            f(seen);
        }
    }

    fn answered(&mut self) {
        self.done = true;
        self.set(|s| s.outcome = Outcome::Answered(Instant::now()));
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.done {
            self.set(|s| s.outcome = Outcome::Cancelled(Instant::now()));
        }
    }
}

/// An error for hyper: it makes the server reset the stream (HTTP/2) or close (HTTP/1.1).
#[derive(Debug)]
struct Deliberate(&'static str);

impl std::fmt::Display for Deliberate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Deliberate {}

async fn handle(
    req: http::Request<Incoming>,
    state: Arc<State>,
    conn: Arc<Connection>,
) -> Result<Response<AppBody>, Deliberate> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let mut record = {
        let mut seen = state.seen.lock().unwrap();
        seen.push(SeenRequest {
            at: Instant::now(),
            version: parts.version,
            method: parts.method.clone(),
            path: path.clone(),
            headers: parts.headers.clone(),
            body_len: None,
            outcome: Outcome::Pending,
        });
        Record {
            state: state.clone(),
            index: seen.len() - 1,
            done: false,
        }
    };
    // The whole request body first: its length is part of the record.
    let received = body.collect().await.map(|b| b.to_bytes().len()).ok();
    record.set(|s| s.body_len = received);
    let mut reply = state.script.lock().unwrap().next(&path);
    while let Reply::Delay(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    record.answered();
    match reply {
        Reply::Delay(..) => unreachable!("delays were unwrapped above"),
        Reply::Status {
            status,
            headers,
            body,
        } => {
            let mut response = Response::builder()
                .status(status)
                .header("x-app", &state.name);
            for (name, value) in headers {
                response = response.header(name, value);
            }
            Ok(response
                .body(Full::new(body).map_err(|never| match never {}).boxed())
                .unwrap())
        }
        Reply::Reset | Reply::Close => {
            conn.reset
                .store(matches!(reply, Reply::Reset), Ordering::SeqCst);
            conn.kill.notify_one();
            // The connection task drops this future with the connection.
            std::future::pending().await
        }
        Reply::ResetStream => Err(Deliberate("scripted stream reset")),
        Reply::Truncated {
            status,
            declared,
            sent,
        } => {
            let first = Bytes::from(vec![b'x'; sent.min(declared)]);
            Ok(Response::builder()
                .status(status)
                .header("x-app", &state.name)
                .header("content-length", declared)
                .body(cut_short(first))
                .unwrap())
        }
        Reply::Grpc {
            code,
            message,
            trailers,
        } => Ok(grpc_response(&state.name, code, message, trailers)),
    }
}

/// A body of `first`, then (after a pause, so what was sent reaches the socket) an error, which
/// makes hyper break the response off.
fn cut_short(first: Bytes) -> AppBody {
    let sent = futures_util::stream::once(async move { Ok(Frame::data(first)) });
    let failure = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(std::io::Error::other("scripted: body cut short"))
    });
    BodyExt::boxed(StreamBody::new(futures_util::StreamExt::chain(
        sent, failure,
    )))
}

/// `[0][len: u32 BE][message]`: one gRPC message frame, uncompressed.
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(message.len()).expect("a test message fits in u32"));
    frame.put_slice(message);
    frame.freeze()
}

fn grpc_response(
    name: &str,
    code: u32,
    message: Option<Bytes>,
    extra: Vec<(String, String)>,
) -> Response<AppBody> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(code));
    if code != 0 {
        trailers.insert(
            "grpc-message",
            HeaderValue::from_str(&format!("scripted-{code}")).unwrap(),
        );
    }
    for (k, v) in extra {
        trailers.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    let mut frames = Vec::new();
    if let Some(message) = message {
        frames.push(Ok(Frame::data(grpc_frame(&message))));
    }
    frames.push(Ok(Frame::trailers(trailers)));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/grpc")
        .header("x-app", name)
        .body(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
            frames,
        ))))
        .unwrap()
}

/// The replies a test scripts most: `n` times `status`.
pub fn times(n: usize, reply: Reply) -> Vec<Reply> {
    vec![reply; n]
}

/// Waits (polling, bounded by `deadline`) until `app` has seen at least `n` requests.
pub async fn wait_count(app: &FaultApp, n: usize, deadline: Duration) -> Vec<SeenRequest> {
    crate::wait::until(
        deadline,
        &format!("{} to see {n} requests", app.name),
        || async { (app.count() >= n).then(|| app.seen()) },
    )
    .await
}
