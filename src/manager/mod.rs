//! Shared objects: Python's `multiprocessing.Manager`, without its traps.
//!
//! A [`Manager`] holds objects in the pool's process — a [`Dict`], a
//! [`List`], a [`Value`] (a number, or a struct of your own, as Python's
//! `Namespace`), a [`Queue`] and a [`Lock`] — and hands out handles to
//! them. Handles are serde values: pass them to
//! [`Pool::submit`](crate::Pool::submit) as arguments, clone them, keep
//! them. Every method returns a [`Call`]: `.await` it in the pool's
//! process, [`wait`](Call::wait) for it inside a task, or
//! [`send`](Call::send) it ahead and wait for its [`Sent`] answer later,
//! so that many calls from a task cost about one round trip.
//!
//! ```no_run
//! use procpool::manager::Dict;
//!
//! fn count(word: String, counts: Dict<String, u64>) {
//!     counts.update(word, add_one).wait().unwrap();
//! }
//!
//! fn add_one(n: Option<u64>) -> u64 {
//!     n.unwrap_or(0) + 1
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), procpool::Error> {
//!     procpool::init(procpool::tasks![count, add_one]);
//!     let pool = procpool::Pool::builder().workers(4).build().await?;
//!     let manager = procpool::Manager::new();
//!     let counts = manager.dict();
//!     let words = "a b a c a".split(' ').map(|w| (w.to_string(), counts.clone()));
//!     futures::future::try_join_all(words.map(|args| pool.submit(count, args))).await?;
//!     assert_eq!(counts.get(&"a".to_string()).await?, Some(3));
//!     Ok(())
//! }
//! ```
//!
//! # What is different from Python's
//!
//! * **No lost nested mutation.** What a call returns is a snapshot; to
//!   change a value in place, [`Dict::update`] (and `List::update`,
//!   `Value::update`) runs a registered `fn` where the object lives, under
//!   its lock, so `d['k'].append(x)` changing a copy (cpython #91192,
//!   #76719) cannot happen. [`Dict::compare_and_swap`] and
//!   [`Value::fetch_add`] cover the rest.
//! * **Every call is applied whole or not at all**, at the host, one at a
//!   time per object; a worker killed mid-call leaves every object
//!   consistent.
//! * **A dead holder poisons its lock** ([`Error::is_poisoned`](crate::Error::is_poisoned))
//!   instead of holding it for ever.
//! * **Failures are typed**: the manager shut down
//!   ([`is_shutdown`](crate::Error::is_shutdown)), a wait timed out
//!   ([`is_timeout`](crate::Error::is_timeout)), a value that does not
//!   decode ([`is_codec`](crate::Error::is_codec)), an update function that
//!   panicked ([`is_panic`](crate::Error::is_panic), the value unchanged).
//!   Never a hang, never `BrokenPipe` for ever.
//! * **No socket of its own, no pickles from strangers**: calls travel on
//!   each worker's own connection to its pool (so they work for workers
//!   on other hosts, [`Launcher`](crate::Launcher)), and a value is only
//!   ever decoded as the type its handle names.
//!
//! # How it works
//!
//! The objects live in the process that made the manager, which is the
//! pool's: a handle there uses its object directly (a mutex, no copy
//! through a socket), and a handle in a worker sends a `CALL` frame over
//! the worker's connection, which the pool's dispatcher answers at once,
//! or, for a call that waits (a lock, an empty queue), when it is
//! granted. A separate manager process, as Python has, would add a hop
//! to every call from the parent and a socket per worker that remote
//! workers could not reach. The cost: the objects go away with the pool's
//! process, and an update function runs on its threads.
//!
//! Calls are bounded: a worker has at most 1,024 calls unanswered at once
//! (sending more waits for answers), at most 4,096 waiting in objects'
//! lines (more are refused), and a worker that does not read its replies
//! is not read from (the pool's 4 MiB reply backlog), so a flood of calls
//! is slowed, not buffered.

mod call;
mod dict;
mod handle;
pub(crate) mod host;
mod list;
mod lock;
pub(crate) mod peer;
mod queue;
pub(crate) mod state;
mod value;
pub(crate) mod wire;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

#[doc(hidden)]
pub use call::raw_call_through_pool;
pub use call::{Call, Sent};
pub use dict::Dict;
pub use list::List;
pub use lock::{Lock, LockGuard};
pub use queue::Queue;
pub use value::{Number, Value};

use call::Route;
use host::Keep;
use state::State;

/// Holds shared objects in this process (the pool's) for every task of
/// every pool here to reach, and makes them.
///
/// Objects live until [`shutdown`](Manager::shutdown), or until the last
/// clone of the manager and the last handle in this process are dropped;
/// then every call on them (from tasks too) fails with
/// [`Error::is_shutdown`](crate::Error::is_shutdown). A handle sent to a
/// task does not keep them: keep the manager (or a handle) while tasks use
/// them.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let manager = procpool::Manager::new();
/// let seen = manager.list::<String>();
/// seen.push("hello".into()).await?;
/// manager.shutdown();
/// assert!(seen.len().await.unwrap_err().is_shutdown());
/// # Ok::<(), procpool::Error>(()) }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Manager {
    keep: Arc<Keep>,
}

impl Default for Manager {
    fn default() -> Manager {
        Manager::new()
    }
}

impl Manager {
    /// A manager with no objects yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = procpool::Manager::new();
    /// let _counts = manager.dict::<String, u64>();
    /// ```
    pub fn new() -> Manager {
        Manager { keep: Keep::open() }
    }

    fn create(&self, state: State<host::To>) -> Route {
        Route::Here {
            object: self.keep.shared().create(state),
            _manager: self.keep.clone(),
        }
    }

    /// A new, empty [`Dict`].
    ///
    /// # Examples
    ///
    /// ```
    /// let counts = procpool::Manager::new().dict::<String, u64>();
    /// # let _ = counts;
    /// ```
    pub fn dict<K, V>(&self) -> Dict<K, V>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        Dict::new(self.create(State::Dict(Default::default())))
    }

    /// A new, empty [`List`].
    ///
    /// # Examples
    ///
    /// ```
    /// let words = procpool::Manager::new().list::<String>();
    /// # let _ = words;
    /// ```
    pub fn list<T: Serialize + DeserializeOwned>(&self) -> List<T> {
        List::new(self.create(State::List(Vec::new())))
    }

    /// A new [`Value`] holding `initial`.
    ///
    /// # Errors
    ///
    /// None here: a value that does not encode makes every call on the
    /// handle fail with [`Error::is_codec`](crate::Error::is_codec).
    ///
    /// # Examples
    ///
    /// ```
    /// let hits = procpool::Manager::new().value(0u64);
    /// # let _ = hits;
    /// ```
    pub fn value<T: Serialize + DeserializeOwned>(&self, initial: T) -> Value<T> {
        let bytes = handle::encode(&initial).unwrap_or_default();
        Value::new(self.create(State::Value(bytes)))
    }

    /// A new, empty [`Queue`] of up to `capacity` items (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let jobs = procpool::Manager::new().queue::<u64>(16);
    /// # let _ = jobs;
    /// ```
    pub fn queue<T: Serialize + DeserializeOwned>(&self, capacity: usize) -> Queue<T> {
        Queue::new(self.create(State::queue(capacity)))
    }

    /// A new, free [`Lock`].
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = procpool::Manager::new().lock();
    /// # let _ = lock;
    /// ```
    pub fn lock(&self) -> Lock {
        Lock {
            route: self.create(State::lock()),
        }
    }

    /// Ends the manager now: its objects are dropped, calls waiting on them
    /// and every later call fail with
    /// [`Error::is_shutdown`](crate::Error::is_shutdown). Dropping the last
    /// clone and the last handle in this process does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let manager = procpool::Manager::new();
    /// let hits = manager.value(0u64);
    /// manager.shutdown();
    /// assert!(hits.load().await.unwrap_err().is_shutdown());
    /// # });
    /// ```
    pub fn shutdown(&self) {
        self.keep.shared().shutdown();
    }
}
