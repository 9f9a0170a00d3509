//! Tasks for tests/shared.rs: shared memory used from workers.

use procpool::shared::{SharedArray, SharedBytes, SharedLock, SharedValue};

/// Adds 1 to `counter` `n` times, and `n` to element 1 of `array` once per
/// 100 (an array element and a value, both atomic).
pub fn count_up(counter: SharedValue<u64>, array: SharedArray<u64>, n: u64) -> u64 {
    for i in 0..n {
        counter.fetch_add(1);
        if i % 100 == 0 {
            array.fetch_add(1, 100);
        }
    }
    n
}

/// Adds `delta` under the lock `n` times, as a read, a pause and a write.
pub fn lock_add(lock: SharedLock<i64>, n: u64, delta: i64) -> Result<(), String> {
    for _ in 0..n {
        let mut value = lock.blocking_lock().map_err(|e| e.to_string())?;
        let seen = *value;
        std::hint::black_box(&seen);
        *value = seen + delta;
    }
    Ok(())
}

/// Takes the lock, writes this worker's pid to `path`, and holds it.
pub fn hold_lock(lock: SharedLock<i64>, path: String) {
    let mut value = lock.blocking_lock().unwrap();
    *value = -1; // half-way through an update when it dies
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(60));
}

/// Waits for the lock: what came of it.
pub fn wait_for_lock(lock: SharedLock<i64>) -> String {
    match lock.blocking_lock() {
        Ok(value) => format!("locked {}", *value),
        Err(err) if err.is_poisoned() => format!("poisoned: {err}"),
        Err(err) => format!("error: {err}"),
    }
}

/// Leases `start..end`, fills it with `fill`, writes the pid to `path`, and
/// holds the lease.
pub fn hold_lease(array: SharedArray<u32>, start: usize, end: usize, path: String) {
    let mut lease = array.blocking_lease(start..end).unwrap();
    lease.fill(7);
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(60));
}

/// Tries to lease `start..end`: "ok", "leased" or another error.
pub fn try_lease(array: SharedArray<u32>, start: usize, end: usize) -> String {
    match array.try_lease(start..end) {
        Ok(_) => "ok".into(),
        Err(err) if err.is_leased() => "leased".into(),
        Err(err) => format!("error: {err}"),
    }
}

/// The sum of the table's bytes (every page read in place).
pub fn sum_table(table: SharedBytes, _item: u64) -> u64 {
    table.iter().map(|&b| u64::from(b)).sum()
}

/// Holds the table while sleeping, after printing the worker's pid to `path`.
pub fn hold_table(table: SharedBytes, path: String) -> usize {
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(60));
    table.len()
}

/// Attacks the sealed table through the pool's fd of it: opens it
/// read-write, then tries to truncate it and to write it. What each got.
pub fn attack_table(table: SharedBytes) -> Vec<String> {
    use std::io::Write;
    let parent = std::os::unix::process::parent_id();
    let mut results = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{parent}/fd"))
        .unwrap()
        .flatten()
    {
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !link.to_string_lossy().contains("memfd:procpool-shared") {
            continue;
        }
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(entry.path())
        {
            Ok(file) => file,
            Err(err) => {
                results.push(format!("open: {err}"));
                continue;
            }
        };
        results.push(match file.set_len(0) {
            Ok(()) => "truncated".into(),
            Err(err) => format!("truncate: {err}"),
        });
        results.push(match file.write(b"overwritten") {
            Ok(_) => "written".into(),
            Err(err) => format!("write: {err}"),
        });
    }
    results.push(format!(
        "still {}",
        table.iter().map(|&b| u64::from(b)).sum::<u64>()
    ));
    results
}

/// What a task saw of its table: the worker's pid, how many regions that
/// worker had mapped by then (a kept mapping used again is not counted),
/// and the table's first byte.
pub fn table_seen(table: SharedBytes) -> (u32, u64, u8) {
    (
        std::process::id(),
        procpool::shared::__maps_made(),
        table.first().copied().unwrap_or(0),
    )
}

/// Reads `table` and says how many procpool regions this worker maps and
/// how many fds it has open.
pub fn regions_and_fds(table: SharedBytes) -> (usize, usize) {
    assert!(table.iter().all(|&b| b == table[0]));
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let regions = maps
        .lines()
        .filter(|line| line.contains("memfd:procpool-shared"))
        .count();
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    (regions, fds)
}

/// Leaks `mib` MiB of shared anonymous memory (`MAP_SHARED |
/// MAP_ANONYMOUS`, touched): resident, counted as shared by the kernel,
/// mapped by this worker alone. Its pid.
pub fn leak_shared_mib(mib: usize) -> u32 {
    let len = mib << 20;
    // SAFETY: a fresh anonymous mapping, no address given; never unmapped
    // (the leak is the point), written only through this pointer.
    unsafe {
        let at = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(at, libc::MAP_FAILED);
        std::ptr::write_bytes(at.cast::<u8>(), 1, len);
    }
    std::process::id()
}

/// A table a task keeps after it returns (in a static, as a cache might).
static STASHED: std::sync::Mutex<Option<SharedBytes>> = std::sync::Mutex::new(None);

/// Keeps `table` in this worker past the task; its pid.
pub fn stash_table(table: SharedBytes) -> u32 {
    *STASHED.lock().unwrap() = Some(table);
    std::process::id()
}

/// The sum of the stashed table's bytes (read in place), and drops it if
/// `drop_it`.
pub fn sum_stashed(drop_it: bool) -> u64 {
    let mut stashed = STASHED.lock().unwrap();
    let sum = stashed
        .as_ref()
        .map_or(0, |t| t.iter().map(|&b| u64::from(b)).sum());
    if drop_it {
        *stashed = None;
    }
    sum
}
