//! One call on a shared object: where it goes (the object itself, in the
//! pool's process; the pool, over the worker's connection, in a task), and
//! the [`Call`] a handle's method returns, to `.await` or to
//! [`wait`](Call::wait) for.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::oneshot;

use super::host::{self, Keep, Object, Served, To};
use super::state::Kind;
use super::wire::{self, Failure, Op, Reply};
use crate::channel::block;
use crate::error::{Error, Repr};
use crate::wire::call::Service;
use crate::worker::link::{self, Link, Pending};

/// Where a handle's calls go.
#[derive(Clone, Debug)]
pub(crate) enum Route {
    /// The object, in this process (the pool's), and a hold on its manager.
    Here {
        object: Arc<Object>,
        _manager: Arc<Keep>,
    },
    /// The object with this id, reached through the worker's pool.
    Pool(u64),
}

impl Route {
    pub(crate) fn id(&self) -> u64 {
        match self {
            Route::Here { object, .. } => object.id,
            Route::Pool(id) => *id,
        }
    }

    /// Writes a handle as its object's id and kind.
    pub(crate) fn serialize<S: Serializer>(
        &self,
        kind: Kind,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        (self.id(), kind as u8).serialize(serializer)
    }

    /// Reads a handle of `kind`: in a worker, a route through its pool; in
    /// the pool's process, the object itself.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
        kind: Kind,
    ) -> Result<Route, D::Error> {
        let (id, sent) = <(u64, u8)>::deserialize(deserializer)?;
        if sent != kind as u8 {
            return Err(D::Error::custom(format!(
                "a manager handle of another kind ({:?}) where a {kind:?} was expected",
                Kind::from_byte(sent)
            )));
        }
        if Link::get().is_some() {
            return Ok(Route::Pool(id));
        }
        match host::find(id).and_then(|object| Some((object.keep()?, object))) {
            Some((keep, object)) => Ok(Route::Here {
                object,
                _manager: keep,
            }),
            None => Err(D::Error::custom(format!(
                "manager object {id} does not exist in this process (was its manager shut down?)"
            ))),
        }
    }

    /// A call of `op` with `number` and `fields` (encoded keys and values,
    /// or why they could not be) on this route's object, whose answer
    /// `decode` reads.
    pub(crate) fn call<T>(
        &self,
        kind: Kind,
        op: Op,
        number: u64,
        fields: Result<Vec<Vec<u8>>, Error>,
        decode: fn(&Route, Vec<u8>) -> Result<T, Error>,
    ) -> Call<T> {
        let request = fields.map(|fields| {
            let fields: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
            wire::request(self.id(), kind as u8, op, number, &fields)
        });
        Call {
            route: self.clone(),
            request,
            op,
            what: kind,
            timeout: None,
            decode,
            waiting: None,
            _out: PhantomData,
        }
    }
}

/// A call on a shared object, made when it is awaited (in the pool's
/// process) or [`wait`](Call::wait)ed for (inside a task), or
/// [`send`](Call::send) sends it ahead.
///
/// Every method of a [`Dict`](super::Dict), [`List`](super::List),
/// [`Value`](super::Value), [`Queue`](super::Queue) or
/// [`Lock`](super::Lock) returns one. The operation is applied whole, at
/// the host, when the call is made; what comes back is a snapshot.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let manager = procpool::Manager::new();
/// let counts = manager.dict::<String, u64>();
/// counts.insert("a".into(), 1).await?; // in the pool's process
/// assert_eq!(counts.get(&"a".into()).await?, Some(1));
/// # Ok::<(), procpool::Error>(()) }).unwrap();
/// ```
///
/// Inside a task, the same call blocks its thread instead:
///
/// ```no_run
/// fn bump(counts: procpool::manager::Dict<String, u64>) -> Option<u64> {
///     counts.insert("a".into(), 2).wait().unwrap()
/// }
/// ```
#[must_use = "a manager call does nothing until it is awaited, waited for or sent"]
pub struct Call<T> {
    route: Route,
    /// The encoded request, or why it could not be made.
    request: Result<Vec<u8>, Error>,
    op: Op,
    what: Kind,
    timeout: Option<Duration>,
    decode: fn(&Route, Vec<u8>) -> Result<T, Error>,
    /// Waiting in the object's line, in this process.
    waiting: Option<Waiting>,
    _out: PhantomData<fn() -> T>,
}

impl<T> Unpin for Call<T> {}

impl<T> std::fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("object", &self.route.id())
            .field("op", &self.op)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A caller of this process in an object's line. Dropped before it saw
/// its answer (its future dropped, its time up), it undoes what it was
/// granted meanwhile: an item goes back to the queue, a lock is released.
struct Waiting {
    answer: oneshot::Receiver<Reply>,
    object: Arc<Object>,
    op: Op,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.answer.close();
        if let Ok(Ok(granted)) = self.answer.try_recv() {
            self.object.give_back(self.op, granted);
        }
    }
}

impl<T> Call<T> {
    /// Gives the call at most `timeout` to wait (for the lock, an item,
    /// room in the queue); then it fails with
    /// [`Error::is_timeout`](crate::Error::is_timeout) and nothing was
    /// done. Calls that never wait ignore it.
    ///
    /// The default is to wait as long as it takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # futures::executor::block_on(async {
    /// let manager = procpool::Manager::new();
    /// let jobs = manager.queue::<u64>(4);
    /// let err = jobs.get().timeout(Duration::from_millis(10)).wait().unwrap_err();
    /// assert!(err.is_timeout());
    /// # });
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Call<T> {
        self.timeout = Some(timeout);
        if let Ok(request) = &mut self.request {
            wire::set_timeout(request, timeout);
        }
        self
    }

    /// Makes the call and blocks this thread until it is answered: the
    /// form to use inside a task (or on a plain thread of the pool's
    /// process).
    ///
    /// # Errors
    ///
    /// As the method that made the call says; also an error, rather than a
    /// stalled runtime, if it would have to wait on a thread of an async
    /// runtime in the pool's process (`.await` it there).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn next_job(jobs: procpool::manager::Queue<u64>) -> u64 {
    ///     jobs.get().wait().unwrap()
    /// }
    /// ```
    pub fn wait(mut self) -> Result<T, Error> {
        let request = std::mem::replace(&mut self.request, Ok(Vec::new()))?;
        let reply = match &self.route {
            Route::Pool(_) => through_pool(&request),
            Route::Here { object, .. } => match self.serve_here(object.clone(), &request, false) {
                Ok(reply) => reply,
                Err(()) => self.wait_in_line()?,
            },
        };
        self.finish(reply)
    }

    /// Sends the call and returns without waiting for its answer, so that
    /// a task can have many calls on their way at once and pay one round
    /// trip for all of them rather than one each; [`Sent::wait`] gets the
    /// answer.
    ///
    /// The calls one thread sends are applied in the order it sent them,
    /// and before any call it makes after them. A worker has at most 1,024
    /// calls unanswered at once; past that, `send` blocks until answers
    /// come. A [`Sent`] dropped unwaited leaves its call made all the same
    /// (its answer is dropped).
    ///
    /// Calls that may wait in a line (a [`Lock`](super::Lock)'s `acquire`,
    /// a [`Queue`](super::Queue)'s `put` and `get`) are not sent ahead: one
    /// sent and then dropped would take the lock or an item for nobody.
    /// They are made when their `Sent` is waited for, as by
    /// [`wait`](Self::wait): such a `Sent` dropped unwaited is never made
    /// (a `put` so dropped puts nothing), and one waited for after later
    /// sends is applied after them. In the pool's process `send` makes the
    /// others at once (there is no round trip to hide). Whatever fails,
    /// [`Sent::wait`] says.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use procpool::manager::Dict;
    ///
    /// fn record(squares: Dict<u64, u64>) -> Result<(), procpool::Error> {
    ///     // 1,000 inserts for about the time of a few round trips.
    ///     let sent: Vec<_> = (0..1000).map(|n| squares.insert(n, n * n).send()).collect();
    ///     for insert in sent {
    ///         insert.wait()?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn send(mut self) -> Sent<T> {
        let progress = if self.op.may_wait() {
            Progress::Unsent
        } else {
            match std::mem::replace(&mut self.request, Ok(Vec::new())) {
                Err(error) => Progress::Failed(error),
                Ok(request) => match &self.route {
                    Route::Pool(_) => match start_through_pool(&request) {
                        Ok(pending) => Progress::InFlight(pending),
                        Err(failure) => Progress::Answered(Err(failure)),
                    },
                    Route::Here { object, .. } => {
                        match self.serve_here(object.clone(), &request, false) {
                            Ok(reply) => Progress::Answered(reply),
                            Err(()) => Progress::InLine,
                        }
                    }
                },
            }
        };
        Sent {
            call: self,
            progress,
        }
    }

    /// Waits, blocking this thread, for the answer to the call waiting in
    /// its object's line in this process.
    fn wait_in_line(&mut self) -> Result<Reply, Error> {
        block::refuse_in_runtime("a manager call's wait()", ".await")?;
        let deadline = self.timeout.map(|after| Instant::now() + after);
        let answer = std::future::poll_fn(|cx| self.poll_waiting(cx));
        Ok(match block::on(answer, deadline) {
            Some(reply) => reply,
            None => {
                self.waiting = None;
                Err(Failure::TimedOut(self.timeout.unwrap_or_default()))
            }
        })
    }

    /// Serves the request at `object`: its answer, or `Err` once the
    /// caller waits in line (in `self.waiting`).
    fn serve_here(
        &mut self,
        object: Arc<Object>,
        request: &[u8],
        timer: bool,
    ) -> Result<Reply, ()> {
        let request = match wire::parse(request) {
            Ok(request) => request,
            Err(garbage) => return Ok(Err(Failure::Misuse(garbage))),
        };
        let (sender, answer) = oneshot::channel();
        match object.serve(&request, 0, || To::Here(sender)) {
            Served::Now(reply) => Ok(reply),
            Served::Parked(_) => {
                self.waiting = Some(Waiting {
                    answer,
                    object,
                    op: self.op,
                    timer: self
                        .timeout
                        .filter(|_| timer)
                        .map(|after| Box::pin(tokio::time::sleep(after))),
                });
                Err(())
            }
        }
    }

    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<Reply> {
        let waiting = self.waiting.as_mut().expect("waiting in line");
        if let Poll::Ready(answer) = Pin::new(&mut waiting.answer).poll(cx) {
            // The sender is dropped unanswered only with its object.
            let reply = answer.unwrap_or(Err(Failure::Gone));
            // Seen: nothing to give back.
            waiting.answer.close();
            self.waiting = None;
            return Poll::Ready(reply);
        }
        if let Some(timer) = &mut waiting.timer
            && timer.as_mut().poll(cx).is_ready()
        {
            self.waiting = None; // gives back what raced in
            return Poll::Ready(Err(Failure::TimedOut(self.timeout.unwrap_or_default())));
        }
        Poll::Pending
    }

    fn finish(&self, reply: Reply) -> Result<T, Error> {
        match reply {
            Ok(bytes) => (self.decode)(&self.route, bytes),
            Err(failure) => Err(failed(self.what, failure)),
        }
    }
}

impl<T> Future for Call<T> {
    type Output = Result<T, Error>;

    /// In a worker, the call blocks the polling thread until answered (a
    /// task is a plain thread; an async runtime a task runs for itself
    /// waits with it).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.waiting.is_some() {
            return this.poll_waiting(cx).map(|reply| this.finish(reply));
        }
        let request = std::mem::replace(&mut this.request, Ok(Vec::new()))?;
        let reply = match &this.route {
            Route::Pool(_) => through_pool(&request),
            Route::Here { object, .. } => match this.serve_here(object.clone(), &request, true) {
                Ok(reply) => reply,
                Err(()) => match this.poll_waiting(cx) {
                    Poll::Ready(reply) => reply,
                    Poll::Pending => return Poll::Pending,
                },
            },
        };
        Poll::Ready(this.finish(reply))
    }
}

/// A call [sent](Call::send) ahead, its answer to come.
///
/// # Examples
///
/// ```no_run
/// fn bump(hits: procpool::manager::Value<u64>) -> Result<u64, procpool::Error> {
///     let sent = hits.fetch_add(1).send();
///     // ... other work while the call is on its way ...
///     sent.wait()
/// }
/// ```
pub struct Sent<T> {
    call: Call<T>,
    progress: Progress,
}

/// Where a sent call is.
enum Progress {
    /// Not sent ahead: made when waited for.
    Unsent,
    /// Could not be made.
    Failed(Error),
    Answered(Reply),
    /// On its way to the pool.
    InFlight(Pending),
    /// Waiting in its object's line in this process.
    InLine,
}

impl<T> Sent<T> {
    /// Blocks this thread until the call is answered, and returns the
    /// answer, as [`Call::wait`] does.
    ///
    /// # Errors
    ///
    /// As the method that made the call says, and as [`Call::wait`].
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let manager = procpool::Manager::new();
    /// let hits = manager.value(0u64);
    /// // In the pool's process, the call was made by `send` already.
    /// let sent = hits.fetch_add(5).send();
    /// assert_eq!(sent.wait()?, 0);
    /// assert_eq!(hits.load().await?, 5);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn wait(self) -> Result<T, Error> {
        let Sent { mut call, progress } = self;
        let reply = match progress {
            Progress::Unsent => return call.wait(),
            Progress::Failed(error) => return Err(error),
            Progress::Answered(reply) => reply,
            Progress::InFlight(pending) => pool_reply(pending.wait()),
            Progress::InLine => call.wait_in_line()?,
        };
        call.finish(reply)
    }
}

impl<T> std::fmt::Debug for Sent<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let progress = match self.progress {
            Progress::Unsent => "unsent",
            Progress::Failed(_) => "failed",
            Progress::Answered(_) => "answered",
            Progress::InFlight(_) => "in flight",
            Progress::InLine => "in line",
        };
        f.debug_struct("Sent")
            .field("call", &self.call)
            .field("progress", &progress)
            .finish()
    }
}

/// Sends `request` to the pool this worker serves and waits for its reply.
fn through_pool(request: &[u8]) -> Reply {
    let link = pool_link(request)?;
    pool_reply(link.call(Service::Manager, request))
}

/// Sends `request` to the pool this worker serves, its reply to come.
fn start_through_pool(request: &[u8]) -> Result<Pending, Failure> {
    let link = pool_link(request)?;
    link.start(Service::Manager, request)
        .map_err(|_| Failure::Gone)
}

/// This worker's link to its pool, if `request` may go on it.
fn pool_link(request: &[u8]) -> Result<&'static Link, Failure> {
    let Some(link) = Link::get() else {
        return Err(Failure::Misuse(
            "a worker's manager handle outside its worker".into(),
        ));
    };
    let size = request.len() as u64 + 64;
    if size > link.max_frame() {
        return Err(Failure::Misuse(format!(
            "a manager call of {size} bytes, over the pool's maximum frame of {} \
             (PoolBuilder::max_frame_size)",
            link.max_frame()
        )));
    }
    Ok(link)
}

/// What the pool's reply to a manager call says.
fn pool_reply(reply: std::io::Result<link::Reply>) -> Reply {
    match reply {
        Ok(Ok(reply)) => {
            wire::parse_reply(reply).unwrap_or_else(|garbage| Err(Failure::Misuse(garbage)))
        }
        Ok(Err(refused)) => Err(Failure::Misuse(refused)),
        Err(_) => Err(Failure::Gone),
    }
}

/// The error for a failed call on an object of kind `what`.
pub(crate) fn failed(what: Kind, failure: Failure) -> Error {
    Error::new(Repr::Manager { what, failure })
}

/// Decodes an answer that is one value.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    _: &Route,
    bytes: Vec<u8>,
) -> Result<T, Error> {
    crate::codec::decode(&bytes)
}

/// Sends `request` as it is, as a manager call from this worker, and
/// returns the raw reply: for tests of the pool's handling of garbage.
///
/// # Errors
///
/// `NotConnected` outside a pool's worker; `BrokenPipe` if the pool is gone.
#[doc(hidden)]
pub fn raw_call_through_pool(request: &[u8]) -> std::io::Result<Vec<u8>> {
    let link = Link::get().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "not inside a pool's worker",
        )
    })?;
    link.call(Service::Manager, request)?
        .map_err(std::io::Error::other)
}
