#[derive(Clone, weir::Record)]
pub struct Click {
    pub page: String,
    pub ms: f64,
}

weir::pipeline! {
    mod p;
    use crate::Click;
    schema Click { page: string, ms: i64 }
    source clicks: Click = file(path: "c.csv") format csv
    sink clicks -> stdout()
}

fn main() {}
