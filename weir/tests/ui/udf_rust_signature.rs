// The pipeline declares `risk(i64) -> f64`; the Rust function takes an f64.
pub fn risk(amount: f64) -> f64 {
    amount
}

weir::pipeline! {
    mod p;
    fn risk(amount: i64) -> f64 = crate::risk;
    schema Click { page: string, ms: i64 }
    source clicks: Click = file(path: "c.csv") format csv
    sink clicks |> select { page, r: risk(ms) } -> stdout()
}

fn main() {}
