//! weft's Grafana dashboards and Prometheus rules (`manifests/monitoring/`) read as data: the
//! PromQL each panel, template variable and rule runs, with Grafana's variables replaced by real
//! values, and each alert's expression without its threshold.
//!
//! A dashboard or an alert whose query names a metric or label weft does not expose still loads
//! and shows nothing; the tests run every query read here against a real Prometheus scraping a
//! live mesh, so such a query fails a test instead.

use std::path::PathBuf;

use serde_json::Value;

/// The dashboards, in `manifests/monitoring/dashboards/`.
pub const DASHBOARDS: [&str; 3] = [
    "weft-golden-signals.json",
    "weft-resilience.json",
    "weft-control-plane.json",
];

/// `manifests/monitoring/`.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/monitoring")
}

/// `manifests/monitoring/weft-alerts.rules.yml`.
pub fn rules_path() -> PathBuf {
    dir().join("weft-alerts.rules.yml")
}

/// A YAML file of `manifests/monitoring/` as JSON values.
pub fn yaml(name: &str) -> Value {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A dashboard file, parsed.
pub fn dashboard(name: &str) -> Value {
    let path = dir().join("dashboards").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One PromQL query and where it comes from, for messages.
#[derive(Debug, Clone)]
pub struct Query {
    pub origin: String,
    pub promql: String,
}

/// Every panel of a dashboard, those inside rows included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// The queries of every panel's targets, as written (variables not substituted).
pub fn panel_queries(name: &str, dashboard: &Value) -> Vec<Query> {
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(Query {
                origin: format!(
                    "{name}: panel {:?}, target {}",
                    panel["title"].as_str().unwrap_or_default(),
                    target["refId"].as_str().unwrap_or_default()
                ),
                promql: target["expr"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    queries
}

/// The dashboard's template variables.
pub fn variables(dashboard: &Value) -> &[Value] {
    dashboard["templating"]["list"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// A `label_values(SELECTOR, LABEL)` variable query as the PromQL giving the same values:
/// `count by (LABEL) (SELECTOR)`, and LABEL.
pub fn label_values_query(definition: &str) -> Option<(String, String)> {
    let inner = definition
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    let label = label.trim().to_owned();
    Some((format!("count by ({label}) ({})", selector.trim()), label))
}

/// `promql` with Grafana's variables replaced: `$name` and `${name}` by `values`, and
/// `$__rate_interval` by `rate_interval`.
pub fn substitute(promql: &str, values: &[(&str, &str)], rate_interval: &str) -> String {
    let mut out = promql.replace("$__rate_interval", rate_interval);
    for (name, value) in values {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// One recording or alerting rule of a rules file.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The alert's or the recorded series' name.
    pub name: String,
    pub is_alert: bool,
    pub expr: String,
    pub rule: Value,
}

/// The rules of a rules file's `groups`.
pub fn rules(groups: &Value) -> Vec<Rule> {
    let mut all = Vec::new();
    for group in groups.as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let (name, is_alert) = match (rule["alert"].as_str(), rule["record"].as_str()) {
                (Some(alert), _) => (alert, true),
                (None, Some(record)) => (record, false),
                (None, None) => panic!("a rule with neither alert nor record: {rule}"),
            };
            all.push(Rule {
                name: name.to_owned(),
                is_alert,
                expr: rule["expr"].as_str().unwrap_or_default().to_owned(),
                rule: rule.clone(),
            });
        }
    }
    all
}

/// The operands an alert's condition compares: `expr` split at its top-level `and`, `or` and
/// `unless`, each part cut before its top-level comparison (`A > 1 and B > 2` gives `A`, `B`).
/// Each must return series for the alert to be able to fire.
pub fn without_thresholds(expr: &str) -> Vec<String> {
    split_top_level(expr, &["and", "or", "unless"])
        .into_iter()
        .map(|part| before_comparison(&part).trim().to_owned())
        .collect()
}

/// Byte offsets of `text` that lie outside brackets and quotes.
fn top_level(text: &str) -> Vec<bool> {
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    let mut at_top = Vec::with_capacity(text.len());
    for b in text.bytes() {
        let top = depth == 0 && quote.is_none();
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'"' | b'\'' | b'`' => quote = Some(b),
                b'(' | b'{' | b'[' => depth += 1,
                b')' | b'}' | b']' => depth -= 1,
                _ => {}
            },
        }
        at_top.push(top && quote.is_none() && depth == 0);
    }
    at_top
}

fn split_top_level(expr: &str, words: &[&str]) -> Vec<String> {
    let top = top_level(expr);
    let bytes = expr.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let word = words.iter().find(|w| {
            let end = i + w.len();
            top[i]
                && end < bytes.len()
                && expr[i..end].eq_ignore_ascii_case(w)
                && (i == 0 || bytes[i - 1].is_ascii_whitespace() || bytes[i - 1] == b')')
                && (bytes[end].is_ascii_whitespace() || bytes[end] == b'(')
        });
        match word {
            Some(w) => {
                parts.push(expr[start..i].to_owned());
                i += w.len();
                start = i;
            }
            None => i += 1,
        }
    }
    parts.push(expr[start..].to_owned());
    parts
}

fn before_comparison(expr: &str) -> &str {
    let top = top_level(expr);
    let bytes = expr.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let next = bytes.get(i + 1).copied();
        let comparison = match b {
            b'>' | b'<' => true,
            b'=' | b'!' => next == Some(b'='),
            _ => false,
        };
        if top[i] && comparison {
            return &expr[..i];
        }
    }
    expr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_cut_at_the_top_level_only() {
        assert_eq!(
            without_thresholds("a:rate1h > (14.4 * 0.001)\nand a:rate5m > (14.4 * 0.001)\n"),
            ["a:rate1h", "a:rate5m"]
        );
        assert_eq!(
            without_thresholds(r#"sum by (x) (rate(m{l=~"a>b", k!="c"}[5m])) > 0"#),
            [r#"sum by (x) (rate(m{l=~"a>b", k!="c"}[5m]))"#]
        );
        assert_eq!(
            without_thresholds("e - time() < 30 * 86400"),
            ["e - time()"]
        );
        assert_eq!(
            without_thresholds("x or(y == 1) unless z"),
            ["x", "(y == 1)", "z"]
        );
    }

    #[test]
    fn variables_are_substituted_and_label_values_become_promql() {
        assert_eq!(
            substitute(
                r#"rate(m{s=~"$service", n=~"${namespace}"}[$__rate_interval])"#,
                &[("service", "hello.demo"), ("namespace", "demo")],
                "1m"
            ),
            r#"rate(m{s=~"hello.demo", n=~"demo"}[1m])"#
        );
        assert_eq!(
            label_values_query(r#"label_values(m{a=~"x,y"}, destination_service)"#),
            Some((
                r#"count by (destination_service) (m{a=~"x,y"})"#.to_owned(),
                "destination_service".to_owned()
            ))
        );
    }
}
