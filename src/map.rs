//! `Pool::map` and friends: a function over a lazy input, as a stream of
//! results.
//!
//! Input is pulled only as the window allows, encoded straight into chunk
//! frames (many items per frame, so tiny items cost a fraction of a round
//! trip each), and each chunk travels as one ordinary job through the pool.
//! Results stay encoded in the chunk's answer until the stream yields them.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::codec::attach;
use crate::error::{Error, Repr};
use crate::pool::Pool;
use crate::pool::job::Encoded;
use crate::pool::job::Reply;
use crate::shared::Carried;
use crate::wire::answer;
use crate::wire::chunk::{self, ChunkBuilder};
use crate::wire::frame;
use crate::wire::request::Request;

/// Run time a chunk should take in a worker when the size is chosen
/// automatically: long enough that the fixed cost of a round trip (tens of
/// µs) is a few percent, short enough to balance the load at the end.
const TARGET_CHUNK_NANOS: u64 = 500_000;
/// The most items an automatic chunk holds.
const MAX_AUTO_CHUNK: usize = 1 << 16;
/// A chunk stops growing at this many bytes of encoded arguments.
const MAX_CHUNK_BYTES: usize = 1 << 20;
/// How much an automatic chunk may grow from one chunk to the next: fast
/// enough to reach full size in three answers, slow enough that one
/// unrepresentative item cannot make a chunk of thousands of slow ones.
const GROWTH: usize = 64;

/// While results are ready, the window is topped up every this many.
const REFILL_EVERY: u64 = 256;

type Answer = oneshot::Receiver<Result<Reply, Error>>;

/// Where a stream's input comes from, with its item type erased: it encodes
/// items into a chunk.
trait Source: Send {
    fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        chunk: &mut ChunkBuilder,
        max_items: usize,
    ) -> Poll<Fill>;
}

/// Why `poll_fill` stopped.
enum Fill {
    /// The chunk is as large as allowed.
    Full,
    /// The input has nothing more right now.
    Waiting,
    /// The input is finished.
    Exhausted,
    /// This item could not be encoded; the chunk holds the items before it.
    Unencodable(Error),
}

struct StreamSource<S> {
    input: Pin<Box<S>>,
}

impl<S> Source for StreamSource<S>
where
    S: Stream + Send,
    S::Item: Serialize + 'static,
{
    fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        chunk: &mut ChunkBuilder,
        max_items: usize,
    ) -> Poll<Fill> {
        while chunk.len() < max_items && chunk.bytes() < MAX_CHUNK_BYTES {
            match self.input.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    if let Err(err) = chunk.push(&item) {
                        return Poll::Ready(Fill::Unencodable(err));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(Fill::Exhausted),
                Poll::Pending if chunk.len() > 0 => return Poll::Ready(Fill::Waiting),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Fill::Full)
    }
}

/// One chunk, from submission to its last result.
enum Slot {
    /// Sent; `items` keeps the arguments in case the chunk must be run again
    /// item by item (when its worker dies mid-chunk).
    Waiting {
        answer: Answer,
        items: Option<Vec<u8>>,
        /// The shared memory the items carry, for those reruns.
        regions: Carried,
        count: usize,
    },
    /// Answered: results are read off `reply` as the stream yields them.
    Answered {
        reply: Reply,
        pos: usize,
        left: usize,
    },
    /// Every item of it failed with this error.
    Failed { error: Error, left: usize },
}

/// A stream of results of a function applied to every input item, made by
/// [`Pool::map`] and its relatives.
///
/// Input is pulled lazily: at most [`window`](MapStream::window) chunks of
/// items are in flight, so an endless input works and memory stays flat.
/// Small items are batched into chunks (see
/// [`chunk_size`](MapStream::chunk_size)); results and errors are still per
/// item: a panic fails its item only, and a worker that dies mid-chunk
/// fails only the item it was running (the chunk's items are run again one
/// by one, so one that had finished but whose result had not been sent yet
/// runs twice).
///
/// # Cancellation
///
/// Dropping the stream stops pulling input and cancels every chunk in
/// flight, as dropping a [`TaskHandle`](crate::TaskHandle) does: queued
/// chunks never run, and a worker running one is killed and replaced.
///
/// # Cancel safety
///
/// [`StreamExt::next`](futures::StreamExt::next) is cancel safe: a result
/// that is ready stays in the stream until it is taken, so `next()` may be a
/// `select!` branch or be put under a timeout.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
///
/// use futures::StreamExt;
///
/// # fn square(x: u64) -> u64 { x * x }
/// # async fn demo(pool: procpool::Pool) {
/// let mut squares = pool.map(square, 0..).window(8); // an endless input
/// let mut sum = 0;
/// while let Ok(Some(result)) = tokio::time::timeout(Duration::from_secs(1), squares.next()).await {
///     match result {
///         Ok(square) if square > 1_000_000 => break, // dropping the stream cancels the rest
///         Ok(square) => sum += square,
///         Err(err) => eprintln!("one item failed: {err}"),
///     }
/// }
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct MapStream<'a, R> {
    pool: Pool,
    task: &'static str,
    index: u32,
    source: Option<Box<dyn Source + 'a>>,
    ordered: bool,
    window: usize,
    chunk_size: Option<usize>,
    /// The automatic chunk size and the per-item run time behind it.
    auto_size: usize,
    item_nanos: Option<u64>,
    chunk: ChunkBuilder,
    /// The shared memory regions the items in `chunk` carry.
    carried: Carried,
    slots: VecDeque<Slot>,
    /// An error to yield once, before ending (e.g. the function is not registered).
    fatal: Option<Error>,
    /// Results yielded so far.
    yielded: u64,
    _output: PhantomData<fn() -> R>,
}

impl<'a, R: DeserializeOwned + 'static> MapStream<'a, R> {
    pub(crate) fn new<F: 'static, S>(pool: &Pool, input: S, ordered: bool) -> MapStream<'a, R>
    where
        S: Stream + Send + 'a,
        S::Item: Serialize + 'static,
    {
        let task = std::any::type_name::<F>();
        let (index, fatal) = match pool.task_index::<F>() {
            Ok(index) => (index, None),
            Err(err) => (0, Some(err)),
        };
        MapStream {
            pool: pool.clone(),
            task,
            index,
            source: Some(Box::new(StreamSource {
                input: Box::pin(input),
            })),
            ordered,
            window: 4 * pool.stats().workers.max(1),
            chunk_size: None,
            auto_size: 1,
            item_nanos: None,
            chunk: ChunkBuilder::new(index),
            carried: Carried::default(),
            slots: VecDeque::new(),
            fatal,
            yielded: 0,
            _output: PhantomData,
        }
    }

    /// Sends at most `n` items per chunk instead of sizing chunks
    /// automatically. 1 sends every item on its own; `0` is silently treated
    /// as `1`.
    ///
    /// A chunk can still come out smaller: the last one, one sent because a
    /// [`map_stream`](crate::Pool::map_stream) input has nothing more for the
    /// moment, and any chunk that reaches 1 MiB of encoded arguments. A chunk
    /// whose frame would exceed
    /// [`max_frame_size`](crate::PoolBuilder::max_frame_size) is sent item
    /// by item.
    ///
    /// The default (no call) is automatic: chunks start with single items
    /// and grow by the run time workers report, aiming at about half a
    /// millisecond of work per chunk, up to 65,536 items or 1 MiB of
    /// arguments: tiny items reach millions per second without tuning, and
    /// slow ones are not batched at all. A fixed size helps when run times
    /// vary a lot between items, where the automatic size, judged from the
    /// first answers, may be too large for the slow ones.
    ///
    /// It applies to the chunks made after the call (usually all of them: it
    /// is normally called before the stream is first polled).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::TryStreamExt;
    ///
    /// # fn render(page: u32) -> Vec<u8> { Vec::new() }
    /// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
    /// // Each page takes anywhere from 1 ms to 1 s: four at a time.
    /// let pages: Vec<Vec<u8>> = pool.map(render, 1..=200).chunk_size(4).try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn chunk_size(mut self, n: usize) -> Self {
        self.chunk_size = Some(n.max(1));
        self
    }

    /// Keeps at most `n` chunks in flight (pulled from the input but not yet
    /// yielded), which bounds memory and, for [`Pool::map`], how far results
    /// may be held back waiting for a slow item.
    ///
    /// The default is four per worker (four times
    /// [`PoolBuilder::workers`](crate::PoolBuilder::workers), counted when
    /// the stream is made). A window smaller than the number of workers
    /// leaves some idle. `0` is silently treated as `1`: one chunk at a
    /// time.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::StreamExt;
    ///
    /// # fn embed(text: String) -> Vec<f32> { Vec::new() }
    /// # async fn demo(pool: procpool::Pool, documents: Vec<String>) {
    /// // Results are large: hold at most two chunks of them at a time.
    /// let mut vectors = pool.map(embed, documents).window(2);
    /// while let Some(vector) = vectors.next().await {
    ///     // store it ...
    /// #   let _ = vector;
    /// }
    /// # }
    /// ```
    pub fn window(mut self, n: usize) -> Self {
        self.window = n.max(1);
        self
    }

    /// Pulls input into new chunks while the window has room.
    fn fill(&mut self, cx: &mut Context<'_>) {
        while self.slots.len() < self.window {
            let max_items = self.chunk_size.unwrap_or(self.auto_size);
            let Some(source) = self.source.as_mut() else {
                return;
            };
            // Items are encoded as they are pulled: the shared handles they
            // carry are collected for the chunk (nothing, for most maps).
            let (fill, carried) =
                crate::shared::carry(|| source.poll_fill(cx, &mut self.chunk, max_items));
            self.carried.extend(carried);
            let fill = match fill {
                Poll::Ready(fill) => fill,
                Poll::Pending => return,
            };
            if self.chunk.len() > 0 {
                let count = self.chunk.len();
                let frame = self.chunk.take();
                let regions = std::mem::take(&mut self.carried);
                self.send(frame, count, regions);
            }
            match fill {
                Fill::Full => {}
                Fill::Waiting => return,
                Fill::Exhausted => self.source = None,
                Fill::Unencodable(error) => self.slots.push_back(Slot::Failed { error, left: 1 }),
            }
        }
    }

    fn send(&mut self, frame: Vec<u8>, count: usize, regions: Carried) {
        if count > 1 && frame::body_len_of(&frame) > self.pool.max_frame() {
            // Over the pool's frame limit as a chunk: each item on its own
            // (an item too large by itself fails alone, at once).
            return self.send_one_by_one(&frame, &regions);
        }
        // Kept only where a rerun could split it.
        let items = (count > 1).then(|| frame.clone());
        let kept = if count > 1 {
            regions.clone()
        } else {
            Carried::default()
        };
        let encoded = Encoded {
            request: Request::plain(frame),
            holds: Default::default(),
            regions,
        };
        let slot = match self.pool.enqueue_frame(self.task, encoded) {
            Ok(ticket) => Slot::Waiting {
                answer: ticket.answer,
                items,
                regions: kept,
                count,
            },
            Err(error) => {
                if error.is_shutdown() {
                    // Nothing more can run: stop pulling input (it may be
                    // endless), and end after what was pulled.
                    self.source = None;
                }
                Slot::Failed { error, left: count }
            }
        };
        self.slots.push_back(slot);
    }

    /// Checks the chunks in flight for answers.
    fn collect(&mut self, cx: &mut Context<'_>) {
        let mut i = 0;
        while i < self.slots.len() {
            let Slot::Waiting {
                answer,
                items,
                regions,
                count,
            } = &mut self.slots[i]
            else {
                i += 1;
                continue;
            };
            let outcome = match Pin::new(answer).poll(cx) {
                Poll::Pending => {
                    i += 1;
                    continue;
                }
                Poll::Ready(Ok(outcome)) => outcome,
                Poll::Ready(Err(_)) => Err(Error::new(Repr::ShutDown)),
            };
            let count = *count;
            match outcome {
                Ok(reply) => {
                    self.learn(count, reply.nanos);
                    self.slots[i] = Slot::Answered {
                        reply,
                        pos: 0,
                        left: count,
                    };
                }
                Err(error) if rerunnable(&error) && items.is_some() => {
                    let frame = items.take().expect("checked");
                    let regions = std::mem::take(regions);
                    self.rerun_one_by_one(i, &frame, &regions);
                    continue; // slot i is now the first of the reruns
                }
                Err(error) => self.slots[i] = Slot::Failed { error, left: count },
            }
            i += 1;
        }
    }

    /// Replaces chunk `i` by one chunk per item, in the same place.
    fn rerun_one_by_one(&mut self, i: usize, frame: &[u8], regions: &Carried) {
        let tail = self.slots.split_off(i + 1);
        self.slots.pop_back();
        self.send_one_by_one(frame, regions);
        self.slots.extend(tail);
    }

    /// Sends each item of a chunk frame as a chunk of its own (each keeps
    /// all the chunk's regions alive: which item carries which is unknown).
    fn send_one_by_one(&mut self, frame: &[u8], regions: &Carried) {
        let items = chunk::items_of_frame(frame).expect("we built this chunk");
        for item in items {
            let mut single = ChunkBuilder::new(self.index);
            single.push_encoded(item);
            let frame = single.take();
            self.send(frame, 1, regions.clone());
        }
    }

    /// Adapts the automatic chunk size to the run time the worker reported.
    fn learn(&mut self, count: usize, nanos: u64) {
        let per_item = nanos / count.max(1) as u64;
        let average = match self.item_nanos {
            None => per_item,
            Some(avg) => (avg * 3 + per_item) / 4,
        };
        self.item_nanos = Some(average);
        let target = usize::try_from(TARGET_CHUNK_NANOS / average.max(1)).unwrap_or(usize::MAX);
        self.auto_size = target
            .clamp(1, MAX_AUTO_CHUNK)
            .min(count.saturating_mul(GROWTH).max(1));
    }

    /// The next result that may be yielded, if one is ready.
    fn take_ready(&mut self) -> Option<Result<R, Error>> {
        let i = if self.ordered {
            matches!(
                self.slots.front(),
                Some(Slot::Answered { .. } | Slot::Failed { .. })
            )
            .then_some(0)?
        } else {
            self.slots
                .iter()
                .position(|slot| !matches!(slot, Slot::Waiting { .. }))?
        };
        let (result, left) = match &mut self.slots[i] {
            Slot::Answered { reply, pos, left } => {
                *left -= 1;
                (decode_item(reply, pos, self.task), *left)
            }
            Slot::Failed { error, left } => {
                *left -= 1;
                (Err(error.clone()), *left)
            }
            Slot::Waiting { .. } => unreachable!("chosen above"),
        };
        if left == 0 {
            self.slots.remove(i);
        }
        Some(result)
    }
}

/// Errors after which a chunk's items are worth running again one by one:
/// one item killed or garbled its worker, and the others deserve results.
fn rerunnable(error: &Error) -> bool {
    error.is_worker_died() || error.is_protocol()
}

fn decode_item<R: DeserializeOwned + 'static>(
    reply: &Reply,
    pos: &mut usize,
    task: &'static str,
) -> Result<R, Error> {
    let item = chunk::next_item(reply.payload(), pos)
        .map_err(|message| Error::protocol(reply.pid, Some(task), message))?;
    match item.tag {
        // Encoded inline by the worker (see `registry::Arrived::Item`).
        chunk::ITEM_OK => attach::decode(item.bytes, Vec::new()),
        chunk::ITEM_PANIC => {
            let report = answer::decode_report(item.bytes)
                .map_err(|message| Error::protocol(reply.pid, Some(task), message))?;
            Err(Error::new(Repr::Panicked {
                task,
                report,
                pid: reply.pid,
            }))
        }
        chunk::ITEM_FAILED => Err(Error::new(Repr::Remote {
            task,
            pid: reply.pid,
            message: String::from_utf8_lossy(item.bytes).into_owned(),
        })),
        other => Err(Error::protocol(
            reply.pid,
            Some(task),
            format!("unknown item outcome {other}"),
        )),
    }
}

impl<R: DeserializeOwned + 'static> Stream for MapStream<'_, R> {
    type Item = Result<R, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(error) = this.fatal.take() {
            this.source = None;
            this.slots.clear();
            return Poll::Ready(Some(Err(error)));
        }
        if let Some(result) = this.take_ready() {
            // While results are being handed out, keep the workers fed: top
            // up the window now and then, not only once the stream runs dry
            // (a chunk can hold 65,536 results).
            this.yielded += 1;
            if this.yielded.is_multiple_of(REFILL_EVERY) {
                this.fill(cx);
                this.collect(cx);
            }
            return Poll::Ready(Some(result));
        }
        // Registers for every wake-up that matters: more input (if the
        // window has room) and each chunk in flight.
        this.fill(cx);
        this.collect(cx);
        if let Some(result) = this.take_ready() {
            return Poll::Ready(Some(result));
        }
        if this.slots.is_empty() && this.source.is_none() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

impl<R> fmt::Debug for MapStream<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapStream")
            .field("task", &self.task)
            .field("ordered", &self.ordered)
            .field("chunks_in_flight", &self.slots.len())
            .field("chunk_size", &self.chunk_size.unwrap_or(self.auto_size))
            .field("input_done", &self.source.is_none())
            .finish()
    }
}
