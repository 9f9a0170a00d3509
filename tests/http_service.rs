//! The example HTTP service (`examples/http_service`), served on a free
//! port and driven by a real HTTP client: results, each failure as its
//! status, serving on after a crash, a per-request timeout, many clients
//! at once, and a client that hangs up cancelling its task and freeing its
//! worker's CPU.

#[path = "../examples/http_service/app.rs"]
mod app;

use std::time::{Duration, Instant};

use app::App;
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    // This binary is also the service's workers.
    procpool::init(app::registry());
    let tests = [
        (
            "results_come_back_as_200",
            results_come_back_as_200 as fn(&str),
        ),
        (
            "a_panic_is_a_500_with_its_message",
            a_panic_is_a_500_with_its_message,
        ),
        (
            "the_service_serves_on_after_a_worker_crash",
            the_service_serves_on_after_a_worker_crash,
        ),
        (
            "a_slow_task_is_a_504_and_its_worker_is_replaced",
            a_slow_task_is_a_504_and_its_worker_is_replaced,
        ),
        (
            "a_client_that_hangs_up_cancels_its_task",
            a_client_that_hangs_up_cancels_its_task,
        ),
        (
            "many_concurrent_clients_all_get_answers",
            many_concurrent_clients_all_get_answers,
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            Trial::test(name, move || {
                test(name);
                no_children_left().map_err(Failed::from)
            })
        })
        .collect();
    let mut args = Arguments::from_args();
    args.test_threads = Some(1); // the leftover check counts every child
    libtest_mimic::run(&args, trials).exit();
}

/// The service, on a free port, with `workers` workers and a per-request
/// limit of `timeout`: runs `client` against its URL, then shuts down.
fn with_service<F: Future<Output = ()>>(
    workers: usize,
    timeout: Duration,
    client: impl FnOnce(String, procpool::Pool) -> F,
) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = procpool::Pool::builder()
            .workers(workers)
            .build()
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = app::router(App {
            pool: pool.clone(),
            timeout,
        });
        let server = tokio::spawn(axum::serve(listener, router).into_future());
        tokio::time::timeout(Duration::from_secs(60), client(url, pool.clone()))
            .await
            .expect("the client's requests took over 60 s");
        server.abort();
        pool.shutdown().await;
    });
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("the request went through");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn results_come_back_as_200(_: &str) {
    with_service(2, Duration::from_secs(10), |url, _| async move {
        assert_eq!(
            get(&format!("{url}/fib/20")).await,
            (200, "fib(20) = 6765\n".into())
        );
        let (status, text) = get(&format!("{url}/fib/99")).await;
        assert_eq!(status, 400, "{text}");
    });
}

fn a_panic_is_a_500_with_its_message(_: &str) {
    with_service(1, Duration::from_secs(10), |url, _| async move {
        let (status, text) = get(&format!("{url}/fail/bad%20input")).await;
        assert_eq!(status, 500, "{text}");
        assert!(
            text.contains("panicked") && text.contains("bad input"),
            "{text}"
        );
    });
}

fn the_service_serves_on_after_a_worker_crash(_: &str) {
    with_service(1, Duration::from_secs(10), |url, pool| async move {
        let before = get(&format!("{url}/pid")).await.1;
        let (status, text) = get(&format!("{url}/crash")).await;
        assert_eq!(status, 502, "{text}");
        assert!(text.contains("SIGABRT"), "{text}");
        assert_eq!(
            get(&format!("{url}/fib/10")).await,
            (200, "fib(10) = 55\n".into())
        );
        assert_ne!(get(&format!("{url}/pid")).await.1, before, "a new worker");
        assert_eq!(pool.stats().respawns, 1);
    });
}

fn a_slow_task_is_a_504_and_its_worker_is_replaced(_: &str) {
    with_service(1, Duration::from_millis(300), |url, pool| async move {
        let (status, text) = get(&format!("{url}/spin/30000")).await;
        assert_eq!(status, 504, "{text}");
        assert!(text.contains("did not finish within 300ms"), "{text}");
        // The worker that was spinning is gone: the next one answers at once.
        let started = Instant::now();
        assert_eq!(get(&format!("{url}/fib/5")).await.0, 200);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(pool.stats().respawns, 1);
    });
}

fn a_client_that_hangs_up_cancels_its_task(_: &str) {
    with_service(1, Duration::from_secs(60), |url, pool| async move {
        let spinner: u32 = get(&format!("{url}/pid")).await.1.trim().parse().unwrap();
        let client = reqwest::Client::new();
        let gave_up = client
            .get(format!("{url}/spin/60000"))
            .timeout(Duration::from_millis(300))
            .send()
            .await
            .unwrap_err();
        assert!(gave_up.is_timeout(), "{gave_up}");
        // The server dropped the handler, the handle, and so the task: the
        // worker spinning on it is killed (its CPU freed), not left for a
        // minute, and a new one serves.
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_exists(spinner) {
            assert!(Instant::now() < deadline, "worker {spinner} still spinning");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (status, next) = get(&format!("{url}/pid")).await;
        assert_eq!(status, 200);
        assert_ne!(next.trim().parse::<u32>().unwrap(), spinner);
        assert_eq!(pool.stats().cancelled, 1);
    });
}

fn many_concurrent_clients_all_get_answers(_: &str) {
    with_service(2, Duration::from_secs(30), |url, _| async move {
        let client = reqwest::Client::new();
        let requests = (0..200u64).map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let n = i % 25;
                let response = client.get(format!("{url}/fib/{n}")).send().await.unwrap();
                assert_eq!(response.status().as_u16(), 200);
                assert_eq!(
                    response.text().await.unwrap(),
                    format!("fib({n}) = {}\n", app::fib(n))
                );
            })
        });
        for request in requests.collect::<Vec<_>>() {
            request.await.unwrap();
        }
    });
}

fn process_exists(pid: u32) -> bool {
    // A zombie has no cmdline left to read: only a live process counts.
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| !cmdline.is_empty())
}

/// Every pool above was shut down: none of its processes may be left.
fn no_children_left() -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let children = children_of(std::process::id());
        if children.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("processes left behind: {children:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pids whose parent is `parent`, zombies included.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // `pid (comm) state ppid …`; comm may hold spaces and parens.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}
