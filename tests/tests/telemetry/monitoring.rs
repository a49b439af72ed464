//! `manifests/monitoring/` without a mesh: the rules pass `promtool check rules` and their unit
//! tests (`promtool test rules`, a firing and a quiet case per alert), the PrometheusRule holds
//! the same groups as the plain rules file, and the dashboards are well formed: the shared
//! variables, every panel on the `${datasource}` variable, and only metric families
//! `docs/reference/metrics.md` documents. `monitoring_live` runs every query against a mesh.

use std::collections::BTreeSet;

use serde_json::Value;
use weft_tests::observe::monitoring::{
    self, DASHBOARDS, dashboard, panel_queries, panels, rules, variables, yaml,
};
use weft_tests::process::programs;
use weft_tests::reference::documented_metrics;

/// Grafana 12's dashboard schema.
const SCHEMA_VERSION: u64 = 41;

#[test]
fn the_rules_pass_promtool_and_their_unit_tests() {
    if !programs::available("promtool", "prometheus") {
        return;
    }
    let rules_path = monitoring::rules_path();
    let (out, said) = programs::run(
        "promtool",
        &["check", "rules", rules_path.to_str().unwrap()],
    );
    assert!(out.status.success(), "promtool check rules:\n{said}");
    let tests = monitoring::dir().join("weft-alerts.test.yml");
    let (out, said) = programs::run("promtool", &["test", "rules", tests.to_str().unwrap()]);
    assert!(out.status.success(), "promtool test rules:\n{said}");
    assert!(said.contains("SUCCESS"), "{said}");

    // Every alert is under test, with a severity and both annotations.
    let unit_tests = std::fs::read_to_string(&tests).unwrap();
    for rule in rules(&yaml("weft-alerts.rules.yml")["groups"]) {
        if !rule.is_alert {
            continue;
        }
        let name = &rule.name;
        assert!(
            unit_tests.contains(&format!("alertname: {name}\n")),
            "{name} has no case in weft-alerts.test.yml"
        );
        let severity = rule.rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "{name}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            assert!(
                rule.rule["annotations"][annotation]
                    .as_str()
                    .is_some_and(|text| !text.is_empty()),
                "{name} has no {annotation}"
            );
        }
    }
}

#[test]
fn the_prometheus_rule_holds_the_same_groups_as_the_rules_file() {
    let plain = yaml("weft-alerts.rules.yml");
    let resource = yaml("prometheusrule.yaml");
    assert_eq!(resource["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(resource["kind"], "PrometheusRule");
    assert!(
        resource["spec"]["groups"] == plain["groups"],
        "prometheusrule.yaml's spec.groups differ from weft-alerts.rules.yml's groups: edit both"
    );
}

#[test]
fn the_dashboards_share_their_variables_and_use_only_documented_metrics() {
    let reference = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reference/metrics.md"),
    )
    .unwrap();
    let documented: BTreeSet<String> = documented_metrics(&reference)
        .into_values()
        .flat_map(|families| families.into_keys())
        .collect();
    let mut uids = BTreeSet::new();
    let mut problems = Vec::new();
    for name in DASHBOARDS {
        let board = dashboard(name);
        assert_eq!(board["schemaVersion"], SCHEMA_VERSION, "{name}");
        assert!(
            uids.insert(board["uid"].as_str().unwrap().to_owned()),
            "{name}: uid reused"
        );
        let vars = variables(&board);
        let var = |wanted: &str| vars.iter().find(|v| v["name"] == wanted);
        let source = var("datasource").unwrap_or_else(|| panic!("{name}: no datasource variable"));
        assert_eq!(source["type"], "datasource", "{name}");
        assert_eq!(source["query"], "prometheus", "{name}");
        assert!(var("namespace").is_some(), "{name}: no namespace variable");
        if name != "weft-control-plane.json" {
            assert!(var("service").is_some(), "{name}: no service variable");
        }
        let mut ids = BTreeSet::new();
        for panel in panels(&board) {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{name}: panel id of {title:?} reused"
            );
            let grid = &panel["gridPos"];
            let right = grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap();
            assert!(right <= 24, "{name}: {title:?} is wider than the dashboard");
            if panel["type"] == "row" {
                continue;
            }
            assert!(
                !panel["description"].as_str().unwrap_or_default().is_empty(),
                "{name}: {title:?} has no description"
            );
            let on_variable = |v: &Value| v["uid"] == "${datasource}" && v["type"] == "prometheus";
            assert!(
                on_variable(&panel["datasource"]),
                "{name}: {title:?}'s datasource"
            );
            for target in panel["targets"].as_array().unwrap() {
                assert!(
                    on_variable(&target["datasource"]),
                    "{name}: {title:?}'s target"
                );
            }
        }
        let mut promql: Vec<String> = panel_queries(name, &board)
            .into_iter()
            .map(|q| q.promql)
            .collect();
        promql.extend(
            vars.iter()
                .filter_map(|v| v["definition"].as_str().map(str::to_owned)),
        );
        for query in promql {
            for family in families_named(&query) {
                if !documented.contains(&family) {
                    problems.push(format!("{name}: {family} is not in metrics.md ({query})"));
                }
            }
        }
    }
    for rule in rules(&yaml("weft-alerts.rules.yml")["groups"]) {
        for family in families_named(&rule.expr) {
            if !documented.contains(&family) {
                problems.push(format!("rule {}: {family} is not in metrics.md", rule.name));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The metric families a query names: its `weft_…` words, a histogram's series
/// (`_bucket`, `_sum`, `_count`) as their family.
fn families_named(promql: &str) -> BTreeSet<String> {
    let mut families = BTreeSet::new();
    let bytes = promql.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while let Some(found) = promql[i..].find("weft_") {
        let start = i + found;
        let mut end = start;
        while end < bytes.len() && word(bytes[end]) {
            end += 1;
        }
        let preceded = start > 0 && word(bytes[start - 1]);
        let name = &promql[start..end];
        if !preceded {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| !base.ends_with("_total"))
                .unwrap_or(name);
            families.insert(family.to_owned());
        }
        i = end;
    }
    families
}
