//! Transport between tasks: batches of records and watermarks over bounded channels.
//!
//! A bounded channel gives backpressure for free: a fast producer blocks when its consumer's
//! queue is full. An [`Exchange`] is the sending end of an edge that crosses tasks: it buffers
//! records per destination instance, routes them by key hash (or sends everything to one
//! destination), and forwards watermarks to every destination after flushing the records that
//! precede them, so per-channel order is preserved. [`run_input`] is the receiving loop: it
//! takes the minimum watermark over all upstream instances.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{
    sync_channel, Receiver, RecvError, RecvTimeoutError, SyncSender, TrySendError,
};
use std::sync::Arc;

use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};

/// Records per batch. Large enough to amortize channel costs, small enough to keep latency low.
pub const BATCH_SIZE: usize = 1024;
/// Batches a channel holds before the sender blocks.
pub const CHANNEL_CAPACITY: usize = 16;

/// What flows through a channel.
pub enum Message<T> {
    /// Records from upstream instance `from`.
    Batch { from: u32, records: Vec<T> },
    /// Upstream instance `from` promises no records with a timestamp below `watermark`.
    Watermark { from: u32, watermark: i64 },
    /// Upstream instance `from` has passed checkpoint barrier `checkpoint`.
    Barrier { from: u32, checkpoint: u64 },
    /// Upstream instance `from` has sent everything it buffered: the flush interval passed
    /// (see [`crate::tick`]).
    Tick { from: u32 },
    /// Upstream instance `from` has finished.
    End { from: u32 },
}

/// The sending ends of an edge, one per downstream instance.
pub type Senders<T> = Vec<Outbox<T>>;

/// The sending end of one downstream instance's channel, and the count of messages in it.
pub struct Outbox<T> {
    sender: SyncSender<Message<T>>,
    queued: Arc<AtomicI64>,
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Outbox {
            sender: self.sender.clone(),
            queued: self.queued.clone(),
        }
    }
}

/// The receiving end of one downstream instance's channel. Every message taken lowers the
/// count its senders raise: the channel's fill, which the HTTP endpoint shows (one atomic
/// add per message of up to [`BATCH_SIZE`] records on each side).
pub struct Inbox<T> {
    receiver: Receiver<Message<T>>,
    queued: Arc<AtomicI64>,
}

impl<T> Inbox<T> {
    pub fn recv(&self) -> Result<Message<T>, RecvError> {
        let message = self.receiver.recv()?;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        Ok(message)
    }

    pub fn recv_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Message<T>, RecvTimeoutError> {
        let message = self.receiver.recv_timeout(timeout)?;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        Ok(message)
    }
}

/// Creates the channels of an edge into `n` downstream instances: one sender per downstream
/// instance (clone the vector for every upstream instance) and one receiver each.
pub fn channels<T>(n: usize) -> (Senders<T>, Vec<Inbox<T>>) {
    (0..n.max(1))
        .map(|_| {
            let (sender, receiver) = sync_channel(CHANNEL_CAPACITY);
            let queued = Arc::new(AtomicI64::new(0));
            (
                Outbox {
                    sender,
                    queued: queued.clone(),
                },
                Inbox { receiver, queued },
            )
        })
        .unzip()
}

/// The sending end of a cross-task edge, as the last operator of a task's chain. It takes
/// records of type `I` and ships `wrap(record)`: a clone for most edges, or the record tagged
/// with its side (`Either::Left`/`Right`) for the inputs of a two-input operator.
pub struct Exchange<I, T, H, W> {
    senders: Senders<T>,
    buffers: Vec<Vec<T>>,
    route: H,
    wrap: W,
    from: u32,
    stats: OpCounters,
    metrics: OpMetrics,
    disconnected: bool,
    _input: std::marker::PhantomData<fn(&I)>,
}

impl<I, T: Send, H: Fn(&I) -> u64, W: Fn(&I) -> T> Exchange<I, T, H, W> {
    /// `from` is this upstream instance's index among all instances feeding the receivers;
    /// `route` picks the destination (taken modulo the number of senders; with one sender it
    /// is never called).
    pub fn new(metrics: OpMetrics, from: usize, senders: Senders<T>, route: H, wrap: W) -> Self {
        let buffers = senders
            .iter()
            .map(|_| Vec::with_capacity(BATCH_SIZE))
            .collect();
        metrics.add_queues(senders.iter().map(|s| s.queued.clone()), CHANNEL_CAPACITY);
        Exchange {
            senders,
            buffers,
            route,
            wrap,
            from: from as u32,
            stats: metrics.counters(),
            metrics,
            disconnected: false,
            _input: std::marker::PhantomData,
        }
    }

    fn flush(&mut self, dest: usize) {
        if self.buffers[dest].is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.buffers[dest], Vec::with_capacity(BATCH_SIZE));
        self.stats.records_out += batch.len() as u64;
        self.send(
            dest,
            Message::Batch {
                from: self.from,
                records: batch,
            },
        );
    }

    fn send(&mut self, dest: usize, message: Message<T>) {
        let outbox = &self.senders[dest];
        // Counted before it is in: the receiver never takes one not yet counted.
        outbox.queued.fetch_add(1, Ordering::Relaxed);
        let message = match outbox.sender.try_send(message) {
            Ok(()) => return,
            Err(TrySendError::Full(message)) => message,
            Err(TrySendError::Disconnected(_)) => {
                // The consumer is gone (it failed and reported why); drop what follows.
                outbox.queued.fetch_sub(1, Ordering::Relaxed);
                self.disconnected = true;
                return;
            }
        };
        // The channel is full: the consumer holds this producer back. Timed only here, so
        // a free-flowing exchange reads no clock.
        let blocked = std::time::Instant::now();
        if outbox.sender.send(message).is_err() {
            outbox.queued.fetch_sub(1, Ordering::Relaxed);
            self.disconnected = true;
        }
        self.stats.blocked_ns += blocked.elapsed().as_nanos() as u64;
    }
}

impl<I, T: Send, H: Fn(&I) -> u64, W: Fn(&I) -> T> Collector<I> for Exchange<I, T, H, W> {
    #[inline]
    fn push(&mut self, record: &I) {
        self.stats.records_in += 1;
        let dest = if self.senders.len() == 1 {
            0
        } else {
            ((self.route)(record) % self.senders.len() as u64) as usize
        };
        self.buffers[dest].push((self.wrap)(record));
        if self.buffers[dest].len() >= BATCH_SIZE {
            self.flush(dest);
        }
    }

    fn watermark(&mut self, watermark: i64) {
        for dest in 0..self.senders.len() {
            self.flush(dest);
            self.send(
                dest,
                Message::Watermark {
                    from: self.from,
                    watermark,
                },
            );
        }
    }

    fn barrier(&mut self, checkpoint: u64) {
        for dest in 0..self.senders.len() {
            self.flush(dest);
            self.send(
                dest,
                Message::Barrier {
                    from: self.from,
                    checkpoint,
                },
            );
        }
    }

    /// Partial batches go out, and the tick with them, so the consumer flushes too.
    fn tick(&mut self) {
        for dest in 0..self.senders.len() {
            self.flush(dest);
            self.send(dest, Message::Tick { from: self.from });
        }
    }

    fn finish(&mut self) {
        for dest in 0..self.senders.len() {
            self.flush(dest);
            self.send(dest, Message::End { from: self.from });
        }
        self.metrics.report(&self.stats);
        let _ = self.disconnected;
    }
}

/// Drives a task whose input is a channel fed by `n_upstream` instances: pushes every record
/// into `chain`, forwards the minimum watermark over the upstream instances whenever it
/// advances, and finishes the chain after every upstream instance has ended.
///
/// A [`Message::Tick`] ticks the chain when anything has reached it since its last tick, or a
/// flush interval has passed since then (the operators downstream may hold output of their
/// own: processing-time windows); with several upstream instances each ticking, the chain is
/// thus not ticked once per instance.
///
/// With an idle timeout (its run's, see [`crate::context`]), an upstream instance that has sent nothing for that long no longer
/// holds the watermark back (its later records may then be late); it counts again as soon as
/// it sends.
pub fn run_input<T, C: Collector<T>>(receiver: Inbox<T>, n_upstream: usize, chain: C) {
    run_input_with(
        receiver,
        n_upstream,
        chain,
        crate::context::with(|c| c.idle_timeout()),
    )
}

/// [`run_input`] with an explicit idle timeout.
///
/// Checkpoint barriers are aligned here: once upstream instance `i` has sent barrier `n`, its
/// later messages are held back until every other live instance has sent `n` too; then the
/// chain gets the barrier and the held messages are replayed in order. Every operator after
/// this point thus saves its state at the same cut of the stream.
pub fn run_input_with<T, C: Collector<T>>(
    receiver: Inbox<T>,
    n_upstream: usize,
    chain: C,
    idle_timeout: Option<std::time::Duration>,
) {
    let n = n_upstream.max(1);
    let mut input = Input {
        chain,
        idle_timeout,
        watermarks: vec![i64::MIN; n],
        last_seen: vec![std::time::Instant::now(); n],
        ended: vec![false; n],
        n_ended: 0,
        current: i64::MIN,
        aligning: None,
        blocked: vec![false; n],
        held: VecDeque::new(),
        replay: VecDeque::new(),
        last_barrier: 0,
        untick: false,
        last_tick: std::time::Instant::now(),
        flush_interval: crate::tick::flush_interval(),
    };
    while input.n_ended < n {
        let message = if let Some(m) = input.replay.pop_front() {
            m
        } else {
            match idle_timeout {
                None => match receiver.recv() {
                    Ok(m) => m,
                    Err(_) => break, // every sender is gone: an upstream task failed.
                },
                Some(timeout) => match receiver.recv_timeout(timeout) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        input.advance();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            }
        };
        input.handle(message);
    }
    // A stopped run (SIGTERM, Ctrl-C) did not read all its input: no final watermark.
    if input.current < i64::MAX && !crate::stop::stopped_early() {
        input.chain.watermark(i64::MAX);
    }
    input.chain.finish();
}

/// The state of one task's input loop.
struct Input<T, C> {
    chain: C,
    idle_timeout: Option<std::time::Duration>,
    watermarks: Vec<i64>,
    last_seen: Vec<std::time::Instant>,
    ended: Vec<bool>,
    n_ended: usize,
    /// The watermark last forwarded.
    current: i64,
    /// The barrier being aligned, and which upstream instances have sent it.
    aligning: Option<u64>,
    blocked: Vec<bool>,
    /// Messages of blocked instances, in arrival order.
    held: VecDeque<Message<T>>,
    /// Held messages to process again before reading the channel.
    replay: VecDeque<Message<T>>,
    last_barrier: u64,
    /// Whether anything reached the chain since its last tick.
    untick: bool,
    last_tick: std::time::Instant,
    flush_interval: std::time::Duration,
}

impl<T, C: Collector<T>> Input<T, C> {
    /// The minimum watermark over live upstream instances that are not idle; with none live,
    /// the end of time; with every live one idle, event time holds where it is.
    fn min_active(&self) -> i64 {
        let mut live = (0..self.watermarks.len())
            .filter(|&i| !self.ended[i])
            .peekable();
        if live.peek().is_none() {
            return i64::MAX;
        }
        live.filter(|&i| {
            self.idle_timeout
                .is_none_or(|t| self.last_seen[i].elapsed() < t)
        })
        .map(|i| self.watermarks[i])
        .min()
        .unwrap_or(i64::MIN)
    }

    fn advance(&mut self) {
        let min = self.min_active();
        if self.n_ended < self.watermarks.len() {
            self.forward(min);
        }
    }

    /// Passes `min` on if it advances event time. The end of time only comes with the end of
    /// every input: in a stopped run an upstream that stopped early ends without it, and the
    /// others' may not carry event time past its records.
    fn forward(&mut self, min: i64) {
        if min > self.current && !(min == i64::MAX && crate::stop::stopped_early()) {
            self.current = min;
            self.untick = true;
            self.chain.watermark(min);
        }
    }

    fn handle(&mut self, message: Message<T>) {
        let from = match &message {
            Message::Batch { from, .. }
            | Message::Watermark { from, .. }
            | Message::Barrier { from, .. }
            | Message::Tick { from }
            | Message::End { from } => *from as usize,
        };
        // A tick is not data: it may overtake what a barrier holds back.
        if self.blocked[from] && !matches!(message, Message::Tick { .. }) {
            // Held, but alive: an upstream waiting at a barrier is not idle, or event time
            // would run past the records it holds.
            self.last_seen[from] = std::time::Instant::now();
            self.held.push_back(message);
            return;
        }
        match message {
            Message::Batch { records, .. } => {
                self.last_seen[from] = std::time::Instant::now();
                self.untick = true;
                for record in &records {
                    self.chain.push(record);
                }
            }
            Message::Watermark { watermark, .. } => {
                self.last_seen[from] = std::time::Instant::now();
                let slot = &mut self.watermarks[from];
                *slot = (*slot).max(watermark);
                let min = self.min_active();
                self.forward(min);
            }
            Message::Barrier { checkpoint, .. } => {
                if checkpoint <= self.last_barrier {
                    return; // a barrier of a checkpoint this task already passed on
                }
                self.aligning = Some(self.aligning.map_or(checkpoint, |a| a.max(checkpoint)));
                self.blocked[from] = true;
                self.try_complete_barrier();
            }
            // It does not make an idle upstream count as active either: a source ticks
            // while idle.
            Message::Tick { .. } => {
                if self.untick || self.last_tick.elapsed() >= self.flush_interval {
                    self.untick = false;
                    self.last_tick = std::time::Instant::now();
                    self.chain.tick();
                }
            }
            Message::End { .. } => {
                if !self.ended[from] {
                    self.ended[from] = true;
                    self.n_ended += 1;
                    self.watermarks[from] = i64::MAX;
                    self.advance();
                    self.try_complete_barrier();
                }
            }
        }
    }

    /// Passes the barrier on once every live upstream instance has sent it, then replays the
    /// messages held back meanwhile.
    fn try_complete_barrier(&mut self) {
        let Some(checkpoint) = self.aligning else {
            return;
        };
        let aligned = (0..self.blocked.len()).all(|i| self.blocked[i] || self.ended[i]);
        if !aligned {
            return;
        }
        self.aligning = None;
        self.last_barrier = checkpoint;
        self.blocked.iter_mut().for_each(|b| *b = false);
        self.untick = true;
        self.chain.barrier(checkpoint);
        let mut held = std::mem::take(&mut self.held);
        held.append(&mut self.replay);
        self.replay = held;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<String>>>);

    impl Collector<i64> for Log {
        fn push(&mut self, r: &i64) {
            self.0.lock().unwrap().push(format!("r{r}"));
        }
        fn watermark(&mut self, wm: i64) {
            self.0.lock().unwrap().push(format!("wm{wm}"));
        }
        fn barrier(&mut self, _checkpoint: u64) {}
        fn tick(&mut self) {
            self.0.lock().unwrap().push("tick".into());
        }
        fn finish(&mut self) {
            self.0.lock().unwrap().push("end".into());
        }
    }

    /// An exchange whose every record is routed to instance 0.
    type ToZero = Exchange<i64, i64, fn(&i64) -> u64, fn(&i64) -> i64>;

    /// Two upstream exchanges `a` and `b` feeding one input loop, which logs what reaches it
    /// on its own thread.
    fn two_upstreams() -> (ToZero, ToZero, Log, std::thread::JoinHandle<()>) {
        let (senders, mut receivers) = channels::<i64>(1);
        let metrics = Metrics::new();
        let exchange = |name: &'static str, from: usize, senders: Senders<i64>| -> ToZero {
            Exchange::new(metrics.op(name), from, senders, |_| 0, |r| *r)
        };
        let a = exchange("a", 0, senders.clone());
        let b = exchange("b", 1, senders);
        let log = Log::default();
        let consumer = {
            let log = log.clone();
            let receiver = receivers.pop().unwrap();
            std::thread::spawn(move || run_input(receiver, 2, log))
        };
        (a, b, log, consumer)
    }

    #[test]
    fn the_input_loop_forwards_the_minimum_watermark_of_its_upstreams() {
        let (mut a, mut b, log, consumer) = two_upstreams();
        a.push(&1);
        a.watermark(100); // b has said nothing: the minimum is still unknown
        b.push(&2);
        b.watermark(50); // min(100, 50) = 50
        b.watermark(200); // min(100, 200) = 100
        a.finish(); // a ends: only b's 200 counts
        b.push(&3);
        b.finish();
        consumer.join().unwrap();
        let log = log.0.lock().unwrap().clone();
        assert_eq!(
            log,
            vec![
                "r1",
                "r2",
                "wm50",
                "wm100",
                "wm200",
                "r3",
                "wm9223372036854775807",
                "end"
            ]
        );
    }

    #[test]
    fn an_idle_upstream_stops_holding_the_watermark_back() {
        let (senders, mut receivers) = channels::<i64>(1);
        let metrics = Metrics::new();
        let mut a = Exchange::new(
            metrics.op("a"),
            0,
            senders.clone(),
            |_: &i64| 0,
            |r: &i64| *r,
        );
        let mut b = Exchange::new(metrics.op("b"), 1, senders, |_: &i64| 0, |r: &i64| *r);
        let log = Log::default();
        let consumer = {
            let log = log.clone();
            let receiver = receivers.pop().unwrap();
            std::thread::spawn(move || {
                run_input_with(receiver, 2, log, Some(std::time::Duration::from_millis(50)))
            })
        };
        b.watermark(10);
        a.watermark(100); // b holds it at 10
        std::thread::sleep(std::time::Duration::from_millis(200)); // b goes idle
        a.watermark(150); // a is active, b idle: 150 passes
        b.push(&7); // b is back; its record is behind the watermark now
        a.finish();
        b.finish();
        consumer.join().unwrap();
        let log = log.0.lock().unwrap().clone();
        assert_eq!(
            log,
            vec!["wm10", "wm150", "r7", "wm9223372036854775807", "end"]
        );
    }

    #[test]
    fn a_tick_sends_partial_batches_and_ticks_the_consumer_once_per_news() {
        let (mut a, mut b, log, consumer) = two_upstreams();
        a.push(&1); // less than a batch: held until the tick
        a.tick();
        while log.0.lock().unwrap().len() < 2 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(*log.0.lock().unwrap(), vec!["r1", "tick"]);
        b.push(&2);
        b.tick();
        a.finish();
        b.finish();
        consumer.join().unwrap();
        let log = log.0.lock().unwrap().clone();
        assert_eq!(&log[2..4], ["r2", "tick"]);
        assert_eq!(&log[log.len() - 2..], ["wm9223372036854775807", "end"]);
    }

    #[test]
    fn records_are_routed_by_hash_and_keep_their_order_per_destination() {
        let (senders, receivers) = channels::<i64>(3);
        let metrics = Metrics::new();
        let mut ex = Exchange::new(
            metrics.op("x"),
            0,
            senders,
            |r: &i64| *r as u64,
            |r: &i64| *r,
        );
        for i in 0..5000 {
            ex.push(&i);
        }
        ex.finish();
        for (dest, receiver) in receivers.into_iter().enumerate() {
            let mut got = Vec::new();
            while let Ok(message) = receiver.recv() {
                match message {
                    Message::Batch { records, .. } => got.extend(records),
                    Message::End { .. } => break,
                    Message::Watermark { .. } | Message::Barrier { .. } | Message::Tick { .. } => {}
                }
            }
            let want: Vec<i64> = (0..5000).filter(|i| i % 3 == dest as i64).collect();
            assert_eq!(got, want);
        }
    }

    /// The fill of an exchange's channels: what its senders put in and the receiver has not
    /// taken, over what the channels hold; every upstream instance names the same channels.
    #[test]
    fn an_exchange_counts_the_fill_of_its_channels() {
        let metrics = crate::metrics::Metrics::new();
        let (senders, mut receivers) = channels::<i64>(2);
        let op = metrics.op("exchange op0->op1 hash(k)");
        let mut a = Exchange::new(op.clone(), 0, senders.clone(), |r: &i64| *r as u64, |r| *r);
        let _b = Exchange::new(op, 1, senders, |r: &i64| *r as u64, |r: &i64| *r);
        for record in 0..(3 * BATCH_SIZE as i64) {
            a.push(&(2 * record)); // all to instance 0
        }
        a.watermark(5); // a watermark into each channel
        let fill = |m: &crate::metrics::Metrics| {
            let stats = &m.ops()[0].1;
            (stats.queued, stats.queue_capacity)
        };
        assert_eq!(fill(&metrics), (3 + 2, 2 * CHANNEL_CAPACITY as u64));
        let second = receivers.pop().unwrap();
        let first = receivers.pop().unwrap();
        assert!(matches!(first.recv(), Ok(Message::Batch { .. })));
        assert!(matches!(second.recv(), Ok(Message::Watermark { .. })));
        assert_eq!(fill(&metrics).0, 3);
    }
}
