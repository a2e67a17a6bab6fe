//! The operators' kit in `deploy/`: the alert rules pass `promtool check
//! rules` and their unit tests, and every metric the Grafana dashboard's
//! queries and the rules' expressions name is one a running `muckard
//! serve` lists at `/metrics`, so a renamed metric cannot leave a panel
//! or an alert silently empty.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::rabbit::RabbitTest;
use integration_tests::{free_port, python_tool, TestApp};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::process::{delete_topics, get_json, spawn_service};

/// Series Prometheus makes itself for every target it scrapes; the rules
/// may use them though no process exports them.
const SCRAPE_SERIES: &[&str] = &["up"];

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    run_promtool(&["check", "rules"], &deploy_file("prometheus/rules.yml"));
    run_promtool(
        &["test", "rules"],
        &deploy_file("prometheus/rules.test.yml"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_dashboard_and_the_alert_rules_use_is_exported() {
    let dashboard = dashboard_metric_names(&deploy_file("grafana/muckard.json"));
    let rules = rule_metric_names(&deploy_file("prometheus/rules.yml"));
    // A parser that found nothing would pass anything.
    assert!(dashboard.len() >= 15, "dashboard names only {dashboard:?}");
    assert!(rules.len() >= 8, "rules name only {rules:?}");

    let app = TestApp::spawn().await;
    let rabbit = RabbitTest::new().await;
    let http_port = free_port();
    let topic_prefix = format!("kit{}.", &Uuid::new_v4().simple().to_string()[..10]);
    // Every role, so every subscriber has a checkpoint and a lag series.
    let _service = spawn_service(
        &app,
        http_port,
        &[
            ("MUCKARD_ROLES", "all".to_string()),
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092".to_string()),
            ("KAFKA_TOPIC_PREFIX", topic_prefix.clone()),
            ("RABBITMQ_QUEUE_PREFIX", rabbit.prefix.clone()),
        ],
    );
    let base = format!("http://127.0.0.1:{http_port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    integration_tests::poll(60, "/health to answer 200", || async {
        get_json(&client, &format!("{base}/health"))
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await;
    // A request and commands, so the series labelled by route, command
    // and event type exist.
    let email = format!("kit-{}@example.com", Uuid::new_v4().simple());
    let credentials = json!({"email": email, "password": "correct horse battery"}).to_string();
    for path in ["/api/v1/auth/register", "/api/v1/auth/login"] {
        let answer = client
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(credentials.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
    }

    // Some series appear only once a worker has run (a subscriber's lag
    // once it has a checkpoint): the scrape is repeated until each name
    // is listed or the deadline passes.
    let used: BTreeSet<String> = dashboard.union(&rules).cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let exposition = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("/metrics body");
        let exported = exported_names(&exposition);
        let missing_from = |names: &BTreeSet<String>| missing(names, &exported);
        let (dashboard_missing, rules_missing) = (missing_from(&dashboard), missing_from(&rules));
        if dashboard_missing.is_empty() && rules_missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not exported by muckard serve (after traffic, 90 s):\n  \
             dashboard (deploy/grafana/muckard.json): {}\n  \
             rules (deploy/prometheus/rules.yml): {}\n\
             used: {used:?}\nexported: {exported:?}",
            describe(&dashboard_missing, &exported),
            describe(&rules_missing, &exported),
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    delete_topics(&topic_prefix).await;
}

/// The names in `used` that `/metrics` does not list, leaving out what
/// Prometheus adds itself.
fn missing(used: &BTreeSet<String>, exported: &BTreeSet<String>) -> Vec<String> {
    used.iter()
        .filter(|name| !exported.contains(*name) && !SCRAPE_SERIES.contains(&name.as_str()))
        .cloned()
        .collect()
}

/// The missing names, each with a hint when the exposition has it as a
/// histogram (whose series are `_bucket`, `_sum` and `_count` only).
fn describe(missing: &[String], exported: &BTreeSet<String>) -> String {
    if missing.is_empty() {
        return "none".to_string();
    }
    missing
        .iter()
        .map(|name| {
            if exported.contains(&format!("{name}_bucket")) {
                format!("{name} (a histogram: its series are {name}_bucket, _sum and _count)")
            } else {
                name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sample names of a Prometheus text exposition: what a query can
/// select (a histogram `h` lists `h_bucket`, `h_sum` and `h_count`).
fn exported_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            line[..end].to_string()
        })
        .collect()
}

fn deploy_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(relative)
}

/// `PROMTOOL_BIN`, else `promtool` on the PATH, else Debian's
/// `/usr/bin/promtool` (scripts/services.sh's `ensure_promtool`).
fn promtool() -> PathBuf {
    if let Some(bin) = std::env::var_os("PROMTOOL_BIN") {
        return PathBuf::from(bin);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("promtool"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/bin/promtool"))
}

fn run_promtool(arguments: &[&str], file: &Path) {
    let output = Command::new(promtool())
        .args(arguments)
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {} (scripts/services.sh: ensure_promtool): {e}",
                promtool().display()
            )
        });
    assert!(
        output.status.success(),
        "promtool {} {} failed:\n{}{}",
        arguments.join(" "),
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The metric names of every query of the dashboard: its panels' (rows'
/// panels included) and its query variables' (`label_values(selector,
/// label)` and `query_result(expr)`).
fn dashboard_metric_names(path: &Path) -> BTreeSet<String> {
    let dashboard: Value = serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut expressions = Vec::new();
    collect_panel_expressions(&dashboard["panels"], &mut expressions);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .unwrap_or_default();
        expressions.extend(variable_expression(query));
    }
    assert!(!expressions.is_empty(), "no query in {}", path.display());
    expressions.iter().flat_map(|e| metric_names(e)).collect()
}

fn collect_panel_expressions(panels: &Value, into: &mut Vec<String>) {
    for panel in panels.as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                into.push(expr.to_string());
            }
        }
        collect_panel_expressions(&panel["panels"], into);
    }
}

/// The PromQL inside a Grafana query variable's definition, if any.
fn variable_expression(query: &str) -> Option<String> {
    let query = query.trim();
    if let Some(inner) = query
        .strip_prefix("query_result(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        return Some(inner.to_string());
    }
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))?;
    // label_values(label) names no metric; label_values(selector, label)
    // does, and a label name holds no comma.
    inner
        .rsplit_once(',')
        .map(|(selector, _)| selector.to_string())
}

/// The metric names of every rule's `expr` in a Prometheus rule file
/// (read as YAML by the Python tools' ruamel.yaml, as validate-deploy
/// does).
fn rule_metric_names(path: &Path) -> BTreeSet<String> {
    let output = Command::new(python_tool("python"))
        .args([
            "-c",
            "import json, sys\n\
             from ruamel.yaml import YAML\n\
             rules = YAML(typ='safe').load(open(sys.argv[1]))\n\
             print(json.dumps([r['expr'] for g in rules['groups'] for r in g['rules']]))",
        ])
        .arg(path)
        .output()
        .expect("run the Python tools' python (scripts/services.sh: ensure_python_tools)");
    assert!(
        output.status.success(),
        "reading {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let expressions: Vec<String> = serde_json::from_slice(&output.stdout).expect("a JSON list");
    assert!(!expressions.is_empty(), "no rule in {}", path.display());
    expressions.iter().flat_map(|e| metric_names(e)).collect()
}

/// PromQL's aggregation operators, keywords and literals: identifiers
/// that are never metric names even when no `(` follows them (`sum by
/// (le) (…)`, `a and b`, `x offset 5m`, `+Inf`).
const NOT_METRICS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "atan2",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
];

/// Keywords followed by a list of label names in parentheses.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: every identifier that is
/// not a function (followed by `(`), an operator or keyword, a label name
/// (in `{…}` or in a `by (…)`-like list) or part of a string, a duration
/// or a number. Grafana's `$variables` are skipped wherever they stand.
fn metric_names(expr: &str) -> BTreeSet<String> {
    assert!(
        !expr.contains("__name__"),
        "selecting by __name__ is not understood here: {expr}"
    );
    let code = without_strings_and_brackets(expr);
    let chars: Vec<char> = code.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$'
            || c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A variable, a number (1e-3, 0x1f) or a duration (5m): skip
            // its word.
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
        {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut next = i;
        while next < chars.len() && chars[next].is_whitespace() {
            next += 1;
        }
        let opens = chars.get(next) == Some(&'(');
        let lower = word.to_ascii_lowercase();
        if LABEL_LISTS.contains(&lower.as_str()) && opens {
            i = closing_parenthesis(&chars, next) + 1;
        } else if !opens && !NOT_METRICS.contains(&lower.as_str()) {
            names.insert(word);
        }
    }
    names
}

/// `expr` with its strings, comments, label matchers (`{…}`) and ranges or
/// subqueries (`[…]`) each replaced by a space.
fn without_strings_and_brackets(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut chars = expr.chars().peekable();
    let mut depth = 0usize; // inside {…} or […]
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                while let Some(s) = chars.next() {
                    if s == '\\' && c != '`' {
                        chars.next();
                    } else if s == c {
                        break;
                    }
                }
                out.push(' ');
            }
            '#' if depth == 0 => {
                for s in chars.by_ref() {
                    if s == '\n' {
                        break;
                    }
                }
                out.push(' ');
            }
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                out.push(' ');
            }
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// The index of the `)` closing the `(` at `open` (or the end).
fn closing_parenthesis(chars: &[char], open: usize) -> usize {
    let mut depth = 0usize;
    for (index, c) in chars.iter().enumerate().skip(open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return index;
                }
            }
            _ => {}
        }
    }
    chars.len()
}

#[test]
fn metric_names_are_read_out_of_promql_as_the_dashboard_and_the_rules_write_it() {
    let names = |expr: &str| metric_names(expr).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (le, route) (rate(muckard_http_request_duration_seconds_bucket{job=~"$job", route!="/{x}"}[$__rate_interval])))"#
        ),
        ["muckard_http_request_duration_seconds_bucket"]
    );
    assert_eq!(
        names(
            "(max by (subscriber) (lag_seconds) > 120)\nand\n(max by(subscriber)(deriv(lag_seconds[5m:1m])) > 0.9)"
        ),
        ["lag_seconds"]
    );
    assert_eq!(
        names(
            r#"sum by (instance) (pool{state="in_use"}) / on (instance) group_left sum without(state) (pool_max offset 1h) >= 1e-3 unless absent(up)"#
        ),
        ["pool", "pool_max", "up"]
    );
    assert_eq!(
        names(r#"label_replace(a:recorded:rate5m, "x", "$1", "y", "(.*)") or vector(0) * $factor"#),
        ["a:recorded:rate5m"]
    );
    assert_eq!(
        names("count(count by (le) (h_bucket)) + topk(3, h_sum) / on() h_count # the end: not_a_metric"),
        ["h_bucket", "h_count", "h_sum"]
    );
    assert_eq!(
        variable_expression(r#"label_values(pool_max{job=~"$job"}, instance)"#).as_deref(),
        Some(r#"pool_max{job=~"$job"}"#)
    );
    assert_eq!(variable_expression("label_values(job)"), None);
}

#[test]
fn a_metric_the_exposition_does_not_list_is_named_missing() {
    let exposition = "# HELP h A histogram.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n\
                      c_total{route=\"/a b\"} 3\ng 1\n";
    let exported = exported_names(exposition);
    assert_eq!(
        exported.iter().map(String::as_str).collect::<Vec<_>>(),
        ["c_total", "g", "h_bucket", "h_count", "h_sum"]
    );
    let used: BTreeSet<String> = ["h_bucket", "h", "c_total", "bogus_total", "up"]
        .map(String::from)
        .into();
    let missing = missing(&used, &exported);
    assert_eq!(missing, ["bogus_total", "h"]);
    assert_eq!(
        describe(&missing, &exported),
        "bogus_total, h (a histogram: its series are h_bucket, _sum and _count)"
    );
}
