//! TCP sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 3.4).
//!
//! Two sequence numbers are ordered by the sign of their wrapping difference, so `a < b` means
//! "b is less than 2^31 bytes after a". This is not a total order (it is not transitive across
//! more than half the space), which is why `SeqNumber` implements `PartialOrd` but not `Ord`;
//! never compare the raw `u32`s with `<`.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A TCP sequence (or acknowledgment) number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// Signed distance from `other` to `self`: positive when `self` is after `other`.
    pub fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// Bytes from `earlier` to `self`, or 0 if `self` is not after `earlier`.
    pub fn since(self, earlier: SeqNumber) -> usize {
        usize::try_from(self.diff(earlier).max(0)).unwrap_or(0)
    }

    /// The later of two sequence numbers.
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self.diff(other) >= 0 {
            self
        } else {
            other
        }
    }

    /// The earlier of two sequence numbers.
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self.diff(other) <= 0 {
            self
        } else {
            other
        }
    }

    /// `start <= self < start + len` in sequence space.
    pub fn in_window(self, start: SeqNumber, len: usize) -> bool {
        let offset = self.0.wrapping_sub(start.0);
        (offset as usize) < len && offset < 0x8000_0000
    }

    /// `low <= self <= high` in sequence space.
    pub fn between_inclusive(self, low: SeqNumber, high: SeqNumber) -> bool {
        self.diff(low) >= 0 && high.diff(self) >= 0
    }
}

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;
    /// Adds a byte count. Counts beyond 2^31 are meaningless in sequence space; they wrap.
    fn add(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl AddAssign<usize> for SeqNumber {
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

impl Sub<usize> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(rhs as u32))
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordering_across_wrap() {
        let before = SeqNumber(u32::MAX - 10);
        let after = before + 20;
        assert_eq!(after, SeqNumber(9));
        assert!(before < after);
        assert!(after > before);
        assert_eq!(after.since(before), 20);
        assert_eq!(before.since(after), 0);
        assert_eq!(after.diff(before), 20);
        assert_eq!(before.diff(after), -20);
        assert_eq!(before.max(after), after);
        assert_eq!(after.min(before), before);
        assert!(SeqNumber(3).in_window(before, 20));
        assert!(!after.in_window(before, 20));
        assert!(!before.in_window(before, 0));
        assert!(SeqNumber(0).between_inclusive(before, after));
    }

    proptest! {
        #[test]
        fn add_then_since_roundtrips(start in any::<u32>(), n in 0usize..0x7fff_ffff) {
            let a = SeqNumber(start);
            let b = a + n;
            prop_assert_eq!(b.since(a), n);
            prop_assert_eq!(b - n, a);
            prop_assert!(b >= a);
            prop_assert_eq!(b.max(a), b);
            prop_assert_eq!(b.min(a), a);
            if n > 0 {
                prop_assert!(a < b);
                prop_assert!(b.diff(a) > 0);
                prop_assert_eq!(a.since(b), 0);
            }
        }

        #[test]
        fn in_window_matches_offset(start in any::<u32>(), off in 0usize..0x7fff_ffff, len in 0usize..0x7fff_ffff) {
            let s = SeqNumber(start);
            prop_assert_eq!((s + off).in_window(s, len), off < len);
            // Just before the window is never inside it.
            prop_assert!(!(s - 1).in_window(s, len));
        }

        #[test]
        fn comparison_is_antisymmetric(a in any::<u32>(), b in any::<u32>()) {
            let (a, b) = (SeqNumber(a), SeqNumber(b));
            if a.diff(b) != i32::MIN {
                prop_assert_eq!(a < b, b > a);
                prop_assert_eq!(a.diff(b), -b.diff(a));
            }
        }
    }
}
