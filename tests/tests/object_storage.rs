//! Checkpoints on object storage (`--checkpoint-dir s3://bucket/prefix`) against a real
//! S3-protocol server (moto, which `.ci/run` starts): only one of several writers can
//! complete a checkpoint id or take the lock, a second run waits for the lease of the first,
//! and a binary built without object storage refuses an `s3://` location with a message
//! that says how to get it. The restore and crash tests run against the same server
//! (`restore.rs`, `crash.rs`), and the scale-out handover too (`scale_out.rs`).

use std::path::Path;
use std::sync::{Arc, Barrier};

use weir_runtime::checkpoint::Store;
use weir_tests::s3::{unique_location, Checkpoints};
use weir_tests::{build, run};

/// Runs `write` on 16 threads at once, each with a store of its own on `location` (its own
/// client and connection, as separate processes would have); their results in thread order.
fn race<T: Send + 'static>(
    location: &str,
    write: impl Fn(&Store, usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    const WRITERS: usize = 16;
    let barrier = Arc::new(Barrier::new(WRITERS));
    let write = Arc::new(write);
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (barrier, write) = (barrier.clone(), write.clone());
            let store = Store::open(Path::new(location)).expect("the bucket is reachable");
            std::thread::spawn(move || {
                barrier.wait();
                write(&store, i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn only_one_of_racing_writers_completes_a_checkpoint() {
    let Some(location) = unique_location("race-manifest") else {
        return;
    };
    let results = race(&location, |store, i| {
        store.put_manifest("chk-7", format!("writer {i}\n").as_bytes(), true)
    });
    let winners: Vec<usize> = (0..results.len()).filter(|i| results[*i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(err.contains("completed by another writer"), "{err}");
    }
    // The manifest is the winner's, whole.
    let store = Store::open(Path::new(&location)).unwrap();
    let text = store.get("chk-7/MANIFEST").unwrap().unwrap();
    assert_eq!(text, format!("writer {}\n", winners[0]).as_bytes());
}

#[test]
fn only_one_of_racing_writers_creates_the_lock() {
    let Some(location) = unique_location("race-lock") else {
        return;
    };
    let results = race(&location, |store, i| {
        store.put_if_absent("LOCK", format!("holder {i}\n").as_bytes())
    });
    let won: Vec<usize> = (0..results.len())
        .filter(|i| results[*i] == Ok(true))
        .collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

const SLOW: &str = r#"
source bids = nexmark(stream: "bid", events: 30_000, generators: 1)
    event_time date_time watermark 1s
let n = bids |> key_by auction |> window tumble(2s) |> aggregate { n: count() }
sink n -> checksum()
"#;

/// A second run on the location of a running one waits for its lease, and only then starts
/// (and finds the run finished).
#[test]
fn a_second_run_waits_for_the_lease_of_the_first() {
    let Some(at) = Checkpoints::s3("lease") else {
        return;
    };
    let binary = at.build("lease_wait", SLOW);
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--checkpoint-dir",
        at.arg(),
        "--checkpoint-interval",
        "100ms",
        "--rate-limit",
        "20000",
    ];
    let first = std::process::Command::new(&binary)
        .args(args)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first run holds the lease once it has a checkpoint.
    let started = std::time::Instant::now();
    while at.newest(dir.path()) < 1 {
        assert!(started.elapsed().as_secs() < 30, "no checkpoint in 30 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = run(&binary, &args, dir.path(), None);
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success());
    assert!(second.success, "{}", second.stderr);
    assert!(
        second.stderr.contains("another process holds") && second.stderr.contains("LOCK"),
        "{}",
        second.stderr
    );
    // It started only after the first had finished and released the lease.
    assert!(
        second.stderr.contains("holds a run that finished"),
        "{}",
        second.stderr
    );
}

/// Without the runtime's `object-store` feature an s3:// location is refused at start, with
/// the way to get it, and nothing is written locally.
#[test]
fn a_binary_without_object_storage_refuses_an_s3_location() {
    let binary = build("no_object_store", SLOW, false);
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &binary,
        &["--checkpoint-dir", "s3://bucket/chk"],
        dir.path(),
        None,
    );
    assert!(!out.success);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("built without object storage; build it with `weir build --object-store`"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A damaged newest checkpoint in the bucket (its manifest overwritten) is set aside under
/// `damaged-chk-N-<time>/` (copied, then deleted) and the run resumes from the one before it;
/// the checksum sink's restored count and sum then equal a run's without checkpoints.
#[test]
fn a_damaged_checkpoint_in_the_bucket_is_set_aside_and_the_one_before_resumed() {
    let Some(at) = Checkpoints::s3("damaged") else {
        return;
    };
    let binary = at.build("damaged", SLOW);
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = run(&binary, &["--quiet"], clean_dir.path(), None);
    assert!(clean.success, "{}", clean.stderr);

    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--checkpoint-dir",
        at.arg(),
        "--checkpoint-interval",
        "50ms",
        "--rate-limit",
        "10000",
        "--quiet",
    ];
    weir_tests::kill_at_checkpoint_in(&binary, dir.path(), &args, 3, || at.newest(dir.path()));
    let newest = at.newest(dir.path());
    let store = Store::open(Path::new(at.arg())).unwrap();
    store
        .put(
            &format!("chk-{newest}/MANIFEST"),
            b"weir-checkpoint 2\nid 1\n",
        )
        .unwrap();
    let resumed = run(&binary, &args, dir.path(), None);
    assert!(resumed.success, "{}", resumed.stderr);
    assert!(
        resumed
            .stderr
            .contains(&format!("checkpoint {newest} in {} is damaged", at.arg())),
        "{}",
        resumed.stderr
    );
    assert!(
        resumed.stderr.contains("falling back"),
        "{}",
        resumed.stderr
    );
    let names = store.list_top().unwrap();
    let aside: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with(&format!("damaged-chk-{newest}-")))
        .collect();
    assert_eq!(aside.len(), 1, "{names:?}");
    assert!(store
        .get(&format!("{}/MANIFEST", aside[0]))
        .unwrap()
        .is_some());
    assert_eq!(
        weir_tests::checksum_line(&resumed.stdout),
        weir_tests::checksum_line(&clean.stdout)
    );
}

/// A run killed with SIGKILL leaves its lease behind; a run started again on the same host
/// sees that its holder is gone and takes it over at once (no wait for the expiry), and
/// resumes from the killed run's checkpoint.
#[test]
fn a_killed_runs_lease_is_taken_over_at_once_on_the_same_host() {
    let Some(at) = Checkpoints::s3("takeover") else {
        return;
    };
    let binary = at.build("takeover", SLOW);
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--checkpoint-dir",
        at.arg(),
        "--checkpoint-interval",
        "50ms",
        "--rate-limit",
        "10000",
    ];
    weir_tests::kill_at_checkpoint_in(&binary, dir.path(), &args, 2, || at.newest(dir.path()));
    let store = Store::open(Path::new(at.arg())).unwrap();
    assert!(
        store.exists("LOCK").unwrap(),
        "the killed run left no lease"
    );
    let started = std::time::Instant::now();
    let again = run(&binary, &args, dir.path(), None);
    assert!(again.success, "{}", again.stderr);
    assert!(
        !again.stderr.contains("another process holds"),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("resuming from checkpoint"),
        "{}",
        again.stderr
    );
    // 30 000 events at 10 000/s: about 3 s at most, far below the 15 s lease.
    assert!(started.elapsed().as_secs() < 12, "{:?}", started.elapsed());
    // The run that ended gave the lease up.
    assert!(!store.exists("LOCK").unwrap());
}

/// With no `AWS_*` variable at all, the credentials, region and endpoint come from the shared
/// files' profile (`AWS_PROFILE`, `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`): the run
/// reaches the server only through them. A profile neither file has stops the run, naming it.
#[test]
fn credentials_and_endpoint_come_from_an_aws_profile() {
    let Some(at) = Checkpoints::s3("profile") else {
        return;
    };
    let endpoint = std::env::var("WEIR_S3_ENDPOINT").expect("set with the bucket");
    let key = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "weir".into());
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "weir".into());
    let binary = at.build("aws_profile", SLOW);
    let dir = tempfile::tempdir().unwrap();
    let aws = dir.path().join("aws");
    std::fs::create_dir(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!("[default]\naws_access_key_id = wrong\n\n[weir-ci]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        format!("[profile weir-ci]\nregion = us-east-1\nendpoint_url = {endpoint}\n"),
    )
    .unwrap();
    let run_with = |profile: &str| {
        let mut cmd = std::process::Command::new(&binary);
        cmd.args([
            "--checkpoint-dir",
            at.arg(),
            "--checkpoint-interval",
            "100ms",
        ])
        .current_dir(dir.path())
        .env("AWS_PROFILE", profile)
        .env("AWS_CONFIG_FILE", aws.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", aws.join("credentials"));
        for (var, _) in std::env::vars() {
            if var.starts_with("AWS_")
                && ![
                    "AWS_PROFILE",
                    "AWS_CONFIG_FILE",
                    "AWS_SHARED_CREDENTIALS_FILE",
                ]
                .contains(&var.as_str())
            {
                cmd.env_remove(var);
            }
        }
        cmd.output().unwrap()
    };
    let missing = run_with("nobody");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success(), "{stderr}");
    assert!(stderr.contains("AWS_PROFILE is `nobody`"), "{stderr}");
    assert!(!at.used(dir.path()));
    let out = run_with("weir-ci");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(at.newest(dir.path()) >= 1);
}

/// A run inside a library whose lease is taken by another writer stops with the error
/// instead of ending the process (it used to exit it from the lease thread), and its
/// coordinator writes no checkpoint after that.
#[test]
fn a_library_run_that_loses_its_lease_stops_with_an_error() {
    use weir_runtime::checkpoint::manifest::SlotEntry;
    use weir_runtime::checkpoint::{Config, Coordinator, Verifiers};
    use weir_runtime::context::{RunContext, Settings};
    let Some(location) = unique_location("lease-lost") else {
        return;
    };
    let (c, _) = Coordinator::open(Config {
        dir: location.clone().into(),
        interval: std::time::Duration::from_millis(50),
        keep: 2,
        incremental: true,
        buffer: weir_runtime::checkpoint::spill::SPILL_AT,
        verifiers: Verifiers::default(),
    })
    .expect("the bucket is reachable");
    let c = Arc::new(c);
    let context = RunContext::new(Settings::default());
    context.set_coordinator(c.clone()).unwrap();
    c.plan(
        "f",
        vec![SlotEntry {
            id: "s".into(),
            instances: 1,
            label: "op".into(),
            shape: "operator: aggregate\n".into(),
        }],
    )
    .unwrap();
    c.start(context.clone()).unwrap();
    // Another writer takes the lock object over.
    let other = Store::open(Path::new(&location)).unwrap();
    other
        .put("LOCK", b"weir-lease 1\nowner someone-else\n")
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !context.stopped_early() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(context.stopped_early(), "the run was not stopped");
    let errors = context.errors().all();
    assert!(
        errors.iter().any(|e| e.contains("lost the lease")),
        "{errors:?}"
    );
    // The task of the run: a checkpoint it saves a part for never completes.
    let task = {
        let context = context.clone();
        std::thread::spawn(move || {
            let _run = context.enter();
            let mut slot = weir_runtime::checkpoint::slot("s", 0);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while std::time::Instant::now() < deadline {
                if let Some(id) = slot.barrier_due() {
                    slot.save(id, b"state", Vec::new());
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    task.join().unwrap();
    assert_eq!(c.completed(), 0);
    c.release();
}

/// A part written to a file as it was saved (state larger than memory) is uploaded in parts
/// of 16 MiB and reads back byte for byte; the file it came from is left for its owner.
#[test]
fn a_part_saved_to_a_file_is_uploaded_in_parts_and_reads_back_whole() {
    let Some(location) = unique_location("spilled-part") else {
        return;
    };
    let store = Store::open(Path::new(&location)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("part");
    // 40 MiB and a bit: two whole upload parts and a short last one.
    let bytes: Vec<u8> = (0..(40u32 << 20) + 12_345)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&file, &bytes).unwrap();
    let view = weir_runtime::checkpoint::spill::View::File {
        path: &file,
        len: bytes.len() as u64,
    };
    store.put_part("chk-1/op-0-00.state", view).unwrap();
    let back = store.get("chk-1/op-0-00.state").unwrap().unwrap();
    assert_eq!(back.len(), bytes.len());
    assert!(back == bytes, "the uploaded part differs");
    assert!(file.exists());
}
