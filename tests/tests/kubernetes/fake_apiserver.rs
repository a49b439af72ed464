//! The fake API server against kube's real client and watcher: if these pass, the control
//! plane's Kubernetes sources are tested against the API semantics they rely on (list then watch
//! from the list's revision, 410 Gone forcing a relist, bookmarks, status writes, bearer tokens).

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use weft_tests::kubernetes::fake_apiserver::FakeApiServer;

async fn client(api: &FakeApiServer) -> kube::Client {
    weft_control_plane::kubernetes::connect(Some(api.kubeconfig()))
        .await
        .unwrap()
}

fn slice(name: &str, ip: &str, ready: bool) -> serde_json::Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "prod",
                     "labels": {"kubernetes.io/service-name": "payments"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

/// The next event of the watcher that is not an init marker, with a deadline. The watcher
/// reports a `410 Gone` as an error before it relists: those are skipped, others fail the test.
async fn next_change<S>(events: &mut S) -> Event<EndpointSlice>
where
    S: futures_util::Stream<Item = Result<Event<EndpointSlice>, watcher::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.next().await.expect("watcher ended") {
                Ok(Event::Init | Event::InitDone) => continue,
                Ok(other) => return other,
                Err(watcher::Error::WatchError(status)) if status.code == 410 => continue,
                Err(e) => panic!("watch error: {e}"),
            }
        }
    })
    .await
    .expect("no event within 5 s")
}

fn name(slice: &EndpointSlice) -> &str {
    slice.metadata.name.as_deref().unwrap()
}

#[tokio::test]
async fn kube_watcher_lists_watches_and_relists_after_410() {
    let api = FakeApiServer::start().await;
    api.put(slice("payments-a", "10.1.0.1", true));
    let slices: Api<EndpointSlice> = Api::all(client(&api).await);
    let mut events = watcher::watcher(
        slices,
        watcher::Config::default().labels("kubernetes.io/service-name=payments"),
    )
    .boxed();

    let Event::InitApply(first) = next_change(&mut events).await else {
        panic!("expected the listed slice first");
    };
    assert_eq!(name(&first), "payments-a");

    api.put(slice("payments-b", "10.1.0.2", true));
    let Event::Apply(added) = next_change(&mut events).await else {
        panic!("expected an added slice");
    };
    assert_eq!(name(&added), "payments-b");

    // 410 Gone: the watcher lists again and sees both slices, then later changes.
    api.expire_watches();
    let mut relisted = Vec::new();
    while relisted.len() < 2 {
        match next_change(&mut events).await {
            Event::InitApply(s) => relisted.push(name(&s).to_owned()),
            other => panic!("expected a relist, got {other:?}"),
        }
    }
    relisted.sort();
    assert_eq!(relisted, ["payments-a", "payments-b"]);
    let lists = api
        .requests()
        .iter()
        .filter(|r| {
            r.starts_with("GET /apis/discovery.k8s.io/v1/endpointslices?")
                && !r.contains("watch=true")
        })
        .count();
    assert_eq!(lists, 2, "{:#?}", api.requests());

    api.put(slice("payments-b", "10.1.0.2", false));
    let modified = match next_change(&mut events).await {
        Event::Apply(modified) => modified,
        other => panic!("expected a modified slice, got {other:?}"),
    };
    assert_eq!(
        modified.endpoints[0].conditions.as_ref().unwrap().ready,
        Some(false)
    );
    api.delete(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        Some("prod"),
        "payments-a",
    );
    let Event::Delete(deleted) = next_change(&mut events).await else {
        panic!("expected a deleted slice");
    };
    assert_eq!(name(&deleted), "payments-a");

    // Bookmarks move the watcher's revision without an event to its user.
    api.bookmark();
    api.put(slice("payments-c", "10.1.0.3", true));
    let Event::Apply(after) = next_change(&mut events).await else {
        panic!("expected an added slice after the bookmark");
    };
    assert_eq!(name(&after), "payments-c");
    assert!(
        api.requests()
            .iter()
            .all(|r| !r.contains("watch=true") || r.contains("allowWatchBookmarks=true")),
        "kube's watcher asks for bookmarks"
    );
}

#[tokio::test]
async fn status_writes_keep_the_generation_and_bad_tokens_are_refused() {
    let api = FakeApiServer::start().await;
    let stored = api.put(slice("payments-a", "10.1.0.1", true));
    assert_eq!(stored["metadata"]["generation"], 1);
    let client = client(&api).await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "prod");
    let patch = json!({"status": {"conditions": [{"type": "Accepted", "status": "True"}]}});
    slices
        .patch_status(
            "payments-a",
            &PatchParams::apply("weft"),
            &Patch::Apply(&patch),
        )
        .await
        .unwrap();
    let now = api
        .get(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some("prod"),
            "payments-a",
        )
        .unwrap();
    assert_eq!(now["status"]["conditions"][0]["type"], "Accepted");
    assert_eq!(now["metadata"]["generation"], 1);
    let err = slices.get("nonexistent").await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");

    // A client with another token is refused like a real API server refuses it.
    let mut config = kube::Config::new(api.url().parse().unwrap());
    config.root_cert = Some(vec![]);
    config.accept_invalid_certs = true;
    config.auth_info.token = Some("wrong".to_owned().into());
    let stranger: Api<EndpointSlice> = Api::all(kube::Client::try_from(config).unwrap());
    let err = stranger.list(&Default::default()).await.unwrap_err();
    assert!(err.to_string().contains("Unauthorized"), "{err}");
}
