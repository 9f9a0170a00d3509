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

use crate::codec;
use crate::error::{Error, Repr};

/// A function that can run in a worker process.
///
/// Implemented for every `fn` item (and, type-wise, every zero-sized `Fn`)
/// of up to eight arguments whose arguments and result are serde types.
/// `M` is a marker (the function's signature as a `fn` pointer type) that lets
/// one trait cover every arity without overlapping impls; it is always
/// inferred, so user code never names it.
///
/// For a one-argument function `Args` is that argument; for several it is the
/// tuple of them, so `fn product(a: u64, b: u64) -> u64` is submitted as
/// `pool.submit(product, (a, b))`.
///
/// A capturing closure is rejected at compile time, because its captures could
/// not reach the worker:
///
/// ```compile_fail
/// fn demo(pool: &procpool::Pool) {
///     let offset = 5u64;
///     let _ = pool.submit(move |x: u64| x + offset, 1);
/// }
/// # fn main() { let _force_codegen: fn(&procpool::Pool) = demo; }
/// ```
pub trait Task<M>: Copy + Send + Sync + 'static {
    /// The arguments, as one value (a tuple for several).
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// The result.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Calls the function.
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

type Invoker = Box<dyn Fn(&[u8], &mut Vec<u8>) -> Result<(), String> + Send + Sync>;

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
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a function; [`tasks!`](crate::tasks) calls this once per name.
    ///
    /// # Panics
    ///
    /// If the function is already listed, if another listed function has the
    /// same type name, or if it is a closure: all are mistakes in the program
    /// text, reported where they are made.
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
            invoke: Box::new(move |args: &[u8], out: &mut Vec<u8>| {
                let args: F::Args = codec::decode(args).map_err(|err| err.to_string())?;
                let output = f.call(args);
                codec::encode_into(&output, out).map_err(|err| err.to_string())
            }),
        });
        self
    }

    /// How many functions are registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no function is registered.
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

    /// Runs entry `index` on encoded `args`, appending the encoded result.
    /// Panics from the task propagate to the caller, which catches them.
    pub(crate) fn invoke(&self, index: u32, args: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match self.entries.get(index as usize) {
            Some(entry) => (entry.invoke)(args, out),
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

/// Builds a [`Registry`] from a list of functions.
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// fn greet(name: String) -> String { format!("hello, {name}") }
///
/// let registry = procpool::tasks![square, greet];
/// # assert_eq!(registry.len(), 2);
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
        codec::encode_into(args, &mut input).unwrap();
        let mut out = Vec::new();
        registry.invoke(index, &input, &mut out).unwrap();
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
            codec::decode::<u64>(&call(&registry, 0, &7u64)).unwrap(),
            49
        );
        assert_eq!(
            codec::decode::<u64>(&call(&registry, 1, &(2u64, 3u64, 4u64))).unwrap(),
            24
        );
        codec::decode::<()>(&call(&registry, 2, &())).unwrap();
        assert!(registry.invoke(9, &[], &mut Vec::new()).is_err());
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
