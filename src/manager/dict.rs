//! [`Dict`]: a shared map, Python's `Manager().dict()`.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::call::{Call, Route};
use super::handle::{encode, encode_option, handle, task_index};
use super::state::Kind;
use super::wire::{self, Op};
use crate::codec;
use crate::registry::Task;

/// A map shared by the pool's process and its tasks: a handle to it, which
/// is a serde value (pass it to [`Pool::submit`](crate::Pool::submit) as
/// an argument) and `Clone` (every clone is the same map).
///
/// Every operation is applied whole where the map lives, and what it
/// returns is a snapshot: a value you get is yours, and changing it
/// changes nothing shared. To change a value in place, use
/// [`update`](Dict::update), which runs a registered function at the
/// host, or [`compare_and_swap`](Dict::compare_and_swap): there is no
/// `d['k'].append(x)` that is silently lost.
///
/// Keys are compared by their encoding (bincode), so a key type must
/// encode equal keys alike (not a `HashMap` or `HashSet`, whose order
/// varies; `BTreeMap` is fine), and so must values for
/// [`compare_and_swap`](Dict::compare_and_swap).
///
/// # Examples
///
/// ```no_run
/// use procpool::manager::Dict;
///
/// fn count(word: String, counts: Dict<String, u64>) {
///     counts.update(word, add_one).wait().unwrap();
/// }
///
/// fn add_one(n: Option<u64>) -> u64 {
///     n.unwrap_or(0) + 1
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// // procpool::init(procpool::tasks![count, add_one]) in main
/// let manager = procpool::Manager::new();
/// let counts = manager.dict();
/// let words = ["a", "b", "a"].map(|w| (w.to_string(), counts.clone()));
/// for handle in words.map(|args| pool.submit(count, args)) {
///     handle.await?;
/// }
/// assert_eq!(counts.get(&"a".to_string()).await?, Some(2));
/// # Ok(()) }
/// ```
pub struct Dict<K, V> {
    pub(crate) route: Route,
    types: PhantomData<fn() -> (K, V)>,
}

handle!(Dict<K, V>, Kind::Dict);

impl<K, V> Dict<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// The value at `key`, if there is one (a copy).
    ///
    /// # Errors
    ///
    /// Those of every manager call: [`Error::is_shutdown`](crate::Error::is_shutdown)
    /// if the manager is gone, [`Error::is_codec`](crate::Error::is_codec)
    /// if the key does not encode or the value does not decode.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ages = procpool::Manager::new().dict::<String, u32>();
    /// assert_eq!(ages.get(&"ann".into()).await?, None);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn get(&self, key: &K) -> Call<Option<V>> {
        self.call(Op::Get, 0, encode(key).map(|k| vec![k]))
    }

    /// Sets `key` to `value`; the value it had, if any.
    ///
    /// # Errors
    ///
    /// As [`get`](Dict::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ages = procpool::Manager::new().dict::<String, u32>();
    /// assert_eq!(ages.insert("ann".into(), 31).await?, None);
    /// assert_eq!(ages.insert("ann".into(), 32).await?, Some(31));
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn insert(&self, key: K, value: V) -> Call<Option<V>> {
        let fields = encode(&key).and_then(|k| Ok(vec![k, encode(&value)?]));
        self.call(Op::Insert, 0, fields)
    }

    /// Inserts every pair of `pairs`, in one call, applied whole: no other
    /// call sees some of them and not the others (Python's
    /// `dict.update(mapping)`; here `update` is the read-modify-write). A
    /// key given twice keeps its last value.
    ///
    /// # Errors
    ///
    /// As [`get`](Dict::get); nothing is inserted if a key or value does
    /// not encode.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ages = procpool::Manager::new().dict::<String, u32>();
    /// ages.extend([("ann".into(), 31), ("bob".into(), 45)]).await?;
    /// assert_eq!(ages.len().await?, 2);
    /// assert_eq!(ages.get(&"bob".into()).await?, Some(45));
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Call<()> {
        let mut packed = wire::Packed::new();
        let fields = pairs
            .into_iter()
            .try_for_each(|(key, value)| {
                packed.push(|out| codec::encode_into(&key, out))?;
                packed.push(|out| codec::encode_into(&value, out))
            })
            .map(|()| vec![packed.finish()]);
        self.call(Op::Extend, 0, fields)
    }

    /// Removes `key`; the value it had, if any.
    ///
    /// # Errors
    ///
    /// As [`get`](Dict::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ages = procpool::Manager::new().dict::<String, u32>();
    /// ages.insert("ann".into(), 31).await?;
    /// assert_eq!(ages.remove(&"ann".into()).await?, Some(31));
    /// assert_eq!(ages.len().await?, 0);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn remove(&self, key: &K) -> Call<Option<V>> {
        self.call(Op::Remove, 0, encode(key).map(|k| vec![k]))
    }

    /// Whether `key` has a value.
    ///
    /// # Errors
    ///
    /// As [`get`](Dict::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ages = procpool::Manager::new().dict::<String, u32>();
    /// ages.insert("ann".into(), 31).await?;
    /// assert!(ages.contains_key(&"ann".into()).await?);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn contains_key(&self, key: &K) -> Call<bool> {
        self.call(Op::Contains, 0, encode(key).map(|k| vec![k]))
    }

    /// How many keys have values.
    ///
    /// # Errors
    ///
    /// As [`get`](Dict::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ages = procpool::Manager::new().dict::<String, u32>();
    /// assert_eq!(ages.len().await?, 0);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn len(&self) -> Call<u64> {
        self.call(Op::Len, 0, Ok(Vec::new()))
    }

    /// Every key and value, as one snapshot taken at once, in no
    /// particular order.
    ///
    /// # Errors
    ///
    /// As [`get`](Dict::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ages = procpool::Manager::new().dict::<String, u32>();
    /// ages.insert("ann".into(), 31).await?;
    /// assert_eq!(ages.items().await?, vec![("ann".to_string(), 31)]);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn items(&self) -> Call<Vec<(K, V)>> {
        self.call(Op::Items, 0, Ok(Vec::new()))
    }

    /// Removes every key.
    ///
    /// # Errors
    ///
    /// As [`get`](Dict::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ages = procpool::Manager::new().dict::<String, u32>();
    /// ages.insert("ann".into(), 31).await?;
    /// ages.clear().await?;
    /// assert_eq!(ages.len().await?, 0);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn clear(&self) -> Call<()> {
        self.call(Op::Clear, 0, Ok(Vec::new()))
    }

    /// Sets `key` to `new` (`None`: removes it) if its value is `current`
    /// (`None`: it has none), atomically. `Err` holds the value it had
    /// instead, and nothing changed.
    ///
    /// # Errors
    ///
    /// As [`get`](Dict::get) (the outer `Result`).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let owners = procpool::Manager::new().dict::<String, u32>();
    /// // First come, first served: only one claim wins.
    /// assert_eq!(owners.compare_and_swap("job".into(), None, Some(7)).await?, Ok(()));
    /// assert_eq!(owners.compare_and_swap("job".into(), None, Some(8)).await?, Err(Some(7)));
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn compare_and_swap(
        &self,
        key: K,
        current: Option<V>,
        new: Option<V>,
    ) -> Call<Result<(), Option<V>>> {
        let fields = encode(&key).and_then(|k| {
            Ok(vec![
                k,
                encode_option(current.as_ref())?,
                encode_option(new.as_ref())?,
            ])
        });
        self.call(Op::CompareAndSwap, 0, fields)
    }

    /// Sets `key` to `f(its value)`, running `f` where the map lives, under
    /// its lock: no other call on the map comes between reading and
    /// writing. `f` is a plain `fn` listed in [`tasks!`](crate::tasks)
    /// (the pool's process is the same program, so it runs it itself); it
    /// gets `None` if the key has no value. Returns the new value.
    ///
    /// Keep `f` short: the map waits while it runs, and it runs in the
    /// pool's process — for a call from a task, on the pool's dispatcher,
    /// which serves every worker and waits for it. Its panics are caught,
    /// not its aborts.
    ///
    /// # Errors
    ///
    /// As [`get`](Dict::get); [`Error::is_panic`](crate::Error::is_panic)
    /// if `f` panicked (the value is unchanged);
    /// [`Error::is_unregistered`](crate::Error::is_unregistered) if `f` is
    /// not in `tasks![..]`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn add_one(n: Option<u64>) -> u64 {
    ///     n.unwrap_or(0) + 1
    /// }
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // procpool::init(procpool::tasks![add_one]) in main
    /// let counts = procpool::Manager::new().dict::<String, u64>();
    /// assert_eq!(counts.update("a".into(), add_one).await?, 1);
    /// assert_eq!(counts.update("a".into(), add_one).await?, 2);
    /// # Ok(()) }
    /// ```
    pub fn update<M, F>(&self, key: K, f: F) -> Call<V>
    where
        F: Task<M, Args = Option<V>, Output = V>,
    {
        let _ = f;
        match task_index::<M, F>() {
            Ok(task) => self.call(Op::Update, task, encode(&key).map(|k| vec![k])),
            Err(err) => self.call(Op::Update, 0, Err(err)),
        }
    }
}
