weir::pipeline! {
    mod p;
    schema Click { page: string, ms: i64 }
    source clicks: Click = file(path: "c.csv") format csv
    sink click |> filter ms > 100 -> stdout()
}

fn main() {}
