//! [`Value`]: one shared value, Python's `Manager().Value()` and
//! `Namespace()`: a number, or a struct of your own.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::call::{Call, Route};
use super::handle::{encode, handle, task_index};
use super::state::Kind;
use super::wire::Op;
use crate::registry::Task;

/// One value shared by the pool's process and its tasks: a handle that is
/// a serde value and `Clone` (every clone is the same value).
///
/// Any serde type will do, a struct of your own included (Python's
/// `Namespace`): [`load`](Value::load) gives a snapshot of it,
/// [`update`](Value::update) changes it whole with a registered function
/// run where it lives, [`compare_and_swap`](Value::compare_and_swap) sets
/// it if nobody changed it meanwhile. Numbers also have
/// [`fetch_add`](Value::fetch_add).
///
/// # Examples
///
/// ```no_run
/// use procpool::manager::Value;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
/// struct Progress {
///     done: u64,
///     last: String,
/// }
///
/// fn finish_one(p: Progress) -> Progress {
///     Progress { done: p.done + 1, last: "a task".into() }
/// }
///
/// fn work(progress: Value<Progress>) {
///     progress.update(finish_one).wait().unwrap();
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// // procpool::init(procpool::tasks![work, finish_one]) in main
/// let progress = procpool::Manager::new().value(Progress::default());
/// pool.submit(work, progress.clone()).await?;
/// assert_eq!(progress.load().await?.done, 1);
/// # Ok(()) }
/// ```
pub struct Value<T> {
    pub(crate) route: Route,
    types: PhantomData<fn() -> T>,
}

handle!(Value<T>, Kind::Value);

impl<T: Serialize + DeserializeOwned> Value<T> {
    /// The value now (a copy).
    ///
    /// # Errors
    ///
    /// Those of every manager call: [`Error::is_shutdown`](crate::Error::is_shutdown)
    /// if the manager is gone, [`Error::is_codec`](crate::Error::is_codec)
    /// if a value does not encode or decode.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let total = procpool::Manager::new().value(5u64);
    /// assert_eq!(total.load().await?, 5);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn load(&self) -> Call<T> {
        self.call(Op::Load, 0, Ok(Vec::new()))
    }

    /// Replaces the value; the one it had.
    ///
    /// # Errors
    ///
    /// As [`load`](Value::load).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let total = procpool::Manager::new().value(5u64);
    /// assert_eq!(total.store(6).await?, 5);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn store(&self, value: T) -> Call<T> {
        self.call(Op::Store, 0, encode(&value).map(|v| vec![v]))
    }

    /// Sets the value to `new` if it is `current` (by encoding),
    /// atomically; `Err` holds the value it had instead, and nothing
    /// changed.
    ///
    /// # Errors
    ///
    /// As [`load`](Value::load) (the outer `Result`).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let state = procpool::Manager::new().value("idle".to_string());
    /// assert_eq!(state.compare_and_swap("idle".into(), "busy".into()).await?, Ok(()));
    /// assert_eq!(
    ///     state.compare_and_swap("idle".into(), "busy".into()).await?,
    ///     Err("busy".to_string())
    /// );
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn compare_and_swap(&self, current: T, new: T) -> Call<Result<(), T>> {
        let fields = encode(&current).and_then(|c| Ok(vec![c, encode(&new)?]));
        self.call(Op::CompareAndSwap, 0, fields)
    }

    /// Sets the value to `f(value)`, running registered function `f` where
    /// the value lives, under its lock; returns the new value. See
    /// [`Dict::update`](super::Dict::update).
    ///
    /// # Errors
    ///
    /// As [`load`](Value::load); [`Error::is_panic`](crate::Error::is_panic)
    /// if `f` panicked (the value is unchanged).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn double(n: u64) -> u64 {
    ///     n * 2
    /// }
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // procpool::init(procpool::tasks![double]) in main
    /// let n = procpool::Manager::new().value(21u64);
    /// assert_eq!(n.update(double).await?, 42);
    /// # Ok(()) }
    /// ```
    pub fn update<M, F>(&self, f: F) -> Call<T>
    where
        F: Task<M, Args = T, Output = T>,
    {
        let _ = f;
        match task_index::<M, F>() {
            Ok(task) => self.call(Op::Update, task, Ok(Vec::new())),
            Err(err) => self.call(Op::Update, 0, Err(err)),
        }
    }
}

impl<T: Number> Value<T> {
    /// Adds `delta` (wrapping, for integers), atomically; the value before.
    ///
    /// # Errors
    ///
    /// As [`load`](Value::load).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let hits = procpool::Manager::new().value(0u64);
    /// assert_eq!(hits.fetch_add(2).await?, 0);
    /// assert_eq!(hits.load().await?, 2);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn fetch_add(&self, delta: T) -> Call<T> {
        self.call(Op::FetchAdd, T::KIND, encode(&delta).map(|d| vec![d]))
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A number that [`Value::fetch_add`] can add at the host: the primitive
/// integers and floats.
///
/// # Examples
///
/// ```
/// fn takes<T: procpool::manager::Number>() {}
/// takes::<u64>();
/// takes::<f64>();
/// ```
pub trait Number: Serialize + DeserializeOwned + sealed::Sealed {
    /// Which type the host decodes it as.
    #[doc(hidden)]
    const KIND: u64;
}

macro_rules! numbers {
    ($($ty:ty => $kind:literal),*) => {
        $(
            impl sealed::Sealed for $ty {}
            impl Number for $ty {
                const KIND: u64 = $kind;
            }
        )*
    };
}

// The kinds the host's `add` knows (state.rs).
numbers!(u8 => 0, u16 => 1, u32 => 2, u64 => 3, i8 => 4, i16 => 5, i32 => 6, i64 => 7,
    usize => 8, isize => 9, f32 => 10, f64 => 11);
