//! The HTTP endpoint of a pipeline binary (`--http`): `/metrics` read while a slow pipeline
//! runs (the counters grow, `promtool check metrics` accepts the text, a real Prometheus
//! server scrapes it and answers a query), `/api/pipeline` (the plan as the compiler has it,
//! live counters, checkpoint history), and the refusals (no endpoint compiled in, a taken
//! port).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use weir_tests::build_http;

/// A keyed window over a generator slowed down by `--rate-limit`: it runs until killed.
const SLOW: &str = r#"
source bids = nexmark(stream: "bid", events: 100_000_000)
    event_time date_time watermark 1s
let per_auction = bids
    |> key_by auction
    |> window tumble(1s)
    |> aggregate { n: count(), top: max(price) }
sink per_auction -> checksum()
"#;

/// The metric names docs/observing.md lists that this pipeline has (no Kafka), all present
/// in every scrape once the run has checkpointed.
const DOCUMENTED: &[&str] = &[
    "weir_operator_records_in_total",
    "weir_operator_records_out_total",
    "weir_operator_late_records_total",
    "weir_exchange_blocked_seconds_total",
    "weir_exchange_queue_fill_ratio",
    "weir_state_keys",
    "weir_state_bytes",
    "weir_source_records_total",
    "weir_source_watermark_seconds",
    "weir_source_watermark_lag_seconds",
    "weir_dead_letters_total",
    "weir_run_elapsed_seconds",
    "weir_checkpoints_completed_total",
    "weir_checkpoints_failed_total",
    "weir_checkpoint_last_duration_seconds",
    "weir_checkpoint_last_size_bytes",
    "weir_checkpoint_last_age_seconds",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
];

fn slow_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_http("observe_slow", SLOW))
}

/// A running pipeline and the address its endpoint listens on; killed when dropped.
struct Running {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
    /// Its stderr, line by line, after the line that says where it serves.
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` with `--http 127.0.0.1:0` and `args`, and waits for the line on stderr
/// that says where the endpoint listens.
fn start(binary: &Path, args: &[&str]) -> Running {
    start_with(binary, args, Stdio::inherit(), &[])
}

/// [`start`] with `stdin` as the pipeline's standard input and `files` (name, text) written
/// into its working folder first.
fn start_with(binary: &Path, args: &[&str], stdin: Stdio, files: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut child = Command::new(binary)
        .args(["--http", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir.path())
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Owned from here: killed and waited for on every way out, a failed start included.
    let mut run = Running {
        child,
        addr: String::new(),
        dir,
        stderr: rx,
    };
    // Reads stderr to its end, so the pipeline never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match run.stderr.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some((_, addr)) = line.split_once("on http://") {
                    run.addr = addr.trim().to_string();
                    return run;
                }
                seen.push(line);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    panic!(
        "the pipeline never said where it serves; stderr:\n{}",
        seen.join("\n")
    );
}

/// `GET path` over HTTP/1.1 (one request per connection): the status and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    request("GET", addr, path)
}

/// `POST path` (no body).
fn post(addr: &str, path: &str) -> (u16, String) {
    request("POST", addr, path)
}

fn request(method: &str, addr: &str, path: &str) -> (u16, String) {
    try_request(method, addr, path).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// [`request`], or why it failed (nothing listens, the connection broke).
fn try_request(method: &str, addr: &str, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_string()))
}

/// The value of the sample of `name` whose labels contain `label` (e.g. `source="bids"`).
fn sample(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split(['{', ' ']).next() == Some(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Scrapes until `ready` holds for the text (a slow start, a first checkpoint), up to 30 s.
fn scrape_until(addr: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = get(addr, "/metrics");
        assert_eq!(status, 200, "{text}");
        if ready(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn metrics_grow_while_the_pipeline_runs_and_promtool_accepts_them() {
    let run = start(
        slow_binary(),
        &[
            "--rate-limit",
            "5000",
            "--checkpoint-dir",
            "chk",
            "--checkpoint-interval",
            "200ms",
        ],
    );
    let first = scrape_until(&run.addr, |t| {
        sample(t, "weir_checkpoints_completed_total", "").unwrap_or(0.0) >= 1.0
            && sample(t, "weir_source_watermark_seconds", "source=\"bids\"").is_some()
    });
    std::thread::sleep(Duration::from_millis(1500));
    let (_, second) = get(&run.addr, "/metrics");

    for name in DOCUMENTED {
        assert!(
            second.contains(&format!("# TYPE {name} ")),
            "{name} is missing:\n{second}"
        );
    }
    let pipeline = "pipeline=\"test_observe_slow\"";
    let grew = |name: &str, label: &str| {
        let a = sample(&first, name, label).unwrap_or_else(|| panic!("no {name} {label}"));
        let b = sample(&second, name, label).unwrap_or_else(|| panic!("no {name} {label}"));
        assert!(b > a, "{name}{{{label}}} did not grow: {a} then {b}");
        assert!(second.contains(pipeline), "no {pipeline} label");
        (a, b)
    };
    // 5000 events a second (46 of 50 are bids): about 7000 more bids in 1.5 s.
    let (a, b) = grew("weir_source_records_total", "source=\"bids\"");
    assert!(b - a > 2000.0, "too few new bids: {a} then {b}");
    // The window aggregate is `op1` in `weir explain`; its step label is its text.
    grew("weir_operator_records_in_total", "operator=\"op1\"");
    assert!(second.contains("step=\"aggregate { n: count(), top: max(price)"));
    let exchange = sample(
        &second,
        "weir_operator_records_in_total",
        "step=\"exchange hash(auction)\"",
    );
    assert!(exchange.unwrap() > 0.0);
    grew("weir_checkpoints_completed_total", "");
    grew("process_cpu_seconds_total", "");
    // The generator's event time began in 2015: its watermark is years behind the clock.
    let lag = sample(
        &second,
        "weir_source_watermark_lag_seconds",
        "source=\"bids\"",
    )
    .unwrap();
    assert!(lag > 86_400.0 * 365.0, "watermark lag {lag}");
    // Open windows hold auctions' counts: the window's state is not empty while it runs.
    let keys = sample(&second, "weir_state_keys", "operator=\"op1\"").unwrap();
    let bytes = sample(&second, "weir_state_bytes", "operator=\"op1\"").unwrap();
    assert!(
        keys > 0.0 && bytes > keys,
        "state of the window: {keys} keys, {bytes} bytes"
    );
    let rss = sample(&second, "process_resident_memory_bytes", "").unwrap();
    assert!(rss > 1e6, "resident memory {rss}");

    promtool_accepts(&second);
}

/// A free port on 127.0.0.1 (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_prometheus_server_scrapes_the_pipeline() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: no `prometheus` binary; install Debian's `prometheus` package (.ci/run does)"
        );
        return;
    }
    let run = start(slow_binary(), &["--rate-limit", "5000"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: weir\n    \
             static_configs:\n      - targets: ['{}']\n",
            run.addr
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let query = "/api/v1/query?query=weir_source_records_total%7Bsource%3D%22bids%22%7D";
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut last = String::new();
    let mut value = None;
    while Instant::now() < deadline && value.is_none() {
        std::thread::sleep(Duration::from_millis(500));
        let Ok(_) = TcpStream::connect(&listen) else {
            continue;
        };
        let (status, body) = get(&listen, query);
        last = body;
        if status != 200 {
            continue;
        }
        let answer: serde_json::Value = serde_json::from_str(&last).unwrap();
        value = answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok());
    }
    let _ = server.kill();
    let _ = server.wait();
    let value = value.unwrap_or_else(|| panic!("Prometheus never had the value; last: {last}"));
    assert!(value > 0.0, "scraped {value}");
    let labels = serde_json::from_str::<serde_json::Value>(&last).unwrap()["data"]["result"][0]
        ["metric"]
        .clone();
    assert_eq!(labels["pipeline"], "test_observe_slow", "{labels}");
    assert_eq!(labels["job"], "weir", "{labels}");
}

#[test]
fn the_json_api_shows_the_plan_live_counters_and_checkpoints() {
    let run = start(
        slow_binary(),
        &[
            "--rate-limit",
            "5000",
            "--checkpoint-dir",
            "chk",
            "--checkpoint-interval",
            "200ms",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let (status, body) = get(&run.addr, "/api/pipeline");
        assert_eq!(status, 200, "{body}");
        let view: serde_json::Value = serde_json::from_str(&body).unwrap();
        let history = view["checkpoints"]["history"]
            .as_array()
            .map_or(0, Vec::len);
        if history >= 2 || Instant::now() > deadline {
            break view;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(view["pipeline"], "test_observe_slow");

    // The plan: what the compiler's physical graph holds (the oracle), operator for operator.
    let mut sources = weir_compiler::SourceMap::new();
    let id = sources.add("observe_slow.weir", SLOW);
    let compiled = weir_compiler::compile(&sources, id, &Default::default()).unwrap();
    let graph = &compiled.physical;
    let mut want: Vec<(String, String)> = graph
        .ops()
        .into_iter()
        .map(|op| (op.to_string(), graph.node(op).op.kind_name().to_string()))
        .collect();
    want.sort();
    let plan_ops = view["graph"]["operators"].as_array().unwrap();
    let mut got: Vec<(String, String)> = plan_ops
        .iter()
        .map(|op| {
            (
                op["id"].as_str().unwrap().to_string(),
                op["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        view["graph"]["edges"].as_array().unwrap().len(),
        graph.edges().len()
    );
    let window = plan_ops
        .iter()
        .find(|op| op["kind"] == "window_aggregate")
        .unwrap();
    assert_eq!(window["parallelism"], "keyed");
    assert_eq!(window["stream"], "append");
    assert!(
        window["properties"][0]
            .as_str()
            .unwrap()
            .starts_with("window: tumble(size 1s)"),
        "{window}"
    );
    let source = plan_ops.iter().find(|op| op["kind"] == "source").unwrap();
    assert_eq!(source["source"], "bids");
    // The hash edge into the window crosses tasks: its exchange has counters of its own.
    let exchange = view["graph"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["exchange"].as_str())
        .expect("an exchange");
    assert!(exchange.contains("hash(auction)"), "{exchange}");

    // Live values: every operator with counters in the plan has them, and they move.
    let live = view["operators"].as_array().unwrap();
    for op in plan_ops.iter().filter_map(|op| op["counters"].as_str()) {
        assert!(live.iter().any(|l| l["name"] == op), "no counters for {op}");
    }
    let window_live = live
        .iter()
        .find(|l| Some(l["name"].as_str().unwrap()) == window["counters"].as_str())
        .unwrap();
    assert!(
        window_live["records_in"].as_u64().unwrap() > 0,
        "{window_live}"
    );
    assert!(window_live["instances"].as_u64().unwrap() >= 1);
    let bids = &view["sources"][0];
    assert_eq!(bids["name"], "bids");
    assert!(bids["records"].as_u64().unwrap() > 0);
    assert!(bids["watermark_ms"].as_i64().unwrap() > 1_400_000_000_000);

    // Checkpoint history: complete checkpoints, oldest first, as many as completed (this
    // run started fresh, and keeps the last 16).
    let checkpoints = &view["checkpoints"];
    let history = checkpoints["history"].as_array().unwrap();
    assert!(history.len() >= 2, "{checkpoints}");
    let ids: Vec<u64> = history.iter().map(|h| h["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let completed = checkpoints["completed"].as_u64().unwrap();
    assert!(completed >= history.len() as u64);
    assert_eq!(*ids.last().unwrap(), completed, "{checkpoints}");
    assert!(history.iter().all(|h| h["bytes"].as_u64().unwrap() > 0));
    assert_eq!(checkpoints["failed"], 0);

    let (status, _) = get(&run.addr, "/nothing-here");
    assert_eq!(status, 404);
}

#[test]
fn http_is_refused_without_the_endpoint_or_on_a_taken_port() {
    // A taken port: the run fails before it starts, naming the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(slow_binary())
        .args(["--http", &addr, "--events", "10"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("--http: cannot listen on {addr}")),
        "{stderr}"
    );
    // Not an address.
    let out = Command::new(slow_binary())
        .args(["--http", "localhost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an address"));

    // A binary built without the endpoint says so.
    let plain = weir_tests::build("observe_plain", SLOW, false);
    let out = Command::new(plain)
        .args(["--http", "127.0.0.1:0", "--events", "10"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("built without the HTTP endpoint"),
        "{stderr}"
    );
}

#[test]
fn post_checkpoint_takes_one_now() {
    // An interval of an hour: no checkpoint comes but the one asked for.
    let run = start(
        slow_binary(),
        &[
            "--rate-limit",
            "5000",
            "--checkpoint-dir",
            "chk",
            "--checkpoint-interval",
            "60m",
        ],
    );
    let before = scrape_until(&run.addr, |t| {
        sample(t, "weir_source_records_total", "").unwrap_or(0.0) > 0.0
    });
    assert_eq!(
        sample(&before, "weir_checkpoints_completed_total", ""),
        Some(0.0)
    );
    assert_eq!(get(&run.addr, "/checkpoint").0, 405);
    let (status, body) = post(&run.addr, "/checkpoint");
    assert_eq!(status, 202, "{body}");
    let after = scrape_until(&run.addr, |t| {
        sample(t, "weir_checkpoints_completed_total", "").unwrap_or(0.0) >= 1.0
    });
    assert_eq!(
        sample(&after, "weir_checkpoints_completed_total", ""),
        Some(1.0),
        "{after}"
    );
    assert!(run.dir.path().join("chk").read_dir().unwrap().count() > 0);
}

#[test]
fn post_checkpoint_without_checkpoints_is_refused() {
    let run = start(slow_binary(), &["--rate-limit", "5000"]);
    let (status, body) = post(&run.addr, "/checkpoint");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("--checkpoint-dir"), "{body}");
    assert_eq!(post(&run.addr, "/metrics").0, 405);
}

/// `POST /stop` takes a last checkpoint and exits 0; started again on the same folder, the
/// run resumes there and its result is the uninterrupted run's (the oracle: the same binary
/// run to the end at once).
#[test]
fn post_stop_checkpoints_exits_0_and_a_restart_resumes_exactly_there() {
    let binary = slow_binary();
    let events = "300000";
    let oracle_dir = tempfile::tempdir().unwrap();
    let oracle = weir_tests::run(binary, &["--events", events], oracle_dir.path(), None);
    assert!(oracle.success, "{}", oracle.stderr);
    let want = oracle
        .stdout
        .lines()
        .find(|l| l.starts_with("checksum"))
        .unwrap()
        .to_string();

    // 300,000 events at 20,000 a second: 15 s unless stopped.
    let mut run = start(
        binary,
        &[
            "--events",
            events,
            "--rate-limit",
            "20000",
            "--checkpoint-dir",
            "chk",
            "--checkpoint-interval",
            "60m",
        ],
    );
    scrape_until(&run.addr, |t| {
        sample(t, "weir_source_records_total", "").unwrap_or(0.0) > 20_000.0
    });
    let (status, body) = post(&run.addr, "/stop");
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            Instant::now() < deadline,
            "still running 30 s after POST /stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr: Vec<String> = run.stderr.iter().collect();
    let stderr = stderr.join("\n");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("stopped by POST /stop after checkpoint 1"),
        "{stderr}"
    );

    let resumed = weir_tests::run(
        binary,
        &["--events", events, "--checkpoint-dir", "chk"],
        run.dir.path(),
        None,
    );
    assert!(resumed.success, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("resuming from checkpoint 1"),
        "{}",
        resumed.stderr
    );
    let got = resumed
        .stdout
        .lines()
        .find(|l| l.starts_with("checksum"))
        .unwrap();
    assert_eq!(got, want);
}

/// Headless Chromium (Debian's `chromium`), or `None` with a loud message when it is missing
/// outside CI (under CI, `.ci/run` installs it and its absence fails the test).
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|dir| Path::new(dir).join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(path) => Some(path),
        None if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("chromium is not installed: under CI the web UI test needs it (.ci/run installs it)")
        }
        None => {
            eprintln!(
                "\n*** SKIPPING the web UI test: no `chromium` on PATH (apt-get install -y \
                 --no-install-recommends chromium) ***\n"
            );
            None
        }
    }
}

/// Runs headless Chromium on `url` with `args` (after the page's scripts ran for a few
/// seconds of its virtual time) and returns its stdout.
fn chromium_run(chromium: &Path, url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=3000",
            "--window-size=1280,760",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the element `<TAG id="ID">` in a dumped DOM.
fn element_text<'a>(dom: &'a str, tag: &str, id: &str) -> &'a str {
    let open = format!("<{tag} id=\"{id}\">");
    let start = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in the page:\n{dom}"))
        + open.len();
    let end = dom[start..].find('<').unwrap() + start;
    &dom[start..end]
}

/// The web UI at `/`, in a real browser: the page loads its script and style from the binary,
/// draws one node per operator of the plan (counted against `/api/pipeline`), shows the
/// checkpoints, and its record count grows between two loads while the pipeline runs.
#[test]
fn the_web_ui_draws_the_graph_and_its_counters_grow() {
    let Some(chromium) = chromium() else {
        return;
    };
    let run = start(
        slow_binary(),
        &[
            "--rate-limit",
            "5000",
            "--checkpoint-dir",
            "chk",
            "--checkpoint-interval",
            "300ms",
        ],
    );
    let (status, page) = get(&run.addr, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<script src=\"ui.js\">"), "{page}");
    assert_eq!(get(&run.addr, "/ui.js").0, 200);
    assert_eq!(get(&run.addr, "/ui.css").0, 200);
    scrape_until(&run.addr, |t| {
        sample(t, "weir_checkpoints_completed_total", "").unwrap_or(0.0) >= 1.0
    });
    let (_, body) = get(&run.addr, "/api/pipeline");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    let operators = view["graph"]["operators"].as_array().unwrap();
    assert!(operators.len() >= 3, "{view}");

    let url = format!("http://{}/", run.addr);
    let first = chromium_run(&chromium, &url, &["--dump-dom"]);
    let nodes = first.matches("<g class=\"node\"").count();
    assert_eq!(nodes, operators.len(), "one node per operator:\n{first}");
    for op in operators {
        let id = op["id"].as_str().unwrap();
        assert!(
            first.contains(&format!("data-op=\"{id}\"")),
            "no node for {id}"
        );
    }
    assert!(first.contains("class=\"status live\""), "{first}");
    assert_eq!(
        element_text(&first, "span", "pipeline"),
        "test_observe_slow"
    );
    let records = |dom: &str| -> u64 {
        let text = element_text(dom, "dd", "records");
        text.parse()
            .unwrap_or_else(|_| panic!("records shown: {text:?}"))
    };
    let completed: u64 = element_text(&first, "dd", "cp-completed").parse().unwrap();
    assert!(completed >= 1);
    // The per-node live line has a rate once two polls have been made.
    assert!(first.contains("/s"), "no rate shown:\n{first}");

    std::thread::sleep(Duration::from_millis(1500));
    let screenshot = weir_tests::workspace().join("target/ui-screenshot.png");
    let _ = std::fs::remove_file(&screenshot);
    let second = chromium_run(
        &chromium,
        &url,
        &[
            "--dump-dom",
            &format!("--screenshot={}", screenshot.display()),
        ],
    );
    assert!(
        records(&second) > records(&first),
        "{} then {}",
        records(&first),
        records(&second)
    );
    assert!(records(&first) > 0);
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}

/// The last dead letters in `/api/pipeline` and in the web UI: a stdin source that stays
/// open reads malformed lines; each shows up with its line and reason, while the run goes on.
#[test]
fn recent_dead_letters_show_in_the_api_and_the_ui() {
    let binary = build_http(
        "observe_dead_letters",
        r#"
schema T { user: string, amount: i64 }
source t: T = stdin() format json
sink t -> stdout() format json
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary)
        .args(["--http", "127.0.0.1:0", "--quiet"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut stdin = child.stdin.take().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let child = Kill(child);
    let addr = stderr
        .lines()
        .map_while(Result::ok)
        .find_map(|l| Some(l.split_once("on http://")?.1.trim().to_string()))
        .expect("the address on stderr");
    writeln!(
        stdin,
        "{{\"user\":\"ana\",\"amount\":1}}\nnot json\n{{\"user\":\"bo\",\"amount\":\"x\"}}\n{{\"user\":\"chen\"}}"
    )
    .unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let letters = loop {
        let (_, body) = get(&addr, "/api/pipeline");
        let view: serde_json::Value = serde_json::from_str(&body).unwrap();
        let letters = view["recent_dead_letters"].as_array().unwrap().clone();
        if letters.len() >= 3 || Instant::now() > deadline {
            assert_eq!(view["dead_letters"], 3, "{view}");
            break letters;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<u64> = letters
        .iter()
        .map(|d| d["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 3, 4], "{letters:?}");
    assert!(letters.iter().all(|d| d["from"] == "t"), "{letters:?}");
    assert_eq!(letters[0]["record"], "not json");
    assert!(letters
        .iter()
        .all(|d| !d["reason"].as_str().unwrap().is_empty()));

    if let Some(chromium) = chromium() {
        let dom = chromium_run(&chromium, &format!("http://{addr}/"), &["--dump-dom"]);
        assert_eq!(dom.matches("class=\"dead-letter\"").count(), 3, "{dom}");
        assert!(dom.contains("not json"), "{dom}");
        assert_eq!(element_text(&dom, "dd", "dead-letters"), "3");
    }
    drop(stdin);
    drop(child);
}

/// `GET path`, or `None` once nothing listens there (the pipeline has ended).
fn try_get(addr: &str, path: &str) -> Option<(u16, String)> {
    try_request("GET", addr, path).ok()
}

/// A Kafka source slowed down by `--rate-limit` over a 4-partition topic written before the
/// run: while it reads, each partition shows a positive consumer lag in `/metrics`; the last
/// scrape before the run ends shows every partition read to its end (lag 0, consumed offset
/// = high watermark = the partition's messages), as does the JSON API; promtool accepts the
/// Kafka series.
#[test]
fn kafka_consumer_lag_per_partition_falls_to_zero() {
    use weir_tests::kafka::{broker, create_topic, produce, unique, GROUP_PROPERTIES};
    let Some(brokers) = broker() else { return };
    const PARTITIONS: i32 = 4;
    const PER_PARTITION: i64 = 600;
    let (topic, group) = (unique("lag"), unique("g"));
    create_topic(&brokers, &topic, PARTITIONS);
    let messages: Vec<(i32, String)> = (0..PER_PARTITION * PARTITIONS as i64)
        .map(|i| {
            let partition = (i % PARTITIONS as i64) as i32;
            let line = format!(
                r#"{{"id":{i},"customer":"c{}","amount":{}}}"#,
                i % 7,
                i % 50
            );
            (partition, line)
        })
        .collect();
    produce(&brokers, &topic, &messages);
    let text = format!(
        r#"
schema Order {{ id: i64, customer: string, amount: i64 }}
source orders: Order = kafka(topic: "{topic}", brokers: "{brokers}", group: "{group}",
    start: "earliest", properties: "{GROUP_PROPERTIES}")
let per_customer = orders |> aggregate by customer {{ n: count() }}
sink per_customer -> file(path: "out.jsonl") format json
"#
    );
    let binary = build_http("observe_kafka_lag", &text);
    // 300 messages a second: about 2 s per partition, 8 s in all, after the group join.
    let run = start(
        &binary,
        &["--rate-limit", "300", "--kafka-stop-after-idle", "2000"],
    );
    let partition = |p: i32| format!("partition=\"{p}\"");
    let mut lag_seen = [false; PARTITIONS as usize];
    // A partition waiting behind others shows its lag before the source reads from it.
    let mut all_at_once = false;
    let mut last: Option<(String, String)> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let Some((200, metrics)) = try_get(&run.addr, "/metrics") else {
            break;
        };
        let Some((200, json)) = try_get(&run.addr, "/api/pipeline") else {
            break;
        };
        let lags: Vec<Option<f64>> = (0..PARTITIONS)
            .map(|p| sample(&metrics, "weir_kafka_consumer_lag", &partition(p)))
            .collect();
        for (p, lag) in lags.iter().enumerate() {
            if lag.is_some_and(|lag| lag > 0.0) {
                lag_seen[p] = true;
            }
        }
        // Reading about 2 s per partition, one after the other: at some scrape at least
        // three wait with their whole backlog.
        let full = lags
            .iter()
            .filter(|l| **l == Some(PER_PARTITION as f64))
            .count();
        all_at_once |= full >= 3 && lags.iter().all(|l| l.is_some_and(|l| l > 0.0));
        last = Some((metrics, json));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(Instant::now() < deadline, "the pipeline did not end");
    assert_eq!(
        lag_seen, [true; PARTITIONS as usize],
        "a lag seen per partition"
    );
    assert!(all_at_once, "never saw every partition's lag at once");
    let (metrics, json) = last.expect("scraped at least once");
    for p in 0..PARTITIONS {
        let at = |name: &str| {
            sample(&metrics, name, &partition(p))
                .unwrap_or_else(|| panic!("no {name} of partition {p}:\n{metrics}"))
        };
        assert_eq!(at("weir_kafka_consumer_lag"), 0.0, "{metrics}");
        assert_eq!(at("weir_kafka_consumer_offset"), PER_PARTITION as f64);
        assert_eq!(at("weir_kafka_high_watermark"), PER_PARTITION as f64);
        assert!(metrics.contains(&format!("topic=\"{topic}\"")));
    }
    let view: serde_json::Value = serde_json::from_str(&json).unwrap();
    let source = &view["sources"][0];
    assert_eq!(source["name"], "orders");
    assert_eq!(source["kafka_lag"], 0, "{source}");
    let partitions = source["kafka_partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), PARTITIONS as usize, "{source}");
    for (p, entry) in partitions.iter().enumerate() {
        assert_eq!(entry["partition"], p as i64);
        assert_eq!(entry["consumed_offset"], PER_PARTITION, "{entry}");
        assert_eq!(entry["high_watermark"], PER_PARTITION, "{entry}");
        assert_eq!(entry["lag"], 0, "{entry}");
    }
    promtool_accepts(&metrics);
}

/// `promtool check metrics` accepts `text` (skipped, loudly, without promtool outside CI).
fn promtool_accepts(text: &str) {
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Err(e) => eprintln!(
            "SKIPPED promtool check: cannot run promtool ({e}); install Debian's `prometheus` \
             package (.ci/run does)"
        ),
        Ok(mut promtool) => {
            promtool
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = promtool.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics failed: {}{}\n{text}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A group aggregate over stdin with a known number of distinct keys, and a join of the same
/// records with a file of one row per key: while stdin stays open (the run goes on), the
/// scraped `weir_state_keys` of the aggregate, summed over its two instances, equals the
/// distinct keys, and so do the join's and a dedup's; their bytes are positive; the JSON API says the same, and
/// operators without state have no state series.
#[test]
fn state_keys_per_operator_match_the_distinct_keys() {
    const KEYS: usize = 37;
    const RECORDS: usize = 3000;
    let text = r#"
schema Click { user: string, n: i64 }
source clicks: Click = stdin() format json
schema User { user: string, name: string }
source users: User = file(path: "users.jsonl") format json
let per_user = clicks |> filter n >= 0 |> aggregate by user { clicks: count(), total: sum(n) }
sink per_user -> file(path: "out.jsonl") format json
let named = clicks |> join users as u on user = u.user |> select { user, n, name: u.name }
sink named -> file(path: "named.jsonl") format json
let firsts = clicks |> dedup by user keep first
sink firsts -> file(path: "firsts.jsonl") format json
"#;
    let binary = build_http("observe_state", text);
    let users: String = (0..KEYS)
        .map(|k| format!("{{\"user\":\"u{k}\",\"name\":\"user {k}\"}}\n"))
        .collect();
    let mut run = start_with(
        &binary,
        &["--parallelism", "2"],
        Stdio::piped(),
        &[("users.jsonl", &users)],
    );
    let mut stdin = run.child.stdin.take().unwrap();
    let mut input = String::new();
    for i in 0..RECORDS {
        input.push_str(&format!(
            "{{\"user\":\"u{}\",\"n\":{i}}}\n",
            (i * 13) % KEYS
        ));
    }
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // The aggregate is `op2` in `weir explain` (the filter `op1`, the sink `op3`).
    let aggregate = "operator=\"op2\"";
    let join = "step=\"join users as u on user = u.user";
    let text = scrape_until(&run.addr, |t| {
        sample(t, "weir_state_keys", aggregate) == Some(KEYS as f64)
            && sample(t, "weir_operator_records_in_total", join) == Some((RECORDS + KEYS) as f64)
    });
    assert_eq!(
        sample(&text, "weir_state_keys", aggregate),
        Some(KEYS as f64),
        "{text}"
    );
    // Every key has records of both sides held (a join without a TTL keeps them all).
    let text = scrape_until(&run.addr, |t| {
        sample(t, "weir_state_keys", join) == Some(KEYS as f64)
    });
    assert_eq!(
        sample(&text, "weir_state_keys", join),
        Some(KEYS as f64),
        "{text}"
    );
    // The dedup keeps one row per key.
    let dedup = "step=\"dedup by user keep first\"";
    let text = scrape_until(&run.addr, |t| {
        sample(t, "weir_state_keys", dedup) == Some(KEYS as f64)
    });
    assert_eq!(
        sample(&text, "weir_state_keys", dedup),
        Some(KEYS as f64),
        "{text}"
    );
    assert!(sample(&text, "weir_state_bytes", dedup).unwrap() > 0.0);
    let join_bytes = sample(&text, "weir_state_bytes", join).unwrap();
    assert!(
        join_bytes >= ((RECORDS + KEYS) * 8) as f64,
        "join state bytes {join_bytes}"
    );
    let bytes = sample(&text, "weir_state_bytes", aggregate).unwrap();
    assert!(bytes >= (KEYS * 8) as f64, "state bytes {bytes}");
    // The filter, the select and the sinks keep no state: no series of theirs.
    let stateful = text
        .lines()
        .filter(|l| l.starts_with("weir_state_keys{"))
        .count();
    assert_eq!(stateful, 3, "{text}");
    let (_, json) = get(&run.addr, "/api/pipeline");
    let view: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ops = view["operators"].as_array().unwrap();
    let agg = ops
        .iter()
        .find(|o| o["name"].as_str().unwrap().contains("aggregate by user"))
        .unwrap();
    assert_eq!(agg["state_keys"], KEYS, "{agg}");
    assert_eq!(agg["instances"], 2, "{agg}");
    assert!(agg["state_bytes"].as_u64().unwrap() > 0);
    let filter = ops
        .iter()
        .find(|o| o["name"].as_str().unwrap().contains("filter"));
    if let Some(filter) = filter {
        assert!(filter["state_keys"].is_null(), "{filter}");
    }
    promtool_accepts(&text);
    // The web UI shows the state on the operators' nodes.
    if let Some(chromium) = chromium() {
        let dom = chromium_run(&chromium, &format!("http://{}/", run.addr), &["--dump-dom"]);
        assert_eq!(
            dom.matches(&format!("state {KEYS} keys")).count(),
            3,
            "the aggregate's, the join's and the dedup's node: {dom}"
        );
    }
    drop(stdin);
    let status = run.child.wait().unwrap();
    assert!(status.success());
}
