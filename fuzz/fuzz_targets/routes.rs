//! `weft_control_plane::routes::examine_all`: a routes file's bytes to checked Gateway API
//! routes and ReferenceGrants (the YAML tree, the checks of HTTPRoute, GRPCRoute and
//! ReferenceGrant), compiled into the tables callers get, as `--routes` and `weft policy check`
//! read it.
//!
//! Checks: no panic, whatever the bytes; every problem names the file; every checked route
//! compiles into a table for each Service port it is attached to, its rules sorted and its
//! matches pointing at its rules; a route table has an explanation; reading the same bytes again
//! gives the same answer.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_control_plane::routes::{Routes, examine_all, explain::explain};

const FILE: &str = "fuzz.yaml";

fuzz_target!(|data: &[u8]| {
    let files = [(FILE.to_owned(), data.to_vec())];
    let checked = match examine_all(&files) {
        Ok(checked) => checked,
        Err(problems) => {
            for problem in &problems {
                assert!(problem.starts_with(FILE), "{problem}");
            }
            assert_eq!(examine_all(&files), Err(problems));
            return;
        }
    };
    let routes = Routes::with_grants(checked.routes.clone(), &checked.grants);
    let mut tables = 0;
    for route in routes.all() {
        for parent in &route.parents {
            for caller in [route.namespace.as_str(), "elsewhere"] {
                let port = parent.port.unwrap_or(80);
                if let Some(table) = routes.table(&parent.service, port, caller) {
                    tables += 1;
                    for m in &table.matches {
                        assert!((m.rule as usize) < table.rules.len(), "{table:?}");
                    }
                }
            }
        }
    }
    if tables > 0 {
        assert!(!explain(&routes).is_empty());
    }
    assert_eq!(examine_all(&files), Ok(checked));
});
