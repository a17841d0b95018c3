//! The manifest: a small text file that makes a checkpoint complete. It names the plan that
//! took the checkpoint, every part (one per operator instance that holds state or a position)
//! and the commit actions that publish the sinks' output. It is written to a temporary name,
//! synced and renamed into place, so a checkpoint either has a whole manifest or none.
//!
//! ```text
//! weir-checkpoint 2
//! id 12
//! kind checkpoint            (or `final`: the run finished and committed everything)
//! created_ms 1764050000000
//! fingerprint 3f0c…
//! slot <id> <instances> <label> <shape>
//! part <id> <instance> <bytes> <xxh3>
//! link <id> <instance> <checkpoint> <bytes> <xxh3>   (incremental: see below)
//! append <before> <size> <pending> <target>
//! rename <from> <to>
//! note <id> <instance> <text>   (for commits outside weir: e.g. a Kafka transaction)
//! checksum <xxh3 of every byte before this line>
//! end
//! ```
//! A `part` line names the state file this checkpoint wrote for an instance. When that file
//! is a delta (what changed since the instance's previous checkpoint, see
//! [`super::delta`]), the `link` lines after it name the files it builds on, oldest first:
//! a full part, then the deltas after it, each in the folder of the checkpoint that wrote
//! it. Restoring reads the links and then the part, in order. A manifest with links starts
//! `weir-checkpoint 3` (a weir that cannot read deltas refuses it as another version's).
//!
//! Fields are separated by single spaces; paths, labels and shapes are percent-escaped.
//! Every state file's checksum is in its `part` line, and the manifest's own in its
//! `checksum` line, so a flipped bit anywhere in a checkpoint is found before it is used
//! (see `checkpoint::recover`).

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
    /// What shapes its state: `name: value` lines, the first `operator: <kind>` (see the
    /// compiler's `codegen::state`).
    pub shape: String,
}

impl SlotEntry {
    /// The operator kind, from the shape's first line (`source`, `aggregate`, `join`, ...).
    pub fn kind(&self) -> &str {
        self.shape
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("operator: "))
            .unwrap_or("")
    }

    pub fn is_source(&self) -> bool {
        self.kind() == "source"
    }
}

/// One state file of a checkpoint: an instance of a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartEntry {
    pub slot: String,
    pub instance: u32,
    pub bytes: u64,
    /// xxh3 of the file's bytes.
    pub checksum: u64,
    /// When the file is a delta: the files it builds on, oldest (a full part) first, each
    /// in an earlier checkpoint's folder. Empty for a full part.
    pub links: Vec<Link>,
}

/// One state file of an instance's chain, written by an earlier checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The checkpoint whose folder holds the file.
    pub checkpoint: u64,
    pub bytes: u64,
    pub checksum: u64,
}

impl PartEntry {
    /// Whether this checkpoint's file is a delta on earlier ones.
    pub fn is_delta(&self) -> bool {
        !self.links.is_empty()
    }
}

/// The checksum weir keeps of state bytes and manifests.
pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

const VERSION_LINE: &str = "weir-checkpoint 2";
/// The version of manifests with `link` lines (incremental checkpoints).
const VERSION_LINE_LINKS: &str = "weir-checkpoint 3";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub id: u64,
    pub kind: Kind,
    pub created_ms: i64,
    pub fingerprint: String,
    pub slots: Vec<SlotEntry>,
    pub parts: Vec<PartEntry>,
    pub commits: Vec<CommitAction>,
    /// (slot id, instance, text): what a sink committed elsewhere, checked before a restore
    /// trusts this checkpoint (see `checkpoint::Verifiers`).
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
        let version = if self.parts.iter().any(PartEntry::is_delta) {
            VERSION_LINE_LINKS
        } else {
            VERSION_LINE
        };
        let mut out = format!("{version}\n");
        out.push_str(&format!("id {}\n", self.id));
        out.push_str(match self.kind {
            Kind::Checkpoint => "kind checkpoint\n",
            Kind::Final => "kind final\n",
        });
        out.push_str(&format!("created_ms {}\n", self.created_ms));
        out.push_str(&format!("fingerprint {}\n", escape(&self.fingerprint)));
        for s in &self.slots {
            out.push_str(&format!(
                "slot {} {} {} {}\n",
                escape(&s.id),
                s.instances,
                escape(&s.label),
                escape(&s.shape)
            ));
        }
        for p in &self.parts {
            out.push_str(&format!(
                "part {} {} {} {:016x}\n",
                escape(&p.slot),
                p.instance,
                p.bytes,
                p.checksum
            ));
            for l in &p.links {
                out.push_str(&format!(
                    "link {} {} {} {} {:016x}\n",
                    escape(&p.slot),
                    p.instance,
                    l.checkpoint,
                    l.bytes,
                    l.checksum
                ));
            }
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
        let sum = checksum(out.as_bytes());
        out.push_str(&format!("checksum {sum:016x}\nend\n"));
        out
    }

    /// Reads a manifest, checking its checksum first: a damaged one is an error, never a
    /// manifest that says something else.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        match text.lines().next() {
            Some(VERSION_LINE) | Some(VERSION_LINE_LINKS) => {}
            Some(line) if line.starts_with("weir-checkpoint ") => {
                return Err(format!(
                    "written by another version of weir (`{line}`; this one reads `{VERSION_LINE}`)"
                ))
            }
            _ => return Err("not a weir checkpoint manifest".into()),
        }
        let Some(at) = text.rfind("\nchecksum ") else {
            return Err("manifest is incomplete (no checksum)".into());
        };
        let body = &text[..at + 1];
        let tail = &text[at + 1..];
        let written = tail
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("checksum "));
        if written != Some(format!("{:016x}", checksum(body.as_bytes())).as_str()) {
            return Err("manifest is damaged (its checksum does not match)".into());
        }
        if tail.lines().nth(1) != Some("end") || tail.lines().count() != 2 {
            return Err("manifest is incomplete (no `end` line after its checksum)".into());
        }
        let mut lines = body.lines();
        lines.next();
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
                ["slot", id, n, label, shape] => m.slots.push(SlotEntry {
                    id: unescape(id)?,
                    instances: num(n)? as usize,
                    label: unescape(label)?,
                    shape: unescape(shape)?,
                }),
                ["part", id, i, b, sum] => m.parts.push(PartEntry {
                    slot: unescape(id)?,
                    instance: num(i)? as u32,
                    bytes: num(b)?,
                    checksum: u64::from_str_radix(sum, 16).map_err(|_| bad("not a checksum"))?,
                    links: Vec::new(),
                }),
                ["link", id, i, chk, b, sum] => {
                    let (slot, instance) = (unescape(id)?, num(i)? as u32);
                    let link = Link {
                        checkpoint: num(chk)?,
                        bytes: num(b)?,
                        checksum: u64::from_str_radix(sum, 16)
                            .map_err(|_| bad("not a checksum"))?,
                    };
                    match m.parts.last_mut() {
                        Some(p) if p.slot == slot && p.instance == instance => p.links.push(link),
                        _ => return Err(bad("a link that does not follow its part")),
                    }
                }
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
                _ => return Err(bad("unknown line")),
            }
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
                shape: "operator: aggregate\nwindow: tumble(5s)\n".into(),
            }],
            parts: vec![PartEntry {
                slot: "0123".into(),
                instance: 1,
                bytes: 99,
                checksum: 0xdead_beef,
                links: Vec::new(),
            }],
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
        assert_eq!(Manifest::parse(&m.render()), Ok(m.clone()));
        assert!(Manifest::parse("weir-checkpoint 2\nid 3\n")
            .unwrap_err()
            .contains("incomplete"));
        assert!(Manifest::parse("weir-checkpoint 1\nid 3\nend\n")
            .unwrap_err()
            .contains("another version"));
        // Cut short after its checksum line.
        let text = m.render();
        assert!(Manifest::parse(text.strip_suffix("end\n").unwrap())
            .unwrap_err()
            .contains("incomplete"));
    }

    /// Every single-bit flip of a manifest is refused (never read as another manifest).
    #[test]
    fn every_flipped_bit_of_a_manifest_is_caught() {
        let m = Manifest {
            id: 12,
            kind: Kind::Checkpoint,
            created_ms: 1_764_050_000_000,
            fingerprint: "3f0c".into(),
            slots: vec![SlotEntry {
                id: "ab".into(),
                instances: 1,
                label: "op1 source s: file(in.jsonl)".into(),
                shape: "operator: source\n".into(),
            }],
            parts: vec![PartEntry {
                slot: "ab".into(),
                instance: 0,
                bytes: 32,
                checksum: 7,
                links: vec![
                    Link {
                        checkpoint: 3,
                        bytes: 900,
                        checksum: 11,
                    },
                    Link {
                        checkpoint: 9,
                        bytes: 40,
                        checksum: 12,
                    },
                ],
            }],
            commits: vec![CommitAction::Append {
                pending: "p".into(),
                target: "out.jsonl".into(),
                before: 100,
                size: 20,
            }],
            notes: Vec::new(),
        };
        assert!(m.render().starts_with("weir-checkpoint 3\n"));
        assert_eq!(Manifest::parse(&m.render()), Ok(m.clone()));
        let text = m.render().into_bytes();
        for bit in 0..text.len() * 8 {
            let mut flipped = text.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            if let Ok(s) = std::str::from_utf8(&flipped) {
                assert!(Manifest::parse(s).is_err(), "bit {bit} went unnoticed");
            }
        }
    }
}
