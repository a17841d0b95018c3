//! `weir::pipeline!` inline and from a file, run in memory, and `#[derive(weir::Record)]`.

#[derive(Clone, Debug, PartialEq, weir::Record)]
pub struct Click {
    pub user: String,
    pub page: String,
    #[weir(timestamp)]
    pub ts: i64,
    pub duration_ms: i64,
    pub referrer: Option<String>,
}

weir::pipeline! {
    mod long_clicks;
    use crate::Click;

    schema Click { user: string, page: string, ts: timestamp, duration_ms: i64, referrer: string? }

    source clicks: Click = file(path: "clicks.csv") format csv(header: true)
        event_time ts watermark 0s

    // Clicks longer than a second, with the page in upper case.
    let long = clicks
        |> filter duration_ms > 1000
        |> select { user, page: upper(page), duration_ms }

    sink long -> stdout() format json
}

weir::pipeline!(file = "tests/pipelines/big_clicks.weir");

fn click(user: &str, page: &str, ts: i64, duration_ms: i64) -> Click {
    Click {
        user: user.into(),
        page: page.into(),
        ts,
        duration_ms,
        referrer: None,
    }
}

fn quiet() -> weir::RunArgs {
    weir::RunArgs {
        quiet: true,
        ..Default::default()
    }
}

#[test]
fn inline_pipeline_runs_on_derived_records() {
    let inputs = long_clicks::memory::Inputs {
        clicks: vec![
            click("ann", "home", 1_000, 1500),
            click("bob", "cart", 2_000, 200),
            click("cid", "faq", 3_000, 1001),
        ]
        .into(),
    };
    let out = long_clicks::memory::run(quiet(), inputs).unwrap();
    let got: Vec<(String, String, i64)> = out
        .long
        .iter()
        .map(|r| (r.user.clone(), r.page.clone(), r.duration_ms))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ann".to_string(), "HOME".to_string(), 1500),
            ("cid".to_string(), "FAQ".to_string(), 1001)
        ]
    );
}

#[test]
fn file_pipeline_runs_in_memory() {
    let rows = |page: &str, ts: i64, d: i64| big_clicks::memory::ClicksInput {
        user: "u".into(),
        page: page.into(),
        ts,
        duration_ms: d,
    };
    let inputs = big_clicks::memory::Inputs {
        clicks: vec![
            rows("a", 0, 150),
            rows("a", 30_000, 400),
            rows("b", 10_000, 50),
            rows("a", 61_000, 100),
        ]
        .into(),
    };
    let mut out = big_clicks::memory::run(quiet(), inputs).unwrap().views;
    out.sort_by_key(|r| (r.window_start, r.page.clone()));
    let got: Vec<_> = out
        .iter()
        .map(|r| (r.page.as_str(), r.window_start, r.views, r.longest_ms))
        .collect();
    assert_eq!(got, vec![("a", 0, 2, 400), ("a", 60_000, 1, 100)]);
}

#[test]
fn derived_record_codecs_round_trip() {
    use weir::Record;
    let c = Click {
        referrer: Some("x,\"y\"".into()),
        ..click("ann", "home", 1_500, 7)
    };
    let mut json = Vec::new();
    c.write_json(&mut json);
    let json = String::from_utf8(json).unwrap();
    assert_eq!(Click::from_json(&json).unwrap(), c);
    let mut csv = Vec::new();
    c.write_csv(&mut csv);
    assert_eq!(
        Click::from_csv(std::str::from_utf8(&csv).unwrap()).unwrap(),
        c
    );
    assert_eq!(Click::FIELDS.len(), 5);
    assert_eq!(Click::FIELDS[2].ty, weir::FieldType::Timestamp);
    assert!(Click::from_json("{\"user\": 1}").is_err());
}

// The same file under another name (`,` separates header items in parentheses).
weir::pipeline!(file = "tests/pipelines/big_clicks.weir", mod big_clicks_again);

#[test]
fn file_pipeline_module_names() {
    let inputs = big_clicks_again::memory::Inputs::default();
    let out = big_clicks_again::memory::run(quiet(), inputs).unwrap();
    assert!(out.views.is_empty());
}

#[test]
fn records_stream_in_through_a_channel() {
    let (tx, rx) = std::sync::mpsc::channel();
    let feeder = std::thread::spawn(move || {
        for i in 0..100 {
            let c = click(
                "u",
                if i % 2 == 0 { "even" } else { "odd" },
                i * 1000,
                2000 + i,
            );
            if tx.send(c).is_err() {
                break;
            }
        }
    });
    let inputs = long_clicks::memory::Inputs {
        clicks: weir::runtime::embed::Records::channel(rx),
    };
    let out = long_clicks::memory::run(quiet(), inputs).unwrap();
    feeder.join().unwrap();
    assert_eq!(out.long.len(), 100);
    assert_eq!(out.long.iter().filter(|r| r.page == "EVEN").count(), 50);
}
