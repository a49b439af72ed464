//! The dashboard's HTTP server: the embedded page, `GET /api/snapshot` (the latest snapshot and
//! the charts' history, as JSON) and `GET /api/tap` (the sidecars' tap streams, relayed). The
//! refresh runs in its own task, so pages only ever read the latest snapshot.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::history::History;
use super::response::{Body, text, with_type};
use super::{assets, tap};
use crate::views::{MeshSnapshot, Reader};

#[derive(Default)]
struct State {
    snapshot: Option<MeshSnapshot>,
    history: History,
}

/// A running dashboard: the refresh task's latest snapshot and where tap streams come from.
#[derive(Clone)]
pub struct Dashboard {
    state: Arc<Mutex<State>>,
    tap_sidecars: Arc<Vec<String>>,
}

impl Dashboard {
    /// Starts refreshing from `reader` every `interval`; tap is relayed from `tap_sidecars`
    /// (admin addresses; none with Prometheus as the source).
    pub fn start(mut reader: Reader, interval: Duration, tap_sidecars: Vec<String>) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let refreshed = state.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let snapshot = reader.refresh().await;
                let mut state = refreshed.lock().unwrap_or_else(|p| p.into_inner());
                state.history.record(&snapshot);
                state.snapshot = Some(snapshot);
            }
        });
        Self {
            state,
            tap_sidecars: Arc::new(tap_sidecars),
        }
    }

    /// `{"snapshot": …, "history": [{"time", "services": {name: point}}]}`.
    fn snapshot_json(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::json!({
            "snapshot": state.snapshot,
            "history": state.history.all(),
        })
        .to_string()
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Body> {
        if req.method() != http::Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        }
        let path = req.uri().path();
        if let Some((body, content_type)) = assets::file(path) {
            return with_type(StatusCode::OK, body, content_type);
        }
        match path {
            "/api/snapshot" => with_type(StatusCode::OK, self.snapshot_json(), "application/json"),
            "/api/tap" => tap::relay(&self.tap_sidecars, req.uri().query().unwrap_or("")),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; try /, /api/snapshot, /api/tap\n",
            ),
        }
    }
}

/// Serves the dashboard on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, dashboard: Dashboard) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let dashboard = dashboard.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let dashboard = dashboard.clone();
                async move { Ok::<_, Infallible>(dashboard.route(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
