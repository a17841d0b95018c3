weir::pipeline!(file = "pipelines/nowhere.weir");

fn main() {}
