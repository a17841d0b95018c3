//! The push interface every operator implements, and the fan-out used when one stream feeds
//! several consumers.
//!
//! Records are pushed by reference: a source fills one reused buffer, a filter passes the same
//! reference on, and only operators that must own a record (an exchange that ships it to another
//! task) clone it. Within a task the whole chain is one statically composed type, so rustc can
//! inline across operators: no channel, no allocation and no dynamic dispatch between them.

/// A consumer of a stream of `T` records interleaved with watermarks.
pub trait Collector<T: ?Sized> {
    /// One record.
    fn push(&mut self, record: &T);
    /// Event time has advanced: no record with a timestamp below `watermark` will follow.
    fn watermark(&mut self, watermark: i64);
    /// Checkpoint barrier `checkpoint`: every record before it is in, none after it yet.
    /// A stateful operator saves its state (see [`crate::checkpoint`]), then passes the
    /// barrier on to every collector it feeds.
    fn barrier(&mut self, checkpoint: u64);
    /// The flush interval has passed (a wall-clock tick from the sources, see
    /// [`crate::tick`]): write out or send on what is buffered, then pass the tick on. Event
    /// time does not move.
    fn tick(&mut self);
    /// End of input. Called once, after the final watermark (`i64::MAX`).
    fn finish(&mut self);
}

/// Sends every record and watermark to two collectors (a stream with two consumers).
pub struct Tee<A, B> {
    first: A,
    second: B,
}

impl<A, B> Tee<A, B> {
    pub fn new(first: A, second: B) -> Self {
        Tee { first, second }
    }
}

impl<T: ?Sized, A: Collector<T>, B: Collector<T>> Collector<T> for Tee<A, B> {
    #[inline]
    fn push(&mut self, record: &T) {
        self.first.push(record);
        self.second.push(record);
    }
    fn watermark(&mut self, watermark: i64) {
        self.first.watermark(watermark);
        self.second.watermark(watermark);
    }
    fn barrier(&mut self, checkpoint: u64) {
        self.first.barrier(checkpoint);
        self.second.barrier(checkpoint);
    }
    fn tick(&mut self) {
        self.first.tick();
        self.second.tick();
    }
    fn finish(&mut self) {
        self.first.finish();
        self.second.finish();
    }
}

/// A collector that drops everything (the end of a chain whose output is unused).
pub struct Discard;

impl<T: ?Sized> Collector<T> for Discard {
    #[inline]
    fn push(&mut self, _record: &T) {}
    fn watermark(&mut self, _watermark: i64) {}
    fn barrier(&mut self, _checkpoint: u64) {}
    fn tick(&mut self) {}
    fn finish(&mut self) {}
}
