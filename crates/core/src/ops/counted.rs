//! A count and its noun for the tools' text output: "1 gap", "2 gaps".

/// `n` and `noun`, plural unless `n` is 1 (regular English plurals: the
/// tools' nouns all take an `s`).
pub fn counted(n: u64, noun: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {noun}{s}")
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(counted(1, "gap"), "1 gap");
        assert_eq!(counted(0, "gap"), "0 gaps");
        assert_eq!(counted(2, "duplicate"), "2 duplicates");
    }
}
