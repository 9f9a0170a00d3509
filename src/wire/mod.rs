//! What crosses a worker's connection: the frames and the pool's end of the
//! byte stream that carries them.

pub(crate) mod conn;
pub(crate) mod frame;
