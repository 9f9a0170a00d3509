//! An HTTP service whose endpoints run CPU-heavy or crash-prone work in a
//! procpool pool: a panic is a 500 and a crashed worker a 502, not an
//! outage; a client that hangs up cancels its task and frees its CPU; a
//! slow task is a 504; Ctrl-C drains the pool.
//!
//! ```text
//! cargo run --release --example http_service -- --serve   # until Ctrl-C, on 127.0.0.1:3000
//! curl localhost:3000/fib/30        # fib(30) = 832040
//! curl localhost:3000/fail/oops     # 500, with the panic's message
//! curl localhost:3000/crash         # 502: the worker died (and was replaced)
//! curl localhost:3000/spin/5000     # 504 after 2 s; its worker is killed
//! ```
//!
//! Without `--serve` it serves on a free port, sends itself one request of
//! each kind with a real client, prints what came back, and shuts down.

mod app;

use std::time::Duration;

use app::App;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First: this program is also its own workers.
    procpool::init(app::registry());

    let serve = std::env::args().any(|arg| arg == "--serve");
    let pool = procpool::Pool::builder().workers(2).build().await?;
    let service = App {
        pool: pool.clone(),
        timeout: Duration::from_secs(2),
    };
    let address = if serve {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(address).await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("serving on {url}");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app::router(service))
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .into_future(),
    );
    if serve {
        tokio::signal::ctrl_c().await?;
        println!("Ctrl-C: finishing the requests under way");
    } else {
        demo(&url).await?;
    }
    let _ = stop.send(());
    server.await??;
    // Every task resolves: what is queued runs, then the workers exit.
    pool.shutdown().await;
    println!("stopped; {:?}", pool.stats());
    Ok(())
}

/// One request of each kind, as a client would send them.
async fn demo(url: &str) -> Result<(), reqwest::Error> {
    let client = reqwest::Client::new();
    for path in [
        "/fib/30",
        "/fail/a%20bug",
        "/crash",
        "/fib/31",
        "/spin/5000",
    ] {
        let response = client.get(format!("{url}{path}")).send().await?;
        let status = response.status();
        println!(
            "GET {path:<14} {status}  {}",
            response.text().await?.trim_end()
        );
    }
    // A client that gives up: its task is cancelled, its worker killed.
    let gave_up = client
        .get(format!("{url}/spin/10000"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    println!(
        "GET /spin/10000 with a 300 ms client timeout: {}",
        match gave_up {
            Ok(response) => response.status().to_string(),
            Err(err) if err.is_timeout() => "the client hung up (the task is cancelled)".into(),
            Err(err) => return Err(err),
        }
    );
    Ok(())
}
