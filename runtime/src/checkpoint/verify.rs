//! External commits a checkpoint notes (a Kafka transaction, say): the verifiers that say
//! whether one happened, so that a restore falls back to an older checkpoint when it did not.

use std::sync::Mutex;

use super::manifest::Manifest;

/// Says whether the external commit a note describes happened for `checkpoint` (e.g. a Kafka
/// transaction); a restore falls back to an older checkpoint when it did not.
pub type Verifier = fn(note: &str, checkpoint: u64) -> Result<Verdict, String>;

/// What a [`Verifier`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The commit of the checkpoint happened.
    Committed,
    /// The marker is behind: the commit of the checkpoint never happened.
    Behind,
    /// No marker at all: nothing was ever committed, or the marker is gone (expired offsets,
    /// other brokers).
    NoMarker,
}

static VERIFIERS: Mutex<Vec<(&'static str, Verifier)>> = Mutex::new(Vec::new());

/// Registers the verifier of notes that start with `prefix` (call before `install`).
pub fn register_verifier(prefix: &'static str, verifier: Verifier) {
    VERIFIERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((prefix, verifier));
}

/// The verdict on every note of `m` (each distinct note is asked once): the worst of them.
pub(super) fn externally_committed(m: &Manifest) -> Result<Verdict, String> {
    let verifiers = VERIFIERS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut asked: Vec<&str> = Vec::new();
    let mut verdict = Verdict::Committed;
    for (slot, instance, note) in &m.notes {
        if asked.contains(&note.as_str()) {
            continue;
        }
        asked.push(note);
        let Some((_, verify)) = verifiers.iter().find(|(p, _)| note.starts_with(p)) else {
            return Err(format!(
                "checkpoint {} of slot {slot}-{instance} notes `{note}`, which this binary cannot check",
                m.id
            ));
        };
        match verify(note, m.id)? {
            Verdict::Committed => {}
            Verdict::Behind => verdict = Verdict::Behind,
            Verdict::NoMarker => return Ok(Verdict::NoMarker),
        }
    }
    Ok(verdict)
}
