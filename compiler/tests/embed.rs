//! One compiler behind every way in: the library form that `weir::pipeline!` and the build.rs
//! API generate (the two share `embed::compile_module`) is the CLI's `weir emit` output with
//! two documented differences: the runtime is named `::weir::runtime` (through the `weir`
//! facade) instead of `::weir_runtime`, and `fn main` becomes `pub fn run(args)` (plus the
//! `memory` module and the code hash, after it).

use std::path::Path;

use weir_compiler::{compile, Options, SourceMap};

const EXAMPLES: [&str; 3] = [
    "fraud/pipelines/card_velocity.weir",
    "clicks/clicks.weir",
    "nexmark/q5.weir",
];

fn read(example: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(example);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn library_form_is_the_cli_output() {
    use weir_compiler::codegen::context::{runtime_path, CRATE_RUNTIME, FACADE_RUNTIME};
    use weir_compiler::codegen::embed::Form;
    use weir_compiler::codegen::{format_file, generate_tokens};
    let (krate, facade) = (runtime_path(CRATE_RUNTIME), runtime_path(FACADE_RUNTIME));
    for example in EXAMPLES {
        let text = read(example);
        let mut sources = SourceMap::new();
        let file = sources.add(example, text.clone());
        let compiled = compile(&sources, file, &Options::default())
            .unwrap_or_else(|_| panic!("{example} compiles"));
        let (graph, info) = (&compiled.physical, &compiled.info);
        // What `weir emit` prints is the binary form.
        let binary = generate_tokens(graph, info, Form::Binary, krate.clone());
        assert_eq!(format_file(binary.clone()), compiled.rust, "{example}");
        // The library form: the same tokens up to the entry point.
        let library = generate_tokens(graph, info, Form::Library, krate.clone());
        let (binary, library) = (binary.to_string(), library.to_string());
        let main = binary.find("fn main ()").expect("binary has main");
        let run = library.find("pub fn run").expect("library has run");
        let run = library[..run].rfind("# [doc").expect("run has docs");
        assert_eq!(binary[..main], library[..run], "{example}");
        // The macro and build.rs emit it inside the module, naming the runtime through the
        // facade.
        let module = weir_compiler::build::generate(example, &text, "", "m").unwrap();
        let through_facade = generate_tokens(graph, info, Form::Library, facade.clone());
        let header = weir_compiler::embed::Header::default();
        let module_tokens = match weir_compiler::embed::compile_module(&sources, file, &header, "m")
        {
            Ok(module) => module.tokens,
            Err(_) => panic!("{example} compiles as a module"),
        };
        assert!(
            module_tokens
                .to_string()
                .contains(&through_facade.to_string()),
            "{example}"
        );
        assert!(module.contains("pub fn run(\n"), "{example}");
        assert!(!module.contains("weir_runtime"), "{example}");
    }
}

#[test]
fn generated_modules_are_deterministic() {
    for example in EXAMPLES {
        let text = read(example);
        let a = weir_compiler::build::generate(example, &text, "", "m").unwrap();
        let b = weir_compiler::build::generate(example, &text, "", "m").unwrap();
        assert_eq!(a, b, "{example}");
    }
}

/// Each sink is a field of `Outputs` named after the stream it sends; two sinks of one stream
/// are told apart by their index among the pipeline's sinks.
#[test]
fn outputs_are_named_after_the_streams_sinks_send() {
    let text = "source bids = nexmark(stream: \"bid\", events: 10)\n\
                let cheap = bids |> filter price < 10\n\
                sink bids -> stdout()\n\
                sink cheap -> stdout()\n\
                sink cheap -> checksum()\n";
    let module = weir_compiler::build::generate("outputs.weir", text, "", "m").unwrap();
    let outputs = module
        .split("pub struct Outputs")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("an Outputs struct");
    let fields: Vec<&str> = outputs
        .split("pub ")
        .skip(1)
        .filter_map(|f| f.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(fields, ["bids", "cheap_1", "cheap_2"], "{outputs}");
}
