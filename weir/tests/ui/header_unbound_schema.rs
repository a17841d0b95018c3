pub struct Tx;

weir::pipeline! {
    mod p;
    use crate::Tx;
    schema Click { page: string, ms: i64 }
    source clicks: Click = file(path: "c.csv") format csv
    sink clicks -> stdout()
}

fn main() {}
