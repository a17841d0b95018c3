#[derive(weir::Record)]
pub enum Click {
    A,
}

fn main() {}
