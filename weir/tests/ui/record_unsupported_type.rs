#[derive(weir::Record)]
pub struct Click {
    pub page: String,
    pub tags: Vec<String>,
    pub ms: u8,
}

fn main() {}
