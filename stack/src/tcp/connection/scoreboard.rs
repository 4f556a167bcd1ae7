//! The sender's SACK scoreboard (RFC 6675 3): which sequence ranges above SND.UNA the peer has
//! reported holding, and the RFC 6675 questions asked of it (IsLost, the holes NextSeg walks).

use crate::tcp::seq::SeqNumber;

/// RFC 6675 2: DupThresh.
pub const DUP_THRESH: usize = 3;

/// Most ranges kept; a peer reports at most 4 per ACK and merges as holes fill, so a sane peer
/// never gets near this. Beyond it the highest ranges are forgotten (they are only hints).
const MAX_RANGES: usize = 64;

/// SACKed ranges `[start, end)`, sorted, disjoint and not adjacent, all above `snd_una`.
#[derive(Debug, Clone, Default)]
pub struct Scoreboard {
    ranges: Vec<(SeqNumber, SeqNumber)>,
}

impl Scoreboard {
    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    #[cfg(test)]
    pub fn ranges(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.ranges
    }

    /// Records a SACK block, ignoring it unless `snd_una < start < end <= snd_max`
    /// (RFC 2018 blocks outside what we sent are bogus; D-SACKs below snd_una are not used).
    pub fn add(
        &mut self,
        start: SeqNumber,
        end: SeqNumber,
        snd_una: SeqNumber,
        snd_max: SeqNumber,
    ) {
        if !(start < end && snd_una < end && end <= snd_max) {
            return;
        }
        let start = start.max(snd_una);
        let mut merged = (start, end);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(s, e) in &self.ranges {
            if e < merged.0 || merged.1 < s {
                kept.push((s, e));
            } else {
                merged = (merged.0.min(s), merged.1.max(e));
            }
        }
        let at = kept
            .iter()
            .position(|&(s, _)| merged.0 < s)
            .unwrap_or(kept.len());
        kept.insert(at, merged);
        kept.truncate(MAX_RANGES);
        self.ranges = kept;
    }

    /// Forgets everything at or below the new cumulative ACK.
    pub fn advance(&mut self, snd_una: SeqNumber) {
        self.ranges.retain(|&(_, e)| e > snd_una);
        if let Some(first) = self.ranges.first_mut() {
            first.0 = first.0.max(snd_una);
        }
    }

    /// Highest SACKed sequence number + 1, if any.
    #[cfg(test)]
    pub fn highest(&self) -> Option<SeqNumber> {
        self.ranges.last().map(|&(_, e)| e)
    }

    /// SACKed bytes in `[from, to)`.
    pub fn sacked_between(&self, from: SeqNumber, to: SeqNumber) -> usize {
        self.ranges
            .iter()
            .map(|&(s, e)| e.min(to).since(s.max(from)))
            .sum()
    }

    /// If `seq` is inside a SACKed range, the end of that range; else `seq`.
    pub fn skip_sacked(&self, seq: SeqNumber) -> SeqNumber {
        self.ranges
            .iter()
            .find(|&&(s, e)| s <= seq && seq < e)
            .map_or(seq, |&(_, e)| e)
    }

    /// Start of the first SACKed range above `seq`.
    pub fn next_sacked_start(&self, seq: SeqNumber) -> Option<SeqNumber> {
        self.ranges.iter().map(|&(s, _)| s).find(|&s| s > seq)
    }

    /// RFC 6675 IsLost(seq): DupThresh discontiguous SACKed ranges above `seq`, or more than
    /// (DupThresh - 1) * SMSS SACKed bytes above it.
    pub fn is_lost(&self, seq: SeqNumber, smss: usize) -> bool {
        let above: Vec<_> = self.ranges.iter().filter(|&&(_, e)| e > seq).collect();
        let bytes: usize = above.iter().map(|&&(s, e)| e.since(s.max(seq + 1))).sum();
        above.len() >= DUP_THRESH || bytes > (DUP_THRESH - 1) * smss
    }

    /// The holes (un-SACKed ranges) between `snd_una` and the highest SACKed byte, ascending.
    pub fn holes(&self, snd_una: SeqNumber) -> Vec<(SeqNumber, SeqNumber)> {
        let mut holes = Vec::with_capacity(self.ranges.len());
        let mut at = snd_una;
        for &(s, e) in &self.ranges {
            if at < s {
                holes.push((at, s));
            }
            at = at.max(e);
        }
        holes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    #[test]
    fn merges_and_answers() {
        let mut sb = Scoreboard::default();
        let (una, max) = (s(1000), s(10000));
        sb.add(s(3000), s(4000), una, max);
        sb.add(s(5000), s(6000), una, max);
        sb.add(s(4000), s(4500), una, max); // adjacent: merges
        assert_eq!(sb.ranges(), &[(s(3000), s(4500)), (s(5000), s(6000))]);
        sb.add(s(500), s(900), una, max); // below una: ignored
        sb.add(s(9000), s(11000), una, max); // beyond snd_max: ignored
        assert_eq!(sb.ranges().len(), 2);
        assert_eq!(sb.holes(una), vec![(s(1000), s(3000)), (s(4500), s(5000))]);
        assert_eq!(sb.sacked_between(una, max), 2500);
        assert_eq!(sb.sacked_between(s(4000), s(5500)), 1000);
        assert_eq!(sb.skip_sacked(s(3100)), s(4500));
        assert_eq!(sb.skip_sacked(s(2000)), s(2000));
        assert_eq!(sb.next_sacked_start(s(2000)), Some(s(3000)));
        assert!(sb.is_lost(s(1000), 1000)); // 2500 bytes above > 2 * 1000
        assert!(!sb.is_lost(s(1000), 1460));
        sb.advance(s(4200));
        assert_eq!(sb.ranges(), &[(s(4200), s(4500)), (s(5000), s(6000))]);
        assert_eq!(sb.highest(), Some(s(6000)));
    }

    #[test]
    fn works_across_wrap() {
        let mut sb = Scoreboard::default();
        let una = s(u32::MAX - 100);
        sb.add(s(u32::MAX - 50), s(100), una, s(1000));
        assert_eq!(sb.sacked_between(una, s(1000)), 151);
        assert_eq!(sb.holes(una), vec![(una, s(u32::MAX - 50))]);
    }

    proptest! {
        #[test]
        fn ranges_stay_sorted_and_disjoint(blocks in proptest::collection::vec((0u32..5000, 1u32..800), 0..40), base in any::<u32>()) {
            let mut sb = Scoreboard::default();
            let una = SeqNumber(base);
            let max = una + 6000;
            let mut truth = vec![false; 6000];
            for (off, len) in blocks {
                sb.add(una + off as usize, una + (off + len) as usize, una, max);
                if off + len <= 6000 {
                    for b in off..off + len { truth[b as usize] = true; }
                }
            }
            for w in sb.ranges().windows(2) {
                prop_assert!(w[0].1 < w[1].0);
            }
            let total: usize = truth.iter().filter(|&&t| t).count();
            prop_assert_eq!(sb.sacked_between(una, max), total);
        }
    }
}
