//! Fingerprints the runtime's sources so that cached pipeline binaries are rebuilt when the
//! runtime they link to changes (see `driver.rs`).

use std::path::Path;

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            visit(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs" || e == "toml") {
            files.push(path);
        }
    }
}

fn main() {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime");
    let mut files = Vec::new();
    visit(&runtime, &mut files);
    files.sort();
    // Every file, not the folder: cargo compares a folder's own mtime, which does not change
    // when a file inside it is edited. The folders catch added and removed files.
    println!("cargo:rerun-if-changed={}", runtime.display());
    println!("cargo:rerun-if-changed={}", runtime.join("src").display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    // FNV-1a over paths and contents: stable, dependency-free.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in &files {
        let rel = file.strip_prefix(&runtime).unwrap_or(file);
        for byte in rel
            .to_string_lossy()
            .bytes()
            .chain(std::fs::read(file).unwrap_or_default())
        {
            hash ^= byte as u64;
            hash = hash.wrapping_mul(0x100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=WEIR_RUNTIME_FINGERPRINT={hash:016x}");
}
