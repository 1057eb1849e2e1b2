//! The envelope's flags byte.

/// Flag bits of an envelope. Bits 2-7 are reserved: a v1 reader rejects them,
/// so a writer may only set them together with a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(u8);

impl Flags {
    /// The envelope carries a key (possibly empty, which differs from no key, as in Kafka).
    pub const KEY_PRESENT: Flags = Flags(0b01);
    /// The payload was JSON-encoded from a structure by the emitter.
    pub const PAYLOAD_JSON: Flags = Flags(0b10);
    /// Every bit v1 defines.
    pub const KNOWN: Flags = Flags(0b11);

    /// No flags set.
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// The flags in `bits`, or `None` if a reserved bit is set.
    pub const fn from_bits(bits: u8) -> Option<Flags> {
        if bits & !Self::KNOWN.0 == 0 {
            Some(Flags(bits))
        } else {
            None
        }
    }

    /// The raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with the bits of `other` added.
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;

    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_bits_are_refused() {
        assert_eq!(
            Flags::from_bits(0b11),
            Some(Flags::KEY_PRESENT | Flags::PAYLOAD_JSON)
        );
        assert_eq!(Flags::from_bits(0b100), None);
        assert!(!Flags::empty().contains(Flags::KEY_PRESENT));
        assert!(Flags::KNOWN.contains(Flags::PAYLOAD_JSON));
    }
}
