//! What the machine has for tasks: its CPUs and its memory, read once when the engine's
//! configuration is built (the pure admission core never reads the machine).

use std::io;
use std::path::Path;

/// Where the kernel says how much memory the machine has.
const MEMINFO: &str = "/proc/meminfo";

/// The machine's CPU units (1,024 per CPU this process may run on, as ECS counts them).
pub fn cpu_units() -> u64 {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    u64::try_from(cpus).unwrap_or(u64::MAX).saturating_mul(1024)
}

/// The machine's memory in MiB: `MemTotal` of `/proc/meminfo` (what ECS registers).
pub fn memory_mib() -> io::Result<u64> {
    memory_mib_from(Path::new(MEMINFO))
}

fn memory_mib_from(path: &Path) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    mem_total_mib(&text).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{} has no MemTotal line in kB", path.display()))
    })
}

/// `MemTotal` in MiB from the text of `/proc/meminfo` (`MemTotal:  16318412 kB`).
fn mem_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let mut words = line.split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next()? == "kB").then_some(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_mib() {
        let text = "MemFree:  100 kB\nMemTotal:       24684812 kB\nSwapTotal: 0 kB\n";
        assert_eq!(mem_total_mib(text), Some(24106));
        assert_eq!(mem_total_mib("MemTotal: 12 MB\n"), None, "another unit");
        assert_eq!(mem_total_mib("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total_mib("MemTotal: lots kB\n"), None);
    }

    #[test]
    fn this_machine_has_memory_and_cpus() {
        assert!(memory_mib().unwrap_or_else(|e| panic!("{e}")) > 0);
        assert!(cpu_units() >= 1024);
        let missing = memory_mib_from(Path::new("/nonexistent/meminfo"));
        assert_eq!(missing.map_err(|e| e.kind()), Err(io::ErrorKind::NotFound));
    }
}
