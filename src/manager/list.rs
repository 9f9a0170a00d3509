//! [`List`]: a shared list, Python's `Manager().list()`.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::call::{Call, Route};
use super::handle::{encode, handle, task_index};
use super::state::Kind;
use super::wire::{self, Op};
use crate::codec;
use crate::registry::Task;

/// A list shared by the pool's process and its tasks: a handle that is a
/// serde value and `Clone` (every clone is the same list).
///
/// Every operation is applied whole where the list lives; what comes back
/// is a snapshot. Change an item in place with [`update`](List::update).
///
/// # Examples
///
/// ```no_run
/// use procpool::manager::List;
///
/// fn record(word: String, seen: List<String>) {
///     seen.push(word).wait().unwrap();
/// }
///
/// # async fn demo(pool: procpool::Pool) -> Result<(), procpool::Error> {
/// // procpool::init(procpool::tasks![record]) in main
/// let seen = procpool::Manager::new().list();
/// pool.submit(record, ("hello".to_string(), seen.clone())).await?;
/// assert_eq!(seen.items().await?, ["hello"]);
/// # Ok(()) }
/// ```
pub struct List<T> {
    pub(crate) route: Route,
    types: PhantomData<fn() -> T>,
}

handle!(List<T>, Kind::List);

impl<T: Serialize + DeserializeOwned> List<T> {
    /// Appends `item`.
    ///
    /// # Errors
    ///
    /// Those of every manager call: [`Error::is_shutdown`](crate::Error::is_shutdown)
    /// if the manager is gone, [`Error::is_codec`](crate::Error::is_codec)
    /// if an item does not encode or decode.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let list = procpool::Manager::new().list::<u32>();
    /// list.push(1).await?;
    /// assert_eq!(list.len().await?, 1);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn push(&self, item: T) -> Call<()> {
        self.call(Op::Push, 0, encode(&item).map(|item| vec![item]))
    }

    /// Appends every item of `items`, in one call, applied whole: no other
    /// call sees some of them and not the others (Python's
    /// `list.extend`).
    ///
    /// # Errors
    ///
    /// As [`push`](List::push); nothing is appended if any item does not
    /// encode.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let list = procpool::Manager::new().list::<u32>();
    /// list.extend([1, 2, 3]).await?;
    /// assert_eq!(list.items().await?, [1, 2, 3]);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Call<()> {
        let mut packed = wire::Packed::new();
        let fields = items
            .into_iter()
            .try_for_each(|item| packed.push(|out| codec::encode_into(&item, out)))
            .map(|()| vec![packed.finish()]);
        self.call(Op::Extend, 0, fields)
    }

    /// Removes the last item and returns it, if there is one.
    ///
    /// # Errors
    ///
    /// As [`push`](List::push).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let list = procpool::Manager::new().list::<u32>();
    /// list.push(1).await?;
    /// assert_eq!(list.pop().await?, Some(1));
    /// assert_eq!(list.pop().await?, None);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn pop(&self) -> Call<Option<T>> {
        self.call(Op::Pop, 0, Ok(Vec::new()))
    }

    /// The item at `index`, if there is one.
    ///
    /// # Errors
    ///
    /// As [`push`](List::push).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let list = procpool::Manager::new().list::<u32>();
    /// list.push(7).await?;
    /// assert_eq!(list.get(0).await?, Some(7));
    /// assert_eq!(list.get(1).await?, None);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn get(&self, index: u64) -> Call<Option<T>> {
        self.call(Op::Get, index, Ok(Vec::new()))
    }

    /// Replaces the item at `index`; the item it had.
    ///
    /// # Errors
    ///
    /// As [`push`](List::push); an error (which says so) if `index` is past
    /// the end.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let list = procpool::Manager::new().list::<u32>();
    /// list.push(7).await?;
    /// assert_eq!(list.set(0, 8).await?, 7);
    /// assert!(list.set(5, 8).await.is_err());
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn set(&self, index: u64, item: T) -> Call<T> {
        self.call(Op::Set, index, encode(&item).map(|item| vec![item]))
    }

    /// How many items it holds.
    ///
    /// # Errors
    ///
    /// As [`push`](List::push).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let list = procpool::Manager::new().list::<u32>();
    /// assert_eq!(list.len().await?, 0);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn len(&self) -> Call<u64> {
        self.call(Op::Len, 0, Ok(Vec::new()))
    }

    /// Every item, in order, as one snapshot taken at once.
    ///
    /// # Errors
    ///
    /// As [`push`](List::push).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let list = procpool::Manager::new().list::<u32>();
    /// list.push(1).await?;
    /// list.push(2).await?;
    /// assert_eq!(list.items().await?, [1, 2]);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn items(&self) -> Call<Vec<T>> {
        self.call(Op::Items, 0, Ok(Vec::new()))
    }

    /// Removes every item.
    ///
    /// # Errors
    ///
    /// As [`push`](List::push).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let list = procpool::Manager::new().list::<u32>();
    /// list.push(1).await?;
    /// list.clear().await?;
    /// assert_eq!(list.len().await?, 0);
    /// # Ok::<(), procpool::Error>(()) }).unwrap();
    /// ```
    pub fn clear(&self) -> Call<()> {
        self.call(Op::Clear, 0, Ok(Vec::new()))
    }

    /// Replaces the item at `index` with `f(item)`, running registered
    /// function `f` where the list lives, under its lock; returns the new
    /// item. See [`Dict::update`](super::Dict::update).
    ///
    /// # Errors
    ///
    /// As [`set`](List::set); [`Error::is_panic`](crate::Error::is_panic)
    /// if `f` panicked (the item is unchanged).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn shout(text: String) -> String {
    ///     text.to_uppercase()
    /// }
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // procpool::init(procpool::tasks![shout]) in main
    /// let words = procpool::Manager::new().list::<String>();
    /// words.push("hi".into()).await?;
    /// assert_eq!(words.update(0, shout).await?, "HI");
    /// # Ok(()) }
    /// ```
    pub fn update<M, F>(&self, index: u64, f: F) -> Call<T>
    where
        F: Task<M, Args = T, Output = T>,
    {
        let _ = f;
        let fields = task_index::<M, F>().and_then(|task| Ok((task, vec![encode(&index)?])));
        match fields {
            Ok((task, fields)) => self.call(Op::Update, task, Ok(fields)),
            Err(err) => self.call(Op::Update, 0, Err(err)),
        }
    }
}
