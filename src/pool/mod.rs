//! The pool: the [`Pool`] handle users hold, the [`PoolBuilder`] that starts
//! it, and the background dispatcher that owns the workers.
//!
//! * [`pool`](self::pool): the cheap `Clone` handle; submits, maps, stops;
//! * [`builder`]: settings and start-up (every worker said hello before
//!   `build` returns); [`production`]: the settings for production
//!   (elastic size, backpressure, memory caps, graceful cancellation);
//! * [`dispatcher`]: one future that owns the queue and every slot, and
//!   hands tasks to workers;
//! * [`slot`]: one worker's lifecycle (starting, live, reaping, backing off,
//!   closing), what its frames and its death mean for the tasks it holds,
//!   and how a worker is launched (as traits, mocked in its tests);
//! * [`room`]: backpressure, room in the queue under `max_queued`;
//! * [`job`]: a submitted task on its way, paired with where its answer goes;
//! * [`stats`]: the counters behind [`Pool::stats`]; [`insights`]: what
//!   [`Pool::insights`] reports (per-worker tallies, recent distributions).

pub(crate) mod builder;
pub(crate) mod dispatcher;
pub(crate) mod insights;
pub(crate) mod job;
#[allow(clippy::module_inception)] // `pool::pool` is where `Pool` lives
pub(crate) mod pool;
mod production;
pub(crate) mod room;
pub(crate) mod slot;
pub(crate) mod stats;

pub use builder::PoolBuilder;
pub use insights::{Distribution, Insights, WorkerInsights};
pub use pool::Pool;
pub use room::Reservation;
pub use stats::Stats;
