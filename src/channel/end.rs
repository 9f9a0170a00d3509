//! One endpoint's hold on its channel, where it is: in the process that
//! holds the channel (a [`Local`] hold on the hub's [`Shared`]), or in a
//! worker (a [`Remote`] one, relayed over the worker's connection). Both
//! count as holders while they live, so a channel ends exactly when the
//! last endpoint of a side is gone, wherever it was.
//!
//! An endpoint travels as its channel id and role. Sent to a worker as a
//! task's argument, it is held on its way by a hold that the task's job
//! keeps ([`carry`]) until the worker has announced its own, so the parent
//! may drop its endpoint right after `submit`.

use std::cell::RefCell;
use std::sync::Arc;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::hub::{self, Shared};
use super::remote;
use crate::error::{Error, Repr};
use crate::wire::channel::Role;
use crate::worker::link::Link;

/// Where an endpoint's hold is.
pub(crate) enum End {
    Local(Local),
    Remote(Remote),
}

/// A hold in the process that holds the channel.
pub(crate) struct Local {
    pub(crate) shared: Arc<Shared>,
    role: Role,
}

/// A hold in a worker.
pub(crate) struct Remote {
    pub(crate) id: u64,
    role: Role,
}

impl Local {
    pub(crate) fn new(shared: Arc<Shared>, role: Role) -> Local {
        shared.hold(role);
        Local { shared, role }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.shared.release(self.role);
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        remote::close(self.id, self.role);
    }
}

impl End {
    /// Another hold of the same role on the same channel.
    pub(crate) fn duplicate(&self) -> End {
        match self {
            End::Local(local) => End::Local(Local::new(local.shared.clone(), local.role)),
            End::Remote(held) => {
                // Opening a channel this worker holds already cannot fail.
                let _ = remote::open(held.id, held.role, "");
                End::Remote(Remote {
                    id: held.id,
                    role: held.role,
                })
            }
        }
    }

    pub(crate) fn id(&self) -> u64 {
        match self {
            End::Local(local) => local.shared.id,
            End::Remote(remote) => remote.id,
        }
    }

    /// Writes the endpoint as `(channel id, role)`; in the channel's own
    /// process, only while a task's arguments are encoded.
    pub(crate) fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let End::Local(local) = self else {
            return Err(serde::ser::Error::custom(
                "a channel endpoint cannot leave the worker it was sent to (send its messages \
                 instead, or create the channel in the pool's process and pass it to each task)",
            ));
        };
        let carried = CARRY.with_borrow_mut(|carry| match carry {
            Some(holds) => {
                holds.push(Local::new(local.shared.clone(), local.role));
                true
            }
            None => false,
        });
        if !carried {
            return Err(serde::ser::Error::custom(
                "a channel endpoint can only be sent as an argument of Pool::submit (not in a \
                 map item, a task's result, or serialized by hand)",
            ));
        }
        (local.shared.id, local.role as u8).serialize(serializer)
    }

    /// Reads an endpoint of `role` for messages of type `ty`: a worker
    /// announces its hold; the channel's own process looks it up.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
        role: Role,
        ty: &'static str,
    ) -> Result<End, D::Error> {
        let (id, sent_role) = <(u64, u8)>::deserialize(deserializer)?;
        if sent_role != role as u8 {
            return Err(D::Error::custom(format!(
                "a channel endpoint of the other side (role {sent_role}) where a {role:?} was \
                 expected"
            )));
        }
        if Link::get().is_some() {
            remote::open(id, role, ty).map_err(D::Error::custom)?;
            return Ok(End::Remote(Remote { id, role }));
        }
        match hub::find(id) {
            Some(shared) => Ok(End::Local(Local::new(shared, role))),
            None => Err(D::Error::custom(format!(
                "channel {id} does not exist in this process"
            ))),
        }
    }
}

thread_local! {
    /// Holds taken by endpoints serialized into the request being encoded.
    static CARRY: RefCell<Option<Vec<Local>>> = const { RefCell::new(None) };
}

/// Holds on channels that a request carries: they keep the channels' sides
/// open until the request is answered (by then the worker holds its own).
#[derive(Default)]
pub(crate) struct Holds(Vec<Local>);

impl std::fmt::Debug for Holds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|hold| hold.shared.id))
            .finish()
    }
}

/// Runs `encode` (a request's encoding), collecting the holds of every
/// endpoint it serializes.
pub(crate) fn carry<R>(encode: impl FnOnce() -> R) -> (R, Holds) {
    let outer = CARRY.replace(Some(Vec::new()));
    let out = encode();
    let holds = CARRY.replace(outer).unwrap_or_default();
    (out, Holds(holds))
}

/// The error for an endpoint's async use where it cannot wait
/// asynchronously, or a blocking use where it must not block.
pub(crate) fn misuse(message: &str) -> Error {
    Error::new(Repr::Endpoint(message.into()))
}
