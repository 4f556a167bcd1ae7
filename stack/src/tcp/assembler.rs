//! Out-of-order tracking: which byte ranges past a base offset have been received.
//!
//! The receive side of a TCP connection (RFC 9293 3.10.7.4: segments are queued until the gap
//! before them is filled) uses an [`Assembler`] to remember which bytes beyond `RCV.NXT`
//! are already stored. Offsets are relative to the base (the first byte not yet received in
//! order). Ranges are kept sorted, disjoint and non-adjacent; inserts merge with every range
//! they overlap or touch. [`Assembler::take_front`] hands over the bytes that have become
//! contiguous with the base and moves the base past them.
//!
//! The number of out-of-order ranges is bounded (a peer could otherwise make us keep an
//! arbitrarily long list with one-byte segments). An insert that would exceed the bound is
//! refused with [`TooManyRanges`] and changes nothing; the caller drops that segment, which
//! the sender will retransmit. A range starting at the base does not count towards the bound,
//! so in-order data is never refused.
//!
//! Each range also remembers when it last grew, so SACK blocks can be reported most recent
//! first (RFC 2018 4): see [`Assembler::ranges_most_recent_first`].

use core::fmt;

/// The insert would need more out-of-order ranges than the assembler may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRanges;

impl fmt::Display for TooManyRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("too many out-of-order ranges")
    }
}

impl std::error::Error for TooManyRanges {}

/// One run of received bytes `[start, end)`, relative to the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: usize,
    end: usize,
    /// Value of `Assembler::inserts` when data last arrived in this range.
    last_arrival: u64,
}

/// Byte ranges present beyond a base offset, with a bound on how many may be kept.
#[derive(Debug, Clone)]
pub struct Assembler {
    /// Sorted by `start`; non-empty, disjoint and non-adjacent: `r[i].end < r[i+1].start`.
    /// At most `max_ranges` of them start after offset 0.
    ranges: Vec<Range>,
    /// Bound on the number of ranges with `start > 0`.
    max_ranges: usize,
    /// Count of successful non-empty inserts; stamps ranges for recency order.
    inserts: u64,
}

impl Assembler {
    /// An empty assembler holding at most `max_ranges` out-of-order ranges. Allocates nothing
    /// until the first insert.
    pub fn new(max_ranges: usize) -> Self {
        Assembler {
            ranges: Vec::new(),
            max_ranges,
            inserts: 0,
        }
    }

    /// Records bytes `[offset, offset + len)` as present, merging with overlapping and
    /// adjacent ranges. Empty inserts are accepted and change nothing. Refused (with no
    /// change) if it would leave more than `max_ranges` ranges beyond the base.
    pub fn insert(&mut self, offset: usize, len: usize) -> Result<(), TooManyRanges> {
        let start = offset;
        // Offsets past usize::MAX cannot be represented; such bytes are simply not recorded.
        let end = offset.saturating_add(len);
        if end == start {
            return Ok(());
        }
        // Ranges [first, last) overlap or touch [start, end).
        let first = self.ranges.partition_point(|r| r.end < start);
        let last = self.ranges.partition_point(|r| r.start <= end);
        let merged_start = self
            .ranges
            .get(first)
            .filter(|_| first < last)
            .map_or(start, |r| r.start.min(start));
        let merged_end = last
            .checked_sub(1)
            .and_then(|i| self.ranges.get(i))
            .filter(|_| first < last)
            .map_or(end, |r| r.end.max(end));

        let count_after = self.ranges.len() - (last - first) + 1;
        let starts_at_base = if first == 0 {
            merged_start == 0
        } else {
            self.ranges.first().is_some_and(|r| r.start == 0)
        };
        let out_of_order_after = count_after - usize::from(starts_at_base);
        if out_of_order_after > self.max_ranges {
            return Err(TooManyRanges);
        }

        self.inserts += 1;
        let merged = Range {
            start: merged_start,
            end: merged_end,
            last_arrival: self.inserts,
        };
        if first == last {
            self.ranges.insert(first, merged);
        } else {
            if let Some(slot) = self.ranges.get_mut(first) {
                *slot = merged;
            }
            self.ranges.drain(first + 1..last);
        }
        Ok(())
    }

    /// Takes the bytes contiguous from the base: returns their count (0 if the first byte is
    /// missing) and moves the base past them.
    pub fn take_front(&mut self) -> usize {
        let taken = match self.ranges.first() {
            Some(r) if r.start == 0 => r.end,
            _ => return 0,
        };
        self.ranges.remove(0);
        // Every remaining range starts after `taken` (ranges are non-adjacent).
        for r in &mut self.ranges {
            r.start -= taken;
            r.end -= taken;
        }
        taken
    }

    /// True when no bytes beyond the base are recorded.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The number of ranges held.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// The bound given to [`Assembler::new`].
    pub fn max_ranges(&self) -> usize {
        self.max_ranges
    }

    /// `(offset, len)` of every range, ascending, relative to the base.
    pub fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ranges.iter().map(|r| (r.start, r.end - r.start))
    }

    /// Up to `max` ranges as `(offset, len)`, the one that most recently received data first
    /// (RFC 2018 4: the first SACK block holds the segment that triggered the ACK; the others
    /// repeat the most recently reported ones).
    pub fn ranges_most_recent_first(&self, max: usize) -> Vec<(usize, usize)> {
        let mut by_recency: Vec<&Range> = self.ranges.iter().collect();
        by_recency.sort_unstable_by_key(|r| core::cmp::Reverse(r.last_arrival));
        by_recency
            .into_iter()
            .take(max)
            .map(|r| (r.start, r.end - r.start))
            .collect()
    }

    /// Forgets every range (the base stays where it is).
    pub fn clear(&mut self) {
        self.ranges.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn contents(asm: &Assembler) -> Vec<(usize, usize)> {
        asm.ranges().collect()
    }

    #[test]
    fn merges_overlapping_and_adjacent() {
        let mut asm = Assembler::new(8);
        asm.insert(10, 5).unwrap();
        asm.insert(20, 5).unwrap();
        assert_eq!(contents(&asm), vec![(10, 5), (20, 5)]);
        // Adjacent on the right of the first range.
        asm.insert(15, 2).unwrap();
        assert_eq!(contents(&asm), vec![(10, 7), (20, 5)]);
        // Bridges both.
        asm.insert(16, 5).unwrap();
        assert_eq!(contents(&asm), vec![(10, 15)]);
        // Fully inside: no change.
        asm.insert(12, 3).unwrap();
        assert_eq!(contents(&asm), vec![(10, 15)]);
        // Covers everything and more.
        asm.insert(5, 30).unwrap();
        assert_eq!(contents(&asm), vec![(5, 30)]);
        assert_eq!(asm.take_front(), 0);
        asm.insert(0, 5).unwrap();
        assert_eq!(asm.take_front(), 35);
        assert!(asm.is_empty());
    }

    #[test]
    fn take_front_shifts_remaining_ranges() {
        let mut asm = Assembler::new(8);
        asm.insert(0, 4).unwrap();
        asm.insert(10, 2).unwrap();
        assert_eq!(asm.take_front(), 4);
        assert_eq!(contents(&asm), vec![(6, 2)]);
        assert_eq!(asm.take_front(), 0);
    }

    #[test]
    fn bound_refuses_without_change_but_in_order_data_is_accepted() {
        let mut asm = Assembler::new(2);
        asm.insert(10, 1).unwrap();
        asm.insert(20, 1).unwrap();
        assert_eq!(asm.insert(30, 1), Err(TooManyRanges));
        assert_eq!(contents(&asm), vec![(10, 1), (20, 1)]);
        // Merging inserts are fine at the bound.
        asm.insert(11, 3).unwrap();
        asm.insert(14, 6).unwrap();
        assert_eq!(contents(&asm), vec![(10, 11)]);
        asm.insert(30, 1).unwrap();
        // In-order data does not count.
        asm.insert(0, 2).unwrap();
        assert_eq!(contents(&asm), vec![(0, 2), (10, 11), (30, 1)]);
        assert_eq!(asm.take_front(), 2);
        // Zero bound: only in-order data.
        let mut none = Assembler::new(0);
        assert_eq!(none.insert(1, 1), Err(TooManyRanges));
        none.insert(0, 1).unwrap();
        assert_eq!(none.take_front(), 1);
    }

    #[test]
    fn empty_insert_and_overflowing_offsets() {
        let mut asm = Assembler::new(4);
        asm.insert(5, 0).unwrap();
        assert!(asm.is_empty());
        asm.insert(usize::MAX - 1, 10).unwrap();
        assert_eq!(contents(&asm), vec![(usize::MAX - 1, 1)]);
        asm.insert(usize::MAX, 1).unwrap();
        assert_eq!(contents(&asm), vec![(usize::MAX - 1, 1)]);
        let mut fresh = Assembler::new(4);
        fresh.insert(usize::MAX, 7).unwrap();
        assert!(fresh.is_empty());
    }

    #[test]
    fn recency_order_follows_arrivals() {
        let mut asm = Assembler::new(8);
        asm.insert(10, 1).unwrap(); // A
        asm.insert(20, 1).unwrap(); // B
        asm.insert(30, 1).unwrap(); // C
        assert_eq!(
            asm.ranges_most_recent_first(4),
            vec![(30, 1), (20, 1), (10, 1)]
        );
        asm.insert(11, 1).unwrap(); // A grows: now the most recent
        assert_eq!(
            asm.ranges_most_recent_first(4),
            vec![(10, 2), (30, 1), (20, 1)]
        );
        assert_eq!(asm.ranges_most_recent_first(2), vec![(10, 2), (30, 1)]);
        // A duplicate inside B still counts as B's most recent arrival (RFC 2018 4).
        asm.insert(20, 1).unwrap();
        assert_eq!(asm.ranges_most_recent_first(1), vec![(20, 1)]);
    }

    /// Runs of `true` in a bitmap as `(offset, len)`.
    fn runs(bits: &[bool]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bits.len() {
            if bits[i] {
                let start = i;
                while i < bits.len() && bits[i] {
                    i += 1;
                }
                out.push((start, i - start));
            } else {
                i += 1;
            }
        }
        out
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(usize, usize),
        TakeFront,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0usize..120, 0usize..25).prop_map(|(o, l)| Op::Insert(o, l)),
            1 => Just(Op::TakeFront),
        ]
    }

    proptest! {
        #[test]
        fn matches_bitmap_model(
            max_ranges in 0usize..6,
            ops in proptest::collection::vec(op(), 0..120),
        ) {
            let mut asm = Assembler::new(max_ranges);
            let mut model = vec![false; 200];
            for op in ops {
                match op {
                    Op::Insert(offset, len) => {
                        let mut next = model.clone();
                        for bit in &mut next[offset..offset + len] {
                            *bit = true;
                        }
                        let next_runs = runs(&next);
                        let out_of_order = next_runs.iter().filter(|(s, _)| *s > 0).count();
                        let result = asm.insert(offset, len);
                        if out_of_order > max_ranges {
                            prop_assert_eq!(result, Err(TooManyRanges));
                        } else {
                            prop_assert_eq!(result, Ok(()));
                            model = next;
                        }
                    }
                    Op::TakeFront => {
                        let front = model.iter().take_while(|b| **b).count();
                        prop_assert_eq!(asm.take_front(), front);
                        model.drain(..front);
                        model.resize(200, false);
                    }
                }
                prop_assert_eq!(contents(&asm), runs(&model));
                prop_assert_eq!(asm.is_empty(), !model.contains(&true));
                let by_recency = asm.ranges_most_recent_first(usize::MAX);
                let mut sorted = by_recency.clone();
                sorted.sort_unstable();
                prop_assert_eq!(sorted, runs(&model));
            }
        }
    }
}
