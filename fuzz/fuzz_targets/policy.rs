//! `weft_control_plane::policy::load`: a policy file's bytes to checked ServicePolicies (the
//! YAML tree, the schema walk, the merge over the defaults), as `--policies` and `weft policy
//! check` read it.
//!
//! Checks: no panic, whatever the bytes; a file is either loaded or refused with problems that
//! name it; every loaded policy has an effective client policy, an explanation and a server
//! half; reading the same bytes again gives the same answer.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_control_plane::policy::effective::client_policy;
use weft_control_plane::policy::explain::explain;
use weft_control_plane::policy::{Policies, load};

const FILE: &str = "fuzz.yaml";

fuzz_target!(|data: &[u8]| {
    let files = [(FILE.to_owned(), data.to_vec())];
    let examined = load::examine(&files);
    for problem in &examined.problems {
        assert!(problem.starts_with(FILE), "{problem}");
    }
    let policies = Policies::new(&examined.loaded);
    assert_eq!(policies.len(), examined.loaded.len());
    for loaded in &examined.loaded {
        let _ = client_policy(&loaded.policy);
        assert!(!explain(loaded).is_empty());
        let _ = policies.server(&loaded.policy.key(), 8080);
    }
    let again = load::examine(&files);
    assert_eq!(again.problems, examined.problems);
    assert_eq!(again.loaded, examined.loaded);
});
