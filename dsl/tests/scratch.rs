#[test]
fn timing() {
    let text = std::fs::read_to_string("/tmp/example.weir").unwrap();
    let t = std::time::Instant::now();
    for _ in 0..2000 {
        let _ = weir_dsl::parse(weir_dsl::FileId(0), &text);
    }
    eprintln!("per parse: {:?}", t.elapsed() / 2000);
}
