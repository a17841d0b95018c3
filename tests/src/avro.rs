//! fastavro (Python) as an independent Avro writer and reader: the tests write the Avro input
//! of a pipeline with it (Kafka message bodies, object container files) and read the Avro a
//! pipeline wrote with it, so that weir's reading and writing (the `apache-avro` crate) are
//! checked against another implementation of the specification.
//!
//! fastavro is required, not optional: without it these helpers panic (CI must fail, not
//! skip). `.ci/run` installs the pinned version from PyPI.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Reads a request (one JSON object) on stdin and answers on stdout. Timestamps are epoch
/// milliseconds both ways (fastavro's datetimes converted); message bodies are hex.
/// Exit code 3: the `fastavro` module cannot be imported.
const SCRIPT: &str = r#"
import sys
try:
    import fastavro
except ImportError as e:
    sys.stderr.write(f"{e}\n")
    sys.exit(3)
import datetime, io, json

req = json.load(sys.stdin)
schema = fastavro.parse_schema(req["schema"]) if "schema" in req else None
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

def plain(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        d = v - EPOCH
        return (d.days * 86400 + d.seconds) * 1000 + d.microseconds // 1000
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v

op = req["op"]
if op == "encode":
    out = []
    for row in req["rows"]:
        buf = io.BytesIO()
        if req.get("confluent_id") is not None:
            buf.write(b"\x00" + req["confluent_id"].to_bytes(4, "big"))
        fastavro.schemaless_writer(buf, schema, row)
        out.append(buf.getvalue().hex())
    json.dump(out, sys.stdout)
elif op == "decode":
    out = []
    for h in req["messages"]:
        b = bytes.fromhex(h)
        if req.get("confluent_id") is not None:
            assert b[0] == 0, f"magic byte {b[0]}"
            got = int.from_bytes(b[1:5], "big")
            assert got == req["confluent_id"], f"schema id {got}"
            b = b[5:]
        buf = io.BytesIO(b)
        row = fastavro.schemaless_reader(buf, schema, None)
        assert buf.read() == b"", "bytes after the record"
        out.append(plain(row))
    json.dump(out, sys.stdout)
elif op == "write_file":
    with open(req["path"], "wb") as f:
        fastavro.writer(f, schema, req["rows"], codec=req.get("codec", "null"))
    json.dump(None, sys.stdout)
elif op == "read_file":
    with open(req["path"], "rb") as f:
        r = fastavro.reader(f)
        rows = [plain(row) for row in r]
        json.dump({"schema": r.writer_schema, "codec": r.codec, "rows": rows}, sys.stdout)
"#;

fn call(request: Value) -> Value {
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("request written");
    let out = child.wait_with_output().expect("python3 finished");
    match out.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "fastavro is not installed: `python3 -m pip install fastavro` (.ci/run installs it): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        _ => panic!("fastavro failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
    serde_json::from_slice(&out.stdout).expect("fastavro's answer is JSON")
}

/// The bodies fastavro writes for `rows` (JSON objects as its writer takes them: a union
/// value as the plain value or null, timestamps as epoch ms), each behind the Confluent
/// header when `confluent_id` is given.
pub fn encode(schema: &Value, rows: &[Value], confluent_id: Option<u32>) -> Vec<Vec<u8>> {
    let answer = call(serde_json::json!({
        "op": "encode", "schema": schema, "rows": rows, "confluent_id": confluent_id,
    }));
    answer
        .as_array()
        .expect("a list")
        .iter()
        .map(|h| hex(h.as_str().expect("hex")))
        .collect()
}

/// The rows fastavro reads from message bodies (checking the Confluent header when
/// `confluent_id` is given, and that nothing follows a record).
pub fn decode(schema: &Value, messages: &[Vec<u8>], confluent_id: Option<u32>) -> Vec<Value> {
    let hexes: Vec<String> = messages
        .iter()
        .map(|m| m.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let answer = call(serde_json::json!({
        "op": "decode", "schema": schema, "messages": hexes, "confluent_id": confluent_id,
    }));
    answer.as_array().expect("a list").clone()
}

/// Writes an object container file of `rows` with fastavro (`codec`: "null", "deflate").
pub fn write_file(path: &Path, schema: &Value, rows: &[Value], codec: &str) {
    call(serde_json::json!({
        "op": "write_file", "schema": schema, "rows": rows, "path": path, "codec": codec,
    }));
}

/// An object container file as fastavro reads it: `{"schema", "codec", "rows"}`.
pub fn read_file(path: &Path) -> Value {
    call(serde_json::json!({ "op": "read_file", "path": path }))
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}
