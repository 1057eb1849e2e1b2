//! JSON output primitives shared by every payload encoder.
//!
//! The Ruby extension walks Ruby values and calls these to write strings and
//! times; keeping them here lets them be tested without a Ruby VM.

/// Writes `text` (valid UTF-8) as a JSON string: `"` and `\` escaped, control
/// characters as short escapes or `\u00XX`, everything else copied as is (the
/// same output as Ruby's `JSON.generate`).
pub fn write_str(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&text[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
    out.push(b'"');
}

/// Writes an instant as a JSON string in ISO 8601 UTC with microseconds,
/// `"2024-01-01T12:30:00.250000Z"`.
pub fn write_utc_time(out: &mut Vec<u8>, unix_secs: i64, micros: i64) {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let text = format!(
        "\"{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z\"",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        micros.clamp(0, 999_999)
    );
    out.extend_from_slice(text.as_bytes());
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar):
/// days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(secs: i64, micros: i64) -> String {
        let mut out = Vec::new();
        write_utc_time(&mut out, secs, micros);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn civil_dates_around_epochs_and_leap_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    #[test]
    fn times_are_iso8601_utc_with_microseconds() {
        assert_eq!(time(0, 0), "\"1970-01-01T00:00:00.000000Z\"");
        assert_eq!(
            time(1_704_112_200, 250_000),
            "\"2024-01-01T12:30:00.250000Z\""
        );
        assert_eq!(time(-1, 999_999), "\"1969-12-31T23:59:59.999999Z\"");
    }

    #[test]
    fn strings_escape_quotes_backslashes_and_control_characters() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\n\t\u{1}\u{1f}é".as_bytes());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\t\\u0001\\u001fé\""
        );
    }
}
