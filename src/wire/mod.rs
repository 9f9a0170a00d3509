//! What crosses a worker's connection: the frames, one module per kind
//! (each holding both the writing and the reading half), and the pool's end
//! of the byte stream that carries them ([`conn`]).
//!
//! # Frames
//!
//! Every message is a frame: an 8-byte little-endian body length, then the
//! body. Every body starts with its kind (`u8`) and an id (`u64`) that says
//! whom it is for; the rest is the kind's payload. The length is a `u64`,
//! so there is no 2 or 4 GiB cliff; a maximum frame size (see
//! [`PoolBuilder::max_frame_size`](crate::PoolBuilder::max_frame_size))
//! turns a huge or corrupt length into an error instead of an allocation.
//! Integers are little-endian and fixed-width, so the hot path parses them
//! without bincode.
//!
//! | kind | code | direction | id | payload | module |
//! |---|---|---|---|---|---|
//! | `START` | `0x20` | pool → worker, first | 0 | settings: the most verbose log level to send as `LOG` `u8` (0 none, 1 error … 5 trace), the address-space limit the worker sets on itself `u64` (0 none), the grace period of a cancelled running task in ns `u64` (0: end at once), panic backtraces `u8` (0 as the worker's `RUST_LIB_BACKTRACE`/`RUST_BACKTRACE` say, 1 always, 2 never); the worker may run user code now | [`hello`] |
//! | `HELLO` | `0x10` | worker → pool, once | 0 | `procpool` magic, protocol version `u32`, registry fingerprint `u64`, pid `u32` | [`hello`] |
//! | `REQUEST` | `0x01` (`0x81` with attachments) | pool → worker | task | task index `u32`, bincode arguments | [`request`] |
//! | `CHUNK` | `0x06` | pool → worker | task | task index `u32`, item count `u32`, the items' arguments back to back, then each item's length `u32` | [`chunk`] |
//! | `CANCEL` | `0x07` | pool → worker | task | none: skip the task, or end the worker if it is running it | [`cancel`] |
//! | `OK` | `0x02` (`0x82` with attachments) | worker → pool | task | run time in ns `u64`, bincode result; for a `CHUNK`, per item: `ITEM_OK`/`ITEM_PANIC`/`ITEM_FAILED` `u8`, length `u32`, bincode result / panic report / text | [`answer`], [`chunk`] |
//! | `PANIC` | `0x03` | worker → pool | task | run time in ns `u64`, the panic report: bincode `(message, location, backtrace)`, the last two `Option<String>` | [`answer`] |
//! | `FAILED` | `0x04` | worker → pool | task | UTF-8 text: the worker could not run the task | [`answer`] |
//! | `SKIPPED` | `0x05` | worker → pool | task | none: cancelled before it started | [`answer`] |
//! | `TOO_LARGE` | `0x08` | worker → pool | task | the result's encoded size `u64`: over the frame limit, not sent | [`answer`] |
//! | `CALL` | `0x30` | worker → pool, any thread | call | service `u8` (0 echo, 1 manager: its request, see `manager::wire`), its arguments | [`call`] |
//! | `REPLY` | `0x31` | pool → worker | call | `0` and the answer (a manager's reply: its own status, answer or failure), or `1` and UTF-8 error text | [`call`] |
//! | `OPEN` | `0x40` | worker → pool | channel | role `u8` (0 sender, 1 receiver): the worker now holds an endpoint of it | [`channel`] |
//! | `CLOSE` | `0x41` | worker → pool | channel | role `u8`: the worker's last endpoint of that role is gone | [`channel`] |
//! | `SEND` | `0x42` | worker → pool | channel | flags `u8` (1: last piece), a piece of a bincode message; a message's first piece takes one credit | [`channel`] |
//! | `WANT` | `0x43` | worker → pool | channel | role `u8`, count `u32`: credit to send (sender), or messages to receive (receiver) | [`channel`] |
//! | `RETURN` | `0x44` | worker → pool | channel | a piece of a message the worker asked for and no longer wants (flags as `SEND`'s, `FAULT` for the news of a dead sender; the last piece puts it back in line: ahead of what the worker was never sent, behind what it gave back before) | [`channel`] |
//! | `FORGET` | `0x45` | worker → pool | channel | none: it holds no endpoint of the channel and will forget it; credit it had is void | [`channel`] |
//! | `CREDIT` | `0x48` | pool → worker | channel | count `u32`: messages the worker may send | [`channel`] |
//! | `DATA` | `0x49` | pool → worker | channel | flags `u8` (1: last piece, 2: a dead sender's report: pid `u32`, exit tag `u8` and `i32`, task name), a piece of a message asked for | [`channel`] |
//! | `CLOSED` | `0x4A` | pool → worker | channel | role `u8` gone: every sender (after every message was received) or every receiver | [`channel`] |
//! | `FORGOTTEN` | `0x4B` | pool → worker | channel | none: the answer to a `FORGET`, after every other frame for the channel; nothing more comes for it unless the worker opens it again | [`channel`] |
//! | `UNMAP` | `0x70` | pool → worker | 0 | region ids `u64` × n: shared memory regions the pool's process let go (their last handle there dropped); the worker unmaps what it kept of them, and ignores ids it never mapped | [`unmap`] |
//! | `PING` | `0x60` | pool → worker, remote workers only | 0 | none: answer with `PONG` (see [`Launcher::keepalive`](crate::Launcher::keepalive)) | [`frame`] |
//! | `PONG` | `0x61` | worker → pool | 0 | none: the answer to a `PING` | [`frame`] |
//! | `LOG` | `0x50` | worker → pool, any thread | running task (0: none) | level `u8`, target length `u16` and target, the event's fields as UTF-8 text | [`log`] |
//!
//! # Attachments
//!
//! A `REQUEST` or `OK` may carry attachments: byte buffers of the value
//! sent as they are, beside its encoding ([`Buffer`](crate::Buffer)s, and a
//! whole value that is a `Vec<u8>`; see [`codec::attach`](crate::codec::attach)).
//! Its kind then has bit `0x80` set, and its body is
//!
//! ```text
//! kind|0x80 u8 | id u64 | count u32 | length u64 × count | payload | attachments, back to back
//! ```
//!
//! The frame's length counts all of it. The encoding names an attachment by
//! its index; each must be used exactly once. A reader takes the table
//! before the bytes and reads each attachment into an allocation of its
//! own (never more than `RESERVE_AHEAD` ahead of what has arrived); a table
//! claiming more than its frame holds, more than 65,536 attachments, or
//! none, is a protocol error. Any other kind with the bit set is one too.
//!
//! # Ids and order
//!
//! Task ids are the pool's, per connection, from 1 (an initializer's
//! request is 1). A worker runs its requests one at a time in the order they
//! arrive and answers each before starting the next, so the pool requires
//! the answer it reads to name the oldest request unanswered: anything else
//! (an unknown kind or id, a skip nobody asked for) is a typed protocol
//! error, and that worker is replaced. Call ids are the worker's; the pool
//! answers every call once, in any order.
//!
//! Channel ids are the pool process's; a worker may send channel frames
//! only for channels it announced with `OPEN`, and gets them only for
//! those (or one it has since closed). A message is whole once its last
//! piece arrives, and the pieces of one message on one channel from one
//! worker come in a row; a worker killed mid-message delivers nothing.
//!
//! Frames are written whole: the pool puts a `CANCEL`, `REPLY`, `UNMAP`
//! or channel frame between two requests, never inside one; a worker's
//! threads share one writer lock, and small channel and log frames are
//! gathered by a writer thread and written before the next frame written
//! directly (a task's messages go before its answer).

pub(crate) mod answer;
pub(crate) mod call;
pub(crate) mod cancel;
pub(crate) mod channel;
pub(crate) mod chunk;
pub(crate) mod conn;
pub(crate) mod frame;
pub(crate) mod hello;
pub(crate) mod log;
pub(crate) mod request;
pub(crate) mod unmap;
