//! Which functions may run in a worker, and how a worker calls them.
//!
//! A task is a plain `fn` item. Every fn item has its own zero-sized type, so
//! the registry keys entries by that type: the pool looks a function up by its
//! `TypeId` at submit time and sends only its index; the worker (the same
//! executable) calls the entry at that index. No function pointer ever crosses
//! the process boundary, and no unsafe code is involved.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::attach::{self, Attachment};
use crate::error::{Error, Repr};

/// A function that can run in a worker process.
///
/// Implemented for every `fn` item (and, type-wise, every zero-sized `Fn`)
/// of up to eight arguments whose arguments and result are serde types:
/// each implements [`Serialize`] and [`DeserializeOwned`], and is `Send +
/// 'static`. You never implement it yourself: write a plain `fn`, list it in
/// [`tasks!`](crate::tasks), and pass it to [`Pool::submit`](crate::Pool::submit)
/// or [`Pool::map`](crate::Pool::map).
///
/// `M` is a marker (the function's signature as a `fn` pointer type) that lets
/// one trait cover every arity without overlapping impls; it is always
/// inferred, so user code never names it.
///
/// # How arguments are passed
///
/// [`Args`](Task::Args) is the one value a call carries:
///
/// | the function | `Args` | submitted as |
/// |---|---|---|
/// | `fn hostname() -> String` | `()` | `pool.submit(hostname, ())` |
/// | `fn square(x: u64) -> u64` | `u64` | `pool.submit(square, 7)` |
/// | `fn product(a: u64, b: u64) -> u64` | `(u64, u64)` | `pool.submit(product, (6, 7))` |
///
/// * A function of **no arguments** still takes an argument at the call: `()`.
///   Leaving it out is rustc's E0061, "this method takes 2 arguments but 1
///   argument was supplied", with the fix `pool.submit(hostname, ())`.
/// * A function of **one argument** takes the value itself, not a 1-tuple:
///   `pool.submit(square, (7,))` is E0308, "expected `u64`, found
///   `({integer},)`". (A function whose one argument *is* a tuple,
///   `fn f(pair: (u64, u64))`, takes that tuple, and so is submitted exactly
///   like a two-argument function.)
/// * A function of **several arguments** takes one tuple of them:
///   `pool.submit(product, 6, 7)` is E0061, and rustc suggests the
///   parentheses.
///
/// The same holds for the items of [`Pool::map`](crate::Pool::map) and for
/// [`PoolBuilder::initializer`](crate::PoolBuilder::initializer).
///
/// # Owned arguments
///
/// Arguments are decoded in the worker into values the function owns, so a
/// task cannot take a reference. Take `String` instead of `&str`, `Vec<T>`
/// instead of `&[T]`, and `T` instead of `&T`; for bytes, take
/// `serde_bytes::ByteBuf` (a plain `Vec<u8>` is encoded element by element,
/// which is far slower).
///
/// A borrowed argument shows up as one of two errors, neither of which says
/// "reference":
///
/// * for `&[T]` and most other references, the error below (the type has no
///   `Deserialize` at all);
/// * for `&str` and `&[u8]`, which serde can borrow, "implementation of
///   `Deserialize` is not general enough" with a note that some type "must
///   implement `Deserialize<'de>`". That note may name another of the
///   function's types, such as its result: the problem is still the
///   reference. (This error comes from lifetime checking, after the trait
///   is found to apply, so no message of procpool's can replace it.)
///
/// # When a function is not a task
///
/// A function whose argument or result is not a serde type fails to compile
/// where it is listed or submitted:
///
/// ```text
/// error[E0277]: `fn(BigUint) -> u64 {bits}` cannot run in a procpool worker:
///               its arguments and result must all implement `Serialize` and `DeserializeOwned`
///    |
///  9 |         let _ = pool.submit(bits, n);
///    |                      ------ ^^^^ some argument or the result is not a serde type (or there are more than 8 arguments)
/// ```
///
/// The function's signature is in the message; the compiler cannot say
/// which of its types is the culprit (the trait's impls are generic over
/// the signature, so it does not look inside them). Derive `Serialize` and
/// `Deserialize` for a type of your own; for another crate's, look for its
/// `serde` feature, or convert it to a serde type (a `String`, a `Vec` of
/// digits...) in a small wrapper `fn`. The same message comes for a function
/// of more than eight arguments: pass a struct or a tuple instead.
///
/// A capturing closure is rejected at compile time, because its captures could
/// not reach the worker (a closure that captures nothing compiles, but is
/// refused when registered or submitted: name it as a `fn`):
///
/// ```compile_fail
/// fn demo(pool: &procpool::Pool) {
///     let offset = 5u64;
///     let _ = pool.submit(move |x: u64| x + offset, 1);
/// }
/// # fn main() { let _force_codegen: fn(&procpool::Pool) = demo; }
/// ```
///
/// # Examples
///
/// Types of your own become task arguments and results with serde's derives:
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Job {
///     name: String,
///     iterations: u32,
/// }
///
/// #[derive(Serialize, Deserialize, Debug)]
/// struct Report {
///     name: String,
///     checksum: u64,
/// }
///
/// fn run(job: Job) -> Report {
///     let checksum = (0..job.iterations).map(u64::from).sum();
///     Report { name: job.name, checksum }
/// }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init(procpool::tasks![run]);
///     tokio::runtime::Runtime::new()?.block_on(async {
///         let pool = procpool::Pool::builder().build().await?;
///         let job = Job { name: "a".into(), iterations: 1_000 };
///         println!("{:?}", pool.submit(run, job).await?);
///         Ok(())
///     })
/// }
/// ```
///
/// Generic code names a task's argument and result types through the trait:
///
/// ```no_run
/// use procpool::{Error, Pool, Task};
///
/// /// Submits `f(args)`, logging a failure with the task's name.
/// async fn submit_logged<M, F: Task<M>>(pool: &Pool, f: F, args: F::Args) -> Result<F::Output, Error> {
///     let handle = pool.submit(f, args);
///     let name = handle.task_name();
///     let result = handle.await;
///     if let Err(err) = &result {
///         eprintln!("{name} failed: {err}");
///     }
///     result
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot run in a procpool worker: its arguments and result must all implement `Serialize` and `DeserializeOwned`",
    label = "some argument or the result is not a serde type (or there are more than 8 arguments)",
    note = "for a type of your own, derive `serde::Serialize` and `serde::Deserialize`; for another crate's, look for its `serde` feature, or convert it to a serde type",
    note = "arguments arrive in the worker as owned values: take `String`, not `&str`; `Vec<T>`, not `&[T]`",
    note = "see the documentation of `procpool::Task` for what a task may be"
)]
pub trait Task<M>: Copy + Send + Sync + 'static {
    /// The arguments, as one value: `()` for none, the argument itself for
    /// one, a tuple for several (see [How arguments are
    /// passed](Task#how-arguments-are-passed)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::marker::PhantomData;
    ///
    /// use procpool::Task;
    ///
    /// fn hostname() -> String { "localhost".into() }
    /// fn square(x: u64) -> u64 { x * x }
    /// fn product(a: u64, b: u32) -> u64 { a * u64::from(b) }
    ///
    /// fn args_of<M, F: Task<M>>(_: F) -> PhantomData<F::Args> {
    ///     PhantomData
    /// }
    ///
    /// let _: PhantomData<()> = args_of(hostname);
    /// let _: PhantomData<u64> = args_of(square); // not `(u64,)`
    /// let _: PhantomData<(u64, u32)> = args_of(product);
    /// ```
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// The result: the function's return type, which the task's
    /// [`TaskHandle`](crate::TaskHandle) resolves to.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::marker::PhantomData;
    ///
    /// use procpool::Task;
    ///
    /// fn split(text: String) -> Vec<String> {
    ///     text.split(' ').map(String::from).collect()
    /// }
    ///
    /// fn output_of<M, F: Task<M>>(_: F) -> PhantomData<F::Output> {
    ///     PhantomData
    /// }
    ///
    /// let _: PhantomData<Vec<String>> = output_of(split);
    /// ```
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Calls the function, here in this process: a worker calls this for
    /// each task it runs. Useful in tests of the task itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use procpool::Task;
    ///
    /// fn product(a: u64, b: u64) -> u64 { a * b }
    ///
    /// assert_eq!(Task::call(product, (6, 7)), 42);
    /// ```
    fn call(self, args: Self::Args) -> Self::Output;
}

macro_rules! impl_task {
    ($($arg:ident),*) => {
        impl<Func, Ret, $($arg,)*> Task<fn($($arg,)*) -> Ret> for Func
        where
            Func: Fn($($arg,)*) -> Ret + Copy + Send + Sync + 'static,
            Ret: Serialize + DeserializeOwned + Send + 'static,
            $($arg: Serialize + DeserializeOwned + Send + 'static,)*
        {
            type Args = impl_task!(@args $($arg),*);
            type Output = Ret;
            #[allow(non_snake_case)]
            fn call(self, args: Self::Args) -> Ret {
                let impl_task!(@pat $($arg),*) = args;
                self($($arg,)*)
            }
        }
    };
    (@args $one:ident) => { $one };
    (@args $($arg:ident),*) => { ($($arg,)*) };
    (@pat $one:ident) => { $one };
    (@pat $($arg:ident),*) => { ($($arg,)*) };
}

impl_task!();
impl_task!(A);
impl_task!(A, B);
impl_task!(A, B, C);
impl_task!(A, B, C, D);
impl_task!(A, B, C, D, E);
impl_task!(A, B, C, D, E, G);
impl_task!(A, B, C, D, E, G, H);
impl_task!(A, B, C, D, E, G, H, I);

/// Rejects, at compile time, task types that carry data (capturing closures,
/// function pointers): only a zero-sized fn item can be rebuilt in a worker.
pub(crate) const fn assert_fn_item<F>() {
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "procpool tasks must be plain `fn` items: closures that capture \
             variables and function pointers cannot be sent to a worker"
        )
    }
}

type Invoker =
    Box<dyn Fn(&[u8], Arrived, &mut Vec<u8>) -> Result<Vec<Attachment>, String> + Send + Sync>;

/// How a task's arguments arrived, which says how its result goes back.
pub(crate) enum Arrived {
    /// In a request, with its frame's attachments; the result's large
    /// buffers go as attachments of the answer.
    Request(Vec<Vec<u8>>),
    /// As an item of a `map` chunk, whose frames carry no attachments:
    /// every buffer is inside the encoding, both ways.
    Item,
}

struct Entry {
    name: &'static str,
    signature: String,
    invoke: Invoker,
}

/// The list of functions a program's workers can run; build it with
/// [`tasks!`](crate::tasks) and hand it to [`init`](crate::init).
///
/// # Examples
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// fn product(a: u64, b: u64, c: u64) -> u64 { a * b * c }
///
/// let registry = procpool::tasks![square, product];
/// assert_eq!(registry.len(), 2);
/// ```
#[derive(Default)]
pub struct Registry {
    entries: Vec<Entry>,
    by_type: HashMap<TypeId, u32>,
}

impl Registry {
    /// An empty registry; [`tasks!`](crate::tasks) starts from one.
    ///
    /// # Examples
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// let registry = procpool::Registry::new().register(square);
    /// assert_eq!(registry.len(), 1);
    /// ```
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a function; [`tasks!`](crate::tasks) calls this once per name.
    ///
    /// The order of registration matters: requests name tasks by position,
    /// and the pool checks that each worker registered the same functions in
    /// the same order.
    ///
    /// # Panics
    ///
    /// If the function is already listed, if another listed function has the
    /// same type name, or if it is a closure: all are mistakes in the program
    /// text, reported where they are made. (A closure that captures variables,
    /// or a function pointer, is refused when the program is built instead —
    /// by `cargo build`, not `cargo check` — and a function that is not a
    /// [`Task`] does not compile.)
    ///
    /// # Examples
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// fn greet(name: String) -> String { format!("hello, {name}") }
    ///
    /// let mut registry = procpool::Registry::new().register(square);
    /// if std::env::var_os("GREETER").is_some() {
    ///     registry = registry.register(greet);
    /// }
    /// # assert!(!registry.is_empty());
    /// ```
    ///
    /// A list chosen at run time must come out the same in the workers,
    /// which read the same environment; the pool refuses a worker whose list
    /// differs.
    #[track_caller]
    #[must_use]
    pub fn register<M, F: Task<M>>(mut self, f: F) -> Registry {
        assert_fn_item::<F>();
        let name = std::any::type_name::<F>();
        assert!(
            !name.contains("{{closure}}"),
            "procpool: `{name}` is a closure; register a named `fn` instead"
        );
        assert!(
            !self.by_type.contains_key(&TypeId::of::<F>()),
            "procpool: `{name}` is listed twice in tasks![...]"
        );
        // Type names are unique per fn item in practice but not by guarantee,
        // and the fingerprint relies on them.
        assert!(
            self.entries.iter().all(|entry| entry.name != name),
            "procpool: two different functions are both named `{name}`; rename one"
        );
        let index = u32::try_from(self.entries.len()).expect("fewer than 2^32 tasks");
        self.by_type.insert(TypeId::of::<F>(), index);
        self.entries.push(Entry {
            name,
            signature: format!(
                "{} -> {}",
                std::any::type_name::<F::Args>(),
                std::any::type_name::<F::Output>()
            ),
            invoke: Box::new(move |args: &[u8], arrived: Arrived, out: &mut Vec<u8>| {
                let (attachments, item) = match arrived {
                    Arrived::Request(attachments) => (attachments, false),
                    Arrived::Item => (Vec::new(), true),
                };
                let args: F::Args =
                    attach::decode(args, attachments).map_err(|err| err.to_string())?;
                let output = f.call(args);
                let encoded = if item {
                    attach::encode_inline(&output, out).map(|()| Vec::new())
                } else {
                    attach::encode(output, out)
                };
                encoded.map_err(|err| err.to_string())
            }),
        });
        self
    }

    /// How many functions are registered.
    ///
    /// # Examples
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// fn cube(x: u64) -> u64 { x * x * x }
    ///
    /// assert_eq!(procpool::tasks![square, cube].len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no function is registered.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(procpool::tasks![].is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index a request uses for `F`.
    pub(crate) fn index_of<F: 'static>(&self) -> Result<u32, Error> {
        self.by_type
            .get(&TypeId::of::<F>())
            .copied()
            .ok_or_else(|| {
                Error::new(Repr::Unregistered {
                    task: std::any::type_name::<F>(),
                })
            })
    }

    /// This registry's own copy of the task name `name`, if it has it.
    pub(crate) fn name_like(&self, name: &str) -> Option<&'static str> {
        self.entries
            .iter()
            .map(|entry| entry.name)
            .find(|known| *known == name)
    }

    /// Runs entry `index` on encoded `args`, appending the encoded result
    /// and returning its attachments. Panics from the task propagate to the
    /// caller, which catches them.
    pub(crate) fn invoke(
        &self,
        index: u32,
        args: &[u8],
        arrived: Arrived,
        out: &mut Vec<u8>,
    ) -> Result<Vec<Attachment>, String> {
        match self.entries.get(index as usize) {
            Some(entry) => (entry.invoke)(args, arrived, out),
            None => Err(format!(
                "no task with index {index}; this worker has {} (is it the same build as the pool?)",
                self.entries.len()
            )),
        }
    }

    /// A hash of the names and signatures, in order: pool and worker must agree
    /// on it, since requests name tasks by index.
    pub(crate) fn fingerprint(&self) -> u64 {
        // FNV-1a: tiny, stable across builds and platforms (unlike std's hasher).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for entry in &self.entries {
            for byte in entry
                .name
                .bytes()
                .chain([0])
                .chain(entry.signature.bytes())
                .chain([0])
            {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|entry| (entry.name, &entry.signature)),
            )
            .finish()
    }
}

/// Builds a [`Registry`] from a list of functions, for [`init`](crate::init).
///
/// Each entry is a path to a `fn` item whose arguments and result are serde
/// types (see [`Task`] for what qualifies, and what the compiler says when a
/// function does not). Functions from other modules or crates are named by
/// path. The list is the same in the pool and in every worker, since both
/// are the same program; its order matters only in that a worker program
/// built separately (see
/// [`worker_program`](crate::PoolBuilder::worker_program)) must list the
/// same functions in the same order.
///
/// `tasks![]` is an empty registry, and a trailing comma is allowed.
///
/// # Panics
///
/// As [`Registry::register`]: if a function is listed twice, or is a closure.
///
/// # Examples
///
/// ```
/// mod text {
///     pub fn greet(name: String) -> String { format!("hello, {name}") }
/// }
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let registry = procpool::tasks![square, text::greet];
/// # assert_eq!(registry.len(), 2);
/// ```
///
/// In a program, the list goes straight to `init`, first thing in `main`:
///
/// ```no_run
/// fn square(x: u64) -> u64 { x * x }
///
/// fn main() {
///     procpool::init(procpool::tasks![square]);
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! tasks {
    ($($task:expr),* $(,)?) => {
        $crate::Registry::new()$(.register($task))*
    };
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// Installs the registry; `false` if one was installed before.
pub(crate) fn install(registry: Registry) -> bool {
    REGISTRY.set(registry).is_ok()
}

/// The installed registry, or the error that says to call `init`.
pub(crate) fn global() -> Result<&'static Registry, Error> {
    REGISTRY
        .get()
        .ok_or_else(|| Error::new(Repr::NotInitialized))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: u64) -> u64 {
        x * x
    }
    fn product(a: u64, b: u64, c: u64) -> u64 {
        a * b * c
    }
    fn nothing() {}

    fn call(registry: &Registry, index: u32, args: &impl Serialize) -> Vec<u8> {
        let mut input = Vec::new();
        crate::codec::encode_into(args, &mut input).unwrap();
        let mut out = Vec::new();
        registry
            .invoke(index, &input, Arrived::Request(Vec::new()), &mut out)
            .unwrap();
        out
    }

    #[test]
    fn invokes_by_index_for_every_arity() {
        let registry = crate::tasks![square, product, nothing];
        let square_at = registry.index_of::<fn(u64) -> u64>();
        assert!(
            square_at.is_err(),
            "a fn pointer type is not a registered fn item"
        );
        assert_eq!(
            crate::codec::decode::<u64>(&call(&registry, 0, &7u64)).unwrap(),
            49
        );
        assert_eq!(
            crate::codec::decode::<u64>(&call(&registry, 1, &(2u64, 3u64, 4u64))).unwrap(),
            24
        );
        crate::codec::decode::<()>(&call(&registry, 2, &())).unwrap();
        assert!(
            registry
                .invoke(9, &[], Arrived::Item, &mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn fingerprint_depends_on_order_and_signatures() {
        let a = crate::tasks![square, product].fingerprint();
        let b = crate::tasks![product, square].fingerprint();
        assert_ne!(a, b);
        assert_eq!(a, crate::tasks![square, product].fingerprint());
    }

    #[test]
    #[should_panic(expected = "listed twice")]
    fn duplicates_are_rejected() {
        let _ = crate::tasks![square, square];
    }

    #[test]
    #[should_panic(expected = "is a closure")]
    fn closures_are_rejected() {
        let _ = crate::tasks![|x: u64| x + 1];
    }

    #[test]
    fn unregistered_names_the_function_and_the_fix() {
        let err = crate::tasks![square].index_of::<fn() -> ()>().unwrap_err();
        assert!(err.is_unregistered());
        assert!(err.to_string().contains("tasks!"), "{err}");
    }
}
