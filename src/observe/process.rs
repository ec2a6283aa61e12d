//! The `process_*` metrics Prometheus's Go client exports, read from `/proc` at each scrape.

use std::sync::Once;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// A snapshot of the process's resource use.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time in seconds.
    pub cpu_seconds: f64,
    /// Resident set size in bytes.
    pub resident_bytes: f64,
    /// Virtual memory size in bytes.
    pub virtual_bytes: f64,
    /// Process start time, seconds since the Unix epoch.
    pub start_time: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// The soft limit on open file descriptors.
    pub max_fds: f64,
    /// The soft limit on address space (`u64::MAX` as a float when unlimited).
    pub virtual_max_bytes: f64,
}

/// Reads the current process's statistics from `/proc/self`.
pub fn read_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name (which may contain spaces).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); field N is at index N - 3.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    let ticks = if ticks > 0.0 { ticks } else { 100.0 };
    let utime = field(14)?;
    let stime = field(15)?;
    let starttime = field(22)?;
    let vsize = field(23)?;
    let rss = field(24)?;
    let boot = boot_time().unwrap_or(0.0);
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as f64).unwrap_or(0.0);
    Some(ProcessStats {
        cpu_seconds: (utime + stime) / ticks,
        resident_bytes: rss * page,
        virtual_bytes: vsize,
        start_time: boot + starttime / ticks,
        open_fds,
        max_fds: rlimit_soft(libc::RLIMIT_NOFILE),
        virtual_max_bytes: rlimit_soft(libc::RLIMIT_AS),
    })
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

fn rlimit_soft(resource: libc::__rlimit_resource_t) -> f64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit struct.
    if unsafe { libc::getrlimit(resource, &mut lim) } != 0 {
        return 0.0;
    }
    lim.rlim_cur as f64
}

/// The collector emitting the `process_*` families.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = read_stats() else { return Ok(()) };
        let counter = ConstCounter::new(s.cpu_seconds);
        counter.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            counter.metric_type(),
        )?)?;
        let gauges = [
            ("process_max_fds", "Maximum number of open file descriptors.", s.max_fds),
            ("process_open_fds", "Number of open file descriptors.", s.open_fds),
            ("process_resident_memory_bytes", "Resident memory size in bytes.", s.resident_bytes),
            ("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", s.start_time),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes.", s.virtual_bytes),
            (
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
                s.virtual_max_bytes,
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

/// Adds the process collector to the process-wide registry (once).
pub fn register_collector() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| super::registry().lock().register_collector(Box::new(ProcessCollector)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let s = read_stats().unwrap();
        assert!(s.resident_bytes > 0.0, "{s:?}");
        assert!(s.open_fds >= 3.0, "{s:?}");
        assert!(s.start_time > 1_000_000_000.0, "{s:?}");
    }
}
