//! What `/proc` says about a process: its memory and its CPU time.

use std::process::Command;

/// Memory of a process from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mem {
    /// `VmRSS`: resident now.
    pub vm_rss: u64,
    /// `RssAnon`: resident anonymous memory (the heap).
    pub rss_anon: u64,
    /// `RssFile`: resident file pages (the journal's mapping).
    pub rss_file: u64,
    /// `VmHWM`: the peak of `VmRSS`.
    pub vm_hwm: u64,
}

impl Mem {
    /// The memory of `pid`; `None` if it is gone.
    pub fn read(pid: u32) -> Option<Mem> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let mut mem = Mem::default();
        for line in text.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let kib = || {
                value
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            match name {
                "VmRSS" => mem.vm_rss = kib(),
                "RssAnon" => mem.rss_anon = kib(),
                "RssFile" => mem.rss_file = kib(),
                "VmHWM" => mem.vm_hwm = kib(),
                _ => {}
            }
        }
        Some(mem)
    }
}

/// KiB as MiB, for printing.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// utime + stime of a process (all its threads) in clock ticks, from
/// `/proc/PID/stat`.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after it.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Context switches (voluntary and involuntary) of the threads of `pid`
/// named `name` (`/proc/PID/task/*/comm`), summed: how often they ran.
/// `None` if the process is gone or has no such thread.
pub fn thread_switches(pid: u32, name: &str) -> Option<u64> {
    let mut total = None;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let switches: u64 = status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        *total.get_or_insert(0) += switches;
    }
    total
}
