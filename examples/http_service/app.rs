//! The service: HTTP routes whose work runs in a procpool pool, and how
//! each outcome of a task becomes a status code. Shared by the example
//! (`main.rs`) and its test (`tests/http_service.rs`).

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use procpool::{Pool, Registry};

/// The naive Fibonacci: CPU-heavy on purpose (`fib(32)` takes ~20 ms).
pub fn fib(n: u64) -> u64 {
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}

/// Keeps a CPU busy for `ms` milliseconds (not a sleep: a cancelled one
/// must be seen to free its CPU).
pub fn spin(ms: u64) -> u64 {
    let start = Instant::now();
    let mut spins = 0u64;
    while start.elapsed() < Duration::from_millis(ms) {
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
    spins
}

/// Panics with `message`: a bug in a task is a 500, not an outage.
pub fn fails(message: String) -> u64 {
    panic!("{message}")
}

/// Takes its worker down: the service keeps serving on the replacement.
pub fn crash(_: ()) -> u64 {
    std::process::abort()
}

/// The worker's pid.
pub fn worker_pid(_: ()) -> u32 {
    std::process::id()
}

/// The tasks this service runs; `procpool::init(registry())` first thing
/// in `main`.
pub fn registry() -> Registry {
    procpool::tasks![fib, spin, fails, crash, worker_pid]
}

/// What a handler has: the pool, and how long a request may take.
#[derive(Clone)]
pub struct App {
    pub pool: Pool,
    pub timeout: Duration,
}

/// The routes. Each handler awaits its task; if the client goes away, the
/// server drops the handler's future, which drops the task's handle, which
/// cancels the task (its worker is killed if it had started, and replaced).
pub fn router(app: App) -> Router {
    Router::new()
        .route("/fib/{n}", get(fib_route))
        .route("/spin/{ms}", get(spin_route))
        .route("/fail/{message}", get(fail_route))
        .route("/crash", get(crash_route))
        .route("/pid", get(pid_route))
        .with_state(app)
}

async fn fib_route(State(app): State<App>, Path(n): Path<u64>) -> Result<String, Failure> {
    if n > 45 {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("fib({n}) would take too long"),
        ));
    }
    let value = app.pool.submit(fib, n).timeout(app.timeout).await?;
    Ok(format!("fib({n}) = {value}\n"))
}

async fn spin_route(State(app): State<App>, Path(ms): Path<u64>) -> Result<String, Failure> {
    let spins = app.pool.submit(spin, ms).timeout(app.timeout).await?;
    Ok(format!("spun {ms} ms ({spins} turns)\n"))
}

async fn fail_route(
    State(app): State<App>,
    Path(message): Path<String>,
) -> Result<String, Failure> {
    app.pool.submit(fails, message).timeout(app.timeout).await?;
    Ok("it did not fail\n".into())
}

async fn crash_route(State(app): State<App>) -> Result<String, Failure> {
    app.pool.submit(crash, ()).timeout(app.timeout).await?;
    Ok("it did not crash\n".into())
}

async fn pid_route(State(app): State<App>) -> Result<String, Failure> {
    let pid = app.pool.submit(worker_pid, ()).timeout(app.timeout).await?;
    Ok(format!("{pid}\n"))
}

/// A request that failed: its status and the text the client gets.
pub struct Failure(pub StatusCode, pub String);

impl From<procpool::Error> for Failure {
    /// Each way a task can fail, as a status: the task's own failure is
    /// ours (500); a worker that died under it is an upstream failure
    /// (502); too slow is 504; a pool shutting down is 503.
    fn from(err: procpool::Error) -> Failure {
        let status = if err.is_timeout() {
            StatusCode::GATEWAY_TIMEOUT
        } else if err.is_worker_died() {
            StatusCode::BAD_GATEWAY
        } else if err.is_shutdown() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Failure(status, format!("{err}\n"))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}
