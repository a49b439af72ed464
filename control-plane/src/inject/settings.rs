//! What the injector is configured with: the same settings serve the webhook (from the control
//! plane's flags) and `weft inject` (from its own flags), so both produce the same pod.

/// How the proxy is added to the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SidecarMode {
    /// An init container with `restartPolicy: Always` (Kubernetes 1.29+): it starts, and passes
    /// its startup probe, before the app; it stops after the app; Jobs complete.
    Native,
    /// A regular container next to the app (clusters older than 1.29): the app may start before
    /// the proxy is ready, and a Job's pod never completes while the proxy runs.
    Classic,
}

impl SidecarMode {
    pub fn name(self) -> &'static str {
        match self {
            SidecarMode::Native => "native",
            SidecarMode::Classic => "classic",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "native" => Some(SidecarMode::Native),
            "classic" => Some(SidecarMode::Classic),
            _ => None,
        }
    }
}

/// The default image: the three binaries at this version.
pub fn default_proxy_image() -> String {
    format!("ghcr.io/weft-mesh/weft:{}", env!("CARGO_PKG_VERSION"))
}

/// The control plane's gRPC address as pods in the cluster reach it.
pub const DEFAULT_CONTROL_PLANE_ADDR: &str = "weft-control-plane.weft-system.svc:15010";

/// Everything the template needs that does not come from the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectSettings {
    pub proxy_image: String,
    pub mode: SidecarMode,
    pub control_plane_addr: String,
    pub trust_domain: String,
    /// Audience of the projected service-account token (the control plane's --token-audience).
    pub token_audience: String,
    /// The version written into `weft.dev/injected`.
    pub version: String,
}

impl Default for InjectSettings {
    fn default() -> Self {
        Self {
            proxy_image: default_proxy_image(),
            mode: SidecarMode::Native,
            control_plane_addr: DEFAULT_CONTROL_PLANE_ADDR.to_owned(),
            trust_domain: weft_certs::DEFAULT_TRUST_DOMAIN.to_owned(),
            token_audience: "weft".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}
