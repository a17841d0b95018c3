// Two mistakes, two errors; the module's uses below add none.
weir::pipeline! {
    mod p;
    schema Click { page: string, ms: i64 }
    source clicks: Click = file(path: "c.csv") format csv
    sink clicks |> filter page > 1 -> stdout()
    sink clicks |> select { x: nope } -> stdout()
}

fn main() {
    let _ = p::run(Default::default());
    let _ = p::memory::run(Default::default(), Default::default());
}
