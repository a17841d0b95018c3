//! The manifest: a small text file that makes a checkpoint complete. It names the plan that
//! took the checkpoint, every part (one per operator instance that holds state or a position)
//! and the commit actions that publish the sinks' output. It is written to a temporary name,
//! synced and renamed into place, so a checkpoint either has a whole manifest or none.
//!
//! ```text
//! weir-checkpoint 1
//! id 12
//! kind checkpoint            (or `final`: the run finished and committed everything)
//! created_ms 1764050000000
//! fingerprint 3f0c…
//! slot <id> <instances> <label>
//! part <id> <instance> <bytes>
//! append <before> <size> <pending> <target>
//! rename <from> <to>
//! note <id> <instance> <text>   (for commits outside weir: e.g. a Kafka transaction)
//! end
//! ```
//! Fields are separated by single spaces; paths and labels are percent-escaped.

use std::path::PathBuf;

use super::commit::CommitAction;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Checkpoint,
    /// Written when a run ends normally: its actions publish the last output, and a restart
    /// has nothing left to do.
    Final,
}

/// An operator instance set that takes part in checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotEntry {
    pub id: String,
    pub instances: usize,
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub id: u64,
    pub kind: Kind,
    pub created_ms: i64,
    pub fingerprint: String,
    pub slots: Vec<SlotEntry>,
    /// (slot id, instance, state bytes)
    pub parts: Vec<(String, u32, u64)>,
    pub commits: Vec<CommitAction>,
    /// (slot id, instance, text): what a sink committed elsewhere, checked before a restore
    /// trusts this checkpoint (see `checkpoint::register_verifier`).
    pub notes: Vec<(String, u32, String)>,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' | ' ' | '\n' | '\r' | '\t' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

fn unescape(s: &str) -> Result<String, String> {
    if s == "%00" {
        return Ok(String::new());
    }
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("bad escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad escape")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8".to_string())
}

fn path_text(p: &std::path::Path) -> String {
    escape(&p.to_string_lossy())
}

impl Manifest {
    pub fn render(&self) -> String {
        let mut out = String::from("weir-checkpoint 1\n");
        out.push_str(&format!("id {}\n", self.id));
        out.push_str(match self.kind {
            Kind::Checkpoint => "kind checkpoint\n",
            Kind::Final => "kind final\n",
        });
        out.push_str(&format!("created_ms {}\n", self.created_ms));
        out.push_str(&format!("fingerprint {}\n", escape(&self.fingerprint)));
        for s in &self.slots {
            out.push_str(&format!(
                "slot {} {} {}\n",
                escape(&s.id),
                s.instances,
                escape(&s.label)
            ));
        }
        for (id, instance, bytes) in &self.parts {
            out.push_str(&format!("part {} {instance} {bytes}\n", escape(id)));
        }
        for c in &self.commits {
            match c {
                CommitAction::Append {
                    pending,
                    target,
                    before,
                    size,
                } => out.push_str(&format!(
                    "append {before} {size} {} {}\n",
                    path_text(pending),
                    path_text(target)
                )),
                CommitAction::Rename { from, to } => {
                    out.push_str(&format!("rename {} {}\n", path_text(from), path_text(to)))
                }
            }
        }
        for (id, instance, text) in &self.notes {
            out.push_str(&format!(
                "note {} {instance} {}\n",
                escape(id),
                escape(text)
            ));
        }
        out.push_str("end\n");
        out
    }

    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut lines = text.lines();
        if lines.next() != Some("weir-checkpoint 1") {
            return Err("not a weir checkpoint manifest (version 1)".into());
        }
        let mut m = Manifest {
            id: 0,
            kind: Kind::Checkpoint,
            created_ms: 0,
            fingerprint: String::new(),
            slots: Vec::new(),
            parts: Vec::new(),
            commits: Vec::new(),
            notes: Vec::new(),
        };
        let mut ended = false;
        for (n, line) in lines.enumerate() {
            let bad = |what: &str| format!("line {}: {what}: `{line}`", n + 2);
            let f: Vec<&str> = line.split(' ').collect();
            let num = |s: &str| s.parse::<u64>().map_err(|_| bad("not a number"));
            match f.as_slice() {
                ["id", v] => m.id = num(v)?,
                ["kind", "checkpoint"] => m.kind = Kind::Checkpoint,
                ["kind", "final"] => m.kind = Kind::Final,
                ["created_ms", v] => m.created_ms = v.parse().map_err(|_| bad("not a number"))?,
                ["fingerprint", v] => m.fingerprint = unescape(v)?,
                ["slot", id, n, label] => m.slots.push(SlotEntry {
                    id: unescape(id)?,
                    instances: num(n)? as usize,
                    label: unescape(label)?,
                }),
                ["part", id, i, b] => m.parts.push((unescape(id)?, num(i)? as u32, num(b)?)),
                ["append", before, size, pending, target] => m.commits.push(CommitAction::Append {
                    pending: PathBuf::from(unescape(pending)?),
                    target: PathBuf::from(unescape(target)?),
                    before: num(before)?,
                    size: num(size)?,
                }),
                ["rename", from, to] => m.commits.push(CommitAction::Rename {
                    from: PathBuf::from(unescape(from)?),
                    to: PathBuf::from(unescape(to)?),
                }),
                ["note", id, i, text] => {
                    m.notes
                        .push((unescape(id)?, num(i)? as u32, unescape(text)?))
                }
                ["end"] => ended = true,
                _ => return Err(bad("unknown line")),
            }
        }
        if !ended {
            return Err("manifest is incomplete (no `end` line)".into());
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_with_odd_paths_and_labels() {
        let m = Manifest {
            id: 7,
            kind: Kind::Final,
            created_ms: 1_764_050_000_000,
            fingerprint: "abc".into(),
            slots: vec![SlotEntry {
                id: "0123".into(),
                instances: 2,
                label: "aggregate by x { n: count() } 100%".into(),
            }],
            parts: vec![("0123".into(), 1, 99)],
            commits: vec![
                CommitAction::Append {
                    pending: "dir with space/.out.pending".into(),
                    target: "dir with space/out\n.jsonl".into(),
                    before: 10,
                    size: 20,
                },
                CommitAction::Rename {
                    from: "a".into(),
                    to: "".into(),
                },
            ],
            notes: vec![("0123".into(), 0, "kafka-txn a b c".into())],
        };
        assert_eq!(Manifest::parse(&m.render()), Ok(m));
        assert!(Manifest::parse("weir-checkpoint 1\nid 3\n")
            .unwrap_err()
            .contains("incomplete"));
    }
}
