//! The PostgreSQL server the postgres sink tests write to (`.ci/run` starts one and sets
//! `WEIR_POSTGRES_URL`), and reading tables back with `psql`, PostgreSQL's own client.

use std::process::Command;

/// The server under test, or `None` (with a message) when none is configured outside CI.
pub fn server() -> Option<String> {
    match std::env::var("WEIR_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => panic!(
            "WEIR_POSTGRES_URL is not set: under CI the PostgreSQL tests need a server (.ci/run starts one)"
        ),
        _ => {
            eprintln!(
                "skipping: no PostgreSQL server (set WEIR_POSTGRES_URL=postgresql://user:pass@host:port/db, \
                 or run .ci/run)"
            );
            None
        }
    }
}

/// A table name no other test or run has used.
pub fn unique_table(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Runs `sql` with psql (unaligned, no headers, `,` between fields, times in UTC) and returns
/// its output lines; panics with psql's message when it fails.
pub fn query(url: &str, sql: &str) -> Vec<String> {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-A",
            "-t",
            "-F",
            ",",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .env("PGTZ", "UTC")
        .output()
        .expect("psql runs (Debian package postgresql-client)");
    assert!(
        out.status.success(),
        "psql failed on {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
