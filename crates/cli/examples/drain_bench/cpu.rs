//! CPU time while a measurement runs, and what machine it ran on.

use testkit::procfs::{clock_ticks_per_second, cpu_ticks};

/// CPU seconds spent while one measurement ran: by the producing process
/// (this bench for the baseline, the drain process for the drain), by the
/// broker, and by the whole machine, next to the wall time and core count.
#[derive(Clone, Copy, Default)]
pub struct CpuUse {
    pub producer: f64,
    pub broker: f64,
    pub machine: f64,
    pub capacity: f64,
}

/// A reading of the CPU counters `CpuUse` is the difference of.
pub struct CpuMark {
    producer: u64,
    broker: u64,
    busy: u64,
    all: u64,
}

impl CpuMark {
    pub fn take(producer: u32, broker: u32) -> CpuMark {
        let (busy, all) = machine_ticks();
        CpuMark {
            producer: cpu_ticks(producer).unwrap_or(0),
            broker: cpu_ticks(broker).unwrap_or(0),
            busy,
            all,
        }
    }

    pub fn since(&self, start: &CpuMark) -> CpuUse {
        let hz = clock_ticks_per_second() as f64;
        CpuUse {
            producer: self.producer.saturating_sub(start.producer) as f64 / hz,
            broker: self.broker.saturating_sub(start.broker) as f64 / hz,
            machine: self.busy.saturating_sub(start.busy) as f64 / hz,
            capacity: self.all.saturating_sub(start.all) as f64 / hz,
        }
    }
}

/// Busy and total ticks of all CPUs, from the first line of /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    let all: u64 = fields.iter().take(8).sum();
    (all.saturating_sub(idle), all)
}

/// The CPU model, cores, kernel and load average.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{model}, {cores} cores, Linux {kernel} (load average at start {load})")
}
