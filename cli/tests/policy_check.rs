//! `weft policy check` as an operator runs it: the real binary on the documents in
//! `tests/policies/`, every problem line asserted with its `file:line:column: path: message`.

#![allow(clippy::unwrap_used)] // a failed step fails the test, with its message

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn weft(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// Checks `path`, expecting exit code 1 and exactly `problems` (then the count) on stderr.
fn assert_problems(path: &str, problems: &[&str]) {
    let output = weft(&["policy", "check", path], None);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    let mut expected: Vec<String> = problems.iter().map(|p| format!("{path}:{p}")).collect();
    let s = if problems.len() == 1 { "" } else { "s" };
    expected.push(format!("{} problem{s} found", problems.len()));
    let actual: Vec<&str> = stderr.lines().collect();
    assert_eq!(actual, expected);
}

#[test]
fn reports_typos() {
    assert_problems(
        "tests/policies/broken/typos.yaml",
        &[
            "7:32: spec.client.defaults.timeouts.pertry: unknown field; did you mean `perTry`?",
            "7:50: spec.client.defaults.timeouts.idle: `1.5s` is not a duration: expected a number and a unit (ms, s, m, h, d), like 300ms or 1h30m; did you mean 1500ms?",
            "9:16: spec.client.defaults.retries.limit: expected an integer, found a string `two`",
            "10:14: spec.client.defaults.retries.on[0]: unknown condition `gateway-errors` (expected 5xx, gateway-error, a quoted status (\"503\"), grpc:<code>, connect-failure, refused-stream or reset)",
            "10:30: spec.client.defaults.retries.on[1]: write HTTP statuses quoted: \"503\"",
            "10:35: spec.client.defaults.retries.on[2]: unknown gRPC code `unavailble`; did you mean `grpc:unavailable`?",
            "11:25: spec.client.defaults.retries.backoff.base: `25` is not a duration: expected a number and a unit (ms, s, m, h, d), like 300ms or 1h30m; did you mean 25ms or 25s?",
            "11:34: spec.client.defaults.retries.backoff.max: `1m 30s` is not a duration: expected a number and a unit (ms, s, m, h, d), like 300ms or 1h30m; did you mean 90s?",
            "12:26: spec.client.defaults.retries.maxBufferedBody: `64KB` is not a size: write an integer and B, KiB or MiB (e.g. 64KiB)",
            "13:24: spec.client.defaults.retries.nonIdempotent: expected true or false, found a string `yes`",
            "14:7: spec.client.defaults.circuitBreakers: unknown field; did you mean `circuitBreaker`?",
            "15:3: spec.sever: unknown field; did you mean `server`?",
        ],
    );
}

#[test]
fn reports_ranges() {
    assert_problems(
        "tests/policies/broken/ranges.yaml",
        &[
            "9:16: spec.client.defaults.retries.limit: 6 is out of range (0-5)",
            "10:14: spec.client.defaults.retries.on[0]: 200 is not an error status (400-599)",
            "11:25: spec.client.defaults.retries.backoff.base: must be longer than 0",
            "12:25: spec.client.defaults.retries.budget.ratio: 1.5 is out of range (0.0-1.0)",
            "12:44: spec.client.defaults.retries.budget.minPerSecond: -1 is out of range (at least 0)",
            "12:56: spec.client.defaults.retries.budget.window: must be longer than 0",
            "14:28: spec.client.defaults.circuitBreaker.maxEjectedPercent: 101 is out of range (0-100)",
            "15:25: spec.client.defaults.circuitBreaker.penalty.base: base (2m) is longer than max (1m)",
            "15:46: spec.client.defaults.circuitBreaker.penalty.jitter: 2 is out of range (0.0-1.0)",
            "16:31: spec.client.defaults.limits.maxConcurrent: 0 is out of range (at least 1)",
            "16:48: spec.client.defaults.limits.queueTimeout: must be longer than 0",
            "18:20: spec.server.ports[0].port: 0 is out of range (1-65535)",
            "20:39: spec.server.faults[0].abort.percent: 150 is out of range (0-100)",
        ],
    );
}

#[test]
fn reports_contradictions() {
    assert_problems(
        "tests/policies/broken/contradictions.yaml",
        &[
            "9:44: spec.routes[1].match.methods[0]: POST is not idempotent, but route `charges-create` retries it on responses the app may have acted on (spec.client.defaults.retries.on at 19:13); set retries.nonIdempotent: true in its override to acknowledge, or retries.limit: 0, or retry only on connect-failure and refused-stream",
            "10:13: spec.routes[2].name: route `charges-read` is already defined at 6:13 (spec.routes[0].name)",
            "11:21: spec.routes[2].match.path: `v1/refunds` must start with /",
            "13:14: spec.routes[3].match: needs at least one condition (path, pathPrefix, methods, headers or grpc)",
            "16:39: spec.client.defaults.timeouts.perTry: perTry 2s × 3 attempts (limit 2 + 1) = 6s is longer than the request timeout 5s; the last attempts could never run",
            "20:25: spec.client.defaults.retries.backoff.base: backoff base 500ms is longer than backoff max 250ms",
            "22:34: spec.client.overrides[0].routes[1]: no route named `charge-read` in spec.routes; did you mean `charges-read`?",
            "24:9: spec.client.overrides[0].limits: `limits` applies per destination, not per route; set it in spec.client.defaults",
            "25:18: spec.client.overrides[1].routes[0]: route `charges-create` is already overridden at spec.client.overrides[0].routes[0]",
            "26:29: spec.client.overrides[1].retries.budget: `budget` applies per destination, not per route; set it in spec.client.defaults.retries",
        ],
    );
}

#[test]
fn reports_server_half() {
    assert_problems(
        "tests/policies/broken/server.yaml",
        &[
            "1:13: apiVersion: is `weft.dev/v1/alpha1`, expected weft.dev/v1alpha1",
            "3:18: metadata.name: `Payments` is not a DNS label (lower-case letters, digits and -, at most 63)",
            "7:21: spec.routes[0].match.grpc: a gRPC match names its own path; remove path",
            "9:11: spec.server.mode: expected one of enforce, audit, found `enforcing`",
            "13:63: spec.server.authorization.allow[0].from[1]: `frontend` is not a SPIFFE ID (spiffe://<trust-domain>/ns/<namespace>/sa/<account>), spiffe://<trust-domain>/ns/<namespace>/* or spiffe://<trust-domain>/*",
            "14:20: spec.server.authorization.allow[0].routes[0]: no route named `charges-raed` in spec.routes; did you mean `charges-read`?",
            "16:31: spec.server.rateLimit.perIdentity.brust: unknown field; did you mean `burst`?",
            "18:9: spec.server.faults[0].until: missing: every fault must expire (an RFC 3339 UTC time, e.g. 2026-12-02T00:00:00Z)",
            "20:16: spec.server.faults[1].until: `tomorrow` is not an RFC 3339 UTC time (e.g. 2026-12-02T00:00:00Z)",
        ],
    );
}

#[test]
fn reports_syntax() {
    assert_problems(
        "tests/policies/broken/syntax.yaml",
        &["4:5: while parsing a flow mapping, did not find expected ',' or '}'"],
    );
}

#[test]
fn a_service_defined_twice_names_both_places() {
    let output = weft(&["policy", "check", "tests/policies/dup"], None);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "tests/policies/dup/b.yaml:5:9: metadata.name: ServicePolicy payments.prod is already defined at tests/policies/dup/a.yaml:3:18\n1 problem found\n"
    );
}

#[test]
fn stdin_is_named_and_unknown_fields_get_a_suggestion() {
    let doc = "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {name: a, namespace: b}\nspec:\n  client:\n    defaults:\n      timeouts: {PerTry: 1s, deadline: 2s}\n";
    let output = weft(&["policy", "check", "-"], Some(doc));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "<stdin>:7:18: spec.client.defaults.timeouts.PerTry: unknown field; did you mean `perTry`?\n\
         <stdin>:7:30: spec.client.defaults.timeouts.deadline: unknown field (expected one of: request, perTry, idle)\n\
         2 problems found\n"
    );
}

#[test]
fn a_good_directory_is_one_ok_line() {
    let output = weft(&["policy", "check", "tests/policies/good"], None);
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stderr.is_empty());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "ok: 2 ServicePolicy documents in 1 file (payments.prod, web.demo)\n"
    );
}

#[test]
fn a_missing_file_is_an_error() {
    let output = weft(
        &["policy", "check", "tests/policies/nothing-here.yaml"],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("cannot read tests/policies/nothing-here.yaml"),
        "{stderr}"
    );
}

#[test]
fn explain_shows_every_value_with_its_source_and_the_worst_cases() {
    let output = weft(
        &[
            "policy",
            "check",
            "--explain",
            "tests/policies/good/payments.yaml",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let expected = include_str!("policies/good/payments.explain.txt");
    assert_eq!(stdout, expected);
}

#[test]
fn a_gitops_folder_is_checked_for_its_service_policies_and_the_rest_is_skipped() {
    let output = weft(&["policy", "check", "tests/policies/gitops"], None);
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stderr.is_empty());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "ok: 2 ServicePolicy documents in 6 files (web.demo, payments.prod); 2 Gateway API routes (demo/web, prod/payments); 6 other documents skipped (-v lists them)\n"
    );
}

#[test]
fn verbose_says_what_was_skipped_and_why() {
    let output = weft(&["policy", "check", "-v", "tests/policies/gitops"], None);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let dir = "tests/policies/gitops";
    let expected = [
        format!("{dir}/README.md: skipped: not a .yaml or .yml file"),
        format!(
            "{dir}/overlays: skipped: a directory: only the files of the directory itself are read, not its subdirectories"
        ),
        format!("{dir}/app.yaml:2:1: skipped Deployment web.demo (apps/v1): not a weft document"),
        format!("{dir}/app.yaml:21:1: skipped Service web.demo (v1): not a weft document"),
        format!("{dir}/app.yaml:30:1: skipped Service payments (v1): not a weft document"),
        format!(
            "{dir}/config.yml:1:1: skipped ConfigMap web-settings.demo (v1): not a weft document"
        ),
        format!("{dir}/kustomization.yaml:1:1: skipped a kustomization: kustomize's, not weft's"),
        format!(
            "{dir}/mesh.yaml:1:1: skipped MeshService web.demo (weft.dev/v1alpha1): a service for discovery: the control plane reads MeshServices from --services or the API server, not --policies"
        ),
        "ok: 2 ServicePolicy documents in 6 files (web.demo, payments.prod); 2 Gateway API routes (demo/web, prod/payments); 6 other documents skipped".to_owned(),
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn a_broken_policy_in_a_gitops_folder_is_reported_and_its_neighbours_are_not() {
    let output = weft(&["policy", "check", "tests/policies/gitops-broken"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let grammar = "expected a number and a unit (ms, s, m, h, d), like 300ms or 1h30m";
    let web = "tests/policies/gitops-broken/web.yaml";
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        format!(
            "{web}:14:11: metadata.labels: expected a map of names to strings, found a list\n\
             {web}:18:27: spec.client.defaults.timeouts.request: `10 sec` is not a duration: {grammar}; did you mean 10s?\n\
             {web}:18:43: spec.client.defaults.timeouts.perTry: `1.5s` is not a duration: {grammar}; did you mean 1500ms?\n\
             {web}:19:24: spec.client.defaults.retries.limit: 9 is out of range (0-5)\n\
             {web}:22:7: kind: is `ServicePolicys`, expected ServicePolicy\n\
             5 problems found\n"
        )
    );
}

#[test]
fn a_policy_naming_no_known_service_is_a_warning() {
    // Only web.demo is a MeshService: the payments.prod policy governs nothing.
    let output = weft(
        &[
            "policy",
            "check",
            "tests/policies/gitops",
            "--services",
            "tests/policies/gitops/mesh.yaml",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "tests/policies/gitops/policies.yaml:22:9: metadata.name: warning: this policy governs nothing: --services has no Service or MeshService payments.prod\n"
    );
    // The folder's own Services: payments has no namespace, so it stands for every one.
    let output = weft(
        &[
            "policy",
            "check",
            "tests/policies/gitops",
            "--services",
            "tests/policies/gitops",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stderr.is_empty());
    // A misspelt name gets a suggestion.
    let doc = "apiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {name: paymets, namespace: prod}\nspec: {}\n";
    let output = weft(
        &[
            "policy",
            "check",
            "-",
            "--services",
            "tests/policies/gitops/app.yaml",
        ],
        Some(doc),
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "<stdin>:3:18: metadata.name: warning: this policy governs nothing: --services has no Service or MeshService paymets.prod; did you mean payments.prod?\n"
    );
}

#[test]
fn reports_every_problem_of_a_broken_route() {
    assert_problems(
        "tests/policies/routes-broken/routes.yaml",
        &[
            "5:62: spec.parentRefs[0].port: 80800 is out of range (1-65535)",
            "7:7: spec.rules[0].filters: ReplacePrefixMatch needs every match of the rule to have a PathPrefix path",
            "7:13: spec.rules[0].name: `Canary` is not a valid rule name (lower-case letters, digits and -, at most 63)",
            "9:24: spec.rules[0].matches[0].path.type: expected one of PathPrefix, Exact, RegularExpression, found `Prefix`",
            "10:19: spec.rules[0].matches[0].method: `FETCH` is not one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH",
            "11:28: spec.rules[0].matches[0].headers[0].name: `bad header` is not a header name",
            "11:97: spec.rules[0].matches[0].headers[1].value: `(prod` is not a regular expression: error: unclosed group",
            "18:48: spec.rules[0].backendRefs[0].weight: 2000000 is out of range (0-1000000)",
            "20:11: spec.rules[0].backendRefs[2].port: missing: a Service backend needs its port",
            "21:47: spec.rules[0].timeouts.backendRequest: longer than timeouts.request, which bounds every attempt together",
            "22:25: spec.rules[0].retry.attempts: 9 is out of range (0-5)",
            "22:36: spec.rules[0].retry.codes[0]: 200 is out of range (400-599)",
            "23:7: spec.rules[1].backendRefs: a rule with a RequestRedirect filter sends nothing to backends: remove backendRefs or the redirect",
            "26:41: spec.rules[1].filters[0].requestRedirect.statusCode: expected one of 301, 302, found `307`",
        ],
    );
}

#[test]
fn reports_broken_mirrors() {
    assert_problems(
        "tests/policies/mirror-broken/routes.yaml",
        &[
            "10:39: spec.rules[0].filters[0].requestMirror.backendRef.port: missing: a Service mirror needs its port",
            "10:64: spec.rules[0].filters[0].requestMirror.percent: 150 is out of range (0-100)",
            "12:89: spec.rules[0].filters[1].requestMirror.fraction: give `percent` or `fraction`, not both",
            "14:77: spec.rules[0].filters[2].requestMirror.fraction.numerator: 3/2 is more than every request",
            "16:39: spec.rules[0].filters[3].requestMirror.backendRef.kind: a mirror of kind `Pod` (group ``): weft mirrors to Services only",
            "18:54: spec.rules[0].filters[4].requestMirror.backendRef.namespace: a mirror in another namespace (`other`) needs a ReferenceGrant there, which weft does not read yet",
            "20:26: spec.rules[0].filters[5].requestMirror.backendRef: missing: the Service to mirror to",
            "25:15: spec.rules[0].backendRefs[0].filters[0].type: RequestMirror: not supported on a backend by weft: put the mirror on the rule",
        ],
    );
}

#[test]
fn reports_overrides_naming_unknown_rules() {
    // The policies' own problems, then the names checked against the routes of the same files.
    assert_problems(
        "tests/policies/gateway-rules/all.yaml",
        &[
            "32:24: spec.client.overrides[1].gatewayRules[0]: rule `demo/hello/checkout` is already overridden at spec.client.overrides[0].gatewayRules[0]",
            "32:45: spec.client.overrides[1].gatewayRules[1]: `bad` is not `<route>/<rule>` or `<namespace>/<route>/<rule>`",
            "34:9: spec.client.overrides[2].routes: missing: name the routes (or the Gateway API rules, gatewayRules) this override applies to",
            "21:24: spec.client.overrides[1].gatewayRules[0]: no Gateway API rule `demo/hello/chekout`; did you mean `demo/hello/checkout`?",
            "21:39: spec.client.overrides[1].gatewayRules[1]: no Gateway API rule `other/hello/checkout` in the routes checked (rules: demo/hello/checkout)",
        ],
    );
}

#[test]
fn explain_shows_an_override_naming_a_rule_and_a_mirror() {
    let doc = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: hello, namespace: demo}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: hello, port: 8080}]\n  rules:\n    - name: checkout\n      filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 8080}, percent: 10}}]\n      backendRefs: [{name: hello-v1, port: 8080}]\n---\napiVersion: weft.dev/v1alpha1\nkind: ServicePolicy\nmetadata: {name: hello-v1, namespace: demo}\nspec:\n  client:\n    overrides:\n      - gatewayRules: [hello/checkout]\n        retries: {limit: 2, on: [\"503\"]}\n";
    let output = weft(&["policy", "check", "--explain", "-"], Some(doc));
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[1..6],
        [
            "  Gateway API rule demo/hello/checkout (its requests to this service; the rule's own timeouts and retry win):",
            "    timeouts.request                     built-in   none",
            "    timeouts.perTry                      built-in   none",
            "    timeouts.idle                        built-in   none",
            "    retries.limit                        override   2",
        ]
    );
    assert!(
        lines.contains(&"    mirrored to shadow.demo:8080 (10.0 % of the requests; fire and forget, its answers discarded)"),
        "{stdout}"
    );
}

#[test]
fn explain_shows_each_route_table_and_who_decides_what() {
    let output = weft(
        &["policy", "check", "--explain", "tests/policies/gitops"],
        None,
    );
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let web = stdout
        .split("\nweb.demo:8080 for callers in namespace demo: routes demo/web@")
        .nth(1)
        .unwrap_or_else(|| panic!("{stdout}"));
    let lines: Vec<&str> = web.lines().skip(1).take(6).collect();
    assert_eq!(
        lines,
        [
            "  1. path prefix /api -> rule demo/web/rule-0",
            "  rule demo/web/rule-0:",
            "    web.demo:8080 weight 1 (100.0 % of the requests; its endpoints, breakers and ServicePolicy)",
            "    timeouts.request: 10s (the rule's); per attempt: the backend's ServicePolicy",
            "    retries: the backend's ServicePolicy; always within the backend's retry budget",
            "  a request matching nothing: 404 no_route",
        ]
    );
}
