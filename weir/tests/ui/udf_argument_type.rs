pub fn risk(amount: f64) -> f64 {
    amount
}

weir::pipeline! {
    mod p;
    fn risk(amount: f64) -> f64 = crate::risk;
    schema Click { page: string, ms: i64 }
    source clicks: Click = file(path: "c.csv") format csv
    sink clicks |> select { page, r: risk(page) } -> stdout()
}

fn main() {}
