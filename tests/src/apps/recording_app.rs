//! An app that records the exact bytes each accepted connection brought, and answers from a
//! script of raw steps, so a test can assert on what the server sidecar really wrote (its framing,
//! what it kept out) and make the app answer in ways a framework would not let it: before reading
//! the body, without a length, with ambiguous framing, closing after the answer.
//!
//! The app parses only as much HTTP/1.1 as its script needs to find where a request ends
//! (`Content-Length` or chunked coding, trailers included), leniently: a request it cannot frame
//! ends its script, and it goes on recording what arrives until the peer closes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Makes the raw answer to one request.
pub type Answerer = Arc<dyn Fn(&Request) -> Vec<u8> + Send + Sync>;

/// One thing the app does on a connection, in order.
#[derive(Clone)]
pub enum Step {
    /// Reads one whole request, head and body; when the head says `Expect: 100-continue`, it
    /// first writes `100 Continue` as a server that wants the body does.
    Request,
    /// Reads one request head and leaves its body unread (an app that answers early).
    Head,
    /// Writes these bytes.
    Write(Vec<u8>),
    /// Closes the connection: a FIN, or a reset when bytes it never read are waiting.
    Close,
    /// Answers every further request with what the answerer makes of it, until the peer closes.
    Serve(Answerer),
}

/// A request as the app read it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request line and header lines as received, with the blank line that ends them.
    pub head: String,
    /// The body with any chunked coding removed.
    pub body: Vec<u8>,
    /// The trailer section of a chunked body as received (`""` when there was none).
    pub trailers: String,
}

impl Request {
    /// The request line's method.
    pub fn method(&self) -> &str {
        self.head.split(' ').next().unwrap_or_default()
    }

    /// The request line's target.
    pub fn target(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or_default()
    }

    /// The first header called `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.head, name)
    }
}

/// What one accepted connection brought.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Every byte received, in order.
    pub received: Vec<u8>,
    /// The requests the script read whole.
    pub requests: Vec<Request>,
    /// Whether the app is done with the connection (it closed it, or the peer did).
    pub ended: bool,
}

/// A listener on `127.0.0.1` following a script per accepted connection.
pub struct RecordingApp {
    pub addr: SocketAddr,
    connections: Arc<Mutex<Vec<Connection>>>,
    task: JoinHandle<()>,
}

impl RecordingApp {
    /// Connection `n` follows `scripts[n]`; any later connection follows `others`.
    pub async fn start(scripts: Vec<Vec<Step>>, others: Vec<Step>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let record = connections.clone();
        let mut scripts = VecDeque::from(scripts);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let script = scripts.pop_front().unwrap_or_else(|| others.clone());
                let index = {
                    let mut all = record.lock().unwrap();
                    all.push(Connection::default());
                    all.len() - 1
                };
                let mut conn = Conn {
                    tcp,
                    unread: Vec::new(),
                    record: record.clone(),
                    index,
                };
                tokio::spawn(async move {
                    conn.follow(script).await;
                    let Conn { record, index, .. } = conn; // closes the socket
                    record.lock().unwrap()[index].ended = true;
                });
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }

    /// Every connection answering each request with what `answer` makes of it.
    pub async fn serving(answer: impl Fn(&Request) -> Vec<u8> + Send + Sync + 'static) -> Self {
        Self::start(Vec::new(), vec![Step::Serve(Arc::new(answer))]).await
    }

    /// What each connection accepted so far brought.
    pub fn connections(&self) -> Vec<Connection> {
        self.connections.lock().unwrap().clone()
    }

    /// Every request read whole, over all connections, in the order of the connections.
    pub fn requests(&self) -> Vec<Request> {
        self.connections()
            .into_iter()
            .flat_map(|c| c.requests)
            .collect()
    }

    /// Every byte received, over all connections, as text.
    pub fn received(&self) -> String {
        let bytes: Vec<u8> = self
            .connections()
            .into_iter()
            .flat_map(|c| c.received)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for RecordingApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `HTTP/1.1 {status}` with `content-length` and `body`.
pub fn answer(status: &str, body: &[u8]) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    answer
}

/// The first header called `name` in `head` (after its request line), trimmed.
fn header_in<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// One accepted connection: the socket, bytes read but not yet consumed by the script, and
/// where to record.
struct Conn {
    tcp: TcpStream,
    unread: Vec<u8>,
    record: Arc<Mutex<Vec<Connection>>>,
    index: usize,
}

impl Conn {
    async fn follow(&mut self, script: Vec<Step>) {
        for step in script {
            let carry_on = match step {
                Step::Request => self.request().await.is_some(),
                Step::Head => self.head().await.is_some(),
                Step::Write(bytes) => self.tcp.write_all(&bytes).await.is_ok(),
                Step::Close => {
                    let _ = self.tcp.shutdown().await;
                    return;
                }
                Step::Serve(answer) => {
                    while let Some(request) = self.request().await {
                        if self.tcp.write_all(&answer(&request)).await.is_err() {
                            return;
                        }
                    }
                    false
                }
            };
            if !carry_on {
                break;
            }
        }
        // Script done: record whatever else arrives, answering nothing.
        while self.fill().await {}
    }

    fn record(&self, change: impl FnOnce(&mut Connection)) {
        change(&mut self.record.lock().unwrap()[self.index]);
    }

    /// Reads more bytes; false when the peer closed (or the read failed).
    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        match self.tcp.read(&mut buf).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.unread.extend_from_slice(&buf[..n]);
                self.record(|c| c.received.extend_from_slice(&buf[..n]));
                true
            }
        }
    }

    /// Consumes and returns everything up to and including `end`.
    async fn until(&mut self, end: &[u8]) -> Option<Vec<u8>> {
        loop {
            if let Some(at) = self.unread.windows(end.len()).position(|w| w == end) {
                return Some(self.unread.drain(..at + end.len()).collect());
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn exactly(&mut self, len: usize) -> Option<Vec<u8>> {
        while self.unread.len() < len {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.unread.drain(..len).collect())
    }

    async fn head(&mut self) -> Option<String> {
        let head = self.until(b"\r\n\r\n").await?;
        Some(String::from_utf8_lossy(&head).into_owned())
    }

    async fn request(&mut self) -> Option<Request> {
        let head = self.head().await?;
        if header_in(&head, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            self.tcp
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .ok()?;
        }
        let chunked = header_in(&head, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let (body, trailers) = if chunked {
            self.chunked().await?
        } else {
            let len = header_in(&head, "content-length").map_or(Some(0), |v| v.parse().ok())?;
            (self.exactly(len).await?, String::new())
        };
        let request = Request {
            head,
            body,
            trailers,
        };
        self.record(|c| c.requests.push(request.clone()));
        Some(request)
    }

    /// A chunked body: the data, and the trailer section as received.
    async fn chunked(&mut self) -> Option<(Vec<u8>, String)> {
        let mut body = Vec::new();
        loop {
            let line = self.until(b"\r\n").await?;
            let line = String::from_utf8_lossy(&line);
            let size = line.trim_end().split(';').next()?.trim();
            let size = usize::from_str_radix(size, 16).ok()?;
            if size == 0 {
                break;
            }
            body.extend(self.exactly(size).await?);
            if self.exactly(2).await? != b"\r\n" {
                return None;
            }
        }
        let mut trailers = String::new();
        loop {
            let line = self.until(b"\r\n").await?;
            if line == b"\r\n" {
                return Some((body, trailers));
            }
            trailers.push_str(&String::from_utf8_lossy(&line));
        }
    }
}
