//! Sidecar injection: the mutating admission webhook and `weft inject` / `weft uninject` share
//! this code, so a pod meshed by hand looks exactly like one meshed by the cluster.
//!
//! - [`annotations`]: every `weft.dev/...` annotation a user writes or weft adds;
//! - [`settings`]: what the injector is configured with (image, sidecar mode, addresses);
//! - [`decision`]: whether a pod is injected at all (opt in/out, hostNetwork, system namespaces,
//!   already injected);
//! - [`template`]: the `weft-init` and `weft-proxy` containers and their volumes;
//! - [`probes`]: the app's kubelet probe ports, exempted from interception;
//! - [`marker`]: the `weft.dev/injected` annotation recording what was added, so uninject is exact;
//! - [`pod`]: a pod (or pod template) in, JSON Patch operations out; and uninject;
//! - [`patch`]: the JSON Patch operations and a small applier for offline use;
//! - [`admission`]: `admission.k8s.io/v1` AdmissionReview types with the standard base64 patch;
//! - [`webhook`], [`webhook_cert`], [`ca_bundle`], [`trust_anchors`]: the HTTPS server in the
//!   control plane, its DNS-named certificate, the MutatingWebhookConfiguration's `caBundle` and
//!   the trust-anchor ConfigMap of each meshed namespace;
//! - [`documents`]: YAML streams (files, directories, stdin) walked for pod templates.

pub mod admission;
pub mod annotations;
pub mod ca_bundle;
pub mod decision;
pub mod documents;
pub mod marker;
pub mod patch;
pub mod pod;
pub mod probes;
pub mod settings;
pub mod template;
pub mod trust_anchors;
pub mod webhook;
pub mod webhook_cert;

pub use settings::{InjectSettings, SidecarMode};
