//! Python's Value + Lock program, ported: two processes add and subtract 1 ten thousand times; without the lock the total drifts, with it the total is exactly 1, and an atomic counter needs no lock at all.
//!
//! Run it with `cargo run --release --example shared_counter`.

use procpool::shared::{SharedLock, SharedValue};

const TIMES: u32 = 10_000;

/// Waits (a few seconds at most) until both processes are here, so their
/// loops overlap: a process starts in about a millisecond, the loop is
/// shorter.
fn start_together(gate: &SharedValue<u32>) {
    gate.fetch_add(1);
    let started = std::time::Instant::now();
    while gate.load() < 2 && started.elapsed().as_secs() < 5 {
        std::hint::spin_loop();
    }
}

/// A little work, that the optimizer keeps.
fn work() {
    for i in 0..50 {
        std::hint::black_box(i);
    }
}

/// `value += delta`, as Python's `value.value += 1` does it without the
/// lock: a read, then a write, with the other process free to write between.
fn unlocked(value: SharedValue<i64>, delta: i64, gate: SharedValue<u32>) {
    start_together(&gate);
    for _ in 0..TIMES {
        let seen = value.load();
        work(); // between the read and the write
        value.store(seen + delta);
    }
}

/// The same under the shared lock (`with value.get_lock(): value.value += 1`).
fn locked(value: SharedLock<i64>, delta: i64, gate: SharedValue<u32>) -> Result<(), String> {
    start_together(&gate);
    for _ in 0..TIMES {
        // Poisoned only if the other process died holding it.
        let mut guard = value.blocking_lock().map_err(|err| err.to_string())?;
        let seen = *guard;
        work();
        *guard = seen + delta;
    }
    Ok(())
}

/// One atomic instruction per step: no lock, no drift.
fn atomic(value: SharedValue<i64>, delta: i64, gate: SharedValue<u32>) {
    start_together(&gate);
    for _ in 0..TIMES {
        value.fetch_add(delta);
    }
}

#[tokio::main]
async fn main() -> Result<(), procpool::Error> {
    procpool::init(procpool::tasks![unlocked, locked, atomic]);

    let value = SharedValue::new(1i64)?;
    let gate = SharedValue::new(0u32)?;
    let (add, sub) = (
        procpool::spawn(unlocked, (value.clone(), 1, gate.clone())),
        procpool::spawn(unlocked, (value.clone(), -1, gate.clone())),
    );
    add.await?;
    sub.await?;
    let unlocked_total = value.load();
    let verdict = if unlocked_total == 1 {
        "right this time, by luck: the updates did not collide"
    } else {
        "drifted: updates were lost"
    };
    println!("without the lock: {unlocked_total} ({verdict})");

    let value = SharedLock::new(1i64)?;
    let gate = SharedValue::new(0u32)?;
    let (add, sub) = (
        procpool::spawn(locked, (value.clone(), 1, gate.clone())),
        procpool::spawn(locked, (value.clone(), -1, gate.clone())),
    );
    add.await?.expect("not poisoned");
    sub.await?.expect("not poisoned");
    let total = *value.lock().await?;
    println!("with the lock:    {total}");
    assert_eq!(total, 1);

    let value = SharedValue::new(1i64)?;
    let gate = SharedValue::new(0u32)?;
    let (add, sub) = (
        procpool::spawn(atomic, (value.clone(), 1, gate.clone())),
        procpool::spawn(atomic, (value.clone(), -1, gate.clone())),
    );
    add.await?;
    sub.await?;
    println!("atomic counter:   {}", value.load());
    assert_eq!(value.load(), 1);
    Ok(())
}
