//! Paths in a pipeline are relative to the pipeline file, not to the shell's current
//! directory: `file(path: "clicks.csv")` beside `p.weir` reads the CSV beside it, whatever
//! directory `weir run dir/p.weir` is started from. The CLI sets [`crate::Options::base_dir`]
//! to the file's directory and this rewrites every relative path of the checked program
//! (file sources, lookup tables, which are file sources, file sinks and `dead_letters:`) to
//! one under it. Absolute paths and object-storage URLs (`s3://bucket/key`) are left as
//! written; the embedded forms (`weir::pipeline!`,
//! build.rs) set no base, so their paths stay relative to the running program's directory.

use std::path::Path;

use crate::sema::{Program, SinkKind, SourceKind};

/// Makes every relative path of `program` relative to `base` (an absolute directory).
pub fn resolve(program: &mut Program, base: &Path) {
    let under = |path: &mut String| {
        if !path.is_empty() && Path::new(path.as_str()).is_relative() && !path.starts_with("s3://")
        {
            *path = base.join(path.as_str()).to_string_lossy().into_owned();
        }
    };
    for source in &mut program.sources {
        if let SourceKind::File { path, .. } | SourceKind::Parquet { path, .. } = &mut source.kind {
            under(path);
        }
        if let Some(path) = &mut source.dead_letters {
            under(path);
        }
    }
    for sink in &mut program.sinks {
        if let SinkKind::File { path, .. } | SinkKind::Parquet { path, .. } = &mut sink.kind {
            under(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceMap;

    fn program(text: &str) -> Program {
        let mut sources = SourceMap::new();
        let id = sources.add("p.weir", text.to_string());
        let (program, diags) = crate::check(&sources, id);
        program.unwrap_or_else(|| panic!("{diags:?}"))
    }

    #[test]
    fn relative_paths_move_under_the_base_and_absolute_ones_stay() {
        let mut p = program(
            r#"schema R { a: i64 }
source r: R = file(path: "in/r.csv", dead_letters: "/var/dead.jsonl") format csv
source s: R = stdin(dead_letters: "dead.jsonl") format json
sink r -> file(path: "out.csv") format csv
sink s -> file(path: "/tmp/s.json") format json
sink s -> stdout()
sink r -> file(path: "s3://bucket/out.jsonl") format json
"#,
        );
        resolve(&mut p, Path::new("/data/pipes"));
        let SourceKind::File { path, .. } = &p.sources[0].kind else {
            panic!("a file source")
        };
        assert_eq!(path, "/data/pipes/in/r.csv");
        assert_eq!(
            p.sources[0].dead_letters.as_deref(),
            Some("/var/dead.jsonl")
        );
        assert_eq!(
            p.sources[1].dead_letters.as_deref(),
            Some("/data/pipes/dead.jsonl")
        );
        let sinks: Vec<Option<&str>> = p
            .sinks
            .iter()
            .map(|s| match &s.kind {
                SinkKind::File { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            sinks,
            [
                Some("/data/pipes/out.csv"),
                Some("/tmp/s.json"),
                None,
                Some("s3://bucket/out.jsonl")
            ]
        );
    }
}
