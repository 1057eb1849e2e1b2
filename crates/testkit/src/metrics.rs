//! The Prometheus text exposition, read back.

use std::collections::HashMap;

/// `name -> value` of every series; labels are dropped (the drain and the
/// proxy export one queue each) and `_bucket` lines skipped.
pub fn parse_metrics(body: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in body.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if name.ends_with("_bucket") {
            continue;
        }
        if let Ok(v) = value.parse::<f64>() {
            out.insert(name.to_owned(), v);
        }
    }
    out
}
