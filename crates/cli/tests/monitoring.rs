//! The Prometheus alert rules and the Grafana dashboard in packaging/,
//! checked with promtool (from Debian's `prometheus` package, which
//! script/setup installs) and against the metrics a running drain and a
//! running proxy really export.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::drain::DrainSpec;
use testkit::net::{free_port, get};
use testkit::queue::TestQueue;
use testkit::wait::{serial, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_shopify-events");

/// Rules waiting for metrics that do not exist yet. The test fails as soon
/// as a metric with one of these prefixes is exported, so that the rule is
/// added with it: (prefix, the rule to add, why it is not there yet).
const PENDING: [(&str, &str, &str); 0] = [];

fn packaging(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(path)
}

fn rules() -> PathBuf {
    packaging("prometheus/shopify-events-alerts.yml")
}

fn rule_tests() -> PathBuf {
    packaging("prometheus/shopify-events-alerts_test.yml")
}

fn dashboard() -> PathBuf {
    packaging("grafana/shopify-events-dashboard.json")
}

fn promtool(args: &[&str], dir: &Path) -> Output {
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("run promtool: {e}; it comes with Debian's prometheus package (script/setup installs it)")
        })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every `shopify_events_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    const PREFIX: &str = "shopify_events_";
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices(PREFIX) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.len() > PREFIX.len() {
            names.insert(name);
        }
    }
    names
}

/// The series names an exposition offers: each family from its `# TYPE`
/// line (families with no series yet count), histograms with their suffixes.
fn exposed(body: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in body.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            names.insert(name.to_owned());
        }
    }
    names
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_every_alert_has_a_unit_test_that_passes() {
    let dir = rules().parent().expect("dir").to_owned();
    let check = promtool(&["check", "rules", "shopify-events-alerts.yml"], &dir);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let text = read(&rules());
    let alerts: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{out}"
    );
    let tests = read(&rule_tests());
    for alert in &alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "alert {alert} has no unit test in {}",
            rule_tests().display()
        );
    }
    let run = promtool(&["test", "rules", "shopify-events-alerts_test.yml"], &dir);
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn every_metric_the_rules_and_the_dashboard_name_is_exported_by_a_running_drain_or_proxy() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("dir");
    let queue = TestQueue::new();
    let spec = DrainSpec::new(BIN, queue.key(), dir.path(), dir.path()).with_metrics();
    let mut drain = spec.spawn(0);
    drain.wait_serving(Duration::from_secs(30));
    let drain_metrics = drain.get("/metrics").expect("drain /metrics").body;

    let proxy_addr = format!("127.0.0.1:{}", free_port());
    let proxy = Proxy(
        Command::new(BIN)
            .args([
                "proxy",
                "--listen",
                "tcp://127.0.0.1:0",
                "--queue-key",
                &queue.hex(),
            ])
            .args(["--metrics-addr", &proxy_addr])
            .arg("--run-dir")
            .arg(dir.path())
            .env_remove("SHOPIFY_EVENTS_PROXY_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the proxy"),
    );
    let mut proxy_metrics = String::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            match get(&proxy_addr, "/metrics") {
                Some(r) if r.status == 200 => {
                    proxy_metrics = r.body;
                    true
                }
                _ => false,
            }
        }),
        "the proxy's /metrics never answered"
    );
    drop(proxy);

    let exported: BTreeSet<String> = exposed(&drain_metrics)
        .into_iter()
        .chain(exposed(&proxy_metrics))
        .collect();
    assert!(
        exported.contains("shopify_events_queue_depth"),
        "{drain_metrics}"
    );
    assert!(
        exported.contains("shopify_events_proxy_connections_open"),
        "{proxy_metrics}"
    );

    for (what, path) in [
        ("alert rules", rules()),
        ("rule tests", rule_tests()),
        ("dashboard", dashboard()),
    ] {
        let named = metric_names(&read(&path));
        assert!(!named.is_empty(), "no metric in {}", path.display());
        let missing: Vec<&String> = named.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "the {what} ({}) name metrics nobody exports: {missing:?}\nexported: {exported:?}",
            path.display()
        );
    }
    for name in &exported {
        for (prefix, rule, why) in PENDING {
            assert!(
                !name.starts_with(prefix),
                "{name} is exported now, so the rule pending until it existed can be added: {rule} \
                 (it waited because {why}); add it to packaging/prometheus/shopify-events-alerts.yml \
                 with a unit test, and to the dashboard, then take it off PENDING in this test"
            );
        }
    }
}

#[test]
fn the_dashboard_is_grafana_json_whose_every_query_promtool_parses() {
    let text = read(&dashboard());
    let board: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(board["uid"], "shopify-events");
    assert!(board["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let variables: Vec<&str> = board["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(variables, ["DS_PROMETHEUS", "queue"]);
    let panels = board["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut queries = Vec::new();
    for panel in panels {
        let id = panel["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} used twice");
        let grid = &panel["gridPos"];
        let (x, w) = (
            grid["x"].as_u64().expect("x"),
            grid["w"].as_u64().expect("w"),
        );
        assert!(x + w <= 24, "panel {id} is wider than the grid");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "panel {id}");
        assert!(
            panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "panel {id} explains nothing"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            queries.push(
                expr.replace("$queue", ".*")
                    .replace("$__rate_interval", "1m")
                    .replace("$__range", "1h"),
            );
        }
    }
    // Each query as a recording rule: promtool parses its PromQL. JSON is
    // YAML, so the rule file needs no YAML writer.
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, expr)| json!({"record": format!("dashboard:query_{i}"), "expr": expr}))
        .collect();
    let file = json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("dashboard.rules.yml"), file.to_string()).expect("write");
    let check = promtool(&["check", "rules", "dashboard.rules.yml"], dir.path());
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{out}"
    );
}
