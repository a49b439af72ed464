//! The `weft.discovery.v1.Discovery` gRPC service: one stream per destination a proxy meets.
//!
//! A stream sends the answer for its address now, then sleeps on the index channel; each new
//! index wakes it, it resolves its address again and sends only if the answer differs from the
//! last one it sent. Unrelated edits to the file cost each watch one map lookup and no traffic.
//! The stream ends when the proxy goes away (tonic drops it) or the control plane stops (it ends
//! with `UNAVAILABLE`, so the proxy knows to watch again elsewhere).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use prometheus::IntGauge;
use tokio::sync::watch;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use weft_api::discovery::discovery_server::Discovery;
use weft_api::discovery::{self as pb, WatchRequest};

use super::{Index, Resolution, Store};
use crate::metrics::Metrics;

pub struct WatchService {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

impl WatchService {
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>, stop: CancellationToken) -> Self {
        Self {
            store,
            metrics,
            stop,
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::Resolution, Status>> + Send>>;

#[tonic::async_trait]
impl Discovery for WatchService {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let peer = crate::grpc_server::peer_of(&request);
        let address = request.into_inner().address;
        let target = match parse_address(&address) {
            Ok(target) => target,
            Err(e) => {
                self.metrics
                    .discovery_requests
                    .with_label_values(&["invalid_address"])
                    .inc();
                tracing::warn!(%peer, "refused discovery watch: {e:#}");
                return Err(Status::invalid_argument(format!("{e:#}")));
            }
        };
        self.metrics
            .discovery_requests
            .with_label_values(&["ok"])
            .inc();
        tracing::debug!(%peer, %target, "discovery watch opened");
        let state = Watch {
            target,
            index: self.store.subscribe(),
            last: None,
            stop: self.stop.clone(),
            done: false,
            _open: OpenWatch::new(self.metrics.discovery_watches.clone()),
        };
        Ok(Response::new(
            futures_util::stream::unfold(state, Watch::next).boxed(),
        ))
    }
}

/// `ip:port` or `[ip]:port`, with a port a connection can have.
fn parse_address(address: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = address.parse().with_context(|| {
        format!("address {address:?} is not ip:port (e.g. 10.96.0.10:8080 or [fd00::10]:8080)")
    })?;
    if addr.port() == 0 {
        bail!("address {address:?} has port 0 (expected ip:port with a port from 1 to 65535)");
    }
    Ok(SocketAddr::new(addr.ip().to_canonical(), addr.port()))
}

/// The state of one open stream.
struct Watch {
    target: SocketAddr,
    index: watch::Receiver<Arc<Index>>,
    /// What the proxy was last told; `None` before the first message.
    last: Option<Resolution>,
    stop: CancellationToken,
    done: bool,
    _open: OpenWatch,
}

impl Watch {
    async fn next(mut self) -> Option<(Result<pb::Resolution, Status>, Self)> {
        if self.done {
            return None;
        }
        loop {
            // The borrow holds a read lock: resolve and let go before awaiting anything.
            let current = self.index.borrow_and_update().resolve(self.target);
            if self.last.as_ref() != Some(&current) {
                self.last = Some(current.clone());
                return Some((Ok(current.into()), self));
            }
            tokio::select! {
                _ = self.stop.cancelled() => {
                    self.done = true;
                    let status = Status::unavailable("the control plane is shutting down");
                    return Some((Err(status), self));
                }
                changed = self.index.changed() => {
                    if changed.is_err() {
                        // The store is gone, which happens only while stopping.
                        return None;
                    }
                }
            }
        }
    }
}

/// Counts a stream in `weft_discovery_watches` for as long as it exists.
struct OpenWatch(IntGauge);

impl OpenWatch {
    fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::discovery::services;

    fn file(endpoints: &str) -> String {
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata: {{name: hello, namespace: demo}}\nspec:\n  addresses: [10.96.0.10]\n  ports: [{{port: 80}}]\n  endpoints: [{endpoints}]\n---\napiVersion: weft.dev/v1alpha1\nkind: MeshService\nmetadata: {{name: other, namespace: demo}}\nspec:\n  addresses: [10.96.0.20]\n  ports: [{{port: 80}}]\n"
        )
    }

    fn service(stop: &CancellationToken) -> (Arc<Store>, WatchService, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let index = Index::new(
            services::parse(
                file("{address: 10.1.0.1, meshed: false}").as_bytes(),
                Path::new("s.yaml"),
                "cluster.local",
            )
            .unwrap(),
        );
        let store = Store::fixed(index, metrics.clone(), "cluster.local");
        let service = WatchService::new(store.clone(), metrics.clone(), stop.clone());
        (store, service, metrics)
    }

    async fn open(service: &WatchService, address: &str) -> Result<WatchStream, Status> {
        service
            .watch(Request::new(WatchRequest {
                address: address.to_owned(),
            }))
            .await
            .map(Response::into_inner)
    }

    #[test]
    fn addresses_must_be_ip_and_port() {
        assert_eq!(
            parse_address("[::ffff:10.0.0.1]:80").unwrap(),
            "10.0.0.1:80".parse().unwrap()
        );
        for bad in [
            "10.0.0.1",
            "hello.demo:80",
            "10.0.0.1:0",
            "10.0.0.1:99999",
            "",
        ] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn speaks_only_when_its_own_answer_changes() {
        let stop = CancellationToken::new();
        let (store, service, metrics) = service(&stop);
        let mut stream = open(&service, "10.96.0.10:80").await.unwrap();
        assert_eq!(metrics.discovery_watches.get(), 1);
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.endpoints.len(), 1);

        // Another service changes: nothing to say.
        let other_changed =
            file("{address: 10.1.0.1, meshed: false}").replace("10.96.0.20", "10.96.0.21");
        store
            .reload(other_changed.as_bytes(), Path::new("s.yaml"))
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .is_err()
        );

        // This one gains an endpoint: the new answer, whole.
        let grown = file("{address: 10.1.0.1, meshed: false}, {address: 10.1.0.2, meshed: false}");
        store.reload(grown.as_bytes(), Path::new("s.yaml")).unwrap();
        let second = stream.next().await.unwrap().unwrap();
        assert_eq!(second.endpoints.len(), 2);
        assert_eq!(second.endpoints[1].address, "10.1.0.2:80");

        stop.cancel();
        let last = stream.next().await.unwrap().unwrap_err();
        assert_eq!(last.code(), tonic::Code::Unavailable);
        assert!(stream.next().await.is_none());
        drop(stream);
        assert_eq!(metrics.discovery_watches.get(), 0);
    }

    #[tokio::test]
    async fn refuses_a_malformed_address() {
        let stop = CancellationToken::new();
        let (_store, service, metrics) = service(&stop);
        let Err(status) = open(&service, "10.96.0.10").await else {
            panic!("a bare IP is refused");
        };
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("is not ip:port"), "{status:?}");
        assert_eq!(
            metrics
                .discovery_requests
                .with_label_values(&["invalid_address"])
                .get(),
            1
        );
        assert_eq!(metrics.discovery_watches.get(), 0);
    }
}
