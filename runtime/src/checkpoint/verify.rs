//! External commits a checkpoint notes (a Kafka transaction, say): the verifiers that say
//! whether one happened, so that a restore falls back to an older checkpoint when it did not.

use std::sync::Arc;

use super::manifest::Manifest;

/// Says whether the external commit a note describes happened for `checkpoint` (e.g. a Kafka
/// transaction); a restore falls back to an older checkpoint when it did not.
pub type Verifier = Arc<dyn Fn(&str, u64) -> Result<Verdict, String> + Send + Sync>;

/// The verifiers of one run, each for the notes that start with its prefix. A run's own
/// (part of its [`Config`](super::Config)): what a verifier needs (the Kafka properties of the
/// run) differs from run to run.
#[derive(Clone, Default)]
pub struct Verifiers(Vec<(&'static str, Verifier)>);

impl Verifiers {
    /// Adds the verifier of notes that start with `prefix`.
    pub fn add(
        &mut self,
        prefix: &'static str,
        verifier: impl Fn(&str, u64) -> Result<Verdict, String> + Send + Sync + 'static,
    ) {
        self.0.push((prefix, Arc::new(verifier)));
    }

    /// The verdict on every note of `m` (each distinct note is asked once): the worst of
    /// them.
    pub(super) fn externally_committed(&self, m: &Manifest) -> Result<Verdict, String> {
        let mut asked: Vec<&str> = Vec::new();
        let mut verdict = Verdict::Committed;
        for (slot, instance, note) in &m.notes {
            if asked.contains(&note.as_str()) {
                continue;
            }
            asked.push(note);
            let Some((_, verify)) = self.0.iter().find(|(p, _)| note.starts_with(p)) else {
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
}

impl std::fmt::Debug for Verifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(p, _)| p))
            .finish()
    }
}

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
