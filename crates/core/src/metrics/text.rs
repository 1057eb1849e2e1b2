//! The Prometheus text exposition format, version 0.0.4.
//!
//! Just the parts the drain needs: `# HELP` / `# TYPE` headers, one series
//! per metric carrying the same constant labels, and histograms as
//! `_bucket{le=...}` / `_sum` / `_count`. Written straight into a reused
//! `String`; formatting into a `String` cannot fail, so `write!` results are
//! ignored.

use std::fmt::{Display, Write};

use super::histogram::HistogramSnapshot;

/// The `Content-Type` of a rendered exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders constant labels once, at construction, as `a="x",b="y"` (no
/// braces). Label names are made valid (`[a-zA-Z_][a-zA-Z0-9_]*`) by
/// replacing other characters with `_`, as Prometheus clients do; values are
/// escaped (`\\`, `\"`, `\n`).
pub(crate) fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            out.push('_');
        }
        out.extend(name.chars().map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' => c,
            _ => '_',
        }));
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                _ => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// Appends metrics to `out`, every series carrying `labels`.
pub(crate) struct TextWriter<'a> {
    out: &'a mut String,
    /// Pre-rendered by [`render_labels`]; may be empty.
    labels: &'a str,
}

impl<'a> TextWriter<'a> {
    pub(crate) fn new(out: &'a mut String, labels: &'a str) -> Self {
        Self { out, labels }
    }

    /// A `counter`; `name` should end in `_total`.
    pub(crate) fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "counter");
        self.series(name, "", None, value);
    }

    /// A `gauge` with an integer value.
    pub(crate) fn gauge(&mut self, name: &str, help: &str, value: i64) {
        self.header(name, help, "gauge");
        self.series(name, "", None, value);
    }

    /// A `gauge` with a float value.
    pub(crate) fn gauge_f64(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, help, "gauge");
        self.series(name, "", None, Float(value));
    }

    /// A `counter` family with one series per value of the label `label`,
    /// each beside the constant labels; no series if `series` is empty.
    pub(crate) fn counter_by<'v>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: impl IntoIterator<Item = (&'v str, u64)>,
    ) {
        self.header(name, help, "counter");
        for (value, count) in series {
            let pair = render_labels(&[(label, value)]);
            let out = &mut *self.out;
            if self.labels.is_empty() {
                let _ = writeln!(out, "{name}{{{pair}}} {count}");
            } else {
                let _ = writeln!(out, "{name}{{{},{pair}}} {count}", self.labels);
            }
        }
    }

    /// A `histogram`: cumulative buckets, then `+Inf`, `_sum` and `_count`.
    pub(crate) fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.header(name, help, "histogram");
        for b in &h.buckets {
            self.series(name, "_bucket", Some(Float(b.le)), b.count);
        }
        self.series(name, "_bucket", Some(Float(f64::INFINITY)), h.count);
        self.series(name, "_sum", None, Float(h.sum));
        self.series(name, "_count", None, h.count);
    }

    /// `help` must not contain `\` or a newline; every help text is a
    /// constant of this module's callers, so it is not escaped.
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn series(&mut self, name: &str, suffix: &str, le: Option<Float>, value: impl Display) {
        let out = &mut *self.out;
        out.push_str(name);
        out.push_str(suffix);
        match (self.labels.is_empty(), le) {
            (true, None) => {}
            (true, Some(le)) => {
                let _ = write!(out, "{{le=\"{le}\"}}");
            }
            (false, None) => {
                let _ = write!(out, "{{{}}}", self.labels);
            }
            (false, Some(le)) => {
                let _ = write!(out, "{{{},le=\"{le}\"}}", self.labels);
            }
        }
        let _ = writeln!(out, " {value}");
    }
}

/// An `f64` spelled the way Prometheus parses it (`+Inf`, `-Inf`, `NaN`;
/// Rust's `Display` would write `inf`).
#[derive(Clone, Copy)]
struct Float(f64);

impl Display for Float {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v == f64::INFINITY => f.write_str("+Inf"),
            v if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            v => write!(f, "{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Histogram;

    #[test]
    fn tiny_fixture_renders_exactly() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(2.5);
        let labels = render_labels(&[("queue", "0x1")]);
        let mut out = String::new();
        let mut w = TextWriter::new(&mut out, &labels);
        w.counter("x_total", "Things.", 3);
        w.gauge("x_depth", "Depth.", -1);
        w.gauge_f64("x_age_seconds", "Age.", f64::NAN);
        w.histogram("x_seconds", "Latency.", &h.snapshot());
        let expected = "\
# HELP x_total Things.
# TYPE x_total counter
x_total{queue=\"0x1\"} 3
# HELP x_depth Depth.
# TYPE x_depth gauge
x_depth{queue=\"0x1\"} -1
# HELP x_age_seconds Age.
# TYPE x_age_seconds gauge
x_age_seconds{queue=\"0x1\"} NaN
# HELP x_seconds Latency.
# TYPE x_seconds histogram
x_seconds_bucket{queue=\"0x1\",le=\"0.1\"} 1
x_seconds_bucket{queue=\"0x1\",le=\"1\"} 1
x_seconds_bucket{queue=\"0x1\",le=\"+Inf\"} 2
x_seconds_sum{queue=\"0x1\"} 2.55
x_seconds_count{queue=\"0x1\"} 2
";
        assert_eq!(out, expected);
    }

    #[test]
    fn a_counter_family_puts_its_label_after_the_constant_ones() {
        let labels = render_labels(&[("queue", "0x1")]);
        let mut out = String::new();
        let mut w = TextWriter::new(&mut out, &labels);
        w.counter_by("t_total", "T.", "topic", [("a\"b", 2), ("(other)", 1)]);
        let expected = "\
# HELP t_total T.
# TYPE t_total counter
t_total{queue=\"0x1\",topic=\"a\\\"b\"} 2
t_total{queue=\"0x1\",topic=\"(other)\"} 1
";
        assert_eq!(out, expected);
    }

    #[test]
    fn without_labels_series_have_no_braces_except_le() {
        let mut out = String::new();
        let mut w = TextWriter::new(&mut out, "");
        w.counter("a_total", "A.", 0);
        w.histogram("b", "B.", &Histogram::new(&[]).snapshot());
        assert!(out.contains("\na_total 0\n"));
        assert!(out.contains("\nb_bucket{le=\"+Inf\"} 0\nb_sum 0\nb_count 0\n"));
    }

    #[test]
    fn label_names_are_sanitised_and_values_escaped() {
        let got = render_labels(&[("queue-key", "a\"b\\c\nd"), ("1x", "")]);
        assert_eq!(got, r#"queue_key="a\"b\\c\nd",_1x="""#);
    }
}
