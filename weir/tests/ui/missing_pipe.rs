weir::pipeline! {
    mod p;
    schema Click { page: string, ms: i64 }
    source clicks: Click = file(path: "c.csv") format csv
    let slow = clicks filter ms > 100
    sink slow -> stdout()
}

fn main() {}
