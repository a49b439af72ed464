//! The `weft.discovery.v1.Discovery` gRPC service: one stream per destination a proxy meets.
//!
//! A stream sends the answer for its address now, then sleeps on three channels: the services
//! index, the policies and the Gateway API routes in force. Any of them waking it, it resolves
//! its address again, attaches the service's effective client policy and, on a watch of the
//! service's own address or name, the route table of that port for the caller's namespace, and
//! sends only if that whole answer differs from the last one it sent. Unrelated edits cost each
//! watch a few lookups and no traffic; an edit reaches exactly the watches it changes.
//! The stream ends when the proxy goes away (tonic drops it) or the control plane stops (it ends
//! with `UNAVAILABLE`, so the proxy knows to watch again elsewhere).
//!
//! Every watch has an authenticated [`Caller`] (the gRPC router refuses the others, see
//! [`super::caller`]); each identity may hold at most `--max-watches-per-identity` streams, and a
//! stream ends (`UNAVAILABLE`) when the certificate its connection was opened with expires, so
//! the proxy watches again on a connection that presents its current certificate.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use prometheus::IntGauge;
use tokio::sync::watch;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use weft_api::discovery::discovery_server::Discovery;
use weft_api::discovery::{self as pb, WatchRequest};

use super::caller::Caller;
use super::stream_limit::{StreamLimit, StreamSlot};
use super::{Index, Store};
use crate::metrics::{
    Metrics, REFUSED_TOO_MANY_WATCHES, REFUSED_UNAUTHENTICATED, WATCH_DESTINATION, WATCH_SERVER,
};
use crate::policy::is_dns_label;
use crate::policy::{self, Policies};
use crate::routes::{self, Routes};

pub struct WatchService {
    store: Arc<Store>,
    policies: Arc<policy::Store>,
    routes: Arc<routes::Store>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    limit: StreamLimit,
}

impl WatchService {
    pub fn new(
        store: Arc<Store>,
        policies: Arc<policy::Store>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Self {
        Self {
            store,
            policies,
            routes: routes::Store::fixed(Routes::default()),
            metrics,
            stop,
            limit: StreamLimit::new(crate::config::DEFAULT_MAX_WATCHES_PER_IDENTITY),
        }
    }

    /// Answers carry the tables of these Gateway API routes (`--routes`).
    pub fn with_routes(mut self, routes: Arc<routes::Store>) -> Self {
        self.routes = routes;
        self
    }

    /// At most `max` open watches per caller identity (`--max-watches-per-identity`).
    pub fn with_stream_limit(mut self, max: usize) -> Self {
        self.limit = StreamLimit::new(max);
        self
    }

    /// Counts a refusal in `weft_discovery_refusals_total{reason}`.
    fn refused(&self, reason: &str) {
        self.metrics
            .discovery_refusals
            .with_label_values(&[reason])
            .inc();
    }
}

/// How long a new watch waits for the sources' first version (the Kubernetes lists) before
/// answering from what is known.
pub const INITIAL_SYNC_WAIT: Duration = Duration::from_secs(5);

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::Resolution, Status>> + Send>>;

#[tonic::async_trait]
impl Discovery for WatchService {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let peer = crate::peer::peer_of(&request);
        let Some(caller) = request.extensions().get::<Caller>().cloned() else {
            // The router authenticates every discovery call; this is only reached if it did not.
            self.refused(REFUSED_UNAUTHENTICATED);
            return Err(Status::unauthenticated(
                "discovery needs the caller's mesh certificate",
            ));
        };
        let Some(slot) = self.limit.acquire(&caller.identity) else {
            self.refused(REFUSED_TOO_MANY_WATCHES);
            let message = format!(
                "{} has {} discovery watches open on this control plane, the most --max-watches-per-identity allows",
                caller.identity,
                self.limit.max()
            );
            tracing::warn!(%peer, "refused discovery watch: {message}");
            return Err(Status::resource_exhausted(message));
        };
        let WatchRequest { address, server } = request.into_inner();
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
        let kind = if server {
            WATCH_SERVER
        } else {
            WATCH_DESTINATION
        };
        tracing::debug!(%peer, identity = %caller.identity, %target, kind, "discovery watch opened");
        let expires = tokio::time::Instant::now()
            + caller
                .not_after
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
        let state = Watch {
            target,
            server,
            index: self.store.subscribe(),
            synced: self.store.synced(),
            routes_synced: self.routes.synced(),
            policies: self.policies.subscribe(),
            routes: self.routes.subscribe(),
            caller_namespace: caller.identity.namespace().to_owned(),
            last: None,
            stop: self.stop.clone(),
            done: false,
            _open: OpenWatch::new(self.metrics.discovery_watches.with_label_values(&[kind])),
            expires,
            _slot: slot,
        };
        Ok(Response::new(
            futures_util::stream::unfold(state, Watch::next).boxed(),
        ))
    }
}

/// What a watch resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// An original destination: a service's virtual address or one endpoint's.
    Addr(SocketAddr),
    /// A MeshService by `<name>.<namespace>` and one of its ports.
    Name { service: String, port: u16 },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(addr) => addr.fmt(f),
            Target::Name { service, port } => write!(f, "{service}:{port}"),
        }
    }
}

/// `ip:port` or `[ip]:port`, or `name.namespace:port`, with a port a connection can have.
fn parse_address(address: &str) -> anyhow::Result<Target> {
    let malformed = || {
        format!(
            "address {address:?} is neither ip:port nor name.namespace:port (e.g. 10.96.0.10:8080, [fd00::10]:8080 or hello.demo:8080)"
        )
    };
    let zero = || {
        format!(
            "address {address:?} has port 0 (expected ip:port or name.namespace:port with a port from 1 to 65535)"
        )
    };
    if let Ok(addr) = address.parse::<SocketAddr>() {
        if addr.port() == 0 {
            bail!(zero());
        }
        return Ok(Target::Addr(SocketAddr::new(
            addr.ip().to_canonical(),
            addr.port(),
        )));
    }
    let (host, port) = address.rsplit_once(':').with_context(malformed)?;
    let (name, namespace) = host.split_once('.').with_context(malformed)?;
    if !is_dns_label(name) || !is_dns_label(namespace) {
        bail!(malformed());
    }
    let port: u16 = port.parse().ok().with_context(malformed)?;
    if port == 0 {
        bail!(zero());
    }
    Ok(Target::Name {
        service: host.to_owned(),
        port,
    })
}

/// The state of one open stream.
struct Watch {
    target: Target,
    /// The watcher is the sidecar of the endpoint at `target`: attach the server policy.
    server: bool,
    index: watch::Receiver<Arc<Index>>,
    /// Whether every discovery source has delivered its first version.
    synced: watch::Receiver<bool>,
    /// Whether the cluster's Gateway API routes have (see [`routes::Store::synced`]).
    routes_synced: watch::Receiver<bool>,
    policies: watch::Receiver<Arc<Policies>>,
    routes: watch::Receiver<Arc<Routes>>,
    /// The namespace of the watching proxy's workload: its consumer routes win over producer
    /// routes (see [`crate::routes::compile`]).
    caller_namespace: String,
    /// What the proxy was last told; `None` before the first message.
    last: Option<pb::Resolution>,
    stop: CancellationToken,
    done: bool,
    _open: OpenWatch,
    /// When the caller's certificate expires.
    expires: tokio::time::Instant,
    _slot: StreamSlot,
}

impl Watch {
    /// The answer now. Every channel is marked seen, so only a newer version wakes the watch.
    fn answer(&mut self) -> pb::Resolution {
        // Each borrow holds a read lock: resolve and let go before awaiting anything.
        // The port of the service (not of one endpoint) that is watched, which routes attach to.
        let (resolution, endpoint_port, service_port) = {
            let index = self.index.borrow_and_update();
            match &self.target {
                Target::Addr(addr) => {
                    let endpoint = index.is_endpoint(*addr);
                    (
                        index.resolve(*addr),
                        endpoint.then_some(addr.port()),
                        (!endpoint).then_some(addr.port()),
                    )
                }
                Target::Name { service, port } => {
                    (index.resolve_name(service, *port), None, Some(*port))
                }
            }
        };
        let mut wire = pb::Resolution::from(resolution);
        let policies = self.policies.borrow_and_update();
        let routes = self.routes.borrow_and_update();
        if wire.known {
            wire.policy = policies.get(&wire.service).map(|p| (**p).clone());
            // A ServicePolicy speaks of requests (routes, retries, per-request limits): the
            // ports of its service carry HTTP unless they say otherwise.
            if wire.policy.is_some() && wire.protocol() == pb::PortProtocol::Detect {
                wire.set_protocol(pb::PortProtocol::Http);
            }
            if let (true, Some(port)) = (self.server, endpoint_port) {
                wire.server_policy = policies.server(&wire.service, port);
            }
            if let (false, Some(port)) = (self.server, service_port) {
                wire.routes = routes.table(&wire.service, port, &self.caller_namespace);
                // Routes speak of requests too.
                if wire.routes.is_some() && wire.protocol() == pb::PortProtocol::Detect {
                    wire.set_protocol(pb::PortProtocol::Http);
                }
            }
        }
        wire
    }

    async fn next(mut self) -> Option<(Result<pb::Resolution, Status>, Self)> {
        if self.done {
            return None;
        }
        if self.last.is_none() {
            // Before the first list of the cluster, "unknown" (or a table without the cluster's
            // routes) would be a guess: wait for both, but not forever (an API server that is down must not stall every proxy's first answer).
            let (synced, routes_synced) = (&mut self.synced, &mut self.routes_synced);
            let both = async {
                let _ = synced.wait_for(|s| *s).await;
                let _ = routes_synced.wait_for(|s| *s).await;
            };
            let _ = tokio::time::timeout(INITIAL_SYNC_WAIT, both).await;
        }
        loop {
            let current = self.answer();
            if self.last.as_ref() != Some(&current) {
                self.last = Some(current.clone());
                return Some((Ok(current), self));
            }
            tokio::select! {
                _ = self.stop.cancelled() => {
                    self.done = true;
                    let status = Status::unavailable("the control plane is shutting down");
                    return Some((Err(status), self));
                }
                _ = tokio::time::sleep_until(self.expires) => {
                    self.done = true;
                    let status = Status::unavailable(
                        "the client certificate this watch was opened with expired; watch again with the current one",
                    );
                    return Some((Err(status), self));
                }
                changed = self.index.changed() => {
                    if changed.is_err() {
                        // The store is gone, which happens only while stopping.
                        return None;
                    }
                }
                changed = self.policies.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                changed = self.routes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
            }
        }
    }
}

/// Counts a stream in `weft_discovery_watches{kind}` for as long as it exists.
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
        let (store, _policies, service, metrics) = service_with_policies(stop);
        (store, service, metrics)
    }

    fn service_with_policies(
        stop: &CancellationToken,
    ) -> (Arc<Store>, Arc<policy::Store>, WatchService, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let services = services::parse(
            file("{address: 10.1.0.1, meshed: false}").as_bytes(),
            Path::new("s.yaml"),
            "cluster.local",
        )
        .unwrap();
        let store = Store::fixed(Index::new(services), metrics.clone(), "cluster.local");
        let policies = policy::Store::fixed(Policies::default(), metrics.clone());
        let service = WatchService::new(
            store.clone(),
            policies.clone(),
            metrics.clone(),
            stop.clone(),
        );
        (store, policies, service, metrics)
    }

    fn open_watches(metrics: &Metrics, kind: &str) -> i64 {
        metrics.discovery_watches.with_label_values(&[kind]).get()
    }

    async fn open(service: &WatchService, address: &str) -> Result<WatchStream, Status> {
        open_as(service, address, false).await
    }

    async fn open_as(
        service: &WatchService,
        address: &str,
        server: bool,
    ) -> Result<WatchStream, Status> {
        open_by(service, address, server, "web").await
    }

    /// A watch by the proxy of service account `account`, as the router passes it on.
    async fn open_by(
        service: &WatchService,
        address: &str,
        server: bool,
        account: &str,
    ) -> Result<WatchStream, Status> {
        let mut request = Request::new(WatchRequest {
            address: address.to_owned(),
            server,
        });
        request.extensions_mut().insert(Caller {
            identity: weft_certs::SpiffeId::new("cluster.local", "demo", account).unwrap(),
            not_after: std::time::SystemTime::now() + Duration::from_secs(24 * 3600),
        });
        service.watch(request).await.map(Response::into_inner)
    }

    #[test]
    fn addresses_are_ip_and_port_or_name_and_port() {
        assert_eq!(
            parse_address("[::ffff:10.0.0.1]:80").unwrap(),
            Target::Addr("10.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            parse_address("hello.demo:80").unwrap(),
            Target::Name {
                service: "hello.demo".to_owned(),
                port: 80
            }
        );
        for bad in [
            "10.0.0.1",
            "hello:80",
            "hello.demo.svc:80",
            "Hello.demo:80",
            "hello.demo:0",
            "hello.demo:x",
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
        assert_eq!(open_watches(&metrics, WATCH_DESTINATION), 1);
        assert_eq!(open_watches(&metrics, WATCH_SERVER), 0);
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
        assert_eq!(open_watches(&metrics, WATCH_DESTINATION), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_answer_waits_for_the_initial_kubernetes_list_up_to_a_bound() {
        let stop = CancellationToken::new();
        let (store, service, _metrics) = service(&stop);
        store.expect_kubernetes();
        let mut stream = open(&service, "10.96.0.10:80").await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(
            tokio::time::timeout(Duration::from_secs(1), stream.next())
                .await
                .is_err(),
            "no answer before the list"
        );
        store.set_kubernetes(Vec::new());
        let first = stream.next().await.unwrap().unwrap();
        assert!(first.known, "the file's service, once synced");
        assert!(started.elapsed() < INITIAL_SYNC_WAIT);

        // Never synced: an answer from what is known after the bound.
        store.expect_kubernetes();
        let mut stream = open(&service, "10.96.0.10:80").await.unwrap();
        let started = tokio::time::Instant::now();
        let first = stream.next().await.unwrap().unwrap();
        assert!(first.known);
        assert_eq!(started.elapsed(), INITIAL_SYNC_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_answer_waits_for_the_cluster_s_routes_up_to_a_bound() {
        let stop = CancellationToken::new();
        let (_store, service, _metrics) = service(&stop);
        let routes = routes::Store::fixed(Routes::default());
        let service = service.with_routes(routes.clone());
        routes.expect_cluster();
        let mut stream = open(&service, "hello.demo:80").await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(
            tokio::time::timeout(Duration::from_secs(1), stream.next())
                .await
                .is_err(),
            "no answer before the routes are listed"
        );
        let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: hello, namespace: demo}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: hello, port: 80}]\n  rules: [{backendRefs: [{name: other, port: 80}]}]\n";
        let listed = routes::examine_all(&[("cluster".to_owned(), route.as_bytes().to_vec())]);
        routes.set_cluster(listed.unwrap());
        routes.cluster_listed();
        let first = stream.next().await.unwrap().unwrap();
        assert!(
            first.routes.is_some(),
            "the first answer has the cluster's route"
        );
        assert!(started.elapsed() < INITIAL_SYNC_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_route_edit_reaches_the_watches_of_the_service_s_address_and_name_only() {
        let stop = CancellationToken::new();
        let (_store, service, _metrics) = service(&stop);
        let routes = routes::Store::fixed(Routes::default());
        let service = service.with_routes(routes.clone());
        let mut by_name = open(&service, "hello.demo:80").await.unwrap();
        let mut by_address = open(&service, "10.96.0.10:80").await.unwrap();
        let mut endpoint = open(&service, "10.1.0.1:80").await.unwrap();
        let mut other = open(&service, "10.96.0.20:80").await.unwrap();
        for stream in [&mut by_name, &mut by_address, &mut endpoint, &mut other] {
            assert_eq!(stream.next().await.unwrap().unwrap().routes, None);
        }
        let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: hello, namespace: demo}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: hello, port: 80}]\n  rules: [{backendRefs: [{name: other, port: 80}]}]\n";
        routes
            .reload(&[("r.yaml".to_owned(), route.as_bytes().to_vec())])
            .unwrap();
        for stream in [&mut by_name, &mut by_address] {
            let answer = stream.next().await.unwrap().unwrap();
            let table = answer.routes.as_ref().unwrap();
            assert_eq!(table.rules[0].backends[0].service, "other.demo");
            // Routes speak of requests: the port carries HTTP.
            assert_eq!(answer.protocol(), pb::PortProtocol::Http);
        }
        // One endpoint's own address means that instance: no routes; another service: no news.
        for stream in [&mut endpoint, &mut other] {
            let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
            assert!(next.is_err(), "no new answer");
        }
    }

    fn policy_files(timeout: &str) -> Vec<crate::policy::load::File> {
        let text = format!(
            "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {{name: hello, namespace: demo}}\nspec:\n  client:\n    defaults:\n      timeouts: {{request: {timeout}}}\n"
        );
        vec![("p.yaml".to_owned(), text.into_bytes())]
    }

    #[tokio::test(start_paused = true)]
    async fn a_policy_edit_reaches_the_watches_of_its_service_only() {
        let stop = CancellationToken::new();
        let (_store, policies, service, _metrics) = service_with_policies(&stop);
        let mut hello = open(&service, "hello.demo:80").await.unwrap();
        let mut other = open(&service, "10.96.0.20:80").await.unwrap();
        let first = hello.next().await.unwrap().unwrap();
        assert!(first.known);
        assert_eq!(first.endpoints[0].address, "10.1.0.1:80");
        assert_eq!(first.policy, None);
        assert_eq!(first.protocol(), pb::PortProtocol::Detect);
        assert!(other.next().await.unwrap().unwrap().known);

        policies.reload(&policy_files("3s")).unwrap();
        let second = hello.next().await.unwrap().unwrap();
        // A ServicePolicy speaks of requests: its service's ports carry HTTP.
        assert_eq!(second.protocol(), pb::PortProtocol::Http);
        let policy = second.policy.unwrap();
        assert!(
            policy.version.starts_with("hello.demo@"),
            "{}",
            policy.version
        );
        let timeouts = policy.default_rules.unwrap().timeouts.unwrap();
        assert_eq!(timeouts.request_ms, 3_000);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), other.next())
                .await
                .is_err(),
            "the other service's answer did not change"
        );

        // The same effective policy again (a comment added): nothing to say.
        let mut same = policy_files("3s");
        same[0].1.extend_from_slice(b"# reviewed\n");
        policies.reload(&same).unwrap();
        assert!(
            tokio::time::timeout(Duration::from_secs(5), hello.next())
                .await
                .is_err()
        );

        // Removed: back to no policy (the proxy's built-in defaults).
        policies.reload(&[]).unwrap();
        let removed = hello.next().await.unwrap().unwrap();
        assert_eq!(
            (removed.protocol(), removed.policy),
            (pb::PortProtocol::Detect, None)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_an_endpoint_s_own_sidecar_gets_the_server_policy() {
        let stop = CancellationToken::new();
        let (_store, policies, service, metrics) = service_with_policies(&stop);
        let mut files = policy_files("3s");
        files[0].1.extend_from_slice(
            b"  server:\n    mtls: strict\n    authorization: {default: deny}\n",
        );
        policies.reload(&files).unwrap();
        let mut own = open_as(&service, "10.1.0.1:80", true).await.unwrap();
        let mut caller = open(&service, "10.1.0.1:80").await.unwrap();
        let mut by_service_address = open_as(&service, "10.96.0.10:80", true).await.unwrap();
        assert_eq!(open_watches(&metrics, WATCH_SERVER), 2);
        assert_eq!(open_watches(&metrics, WATCH_DESTINATION), 1);
        let server = own.next().await.unwrap().unwrap().server_policy.unwrap();
        assert_eq!(server.mtls(), weft_api::policy::Mtls::Strict);
        assert!(server.version.starts_with("hello.demo@"));
        assert!(!server.authorization.unwrap().default_allow);
        assert_eq!(caller.next().await.unwrap().unwrap().server_policy, None);
        let vip = by_service_address.next().await.unwrap().unwrap();
        assert!(vip.known && vip.server_policy.is_none());

        // The server section removed: the endpoint's sidecar is told at once.
        policies.reload(&policy_files("3s")).unwrap();
        assert_eq!(own.next().await.unwrap().unwrap().server_policy, None);
    }

    #[tokio::test]
    async fn one_identity_past_its_limit_is_refused_and_others_are_not() {
        let stop = CancellationToken::new();
        let (_store, service, metrics) = service(&stop);
        let service = service.with_stream_limit(2);
        let _a = open_by(&service, "10.96.0.10:80", false, "web")
            .await
            .unwrap();
        let b = open_by(&service, "10.96.0.20:80", false, "web")
            .await
            .unwrap();
        let Err(status) = open_by(&service, "10.96.0.10:80", false, "web").await else {
            panic!("the third watch of web is refused");
        };
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status
                .message()
                .contains("spiffe://cluster.local/ns/demo/sa/web has 2 discovery watches open"),
            "{status:?}"
        );
        let refusals = |reason| {
            metrics
                .discovery_refusals
                .with_label_values(&[reason])
                .get()
        };
        assert_eq!(refusals(REFUSED_TOO_MANY_WATCHES), 1);
        assert!(
            open_by(&service, "10.96.0.10:80", false, "db")
                .await
                .is_ok()
        );
        drop(b);
        assert!(
            open_by(&service, "10.96.0.10:80", false, "web")
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn without_a_caller_a_watch_is_unauthenticated() {
        let stop = CancellationToken::new();
        let (_store, service, metrics) = service(&stop);
        let request = Request::new(WatchRequest {
            address: "10.96.0.10:80".to_owned(),
            server: false,
        });
        let Err(status) = service.watch(request).await else {
            panic!("refused");
        };
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        let refusals = metrics
            .discovery_refusals
            .with_label_values(&[REFUSED_UNAUTHENTICATED])
            .get();
        assert_eq!(refusals, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_ends_when_its_certificate_expires() {
        let stop = CancellationToken::new();
        let (_store, service, _metrics) = service(&stop);
        let mut request = Request::new(WatchRequest {
            address: "10.96.0.10:80".to_owned(),
            server: false,
        });
        request.extensions_mut().insert(Caller {
            identity: weft_certs::SpiffeId::new("cluster.local", "demo", "web").unwrap(),
            not_after: std::time::SystemTime::now() + Duration::from_secs(60),
        });
        let mut stream = service.watch(request).await.unwrap().into_inner();
        assert!(stream.next().await.unwrap().is_ok());
        let ended = stream.next().await.unwrap().unwrap_err();
        assert_eq!(ended.code(), tonic::Code::Unavailable);
        assert!(ended.message().contains("expired"), "{ended:?}");
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn a_name_without_a_service_is_unknown() {
        let stop = CancellationToken::new();
        let (_store, service, _metrics) = service(&stop);
        let mut stream = open(&service, "nobody.demo:80").await.unwrap();
        assert!(!stream.next().await.unwrap().unwrap().known);
    }

    #[tokio::test]
    async fn refuses_a_malformed_address() {
        let stop = CancellationToken::new();
        let (_store, service, metrics) = service(&stop);
        let Err(status) = open(&service, "10.96.0.10").await else {
            panic!("a bare IP is refused");
        };
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status
                .message()
                .contains("is neither ip:port nor name.namespace:port"),
            "{status:?}"
        );
        assert_eq!(
            metrics
                .discovery_requests
                .with_label_values(&["invalid_address"])
                .get(),
            1
        );
        assert_eq!(open_watches(&metrics, WATCH_DESTINATION), 0);
    }
}
