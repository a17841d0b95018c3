weir::pipeline! {
    mod p;
    schema Click { page: string, ms: i64 }
    source clicks: Click = file(path: "c.csv") format csv
}

fn main() {}
