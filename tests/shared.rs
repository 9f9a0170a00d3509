//! `procpool::shared`: shared memory between the pool's process and its
//! workers. Counters exact under contention; a dead lock holder poisons the
//! lock and wakes its waiters; leases exclude overlaps and die with their
//! holder; sealed tables refuse writes; no memfd outlives its last handle,
//! even when the pool's process is SIGKILLed; a worker maps a region once
//! for all its tasks, keeps a bounded number mapped, and unmaps them when
//! the pool lets them go; remote workers get a typed error.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use procpool::shared::{SharedArray, SharedBytes, SharedLock, SharedValue};

fn main() {
    run(
        tests![
            counters_are_exact_under_contention_from_4_workers,
            a_lock_keeps_read_modify_write_exact,
            a_sigkilled_lock_holder_poisons_the_lock_and_wakes_every_waiter,
            leases_reject_overlaps_and_a_dead_workers_leases_end,
            a_task_cannot_truncate_or_write_a_sealed_table,
            map_items_and_spawn_share_one_table,
            a_handle_dropped_right_after_submit_still_reaches_the_worker,
            no_memfd_is_left_once_the_last_handle_drops,
            no_memfd_is_left_after_the_pool_process_is_sigkilled,
            a_shared_handle_for_remote_workers_is_a_typed_error,
            a_handle_cannot_be_serialized_outside_a_task_argument,
            a_region_used_by_many_tasks_is_mapped_once_per_worker,
            a_worker_unmaps_a_kept_region_once_the_pool_lets_it_go,
            a_sigkilled_worker_with_kept_mappings_leaves_nothing,
            a_worker_keeps_at_most_8_regions_mapped_without_a_handle,
            kept_mappings_stay_under_a_quarter_of_max_memory_per_worker,
            a_kept_table_is_not_memory_growth,
            churning_thousands_of_regions_leaks_no_mapping_or_fd,
            a_table_a_task_keeps_outlives_the_pools_release,
            a_task_leaking_shared_anonymous_memory_recycles_its_worker,
        ],
        roles,
    );
}

/// Nothing that hangs passes: every wait has this limit.
const LIMIT: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

fn roles(role: &str) {
    assert_eq!(role, "parent_of_table");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = pool(1).await;
        let table = SharedBytes::new(&[1; 4096]).unwrap();
        let id = procpool::shared::__region_id(&table);
        let path = marker("shared-parent");
        let _held = pool.submit(hold_table, (table, path.clone()));
        let pid = wait_for_pid_file(&path).await;
        println!("READY {id} {pid}");
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

/// Where the region `id` is still open or mapped: `(pid, "fd" | "map")`.
fn holders_of(id: u64) -> Vec<(u32, &'static str)> {
    use std::os::unix::fs::MetadataExt;
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                let is_ours = std::fs::read_link(fd.path())
                    .is_ok_and(|link| link.to_string_lossy().contains("memfd:procpool-shared"));
                if is_ours && std::fs::metadata(fd.path()).is_ok_and(|meta| meta.ino() == id) {
                    found.push((pid, "fd"));
                }
            }
        }
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            let mapped = maps.lines().any(|line| {
                line.contains("memfd:procpool-shared")
                    && line.split_whitespace().nth(4) == Some(&id.to_string())
            });
            if mapped {
                found.push((pid, "map"));
            }
        }
    }
    found
}

/// Whether process `pid` maps region `id`.
fn maps(pid: u32, id: u64) -> bool {
    holders_of(id).contains(&(pid, "map"))
}

async fn wait_until_gone(id: u64) {
    within("the region's end", async {
        while !holders_of(id).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn counters_are_exact_under_contention_from_4_workers() {
    let pool = pool(4).await;
    let counter = SharedValue::new(0u64).unwrap();
    let array = SharedArray::<u64>::new(2).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| pool.submit(count_up, (counter.clone(), array.clone(), 100_000)))
        .collect();
    for task in tasks {
        assert_eq!(within("a counter task", task).await.unwrap(), 100_000);
    }
    assert_eq!(counter.load(), 800_000);
    assert_eq!(array.load(1), 800_000);
    assert_eq!(array.load(0), 0);
    pool.shutdown().await;
}

async fn a_lock_keeps_read_modify_write_exact() {
    let pool = pool(4).await;
    let lock = SharedLock::new(1i64).unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            pool.submit(
                lock_add,
                (lock.clone(), 5_000, if i % 2 == 0 { 1 } else { -1 }),
            )
        })
        .collect();
    // The parent takes part too, through the async form.
    for _ in 0..1000 {
        *lock.lock().await.unwrap() += 2;
        *lock.lock().await.unwrap() -= 2;
    }
    for task in tasks {
        within("a lock task", task).await.unwrap().unwrap();
    }
    assert_eq!(*lock.lock().await.unwrap(), 1);
    pool.shutdown().await;
}

async fn a_sigkilled_lock_holder_poisons_the_lock_and_wakes_every_waiter() {
    let pool = pool(3).await;
    let lock = SharedLock::new(5i64).unwrap();
    let path = marker("lock-holder");
    let holder = pool.submit(hold_lock, (lock.clone(), path.clone()));
    let pid = wait_for_pid_file(&path).await;
    assert!(lock.try_lock().unwrap().is_none(), "held by the worker");
    let waiters: Vec<_> = (0..2)
        .map(|_| pool.submit(wait_for_lock, lock.clone()))
        .collect();
    let parent_waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.lock().await.map(|value| *value) })
    };
    tokio::time::sleep(Duration::from_millis(200)).await; // let them wait
    kill(pid);
    let holder = within("the holder's task", holder).await;
    assert!(holder.unwrap_err().is_worker_died());
    for waiter in waiters {
        let said = within("a waiting task", waiter).await.unwrap();
        assert!(said.starts_with("poisoned"), "{said}");
        assert!(
            said.contains(&pid.to_string()),
            "names the dead holder: {said}"
        );
    }
    let err = within("the parent's wait", parent_waiter)
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_poisoned(), "{err}");
    assert_eq!(err.worker_pid(), Some(pid));
    // And every later lock, blocking or not, says so too.
    assert!(lock.try_lock().unwrap_err().is_poisoned());
    let later = pool.submit(wait_for_lock, lock.clone());
    assert!(
        within("a later task", later)
            .await
            .unwrap()
            .starts_with("poisoned")
    );
    pool.shutdown().await;
}

async fn leases_reject_overlaps_and_a_dead_workers_leases_end() {
    let pool = pool(2).await;
    let array = SharedArray::<u32>::new(100).unwrap();
    let path = marker("lease-holder");
    let holder = pool.submit(hold_lease, (array.clone(), 0, 10, path.clone()));
    let pid = wait_for_pid_file(&path).await;
    // Overlaps are refused, here and in another worker; neighbours are not.
    let err = array.try_lease(5..15).unwrap_err();
    assert!(err.is_leased(), "{err}");
    assert!(err.to_string().contains(&pid.to_string()), "{err}");
    let there = pool.submit(try_lease, (array.clone(), 9, 10));
    assert_eq!(
        within("try_lease in a worker", there).await.unwrap(),
        "leased"
    );
    let beside = pool.submit(try_lease, (array.clone(), 10, 20));
    assert_eq!(within("try_lease beside", beside).await.unwrap(), "ok");
    {
        let mut mine = array.try_lease(50..60).unwrap();
        mine.fill(3);
        assert!(
            array.try_lease(55..56).unwrap_err().is_leased(),
            "in one process too"
        );
    }
    // A waiter in the parent gets the range once the holder dies.
    let waiter = {
        let array = array.clone();
        tokio::spawn(async move { array.lease(0..10).await.map(|lease| lease.to_vec()) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    kill(pid);
    assert!(
        within("the holder", holder)
            .await
            .unwrap_err()
            .is_worker_died()
    );
    let got = within("the reclaimed lease", waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, vec![7; 10], "what the dead holder wrote stays written");
    assert_eq!(array.try_lease(..).unwrap()[55], 3);
    pool.shutdown().await;
}

async fn a_task_cannot_truncate_or_write_a_sealed_table() {
    let pool = pool(1).await;
    let table = SharedBytes::new(&[2; 10_000]).unwrap();
    let results = within("the attack", pool.submit(attack_table, table.clone()))
        .await
        .unwrap();
    assert!(results.len() >= 3, "found the table's fd: {results:?}");
    assert!(
        !results.iter().any(|r| r == "truncated" || r == "written"),
        "{results:?}"
    );
    assert!(
        results.iter().any(|r| r.starts_with("truncate: ")),
        "{results:?}"
    );
    assert!(
        results.iter().any(|r| r.starts_with("write: ")),
        "{results:?}"
    );
    assert_eq!(results.last().unwrap(), "still 20000");
    assert!(table.iter().all(|&b| b == 2));
    pool.shutdown().await;
}

async fn map_items_and_spawn_share_one_table() {
    let pool = pool(2).await;
    let table = SharedBytes::with_len(1 << 20, |bytes| bytes.fill(1)).unwrap();
    let items = (0..64).map(|i| (table.clone(), i));
    let sums: Vec<u64> = within(
        "the map",
        pool.starmap(sum_table, items).collect::<Vec<_>>(),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    assert_eq!(sums, vec![1 << 20; 64]);
    let spawned = procpool::spawn(sum_table, (table.clone(), 0));
    assert_eq!(within("the process", spawned).await.unwrap(), 1 << 20);
    pool.shutdown().await;
}

async fn a_handle_dropped_right_after_submit_still_reaches_the_worker() {
    let pool = pool(1).await;
    let busy = pool.submit(sleep_ms, 200);
    let table = SharedBytes::new(&[3; 100]).unwrap();
    let id = procpool::shared::__region_id(&table);
    let task = pool.submit(sum_table, (table, 0));
    // Only the job holds the region now, until the answer.
    assert_eq!(within("the task", task).await.unwrap(), 300);
    busy.await.unwrap();
    wait_until_gone(id).await;
    pool.shutdown().await;
}

async fn no_memfd_is_left_once_the_last_handle_drops() {
    let pool = pool(2).await;
    let table = SharedBytes::new(&[1; 8192]).unwrap();
    let id = procpool::shared::__region_id(&table);
    let path = marker("table-holder");
    let held = pool.submit(hold_table, (table.clone(), path.clone()));
    let pid = wait_for_pid_file(&path).await;
    let holders = holders_of(id);
    assert!(holders.contains(&(std::process::id(), "fd")), "{holders:?}");
    assert!(
        holders.contains(&(pid, "map")),
        "mapped in the worker: {holders:?}"
    );
    assert!(
        !holders.contains(&(pid, "fd")),
        "the worker closed its fd: {holders:?}"
    );
    drop(held); // cancels: the worker is killed
    drop(table);
    wait_until_gone(id).await;
    pool.shutdown().await;
}

async fn no_memfd_is_left_after_the_pool_process_is_sigkilled() {
    let (mut parent, line) = start_role("parent_of_table");
    let mut words = line.trim().strip_prefix("READY ").expect(&line).split(' ');
    let id: u64 = words.next().unwrap().parse().unwrap();
    let worker: u32 = words.next().unwrap().parse().unwrap();
    let holders = holders_of(id);
    assert!(holders.contains(&(worker, "map")), "{holders:?}");
    parent.kill().unwrap(); // SIGKILL
    parent.wait().unwrap();
    wait_until_gone(id).await;
    within("the worker's end", async {
        while is_alive(worker) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn a_shared_handle_for_remote_workers_is_a_typed_error() {
    let launcher = || procpool::Launcher::command(["sh", "-c", r#"exec "$@""#, "sh"]);
    let pool = procpool::Pool::builder()
        .workers(1)
        .launcher(launcher())
        .build()
        .await
        .unwrap();
    let table = SharedBytes::new(&[1; 16]).unwrap();
    let err = pool
        .submit(sum_table, (table.clone(), 0))
        .await
        .unwrap_err();
    assert!(err.is_not_local(), "{err}");
    assert!(
        err.to_string().contains("sh -c"),
        "names the launcher: {err}"
    );
    let mapped: Vec<_> = pool
        .starmap(sum_table, [(table.clone(), 0)])
        .collect()
        .await;
    assert!(mapped[0].as_ref().unwrap_err().is_not_local());
    // Ordinary tasks still run there.
    assert_eq!(pool.submit(square, 3).await.unwrap(), 9);
    let process = procpool::Process::builder()
        .launcher(launcher())
        .spawn(sum_table, (table, 0));
    assert!(process.await.unwrap_err().is_not_local());
    pool.shutdown().await;
}

async fn a_handle_cannot_be_serialized_outside_a_task_argument() {
    let table = SharedBytes::new(b"x").unwrap();
    let err = serde_json_like(&table);
    assert!(err.contains("only be sent as an argument"), "{err}");
}

async fn a_region_used_by_many_tasks_is_mapped_once_per_worker() {
    let pool = pool(2).await;
    let table = SharedBytes::new(&[9; 1 << 20]).unwrap();
    let id = procpool::shared::__region_id(&table);
    // All at once (both workers), then one after another.
    let mut seen = all_at_once(&pool, &table, 40).await;
    for _ in 0..20 {
        seen.push(
            within("a task", pool.submit(table_seen, table.clone()))
                .await
                .unwrap(),
        );
    }
    let mut by_worker = std::collections::BTreeMap::<u32, Vec<u64>>::new();
    for (pid, maps_made, first) in seen {
        assert_eq!(first, 9);
        by_worker.entry(pid).or_default().push(maps_made);
    }
    for (pid, counts) in &by_worker {
        assert!(
            counts.iter().all(|&count| count == counts[0]),
            "worker {pid} mapped it again between tasks: {counts:?}"
        );
        assert!(maps(*pid, id), "worker {pid} keeps it mapped between tasks");
    }
    pool.shutdown().await;
}

async fn a_worker_unmaps_a_kept_region_once_the_pool_lets_it_go() {
    let pool = pool(2).await;
    let table = SharedBytes::new(&[1; 64 << 10]).unwrap();
    let id = procpool::shared::__region_id(&table);
    let mut workers: Vec<u32> = all_at_once(&pool, &table, 8)
        .await
        .into_iter()
        .map(|(pid, _, _)| pid)
        .collect();
    workers.sort_unstable();
    workers.dedup();
    for &pid in &workers {
        assert!(maps(pid, id), "kept after its tasks: {:?}", holders_of(id));
    }
    drop(table); // the pool's last handle: the workers are told
    wait_until_gone(id).await;
    for &pid in &workers {
        assert!(is_alive(pid), "worker {pid} unmapped it, not died");
    }
    // And they still take a new table (and an old one's id means nothing).
    let again = SharedBytes::new(&[4; 100]).unwrap();
    let (_, _, first) = within("a task", pool.submit(table_seen, again))
        .await
        .unwrap();
    assert_eq!(first, 4);
    pool.shutdown().await;
}

async fn a_sigkilled_worker_with_kept_mappings_leaves_nothing() {
    let pool = pool(1).await;
    let table = SharedBytes::new(&[5; 64 << 10]).unwrap();
    let id = procpool::shared::__region_id(&table);
    let (pid, _, _) = within("a task", pool.submit(table_seen, table.clone()))
        .await
        .unwrap();
    assert!(maps(pid, id), "kept: {:?}", holders_of(id));
    kill(pid);
    // Its mappings go as it exits, which the pool sees a moment later; a
    // task sent before that would be lost with it.
    within("the dead worker's unmapping and replacement", async {
        while maps(pid, id) || pool.stats().respawns == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Its replacement maps the table afresh.
    let (next, _, first) = within("a task", pool.submit(table_seen, table.clone()))
        .await
        .unwrap();
    assert_ne!(next, pid);
    assert_eq!(first, 5);
    drop(table);
    wait_until_gone(id).await;
    pool.shutdown().await;
}

async fn a_worker_keeps_at_most_8_regions_mapped_without_a_handle() {
    let pool = pool(1).await;
    let tables: Vec<_> = (0..12u8)
        .map(|i| SharedBytes::new(&[i; 4096]).unwrap())
        .collect();
    let ids: Vec<u64> = tables.iter().map(procpool::shared::__region_id).collect();
    let (pid, counts) = use_each(&pool, &tables).await;
    assert!(counts.windows(2).all(|w| w[1] == w[0] + 1), "{counts:?}");
    // The pool holds all 12; the worker keeps the 8 it used last.
    let mapped: Vec<bool> = ids.iter().map(|&id| maps(pid, id)).collect();
    assert_eq!(mapped, [[false; 4], [true; 4], [true; 4]].concat());
    // The most recently used stays; the oldest kept one makes room for a
    // table mapped again.
    let (_, before, _) = within("a task", pool.submit(table_seen, tables[11].clone()))
        .await
        .unwrap();
    let (_, after, _) = within("a task", pool.submit(table_seen, tables[0].clone()))
        .await
        .unwrap();
    assert_eq!(before, *counts.last().unwrap(), "table 11 was still mapped");
    assert_eq!(after, before + 1, "table 0 was mapped again");
    assert!(maps(pid, ids[0]) && maps(pid, ids[11]) && !maps(pid, ids[4]));
    drop_all(tables, &ids).await;
    pool.shutdown().await;
}

async fn kept_mappings_stay_under_a_quarter_of_max_memory_per_worker() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .max_memory_per_worker(1 << 30)
        .build()
        .await
        .unwrap();
    // 96 MiB each: a quarter of 1 GiB holds two of them.
    let tables: Vec<_> = (0..4u8)
        .map(|i| SharedBytes::with_len(96 << 20, |bytes| bytes[0] = i).unwrap())
        .collect();
    let ids: Vec<u64> = tables.iter().map(procpool::shared::__region_id).collect();
    let (pid, _) = use_each(&pool, &tables).await;
    let mapped: Vec<bool> = ids.iter().map(|&id| maps(pid, id)).collect();
    assert_eq!(mapped, [false, false, true, true]);
    drop_all(tables, &ids).await;
    pool.shutdown().await;
}

/// What `n` tasks submitted at once saw of `table`.
async fn all_at_once(pool: &procpool::Pool, table: &SharedBytes, n: usize) -> Vec<(u32, u64, u8)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| pool.submit(table_seen, table.clone()))
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(within("a task", task).await.unwrap());
    }
    seen
}

/// Runs a task on each table in turn (table `i` starts with byte `i`): the
/// (last) worker's pid, and its count of regions mapped after each.
async fn use_each(pool: &procpool::Pool, tables: &[SharedBytes]) -> (u32, Vec<u64>) {
    let mut pid = 0;
    let mut counts = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        let (worker, maps_made, first) = within("a task", pool.submit(table_seen, table.clone()))
            .await
            .unwrap();
        assert_eq!(first as usize, i);
        pid = worker;
        counts.push(maps_made);
    }
    (pid, counts)
}

/// Drops the pool's handles, then waits until no process holds any of them.
async fn drop_all(tables: Vec<SharedBytes>, ids: &[u64]) {
    drop(tables);
    for &id in ids {
        wait_until_gone(id).await;
    }
}

async fn a_kept_table_is_not_memory_growth() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .recycle_on_memory_growth(32 << 20)
        .build()
        .await
        .unwrap();
    let table = SharedBytes::with_len(128 << 20, |bytes| bytes.fill(3)).unwrap();
    let id = procpool::shared::__region_id(&table);
    let mut workers = Vec::new();
    for _ in 0..6 {
        let (pid, _, first) = within("a task", pool.submit(table_seen, table.clone()))
            .await
            .unwrap();
        assert_eq!(first, 3);
        workers.push(pid);
    }
    // 128 MiB resident in the worker, all of it shared: no growth.
    assert!(maps(workers[0], id), "{:?}", holders_of(id));
    assert_eq!(pool.stats().recycled, 0);
    assert!(workers.iter().all(|&pid| pid == workers[0]), "{workers:?}");
    pool.shutdown().await;
}

/// Serializes with bincode by hand, as user code might: the error's text.
fn serde_json_like(table: &SharedBytes) -> String {
    bincode::serde::encode_to_vec(table, bincode::config::standard())
        .unwrap_err()
        .to_string()
}

/// SIGKILLs a worker (the pool's child, unreaped until it notices).
fn kill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("the worker lives");
}

async fn churning_thousands_of_regions_leaks_no_mapping_or_fd() {
    let pool = pool(2).await;
    let mut most = (0, 0);
    let mut first_fds = None;
    for round in 0..2_000u32 {
        // Two tasks at once, each with a fresh table dropped right after.
        let tasks: Vec<_> = (0..2u8)
            .map(|k| {
                let table = SharedBytes::new(&[(round as u8).wrapping_add(k); 4096]).unwrap();
                pool.submit(regions_and_fds, table)
            })
            .collect();
        for task in tasks {
            let (regions, fds) = within("a churning task", task).await.unwrap();
            let first = *first_fds.get_or_insert(fds);
            most = (most.0.max(regions), most.1.max(fds));
            assert!(regions <= 9, "round {round}: {regions} regions mapped");
            assert!(fds <= first + 4, "round {round}: {fds} fds, from {first}");
        }
    }
    eprintln!("most regions mapped, fds: {most:?}");
    pool.shutdown().await;
}

/// The pool's regions a worker keeps are not growth (above), but shared
/// memory a task makes itself is: `MAP_SHARED | MAP_ANONYMOUS` pages are
/// shared memory to the kernel, as the regions are.
async fn a_task_leaking_shared_anonymous_memory_recycles_its_worker() {
    let pool = procpool::Pool::builder()
        .workers(1)
        .max_in_flight_per_worker(1)
        .recycle_on_memory_growth(32 << 20)
        .build()
        .await
        .unwrap();
    let mut pids = Vec::new();
    for _ in 0..3 {
        pids.push(
            within("a leak", pool.submit(leak_shared_mib, 64))
                .await
                .unwrap(),
        );
    }
    // 64 MiB leaked per task, twice the limit: each leak on a fresh worker.
    pids.dedup();
    assert_eq!(pids.len(), 3, "{pids:?}: {:?}", pool.stats());
    pool.shutdown().await;
}

async fn a_table_a_task_keeps_outlives_the_pools_release() {
    let pool = pool(1).await;
    let table = SharedBytes::new(&[5; 64 << 10]).unwrap();
    let id = procpool::shared::__region_id(&table);
    let worker = within("the stash", pool.submit(stash_table, table))
        .await
        .unwrap();
    // The pool let it go (its fd closed, the worker told): only the
    // worker's stash maps it now, and reads stay whole.
    within("the pool's release", async {
        while holders_of(id) != [(worker, "map")] {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    for drop_it in [false, false, true] {
        let sum = within("a read", pool.submit(sum_stashed, drop_it)).await;
        assert_eq!(sum.unwrap(), 5 * (64 << 10));
    }
    // Its last handle gone, the worker unmaps it: nothing is left.
    wait_until_gone(id).await;
    assert_eq!(within("a pid", pool.submit(pid, ())).await.unwrap(), worker);
    pool.shutdown().await;
}
