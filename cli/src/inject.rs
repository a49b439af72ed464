//! `weft inject` and `weft uninject`: the webhook's injection, offline, on YAML files.
//!
//! Input is files, directories (their `*.yaml`, `*.yml` and `*.json` files, sorted, not
//! recursively) or `-`/nothing for stdin; output goes to stdout, ready for `kubectl apply -f -`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use weft_control_plane::inject::documents::{inject_stream, uninject_stream};
use weft_control_plane::inject::settings::{DEFAULT_CONTROL_PLANE_ADDR, default_proxy_image};
use weft_control_plane::inject::{InjectSettings, SidecarMode};

#[derive(Debug, clap::Args)]
pub struct InjectArgs {
    /// YAML files or directories; `-` or nothing reads stdin.
    pub inputs: Vec<PathBuf>,
    /// The image of the weft-init and weft-proxy containers.
    #[arg(long, env = "WEFT_PROXY_IMAGE", default_value_t = default_proxy_image())]
    pub proxy_image: String,
    /// `native` (Kubernetes 1.29+) or `classic`.
    #[arg(long, env = "WEFT_SIDECAR_MODE", value_enum, default_value = "native")]
    pub sidecar_mode: SidecarMode,
    /// The control plane address the proxies connect to.
    #[arg(long, env = "WEFT_INJECTED_CONTROL_PLANE_ADDR", default_value = DEFAULT_CONTROL_PLANE_ADDR)]
    pub control_plane_addr: String,
    #[arg(long, env = "WEFT_TRUST_DOMAIN", default_value = weft_certs::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// Audience of the projected service-account token.
    #[arg(long, env = "WEFT_TOKEN_AUDIENCE", default_value = "weft")]
    pub token_audience: String,
}

#[derive(Debug, clap::Args)]
pub struct UninjectArgs {
    /// YAML files or directories; `-` or nothing reads stdin.
    pub inputs: Vec<PathBuf>,
}

impl InjectArgs {
    fn settings(&self) -> InjectSettings {
        InjectSettings {
            proxy_image: self.proxy_image.clone(),
            mode: self.sidecar_mode,
            control_plane_addr: self.control_plane_addr.clone(),
            trust_domain: self.trust_domain.clone(),
            token_audience: self.token_audience.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

pub fn run_inject(args: InjectArgs) -> ExitCode {
    let settings = args.settings();
    each_input(&args.inputs, |text, name| {
        inject_stream(text, name, &settings)
    })
}

pub fn run_uninject(args: UninjectArgs) -> ExitCode {
    each_input(&args.inputs, uninject_stream)
}

fn each_input(
    inputs: &[PathBuf],
    change: impl Fn(&str, &str) -> anyhow::Result<String>,
) -> ExitCode {
    let result = (|| -> anyhow::Result<String> {
        let mut out = String::new();
        for (name, text) in read_inputs(inputs)? {
            if !out.is_empty() && !out.ends_with("---\n") {
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str("---\n");
            }
            out.push_str(&change(&text, &name)?);
        }
        Ok(out)
    })();
    match result {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write to stdout: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    let stdin = [PathBuf::from("-")];
    let inputs = if inputs.is_empty() {
        &stdin[..]
    } else {
        inputs
    };
    let mut texts = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read stdin")?;
            texts.push(("stdin".to_owned(), text));
        } else if input.is_dir() {
            for file in yaml_files(input)? {
                texts.push((file.display().to_string(), read(&file)?));
            }
        } else {
            texts.push((input.display().to_string(), read(input)?));
        }
    }
    Ok(texts)
}

fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
