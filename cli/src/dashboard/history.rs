//! The charts' memory: per service, one point per refresh for the last [`KEEP`] refreshes (ten
//! minutes at the default interval), so the page draws the last minutes even when just opened.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::views::MeshSnapshot;

/// Points kept: 300 refreshes, ten minutes at 2 s.
pub const KEEP: usize = 300;

/// One service's signals at one refresh (callers' view: what they got).
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub rps: f64,
    pub success: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Refresh {
    /// Unix seconds.
    pub time: f64,
    pub services: BTreeMap<String, Point>,
}

#[derive(Debug, Default)]
pub struct History {
    refreshes: VecDeque<Refresh>,
}

impl History {
    pub fn record(&mut self, snapshot: &MeshSnapshot) {
        let services = snapshot
            .services
            .iter()
            .map(|s| {
                let g = &s.effective;
                let point = Point {
                    rps: g.requests_per_second,
                    success: g.success_rate,
                    p50_ms: g.p50_ms,
                    p95_ms: g.p95_ms,
                    p99_ms: g.p99_ms,
                };
                (s.name.clone(), point)
            })
            .collect();
        self.refreshes.push_back(Refresh {
            time: snapshot.time,
            services,
        });
        while self.refreshes.len() > KEEP {
            self.refreshes.pop_front();
        }
    }

    pub fn all(&self) -> Vec<&Refresh> {
        self.refreshes.iter().collect()
    }
}
