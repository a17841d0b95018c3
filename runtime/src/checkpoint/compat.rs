//! Whether a checkpoint's state fits the plan of the binary that restores it.
//!
//! Every participant's id is a hash of its shape (the parameters that decide what its state
//! means, written by the compiler's `codegen::state`), so the plans fit when the ids are the
//! same. When they are not, the old and new participants are paired (same kind and pipeline
//! text first, then same kind in order) and the message names, for each pair, the shape lines
//! that changed; participants without a partner are gone or new. Instance counts come from
//! the command line and are compared on their own.

use super::manifest::{Manifest, SlotEntry};

/// A label without its `opN ` prefix (operator numbers change when a pipeline changes).
fn text(label: &str) -> &str {
    match label.split_once(' ') {
        Some((first, rest)) if first.starts_with("op") => rest,
        _ => label,
    }
}

fn shape_lines(shape: &str) -> Vec<(&str, &str)> {
    shape
        .lines()
        .map(|l| l.split_once(": ").unwrap_or((l, "")))
        .collect()
}

/// What differs between two shapes of one operator, as `name: old → new` phrases.
fn changes(old: &str, new: &str) -> Vec<String> {
    let (old, new) = (shape_lines(old), shape_lines(new));
    let mut out = Vec::new();
    for (name, value) in &new {
        match old.iter().find(|(n, _)| n == name) {
            Some((_, was)) if was == value => {}
            Some((_, was)) => out.push(format!("{name} was `{was}`, now `{value}`")),
            None => out.push(format!("{name} is new: `{value}`")),
        }
    }
    for (name, was) in &old {
        if !new.iter().any(|(n, _)| n == name) {
            out.push(format!("{name} `{was}` is gone"));
        }
    }
    if out.is_empty() {
        out.push("the same operator, fed differently".into());
    }
    out
}

/// The lines that explain why `old` (a checkpoint's participants) does not fit `new`.
fn differences(old: &[SlotEntry], new: &[SlotEntry]) -> Vec<String> {
    let mut unmatched_old: Vec<&SlotEntry> = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.id == o.id))
        .collect();
    let unmatched_new: Vec<&SlotEntry> = new
        .iter()
        .filter(|n| !old.iter().any(|o| o.id == n.id))
        .collect();
    let mut lines = Vec::new();
    for n in unmatched_new {
        let partner = unmatched_old
            .iter()
            .position(|o| o.kind() == n.kind() && text(&o.label) == text(&n.label))
            .or_else(|| unmatched_old.iter().position(|o| o.kind() == n.kind()));
        match partner {
            Some(i) => {
                let o = unmatched_old.remove(i);
                lines.push(format!(
                    "  `{}`: {}",
                    n.label,
                    changes(&o.shape, &n.shape).join("; ")
                ));
            }
            None => lines.push(format!(
                "  + `{}` is new: the checkpoint holds no state for it",
                n.label
            )),
        }
    }
    for o in unmatched_old {
        lines.push(format!(
            "  - `{}` is gone: its state has no place in this pipeline",
            o.label
        ));
    }
    if lines.is_empty() {
        lines.push("  the operators are the same but their order or wiring changed".into());
    }
    lines
}

/// Refuses to restore `m` into a binary whose participants are `new` unless they fit.
pub fn check(m: &Manifest, new: &[SlotEntry], fingerprint: &str, dir: &str) -> Result<(), String> {
    if m.fingerprint != fingerprint {
        return Err(format!(
            "checkpoint {} in {} was taken by a different pipeline; its state does not fit \
             this one:\n{}\n  to start over, remove the checkpoint directory (output already \
             committed stays)",
            m.id,
            dir,
            differences(&m.slots, new).join("\n")
        ));
    }
    // Same plan, but instance counts come from the command line.
    let mut changed = Vec::new();
    for s in new {
        if let Some(old) = m.slots.iter().find(|o| o.id == s.id) {
            if old.instances != s.instances {
                changed.push(format!(
                    "  `{}` ran {} instance(s), now {}",
                    s.label, old.instances, s.instances
                ));
            }
        }
    }
    if !changed.is_empty() {
        return Err(format!(
            "checkpoint {} in {} was taken with other parallelism:\n{}\n  run with the same \
             --parallelism/--generators (state is partitioned by instance)",
            m.id,
            dir,
            changed.join("\n")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(id: &str, label: &str, shape: &str) -> SlotEntry {
        SlotEntry {
            id: id.into(),
            instances: 1,
            label: label.into(),
            shape: shape.into(),
        }
    }

    #[test]
    fn a_changed_operator_is_named_with_what_changed() {
        let old = [
            slot("s", "op0 source b: file(b.jsonl)", "operator: source\n"),
            slot(
                "a1",
                "op2 aggregate { n: count() }",
                "operator: aggregate\nwindow: tumble(5s)\nlateness: 0s\n",
            ),
        ];
        let new = [
            slot("s", "op0 source b: file(b.jsonl)", "operator: source\n"),
            slot(
                "a2",
                "op3 aggregate { n: count() }",
                "operator: aggregate\nwindow: tumble(10s)\nlateness: 0s\n",
            ),
        ];
        let lines = differences(&old, &new);
        assert_eq!(
            lines,
            ["  `op3 aggregate { n: count() }`: window was `tumble(5s)`, now `tumble(10s)`"]
        );
    }

    #[test]
    fn operators_without_a_partner_are_new_or_gone() {
        let old = [slot("j", "op4 join x", "operator: join\n")];
        let new = [slot("t", "op4 top 3 by k", "operator: top\n")];
        let lines = differences(&old, &new);
        assert!(lines[0].contains("+ `op4 top 3 by k` is new"), "{lines:?}");
        assert!(lines[1].contains("- `op4 join x` is gone"), "{lines:?}");
    }
}
