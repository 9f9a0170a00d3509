//! How much memory a worker holds of its own, for
//! [`recycle_on_memory_growth`](crate::PoolBuilder::recycle_on_memory_growth):
//! its anonymous pages and the shared memory only it created, but not
//! file pages (the kernel can drop them) nor the pool's shared memory
//! regions it maps (the machine holds them once, and a worker keeps a table
//! mapped between tasks: counted, it would recycle the worker after every
//! check).
//!
//! Both come from the kernel's counters in `/proc/<pid>/status` (`RssAnon`,
//! `RssShmem`): no page walk. Only a worker with shared memory resident
//! also has its `/proc/<pid>/maps` read, to take out the pool's regions
//! (memfds named [`REGION_NAME`]) by their mapped size: what is left of
//! `RssShmem` is a task's own (`MAP_SHARED | MAP_ANONYMOUS`, a memfd, SysV
//! shm), which the kernel cannot reclaim without swap, so it is growth.

use crate::shared::REGION_NAME;

/// The bytes worker `pid` holds of its own, or `None` where that cannot be
/// read (not Linux, or the process is gone).
pub(crate) fn own_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let anon = status_kib(&status, "RssAnon:")?;
    let shmem = status_kib(&status, "RssShmem:")?;
    let regions = if shmem == 0 {
        0
    } else {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
        region_bytes(&maps)
    };
    Some((anon + shmem).saturating_mul(1024).saturating_sub(regions))
}

/// A `Name:   1234 kB` line of `/proc/<pid>/status`, in KiB.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(name))?;
    line[name.len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// The mapped size of the pool's regions in `/proc/<pid>/maps`.
fn region_bytes(maps: &str) -> u64 {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            // The path is the sixth field, then " (deleted)" as memfds have.
            let path = fields.nth(4)?;
            if path.strip_prefix("/memfd:") != Some(REGION_NAME) {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = u64::from_str_radix(start, 16).ok()?;
            u64::from_str_radix(end, 16).ok()?.checked_sub(start)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counters_and_the_regions() {
        let status =
            "Name:\tworker\nRssAnon:\t    2048 kB\nRssFile:\t 900 kB\nRssShmem:\t   16384 kB\n";
        assert_eq!(status_kib(status, "RssAnon:"), Some(2048));
        assert_eq!(status_kib(status, "RssShmem:"), Some(16384));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let maps = "\
7f0000000000-7f0001000000 r--s 00000000 00:01 4242 /memfd:procpool-shared (deleted)
7f0001000000-7f0001400000 rw-s 00000000 00:01 4243 /memfd:mine (deleted)
7f0002000000-7f0002010000 rw-s 00000000 00:01 7 /dev/zero (deleted)
7f0003000000-7f0003001000 r-xp 00000000 08:01 99 /usr/bin/worker
";
        assert_eq!(region_bytes(maps), 16 << 20);
    }

    #[test]
    fn this_process_has_a_measure() {
        let own = own_bytes(std::process::id()).expect("Linux with /proc");
        assert!(own > 0);
    }
}
