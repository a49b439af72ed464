//! What the control plane writes in `status` of a ServicePolicy or MeshService: whether the
//! object is in force, and if not, why, in the words of `weft policy check`.
//!
//! ```yaml
//! status:
//!   observedGeneration: 3        # the generation these conditions describe
//!   acceptedGeneration: 2        # the generation in force (an invalid edit keeps the last good)
//!   conditions:
//!     - type: Accepted
//!       status: "False"
//!       reason: Invalid          # Accepted | Invalid | Overridden
//!       message: "ServicePolicy prod/payments: spec.client.defaults.retries.limit: 9 is out of
//!         range (0-5)"
//!       observedGeneration: 3
//!       lastTransitionTime: "2026-12-01T16:20:00Z"
//! ```
//!
//! A status is written only when it differs from the one stored (ignoring
//! `lastTransitionTime`): writing it changes the object's `resourceVersion`, which the watch
//! reports back, and an unconditional write would answer itself forever.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The one condition type.
pub const ACCEPTED: &str = "Accepted";
/// `reason` when the object is in force.
pub const REASON_ACCEPTED: &str = "Accepted";
/// `reason` when a check failed; the message lists every problem.
pub const REASON_INVALID: &str = "Invalid";
/// `reason` when a `--policies` / `--services` file defines the same service: the file wins.
pub const REASON_OVERRIDDEN: &str = "Overridden";

/// The status subresource of both kinds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The `metadata.generation` in force: the last one accepted by this control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The outcome of checking one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Every problem, one `Kind ns/name: field.path: what` line each.
    Invalid(Vec<String>),
    /// Valid, but a file defines the same service and is in force instead.
    Overridden(String),
}

impl Verdict {
    /// The `result` label of `weft_custom_resources_checked_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Invalid(_) => "invalid",
            Verdict::Overridden(_) => "overridden",
        }
    }
}

/// The status to write for `generation` with `verdict`, keeping the transition time of
/// `previous` when the condition's status did not change.
pub fn desired(
    generation: Option<i64>,
    accepted_generation: Option<i64>,
    verdict: &Verdict,
    previous: Option<&Status>,
) -> Status {
    let (status, reason, message) = match verdict {
        Verdict::Accepted => ("True", REASON_ACCEPTED, "in force".to_owned()),
        Verdict::Invalid(problems) => ("False", REASON_INVALID, problems.join("\n")),
        Verdict::Overridden(why) => ("False", REASON_OVERRIDDEN, why.clone()),
    };
    let previous_condition =
        previous.and_then(|s| s.conditions.iter().find(|c| c.type_ == ACCEPTED));
    let last_transition_time = match previous_condition {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(k8s_openapi::jiff::Timestamp::now()),
    };
    Status {
        observed_generation: generation,
        accepted_generation,
        conditions: vec![Condition {
            type_: ACCEPTED.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            last_transition_time,
        }],
    }
}

/// Whether `previous` already says what `desired` says.
pub fn unchanged(previous: Option<&Status>, desired: &Status) -> bool {
    let Some(previous) = previous else {
        return false;
    };
    let strip = |s: &Status| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(previous) == strip(desired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transition_time_moves_only_when_the_condition_flips() {
        let accepted = desired(Some(1), Some(1), &Verdict::Accepted, None);
        assert!(unchanged(
            Some(&accepted),
            &desired(Some(1), Some(1), &Verdict::Accepted, Some(&accepted))
        ));
        let again = desired(Some(2), Some(2), &Verdict::Accepted, Some(&accepted));
        assert_eq!(
            again.conditions[0].last_transition_time,
            accepted.conditions[0].last_transition_time
        );
        assert!(!unchanged(Some(&accepted), &again));

        let invalid = Verdict::Invalid(vec!["ServicePolicy prod/p: spec: missing".to_owned()]);
        let broken = desired(Some(3), Some(2), &invalid, Some(&again));
        let json = serde_json::to_value(&broken).unwrap();
        assert_eq!(json["observedGeneration"], 3);
        assert_eq!(json["acceptedGeneration"], 2);
        assert_eq!(json["conditions"][0]["type"], "Accepted");
        assert_eq!(json["conditions"][0]["status"], "False");
        assert_eq!(json["conditions"][0]["reason"], "Invalid");
        assert_eq!(
            json["conditions"][0]["message"],
            "ServicePolicy prod/p: spec: missing"
        );
        assert!(json["conditions"][0]["lastTransitionTime"].is_string());
        assert!(!unchanged(Some(&again), &broken));
    }
}
