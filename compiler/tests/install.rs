//! `weir` away from its source checkout, as `cargo install --path compiler` puts it: where the
//! build cache lives (XDG, `WEIR_CACHE_DIR`, `--cache-dir`), that paths in a pipeline are
//! relative to the pipeline file, that two pipelines of the same file name never share a
//! crate, and that an installed `weir` builds against the runtime it embeds.
//!
//! An installed `weir` is this test's binary linked (or copied) outside the checkout's
//! `target/`: the driver takes the checkout's runtime and `target/weir` only when the
//! program runs from that checkout's `target/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use weir_compiler::driver::path_key;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace")
}

/// The `weir` binary placed in `dir`, outside the checkout: a hard link, or a copy.
fn installed(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin folder");
    let weir = bin.join("weir");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_weir"), &weir).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_weir"), &weir).expect("copy weir");
    }
    weir
}

/// Runs `weir` in `cwd` with only the environment variables given, and what cargo needs
/// (PATH, and where cargo and rustup keep their files, which default to folders of HOME).
fn weir(program: &Path, cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.current_dir(cwd).args(args).env_clear();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for (var, default) in [
        ("PATH", None),
        ("CARGO_HOME", home.as_ref().map(|h| h.join(".cargo"))),
        ("RUSTUP_HOME", home.as_ref().map(|h| h.join(".rustup"))),
        ("RUSTUP_TOOLCHAIN", None),
    ] {
        let default = default.filter(|d| d.exists()).map(PathBuf::into_os_string);
        if let Some(value) = std::env::var_os(var).or(default) {
            cmd.env(var, value);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("weir runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_cache_is_in_the_user_cache_dir_unless_told_otherwise() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let weir_bin = installed(tmp.path());
    let cwd = tmp.path();
    let dir = |env: &[(&str, &str)], args: &[&str]| {
        let mut all = vec!["cache", "dir"];
        all.extend(args);
        let out = weir(&weir_bin, cwd, env, &all);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(
        dir(&[("XDG_CACHE_HOME", "/xdg"), ("HOME", "/home/u")], &[]),
        "/xdg/weir"
    );
    // A relative XDG_CACHE_HOME is ignored, as the XDG rules say.
    assert_eq!(
        dir(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/home/u")], &[]),
        "/home/u/.cache/weir"
    );
    assert_eq!(dir(&[("HOME", "/home/u")], &[]), "/home/u/.cache/weir");
    assert_eq!(
        dir(&[("HOME", "/home/u"), ("WEIR_CACHE_DIR", "/c")], &[]),
        "/c"
    );
    // `--cache-dir` wins, made absolute against the current directory.
    let project = cwd.canonicalize().expect("canonical").join(".weir");
    assert_eq!(
        dir(
            &[("HOME", "/home/u"), ("WEIR_CACHE_DIR", "/c")],
            &["--cache-dir", ".weir"]
        ),
        project.display().to_string()
    );
    // No place at all: an error that says what to set, not a panic.
    let out = weir(&weir_bin, cwd, &[], &["cache", "dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("set WEIR_CACHE_DIR or pass --cache-dir"),
        "{}",
        stderr(&out)
    );

    // The binary in the checkout's target/ keeps today's cache, target/weir.
    let out = weir(
        Path::new(env!("CARGO_BIN_EXE_weir")),
        cwd,
        &[("XDG_CACHE_HOME", "/xdg")],
        &["cache", "dir"],
    );
    assert_eq!(
        stdout(&out),
        workspace().join("target/weir").display().to_string()
    );
}

#[test]
fn cache_clean_deletes_only_weirs_folders() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cache = tmp.path().join("cache");
    for sub in ["crates/p_1", "bin", "target/release", "runtime/abc", "mine"] {
        std::fs::create_dir_all(cache.join(sub)).expect("folder");
    }
    let out = weir(
        Path::new(env!("CARGO_BIN_EXE_weir")),
        tmp.path(),
        &[],
        &["cache", "clean", "--cache-dir", "cache"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let left: Vec<String> = std::fs::read_dir(&cache)
        .expect("cache still there")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["mine"]);
}

/// A pipeline reading `in.csv` and writing `out/rows.json`, both beside it.
const RELATIVE: &str = "schema R { a: i64, b: string }
source r: R = file(path: \"in.csv\", dead_letters: \"dead.jsonl\") format csv(header: true)
sink r |> filter a >= 2 -> file(path: \"out/rows.json\") format json
";

fn write_pipeline(dir: &Path, name: &str, rows: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("folder");
    std::fs::write(dir.join("in.csv"), format!("a,b\n{rows}")).expect("csv");
    let file = dir.join(name);
    std::fs::write(&file, RELATIVE).expect("pipeline");
    file
}

#[test]
fn paths_in_a_pipeline_are_relative_to_its_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cwd = tmp.path().join("shell");
    std::fs::create_dir_all(&cwd).expect("cwd");
    let pipes = tmp.path().join("pipes");
    write_pipeline(
        &pipes,
        "relative_paths.weir",
        "1,x\n2,y\nnot a number,z\n3,w\n",
    );
    let out = weir(
        Path::new(env!("CARGO_BIN_EXE_weir")),
        &cwd,
        &[],
        &["run", "../pipes/relative_paths.weir", "--", "--quiet"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = std::fs::read_to_string(pipes.join("out/rows.json")).expect("output beside it");
    assert_eq!(
        rows, "{\"a\":2,\"b\":\"y\"}\n{\"a\":3,\"b\":\"w\"}\n",
        "the rows of pipes/in.csv"
    );
    let dead = std::fs::read_to_string(pipes.join("dead.jsonl")).expect("dead letters");
    assert!(dead.contains("not a number"), "{dead}");
    // Nothing landed in the shell's directory.
    let in_cwd: Vec<_> = std::fs::read_dir(&cwd).expect("cwd").collect();
    assert!(in_cwd.is_empty(), "{in_cwd:?}");
}

#[test]
fn pipelines_of_the_same_name_in_two_folders_build_their_own_crates() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let a = write_pipeline(&tmp.path().join("a"), "same_name.weir", "2,from a\n");
    let b = write_pipeline(
        &tmp.path().join("b"),
        "same_name.weir",
        "5,from b\n7,from b\n",
    );
    for (file, want) in [
        (&a, "{\"a\":2,\"b\":\"from a\"}\n"),
        (
            &b,
            "{\"a\":5,\"b\":\"from b\"}\n{\"a\":7,\"b\":\"from b\"}\n",
        ),
        (&a, "{\"a\":2,\"b\":\"from a\"}\n"),
    ] {
        let out = weir(
            Path::new(env!("CARGO_BIN_EXE_weir")),
            tmp.path(),
            &[],
            &["run", &file.display().to_string(), "--", "--quiet"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let rows = file.parent().expect("folder").join("out/rows.json");
        assert_eq!(std::fs::read_to_string(&rows).expect("rows"), want);
    }
    // Each file has its crate, named after the file and its path.
    let crates = workspace().join("target/weir/crates");
    for file in [&a, &b] {
        let dir = crates.join(format!("same_name_{}", path_key(file)));
        assert!(
            dir.join("src/main.rs").is_file(),
            "no crate {}",
            dir.display()
        );
    }
    assert_ne!(path_key(&a), path_key(&b));
}

#[test]
fn an_installed_weir_builds_against_its_embedded_runtime() {
    // The cache stays in the checkout's target/ between runs, so that the runtime compiles
    // once per machine (and once more per change of the runtime), not on every test run.
    let cache = workspace().join("target/weir-installed");
    let tmp = tempfile::tempdir().expect("temp dir");
    let weir_bin = installed(tmp.path());
    let pipes = tmp.path().join("pipes");
    let file = write_pipeline(&pipes, "installed.weir", "1,x\n4,y\n");
    let out = weir(
        &weir_bin,
        tmp.path(),
        &[("HOME", "/nonexistent")],
        &[
            "run",
            "--dev",
            "--cache-dir",
            &cache.display().to_string(),
            &file.display().to_string(),
            "--",
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = std::fs::read_to_string(pipes.join("out/rows.json")).expect("rows");
    assert_eq!(rows, "{\"a\":4,\"b\":\"y\"}\n");
    // The crate depends on the unpacked copy, not on the checkout's runtime/.
    let crate_dir = cache.join(format!("crates/installed_{}", path_key(&file)));
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("manifest");
    let runtime = cache
        .join("runtime")
        .join(weir_compiler::driver::RUNTIME_FINGERPRINT);
    assert!(
        manifest.contains(&format!("path = \"{}\"", runtime.display())),
        "{manifest}"
    );
    for (name, contents) in weir_compiler::driver::embedded() {
        let unpacked = std::fs::read(runtime.join(name)).expect("unpacked file");
        assert!(
            unpacked == *contents,
            "{name} in {} differs from the embedded copy",
            runtime.display()
        );
    }
    assert!(
        weir_compiler::driver::embedded()
            .iter()
            .any(|(name, _)| *name == "src/lib.rs"),
        "the runtime's sources are embedded"
    );
}

/// The embedded runtime holds the web UI's assets too (the HTTP endpoint compiles them in
/// with `include_str!`): without them an installed `weir` could not build `--http` binaries.
#[test]
fn the_web_uis_assets_are_embedded() {
    for asset in ["src/ui/index.html", "src/ui/ui.js", "src/ui/ui.css"] {
        assert!(
            weir_compiler::driver::embedded()
                .iter()
                .any(|(name, _)| *name == asset),
            "{asset} is not embedded"
        );
    }
}
