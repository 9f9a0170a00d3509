//! What every handle shares: it is its object's [`Route`], cloned cheaply,
//! written as the object's id and kind, and read back as a route that
//! fits where it lands.

use serde::Serialize;

use crate::codec;
use crate::error::Error;
use crate::registry::{self, Task};

/// Encodes a key or value for a call.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    codec::encode_into(value, &mut out)?;
    Ok(out)
}

/// An `Option<T>` as encoded, for compare-and-swap on a dict.
pub(crate) fn encode_option<T: Serialize>(value: Option<&T>) -> Result<Vec<u8>, Error> {
    encode(&value)
}

/// The registry's index of update function `F`.
pub(crate) fn task_index<M, F: Task<M>>() -> Result<u64, Error> {
    Ok(u64::from(registry::global()?.index_of::<F>()?))
}

/// Implements `Clone`, `Debug`, `Serialize` and `Deserialize` for a handle
/// type `$handle<$($param),*>` of kind `$kind`, a struct of a `route` and
/// a `PhantomData` named `types`, with `new` and a `call` that decodes
/// the answer as one value.
macro_rules! handle {
    ($handle:ident<$($param:ident),*>, $kind:expr) => {
        impl<$($param),*> $handle<$($param),*> {
            pub(crate) fn new(route: $crate::manager::call::Route) -> Self {
                $handle { route, types: std::marker::PhantomData }
            }

            fn call<R: serde::de::DeserializeOwned>(
                &self,
                op: $crate::manager::wire::Op,
                number: u64,
                fields: Result<Vec<Vec<u8>>, $crate::Error>,
            ) -> $crate::manager::call::Call<R> {
                self.route.call($kind, op, number, fields, $crate::manager::call::decode)
            }
        }

        impl<$($param),*> Clone for $handle<$($param),*> {
            fn clone(&self) -> Self {
                $handle { route: self.route.clone(), types: std::marker::PhantomData }
            }
        }

        impl<$($param),*> std::fmt::Debug for $handle<$($param),*> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($handle)).field("id", &self.route.id()).finish()
            }
        }

        impl<$($param),*> serde::Serialize for $handle<$($param),*> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.route.serialize($kind, serializer)
            }
        }

        impl<'de, $($param),*> serde::Deserialize<'de> for $handle<$($param),*> {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok($handle {
                    route: $crate::manager::call::Route::deserialize(deserializer, $kind)?,
                    types: std::marker::PhantomData,
                })
            }
        }
    };
}

pub(crate) use handle;
