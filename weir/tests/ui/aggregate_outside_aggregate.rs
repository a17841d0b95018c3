weir::pipeline! {
    mod p;
    aggregate fn spread(x: f64) -> f64 = crate::Spread;
    schema Click { page: string, ms: f64 }
    source clicks: Click = file(path: "c.csv") format csv
    sink clicks |> select { page, s: spread(ms) } -> stdout()
}

fn main() {}
