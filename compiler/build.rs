//! Fingerprints the runtime's sources so that cached pipeline binaries are rebuilt when the
//! runtime they link to changes (see `driver.rs`), and embeds them, with the workspace's
//! `Cargo.lock`, so that an installed `weir` builds pipelines without the source checkout
//! (`driver::embedded`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn visit(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            visit(&path, files);
        } else if path
            .extension()
            // Sources, manifest, and the web UI's assets (`runtime/src/ui/`, which the HTTP
            // endpoint compiles in with `include_str!`).
            .is_some_and(|e| matches!(e.to_str(), Some("rs" | "toml" | "html" | "js" | "css")))
        {
            files.push(path);
        }
    }
}

fn main() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runtime = manifest_dir.join("../runtime");
    let lockfile = manifest_dir.join("../Cargo.lock");
    let mut files = Vec::new();
    visit(&runtime, &mut files);
    files.sort();
    // Every file, not the folder: cargo compares a folder's own mtime, which does not change
    // when a file inside it is edited. The folders catch added and removed files.
    println!("cargo:rerun-if-changed={}", runtime.display());
    println!("cargo:rerun-if-changed={}", runtime.join("src").display());
    println!("cargo:rerun-if-changed={}", lockfile.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    // The embedded copy is built on its own, outside the workspace: its manifest cannot
    // inherit from the workspace's.
    let manifest = std::fs::read_to_string(runtime.join("Cargo.toml")).unwrap_or_default();
    if manifest.contains("workspace = true") || manifest.contains(".workspace") {
        panic!(
            "runtime/Cargo.toml must not inherit from the workspace (`.workspace = true`): \
             weir embeds it and builds it outside the checkout; write the values out"
        );
    }
    // FNV-1a over paths and contents: stable, dependency-free.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut embedded = String::from("&[\n");
    for file in &files {
        let rel = file.strip_prefix(&runtime).unwrap_or(file);
        let rel = rel.to_string_lossy().replace('\\', "/");
        for byte in rel.bytes().chain(std::fs::read(file).unwrap_or_default()) {
            hash ^= byte as u64;
            hash = hash.wrapping_mul(0x100_0000_01b3);
        }
        let absolute = file.canonicalize().unwrap_or_else(|_| file.clone());
        writeln!(
            embedded,
            "    ({rel:?}, include_bytes!({:?}) as &[u8]),",
            absolute.display().to_string()
        )
        .unwrap();
    }
    embedded.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("runtime_files.rs"), embedded).expect("OUT_DIR is writable");
    let lock = lockfile.canonicalize().unwrap_or(lockfile);
    std::fs::write(
        out.join("runtime_lock.rs"),
        format!("include_str!({:?})", lock.display().to_string()),
    )
    .expect("OUT_DIR is writable");
    println!("cargo:rustc-env=WEIR_RUNTIME_FINGERPRINT={hash:016x}");
}
