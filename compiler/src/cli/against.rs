//! `weir check --against CHECKPOINT_DIR FILE`: whether a pipeline can restore the checkpoint
//! a restart in that folder would resume from, without building or running anything.
//!
//! The participants come from the compiler exactly as the generated `build` declares them
//! (`codegen::state::StatePlan::participants`); the checkpoint is chosen and compared by the
//! runtime's own code (`checkpoint::inspect`, `checkpoint::compat::check`), so the verdict is
//! the one the binary gives when it starts on that folder. What it cannot know: the
//! parallelism of the next run (taken as the checkpoint's) and whether the external commits
//! the checkpoint notes were made (verified by the binary at start).

use std::path::Path;

use weir_compiler::codegen::state;
use weir_compiler::Compiled;
use weir_runtime::checkpoint::manifest::{Kind, SlotEntry};
use weir_runtime::checkpoint::{compat, inspect, Inspection};

/// Compares `compiled` with the checkpoint a restart in `dir` would use. `Ok` holds the report
/// of a checkpoint it restores; `Err` says why it cannot.
pub fn verdict(compiled: &Compiled, file: &Path, dir: &Path) -> Result<String, String> {
    let Inspection { manifest, damaged } = inspect(dir)?;
    let mut report = String::new();
    for (id, why) in &damaged {
        report.push_str(&format!(
            "note: checkpoint {id} is damaged ({why}); a restart falls back over it\n"
        ));
    }
    let Some(m) = manifest else {
        return Err(format!(
            "{report}{} holds no complete checkpoint: there is nothing to restore (a run there \
             starts afresh)",
            dir.display()
        ));
    };
    if m.kind == Kind::Final {
        return Err(format!(
            "{report}checkpoint {} in {} is the final one of a run that finished: a run there \
             has nothing to resume and stops at once",
            m.id,
            dir.display()
        ));
    }
    let plan = state::plan(&compiled.physical, &compiled.info.topo_order);
    // Instance counts come from the next run's command line: assume the checkpoint's.
    let slots: Vec<SlotEntry> = plan
        .participants(&compiled.physical)
        .into_iter()
        .map(|p| SlotEntry {
            instances: m
                .slots
                .iter()
                .find(|s| s.id == p.id)
                .map_or(1, |s| s.instances),
            id: p.id,
            label: p.label,
            shape: p.shape,
        })
        .collect();
    compat::check(&m, &slots, &plan.fingerprint, &dir.display().to_string())
        .map_err(|e| format!("{report}{e}"))?;
    report.push_str(&format!(
        "checkpoint {} in {} can be restored by {}: the state of its {} operators fits\n",
        m.id,
        dir.display(),
        file.display(),
        m.slots.len()
    ));
    let parallel: Vec<String> = m
        .slots
        .iter()
        .filter(|s| s.instances != 1)
        .map(|s| format!("  `{}`: {} instances", s.label, s.instances))
        .collect();
    if !parallel.is_empty() {
        report.push_str(
            "  run it with the same --parallelism/--generators as the run that took it:\n",
        );
        report.push_str(&parallel.join("\n"));
        report.push('\n');
    }
    Ok(report)
}
