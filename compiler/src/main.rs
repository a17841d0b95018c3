//! The `weir` command line: a thin shell over the compiler library.
//! `check`, `explain`, `emit`, `build`, `run` and `bench`. Only this binary touches the file
//! system for pipelines and uses `anyhow`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
