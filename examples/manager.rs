//! The seeds' manager program: a manager list shared with a pool, filled by
//! `starmap(update_string, [(word, list) ..])` over a sentence, printed at
//! the end with every word; then a word count in a manager dict, updated
//! from many tasks with a registered function run where the dict lives,
//! exact at the end; then the same 20,000 inserts from a task made one
//! round trip at a time and sent ahead, timed.
//!
//! Run it with `cargo run --release --example manager`.

use futures::TryStreamExt;
use procpool::manager::{Dict, List};
use procpool::{Manager, Pool};

/// The seeds' `update_string`: appends `word` to the shared list.
fn update_string(word: String, list: List<String>) {
    list.push(word).wait().expect("the manager is alive");
}

/// Counts each word of `line` in the shared dict.
fn count_words(line: String, counts: Dict<String, u64>) -> usize {
    let words: Vec<&str> = line.split_whitespace().collect();
    for word in &words {
        // Read, add one and write back, at the host, in one step: no
        // increment is lost, however many tasks count at once.
        counts
            .update(word.to_string(), add_one)
            .wait()
            .expect("the manager is alive");
    }
    words.len()
}

/// Inserts `n` squares, each call waited for (`ahead: false`) or all sent
/// ahead and their answers collected after: the seconds it took.
fn insert_squares(n: u64, ahead: bool, squares: Dict<u64, u64>) -> f64 {
    let start = std::time::Instant::now();
    if ahead {
        let sent: Vec<_> = (0..n).map(|k| squares.insert(k, k * k).send()).collect();
        for insert in sent {
            insert.wait().expect("the manager is alive");
        }
    } else {
        for k in 0..n {
            squares
                .insert(k, k * k)
                .wait()
                .expect("the manager is alive");
        }
    }
    start.elapsed().as_secs_f64()
}

/// The read-modify-write, registered so that the host can run it.
fn add_one(count: Option<u64>) -> u64 {
    count.unwrap_or(0) + 1
}

fn main() -> Result<(), procpool::Error> {
    procpool::init(procpool::tasks![
        update_string,
        count_words,
        insert_squares,
        add_one
    ]);
    tokio::runtime::Runtime::new()?.block_on(async {
        let pool = Pool::builder().workers(4).build().await?;
        let manager = Manager::new();

        let list = manager.list::<String>();
        let sentence = "with great power comes great responsibility";
        let words = sentence.split(' ').map(|w| (w.to_string(), list.clone()));
        let _: Vec<()> = pool.starmap(update_string, words).try_collect().await?;
        let filled = list.items().await?;
        println!("{filled:?}");
        assert_eq!(filled.len(), sentence.split(' ').count());

        let counts = manager.dict::<String, u64>();
        let line = "the quick brown fox jumps over the lazy dog the end";
        let lines = (0..200).map(|_| (line.to_string(), counts.clone()));
        let counted: usize = pool
            .starmap(count_words, lines)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .sum();
        let the = counts.get(&"the".to_string()).await?;
        println!("{counted} words counted; \"the\" {the:?} times");
        assert_eq!(the, Some(600));
        let total: u64 = counts.items().await?.iter().map(|(_, n)| n).sum();
        assert_eq!(total, counted as u64);

        for ahead in [false, true] {
            let squares = manager.dict::<u64, u64>();
            let n = 20_000;
            let took = pool
                .submit(insert_squares, (n, ahead, squares.clone()))
                .await?;
            assert_eq!(squares.len().await?, n);
            assert_eq!(squares.get(&(n - 1)).await?, Some((n - 1) * (n - 1)));
            let how = if ahead { "sent ahead" } else { "one at a time" };
            println!(
                "{n} inserts from a task, {how}: {:.0} ms ({:.1} µs each)",
                took * 1e3,
                took * 1e6 / n as f64
            );
        }

        pool.shutdown().await;
        Ok(())
    })
}
