//! A pipeline binary running on input that trickles: the test writes its stdin one line at a
//! time (the pipe stays open) and reads its stdout lines as they come.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// How long a result may take to show up. The flush interval is 100 ms: this is far beyond
/// it, so a slow machine does not fail the test, and a pipeline that does not stream does.
pub const DEADLINE: Duration = Duration::from_secs(2);

/// A running pipeline whose stdin the test writes and whose stdout lines it reads as they
/// come.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Running {
    pub fn start(binary: &Path, cwd: &Path, args: &[&str]) -> Running {
        let mut child = Command::new(binary)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Running {
            child,
            stdin,
            lines,
        }
    }

    /// Writes one line to the pipeline's stdin (which stays open).
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .expect("the pipeline reads its stdin");
    }

    /// The next line the pipeline prints, which must come within [`DEADLINE`].
    pub fn expect_line(&self, what: &str) -> String {
        self.expect_line_within(DEADLINE, what)
    }

    pub fn expect_line_within(&self, deadline: Duration, what: &str) -> String {
        let started = Instant::now();
        match self.lines.recv_timeout(deadline) {
            Ok(line) => {
                eprintln!("{what}: after {:?}: {line}", started.elapsed());
                line
            }
            Err(_) => panic!(
                "{what}: nothing on stdout within {deadline:?} while the input stays open: the \
                 pipeline does not stream"
            ),
        }
    }

    /// Whether nothing is printed within `wait`.
    pub fn quiet_for(&self, wait: Duration) -> bool {
        self.lines.recv_timeout(wait).is_err()
    }

    /// Closes stdin, waits for the end, and returns what is printed after that point.
    pub fn close(mut self) -> Vec<String> {
        drop(self.stdin.take());
        let status = self.child.wait().expect("the pipeline ends");
        assert!(status.success(), "the pipeline failed: {status}");
        self.lines.iter().collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion leaves the child running: end it (its id, not a name).
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
