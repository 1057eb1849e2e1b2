//! Byte sizes as operators type them (`2GiB`, `512MiB`, `1G`, `1048576`) and
//! as reports print them (`2.0 GiB`).
//!
//! Binary units (`KiB`, `MiB`, `GiB`, `TiB`, or just `Ki`…) are powers of
//! 1024; decimal units (`K`/`KB`, `M`/`MB`, `G`/`GB`, `T`/`TB`) are powers of
//! 1000, as the SI and `ls --si` use them. Units are case-insensitive, so
//! `64kib` is 64 KiB and `1gb` is 10^9 bytes. Only whole numbers are taken:
//! a fraction (`1.5G`) would have to be rounded, and a queue size is better
//! stated exactly.

const FORMS: &str = "plain bytes (1048576), a binary unit (64KiB, 512MiB, 2GiB: powers of 1024) \
     or a decimal unit (1K/1KB, 1M/1MB, 1G/1GB: powers of 1000)";

/// Why a size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// The text is not a whole number followed by a known unit.
    #[error("invalid size {input:?}: {reason}; write {FORMS}")]
    Invalid {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The size does not fit in 64 bits.
    #[error("size {input:?} is larger than {max} bytes; write a smaller size", max = u64::MAX)]
    TooLarge {
        /// The text as given.
        input: String,
    },
}

/// Reads a byte size such as `2GiB`, `512MiB`, `64KiB`, `1G`, `1GB` or
/// `1048576`; see the module docs for the units.
///
/// Leading and trailing blanks and one run of blanks between the number and
/// the unit are allowed (`"2 GiB"`).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let invalid = |reason| SizeError::Invalid {
        input: text.to_owned(),
        reason,
    };
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(invalid("it does not start with a number"));
    }
    let unit = unit.trim_start().to_ascii_lowercase();
    let multiplier = multiplier(&unit).ok_or_else(|| {
        if unit.starts_with('.') || unit.starts_with(',') {
            invalid("only whole numbers are accepted")
        } else {
            invalid("the unit is not one of B, K, KB, KiB, M, MB, MiB, G, GB, GiB, T, TB, TiB")
        }
    })?;
    let too_large = || SizeError::TooLarge {
        input: text.to_owned(),
    };
    // Only digits remain, so the sole parse failure is overflow.
    let value: u64 = number.parse().map_err(|_| too_large())?;
    value.checked_mul(multiplier).ok_or_else(too_large)
}

fn multiplier(unit: &str) -> Option<u64> {
    let power = |base: u64, exp: u32| base.pow(exp);
    Some(match unit {
        "" | "b" => 1,
        "k" | "kb" => power(1000, 1),
        "m" | "mb" => power(1000, 2),
        "g" | "gb" => power(1000, 3),
        "t" | "tb" => power(1000, 4),
        "ki" | "kib" => power(1024, 1),
        "mi" | "mib" => power(1024, 2),
        "gi" | "gib" => power(1024, 3),
        "ti" | "tib" => power(1024, 4),
        _ => return None,
    })
}

/// Prints a byte count in binary units with one decimal (`"2.0 GiB"`,
/// `"16.0 KiB"`); counts under 1024 print as bytes (`"512 B"`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // f64 is exact enough for one printed decimal at any u64 size.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_size_picks_the_largest_whole_unit() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(16 * 1024), "16.0 KiB");
        assert_eq!(format_size(2 << 30), "2.0 GiB");
        assert_eq!(format_size(1536 << 20), "1.5 GiB");
        assert_eq!(format_size(u64::MAX), "16.0 EiB");
    }
}
