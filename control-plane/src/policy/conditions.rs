//! Condition lists: when an attempt is worth another (`retries.on`) and what counts as an
//! endpoint failure (`circuitBreaker.failureOn`). Statuses are quoted (`"503"`) or a class
//! (`5xx`, `gateway-error` = 502, 503, 504), gRPC codes are `grpc:<name>`, so a list reads the
//! same in every document; classes arrive at the proxy expanded to codes.

use weft_api::policy::RetryOn;
use weft_api::policy_defaults::GRPC_CODES;

use super::node::Node;
use super::walk::{Cx, index};

/// What a condition list may name.
#[derive(Clone, Copy, PartialEq)]
pub enum Conditions {
    Retry,
    Failure,
}

pub fn retry_on(cx: &mut Cx, node: &Node, path: &str) -> Option<RetryOn> {
    conditions(cx, node, path, Conditions::Retry)
}

/// A list of `5xx`, `gateway-error`, `"503"`, `grpc:<name>` and, for retries,
/// `connect-failure`, `refused-stream`, `reset`.
pub fn conditions(cx: &mut Cx, node: &Node, path: &str, kind: Conditions) -> Option<RetryOn> {
    let items = cx.list(node, path)?;
    let mut on = RetryOn::default();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let here = index(path, i);
        let Some(text) = item.text().filter(|_| !item.is_null()) else {
            cx.problem(
                item.at,
                &here,
                format!("expected a condition, found {}", item.kind()),
            );
            ok = false;
            continue;
        };
        let quoted = matches!(item.value, super::node::Value::Scalar { quoted: true, .. });
        match text {
            "5xx" => on.statuses.extend(500..=599),
            "gateway-error" => on.statuses.extend([502, 503, 504]),
            "connect-failure" | "refused-stream" | "reset" if kind == Conditions::Failure => {
                cx.problem(
                    item.at,
                    &here,
                    format!("`{text}` is not an HTTP status or gRPC code; connect failures always count as failures"),
                );
                ok = false;
            }
            "connect-failure" => on.connect_failure = true,
            "refused-stream" => on.refused_stream = true,
            "reset" => on.reset = true,
            _ => {
                if let Some(name) = text.strip_prefix("grpc:") {
                    match GRPC_CODES.iter().find(|(n, _)| *n == name) {
                        Some((_, code)) => on.grpc_codes.push(*code),
                        None => {
                            let names: Vec<&str> = GRPC_CODES.iter().map(|(n, _)| *n).collect();
                            let hint = super::walk::did_you_mean(name, &names)
                                .map(|n| format!("; did you mean `grpc:{n}`?"))
                                .unwrap_or_default();
                            cx.problem(item.at, &here, format!("unknown gRPC code `{name}`{hint}"));
                            ok = false;
                        }
                    }
                } else if text.len() == 3 && text.bytes().all(|b| b.is_ascii_digit()) {
                    let status: u32 = text.parse().unwrap_or_default();
                    if !quoted {
                        cx.problem(
                            item.at,
                            &here,
                            format!("write HTTP statuses quoted: \"{text}\""),
                        );
                        ok = false;
                    } else if !(400..=599).contains(&status) {
                        cx.problem(
                            item.at,
                            &here,
                            format!("{status} is not an error status (400-599)"),
                        );
                        ok = false;
                    } else {
                        on.statuses.push(status);
                    }
                } else {
                    let expected = match kind {
                        Conditions::Retry => {
                            "5xx, gateway-error, a quoted status (\"503\"), grpc:<code>, connect-failure, refused-stream or reset"
                        }
                        Conditions::Failure => {
                            "5xx, gateway-error, a quoted status (\"503\") or grpc:<code>"
                        }
                    };
                    cx.problem(
                        item.at,
                        &here,
                        format!("unknown condition `{text}` (expected {expected})"),
                    );
                    ok = false;
                }
            }
        }
    }
    on.statuses.sort_unstable();
    on.statuses.dedup();
    on.grpc_codes.sort_unstable();
    on.grpc_codes.dedup();
    ok.then_some(on)
}
