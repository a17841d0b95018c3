weir::pipeline! {
    mod p;
    schema Click { page: string, ms: i64 }
    source clicks: Click = file(path: "c.csv") format csv
    sink clicks |> select { page: lowercase(page) } -> stdout()
}

fn main() {}
