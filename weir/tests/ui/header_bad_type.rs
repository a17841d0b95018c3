weir::pipeline! {
    mod p;
    fn risk(amount: float) -> f64 = crate::risk;
    schema Click { page: string, ms: i64 }
    source clicks: Click = file(path: "c.csv") format csv
    sink clicks -> stdout()
}

fn main() {}
