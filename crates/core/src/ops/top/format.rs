//! How `top` spells its numbers, and its one-line plain-text form.
//!
//! Rates and counts are compact (`1.2k/s`, `3.4 MiB/s`); durations use the
//! two largest units (`4m12s`, `3h05m`), latencies milliseconds below a
//! second. The plain-text line is `key=value` pairs without blanks inside
//! values, so `grep`, `awk` and log shippers can take it apart.

use std::fmt::Write as _;

use super::estimate::Estimate;
use super::view::{ProcessState, ProcessView, TopView};
use crate::ops::format_size;

/// An event rate: `0/s`, `2.5/s`, `640/s`, `12.3k/s`, `1.2M/s`.
pub fn fmt_rate(per_sec: f64) -> String {
    format!("{}/s", compact(per_sec))
}

/// A byte rate: `0 B/s`, `512 B/s`, `3.4 MiB/s`.
pub fn fmt_bytes_rate(per_sec: f64) -> String {
    format!("{}/s", format_size(per_sec.max(0.0).round() as u64))
}

/// A count: `999`, `12.3k`, `4.0M`.
pub fn fmt_count(n: u64) -> String {
    compact(n as f64)
}

fn compact(value: f64) -> String {
    let v = if value > 0.0 { value } else { 0.0 };
    match v {
        v if v < 10.0 && v.fract() != 0.0 => format!("{v:.1}"),
        v if v < 1e3 => format!("{v:.0}"),
        v if v < 1e6 => format!("{:.1}k", v / 1e3),
        v if v < 1e9 => format!("{:.1}M", v / 1e6),
        v => format!("{:.1}G", v / 1e9),
    }
}

/// An age or a wait: `0.4s`, `12s`, `4m12s`, `3h05m`, `2d03h`.
pub fn fmt_age(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 10.0 {
        return format!("{s:.1}s");
    }
    let whole = s.round() as u64;
    match whole {
        w if w < 60 => format!("{w}s"),
        w if w < 3600 => format!("{}m{:02}s", w / 60, w % 60),
        w if w < 86_400 => format!("{}h{:02}m", w / 3600, w % 3600 / 60),
        w => format!("{}d{:02}h", w / 86_400, w % 86_400 / 3600),
    }
}

/// A latency: `0.8ms`, `48ms`, `1.20s`, then as [`fmt_age`].
pub fn fmt_latency(secs: f64) -> String {
    match secs.max(0.0) {
        s if s < 0.01 => format!("{:.1}ms", s * 1e3),
        s if s < 1.0 => format!("{:.0}ms", s * 1e3),
        s if s < 10.0 => format!("{s:.2}s"),
        s => fmt_age(s),
    }
}

/// An estimate: `4m12s`, `never`, `-`.
pub fn fmt_estimate(estimate: Estimate) -> String {
    match estimate {
        Estimate::Seconds(s) => fmt_age(s),
        Estimate::Never => "never".into(),
        Estimate::Unknown => "-".into(),
    }
}

fn or_dash(value: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), fmt)
}

fn state(process: &ProcessView) -> &'static str {
    match process.state {
        ProcessState::Up => "up",
        ProcessState::Stale => "stale",
        ProcessState::Down => "down",
    }
}

impl TopView {
    /// The view as one line of `key=value` pairs (for `top` when stdout is
    /// not a terminal); values hold no blanks.
    pub fn line(&self) -> String {
        let mut out = String::new();
        let mut time = Vec::new();
        let secs = self.at.floor();
        crate::json::write_utc_time(&mut time, secs as i64, 0);
        let time = String::from_utf8_lossy(&time);
        let time = time.trim_matches('"').trim_end_matches(".000000Z");
        let _ = write!(out, "time={time}Z queue={}", self.key);
        let tight = |text: String| text.replace(' ', "");
        match (&self.queue, &self.queue_error) {
            (Some(q), _) => {
                let _ = write!(
                    out,
                    " depth={} bytes={} fill={:.1}% oldest={}",
                    q.depth,
                    tight(format_size(q.bytes)),
                    q.fill_percent,
                    or_dash(q.oldest_age, fmt_age),
                );
            }
            (None, Some(_)) | (None, None) => out.push_str(" depth=- error=queue_unreadable"),
        }
        if let Some(spool) = &self.spool {
            let _ = write!(
                out,
                " spool_segments={} spool_bytes={} spool_oldest={}",
                spool.segments,
                tight(format_size(spool.bytes)),
                fmt_age(spool.oldest_age)
            );
        }
        let r = &self.rates;
        let _ = write!(
            out,
            " in={},{} out={},{} delivered={}",
            or_dash(r.in_events, fmt_rate),
            or_dash(r.in_bytes, |b| tight(fmt_bytes_rate(b))),
            or_dash(r.out_events, fmt_rate),
            or_dash(r.out_bytes, |b| tight(fmt_bytes_rate(b))),
            or_dash(r.delivered_events, fmt_rate),
        );
        let e = &self.estimates;
        let _ = write!(
            out,
            " to_full={} to_drain={} full_if_drain_stops={}",
            fmt_estimate(e.time_to_full),
            fmt_estimate(e.time_to_drain),
            fmt_estimate(e.full_if_drain_stops)
        );
        if let Some(d) = &self.delivery {
            let _ = write!(
                out,
                " p50={} p99={} in_flight={} retries={} dead_letters={}",
                or_dash(d.p50, fmt_latency),
                or_dash(d.p99, fmt_latency),
                d.in_flight,
                d.retried,
                d.dead_lettered
            );
        }
        if let Some(a) = &self.accounting {
            let _ = write!(out, " gaps={} duplicates={}", a.gaps, a.duplicates);
        }
        let _ = write!(out, " drain={}", state(&self.drain));
        if let Some(pid) = self.drain.pid {
            let _ = write!(out, " drain_pid={pid}");
        }
        let _ = write!(out, " proxy={}", state(&self.proxy));
        if let Some(topics) = &self.topics {
            let list: Vec<String> = topics
                .top
                .iter()
                .map(|t| format!("{}:{}", t.topic, fmt_rate(t.events)))
                .collect();
            let _ = write!(out, " topics={}", list.join(","));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_counts_are_compact() {
        assert_eq!(fmt_rate(0.0), "0/s");
        assert_eq!(fmt_rate(2.5), "2.5/s");
        assert_eq!(fmt_rate(640.4), "640/s");
        assert_eq!(fmt_rate(12_345.0), "12.3k/s");
        assert_eq!(fmt_rate(-3.0), "0/s");
        assert_eq!(fmt_rate(-0.0), "0/s");
        assert_eq!(fmt_count(4_000_000), "4.0M");
        assert_eq!(fmt_bytes_rate(3.4 * 1024.0 * 1024.0), "3.4 MiB/s");
    }

    #[test]
    fn durations_use_the_two_largest_units() {
        assert_eq!(fmt_age(0.42), "0.4s");
        assert_eq!(fmt_age(12.4), "12s");
        assert_eq!(fmt_age(252.0), "4m12s");
        assert_eq!(fmt_age(3.0 * 3600.0 + 300.0), "3h05m");
        assert_eq!(fmt_age(2.0 * 86_400.0 + 3.0 * 3600.0), "2d03h");
        assert_eq!(fmt_latency(0.0042), "4.2ms");
        assert_eq!(fmt_latency(0.048), "48ms");
        assert_eq!(fmt_latency(1.2), "1.20s");
        assert_eq!(fmt_estimate(Estimate::Never), "never");
        assert_eq!(fmt_estimate(Estimate::Unknown), "-");
    }
}
