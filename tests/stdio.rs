//! A task's `println!` reaches the pool process's stdout, like any program's,
//! and never corrupts the protocol; `Redirect::Null` silences it.

mod common;

use std::process::Command;

use common::*;

fn main() {
    run(
        tests![task_output_reaches_stdout, task_output_can_be_discarded],
        roles,
    );
}

fn roles(role: &str) {
    let redirect = match role {
        "inherit" => procpool::Redirect::Inherit,
        _ => procpool::Redirect::Null,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = procpool::Pool::builder()
            .workers(2)
            .stdout(redirect)
            .build()
            .await
            .unwrap();
        let handles: Vec<_> = (0..50)
            .map(|i| pool.submit(print_line, format!("line {i} from a task")))
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        pool.shutdown().await;
        println!("pool done");
    });
}

fn run_role(role: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, role)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

async fn task_output_reaches_stdout() {
    let stdout = run_role("inherit");
    for i in 0..50 {
        assert!(
            stdout.lines().any(|l| l == format!("line {i} from a task")),
            "line {i} missing from:\n{stdout}"
        );
    }
    assert!(stdout.ends_with("pool done\n"));
}

async fn task_output_can_be_discarded() {
    let stdout = run_role("null");
    assert_eq!(stdout, "pool done\n");
}
