//! `admission.k8s.io/v1` AdmissionReview, the few fields weft reads and writes.
//!
//! Our own types rather than kube-core's: its `AdmissionResponse.patch` serialises as an array
//! of numbers (kube-rs#1781), while the API server wants standard base64 with
//! `patchType: JSONPatch`. The test of the wire form is in this file.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::decision::{Decision, decide};
use super::pod::inject;
use super::settings::InjectSettings;

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    api_version: String,
    kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    pub api_version: String,
    pub kind: String,
    pub request: Option<AdmissionRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub object: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewResponse {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: AdmissionResponse,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// The JSON Patch, standard base64 (with padding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub code: u16,
    pub message: String,
}

/// A body that is not an AdmissionReview weft can answer: the webhook says 400 with this.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not an AdmissionReview: {0}")]
    NotAReview(String),
    #[error(
        "unsupported {field} {got:?}: weft answers apiVersion admission.k8s.io/v1, kind AdmissionReview"
    )]
    Unsupported { field: &'static str, got: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// What the review decided, for `weft_injections_total{result}`.
#[derive(Debug)]
pub struct Answer {
    pub review: AdmissionReviewResponse,
    pub result: &'static str,
    /// The namespace of a pod that was injected (its trust-anchor ConfigMap must exist).
    pub injected_into: Option<String>,
}

/// Answers one AdmissionReview body. A request about something other than a Pod, or without a
/// readable pod, is allowed unchanged with a warning (the API server would not send one, and
/// refusing it would block the cluster for weft's sake); a bad weft annotation is denied with a
/// message naming it (the pod's author can fix it).
pub fn review(
    body: &[u8],
    settings: &InjectSettings,
    namespace_enabled: bool,
) -> Result<Answer, ReviewError> {
    // The type first, so another version is named as such rather than as a missing field.
    let header: TypeMeta =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotAReview(e.to_string()))?;
    if header.api_version != API_VERSION {
        return Err(ReviewError::Unsupported {
            field: "apiVersion",
            got: header.api_version,
        });
    }
    if header.kind != KIND {
        return Err(ReviewError::Unsupported {
            field: "kind",
            got: header.kind,
        });
    }
    let review: AdmissionReview =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotAReview(e.to_string()))?;
    let request = review.request.ok_or(ReviewError::NoRequest)?;
    let mut response = AdmissionResponse {
        uid: request.uid,
        allowed: true,
        patch_type: None,
        patch: None,
        warnings: Vec::new(),
        status: None,
    };
    let mut injected_into = None;
    let kind = &request.kind;
    let pod = request.object.filter(|o| o.is_object());
    let result = match (kind.group.as_str(), kind.kind.as_str(), pod) {
        ("", "Pod", Some(pod)) if request.operation.as_deref().unwrap_or("CREATE") == "CREATE" => {
            let namespace = request
                .namespace
                .as_deref()
                .or_else(|| pod.pointer("/metadata/namespace").and_then(Value::as_str));
            match decide(&pod, namespace, namespace_enabled) {
                Decision::Inject => match inject(&pod, settings) {
                    Ok(injection) => {
                        // Serialising a list of plain operations cannot fail.
                        let patch = serde_json::to_vec(&injection.ops).unwrap_or_default();
                        response.patch =
                            Some(base64::engine::general_purpose::STANDARD.encode(patch));
                        response.patch_type = Some("JSONPatch");
                        response.warnings = injection.warnings;
                        injected_into = namespace.map(str::to_owned);
                        Decision::Inject.label()
                    }
                    Err(e) => {
                        response.allowed = false;
                        response.status = Some(Status {
                            code: 400,
                            message: format!("weft cannot inject this pod: {e}"),
                        });
                        "denied"
                    }
                },
                other => other.label(),
            }
        }
        ("", "Pod", Some(_)) => "not_a_create",
        (_, _, None) if kind.kind == "Pod" => {
            response
                .warnings
                .push("weft: the review carries no pod object; not injected".to_owned());
            "no_object"
        }
        _ => {
            response.warnings.push(format!(
                "weft injects Pods only, not {}/{} {}; allowed unchanged",
                kind.group, kind.version, kind.kind
            ));
            "not_a_pod"
        }
    };
    Ok(Answer {
        review: AdmissionReviewResponse {
            api_version: API_VERSION,
            kind: KIND,
            response,
        },
        result,
        injected_into,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(object: Value, namespace: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": namespace, "operation": "CREATE", "object": object}
        }))
        .unwrap()
    }

    #[test]
    fn the_patch_is_standard_base64_of_a_json_patch_with_the_uid_echoed() {
        let pod = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "web"}]}});
        let answer = review(&body(pod, "prod"), &InjectSettings::default(), true).unwrap();
        let wire = serde_json::to_value(&answer.review).unwrap();
        assert_eq!(wire["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(wire["kind"], "AdmissionReview");
        assert_eq!(
            wire["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(wire["response"]["allowed"], true);
        assert_eq!(wire["response"]["patchType"], "JSONPatch");
        let patch = wire["response"]["patch"]
            .as_str()
            .expect("a string, not numbers");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        let ops: Vec<Value> = serde_json::from_slice(&decoded).unwrap();
        assert!(ops.iter().all(|op| op["op"] == "add"), "{ops:?}");
        assert_eq!(answer.result, "injected");
    }

    #[test]
    fn not_a_review_or_another_version_is_an_error() {
        let settings = InjectSettings::default();
        assert!(matches!(
            review(b"garbage", &settings, true),
            Err(ReviewError::NotAReview(_))
        ));
        let old =
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#;
        let err = review(old, &settings, true).unwrap_err().to_string();
        assert!(err.contains("v1beta1"), "{err}");
    }

    #[test]
    fn a_bad_annotation_is_denied_with_its_name() {
        let pod = json!({"metadata": {"annotations": {"weft.dev/proxy-cpu-limit": "lots"}},
            "spec": {"containers": [{"name": "web"}]}});
        let answer = review(&body(pod, "prod"), &InjectSettings::default(), true).unwrap();
        assert!(!answer.review.response.allowed);
        let message = &answer.review.response.status.as_ref().unwrap().message;
        assert!(message.contains("weft.dev/proxy-cpu-limit"), "{message}");
    }
}
