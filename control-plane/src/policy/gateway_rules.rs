//! ServicePolicy overrides naming Gateway API route rules (`client.overrides[].gatewayRules`),
//! checked against the routes read with them: `weft policy check` reports a name that is no
//! rule as it reports an unknown ServicePolicy route. The control plane does not: routes and
//! policies are reloaded apart (and may come from other places), and an override naming a rule
//! that does not exist (yet) applies to no request.

use super::load::Loaded;
use super::walk::did_you_mean;
use crate::routes::HttpRoute;

/// One problem (`file:line:column: field: what`) per `gatewayRules` entry that names no rule of
/// `routes`.
pub fn unknown(loaded: &[Loaded], routes: &[HttpRoute]) -> Vec<String> {
    let rules: Vec<String> = routes
        .iter()
        .flat_map(|r| {
            r.rules
                .iter()
                .map(move |rule| format!("{}/{}", r.key(), rule.proto.name))
        })
        .collect();
    let mut problems = Vec::new();
    for Loaded { file, policy } in loaded {
        for written in policy
            .client
            .overrides
            .iter()
            .flat_map(|o| &o.gateway_rules)
        {
            let key = policy.gateway_rule_key(&written.value);
            if rules.contains(&key) {
                continue;
            }
            let names: Vec<&str> = rules.iter().map(String::as_str).collect();
            let why = match did_you_mean(&key, &names) {
                Some(close) => format!("no Gateway API rule `{key}`; did you mean `{close}`?"),
                None => format!(
                    "no Gateway API rule `{key}` in the routes checked (rules: {})",
                    names.join(", ")
                ),
            };
            problems.push(format!("{file}:{}: {}: {why}", written.at, written.path));
        }
    }
    problems
}
