fn echo(b: procpool::Bytes) -> procpool::Bytes {
    b
}
fn main() {
    procpool::init(procpool::tasks![echo]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = procpool::Pool::builder().workers(2).build().await.unwrap();
        let mut b = procpool::Bytes::from(vec![7u8; 16 << 20]);
        for _ in 0..3 {
            b = pool.submit(echo, b).await.unwrap();
        }
        let t = std::time::Instant::now();
        let n = std::env::args().nth(1).map_or(40, |s| s.parse().unwrap());
        for _ in 0..n {
            b = pool.submit(echo, b).await.unwrap();
        }
        println!(
            "{:.0} MB/s",
            (16u64 << 20) as f64 * n as f64 / 1e6 / t.elapsed().as_secs_f64()
        );
        pool.shutdown().await;
    });
}
