//! IPv4 fragment reassembly (RFC 791 3.2, RFC 815, RFC 1122 3.3.2).
//!
//! Datagrams are keyed by (source, destination, identification, protocol). Each partial
//! datagram keeps one buffer with the data at its offsets and a sorted list of the byte ranges
//! received so far (RFC 815's holes are the gaps between them); it is complete when one range
//! covers 0..end and the last fragment (MF clear) has fixed `end`.
//!
//! Overlaps follow Linux (`inet_frag_queue_insert`, since the 2018 "FragmentSmack" fixes),
//! itself RFC 5722 carried over to IPv4:
//! * a fragment entirely inside data already received is a **duplicate**: ignored, the
//!   datagram survives (retransmitted or duplicated fragments are normal), and the first copy
//!   of the bytes wins (no data comparison, as in Linux);
//! * a fragment that **partly overlaps** received data makes the whole datagram suspect: it is
//!   discarded with everything received so far (no overlap can then rewrite a header that was
//!   already checked, the classic teardrop and firewall-evasion attacks).
//!
//!   Where Linux keeps runs of fragments in arrival order, we merge adjacent ranges, so a
//!   fragment exactly covering two earlier adjacent ones counts as a duplicate here and as an
//!   overlap there. Both are safe; ours keeps a re-fragmented retransmission.
//!
//! Other rules taken from Linux `ip_fragment.c`: a non-last fragment whose length is not a
//! multiple of 8 is trimmed to one; an empty fragment, a last fragment that ends before data
//! already received, and two different ends all discard the datagram ("inconsistent");
//! header + data beyond 65535 bytes discards it ("oversize", the ping of death). The timer runs
//! from the first fragment and is not restarted by later ones. Memory is charged per datagram
//! (buffer capacity plus fixed overhead) against [`REASSEMBLY_MEMORY`]; when a fragment would
//! go over, it is dropped and the partial datagrams wait for their timeout, as Linux does once
//! past `ipfrag_high_thresh`.
//!
//! [`REASSEMBLY_MEMORY`]: super::limits::REASSEMBLY_MEMORY

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::limits;
use crate::stats::Stats;
use crate::time::Instant;
use crate::wire::ipv4::{Ipv4Repr, MAX_HEADER_LEN, MAX_PACKET_LEN};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    protocol: u8,
}

#[derive(Debug)]
struct Partial {
    expires_at: Instant,
    /// Data bytes at their offsets; gaps are zero until filled.
    data: Vec<u8>,
    /// Received byte ranges, sorted, non-overlapping, non-adjacent (merged).
    ranges: Vec<(usize, usize)>,
    /// The end of the datagram's data, known once the last fragment has arrived.
    end: Option<usize>,
    /// The first fragment's header (options included); `header_len == 0` until it arrives.
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    /// Memory charged for this datagram.
    charged: usize,
}

impl Partial {
    fn first_header(&self) -> Option<&[u8]> {
        (self.header_len > 0).then(|| &self.header[..self.header_len])
    }

    fn is_complete(&self) -> bool {
        matches!((self.end, self.ranges.as_slice()), (Some(end), [(0, e)]) if *e == end)
            && self.header_len > 0
    }
}

/// A datagram put back together.
#[derive(Debug)]
pub(crate) struct Reassembled {
    /// The first fragment's header (its MF/offset fields describe that fragment).
    pub(crate) header: [u8; MAX_HEADER_LEN],
    pub(crate) header_len: usize,
    pub(crate) payload: Vec<u8>,
}

impl Reassembled {
    pub(crate) fn header(&self) -> &[u8] {
        &self.header[..self.header_len.min(MAX_HEADER_LEN)]
    }
}

/// A partial datagram whose time ran out, for the ICMP time exceeded message.
#[derive(Debug)]
pub(crate) struct Expired<'a> {
    /// The first fragment's header and the data received after it, when fragment zero had
    /// arrived (RFC 1122 3.3.2: only then is time exceeded sent).
    pub(crate) first_fragment: Option<(&'a [u8], &'a [u8])>,
}

#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    partials: BTreeMap<Key, Partial>,
    memory: usize,
}

impl Reassembler {
    pub(crate) fn new() -> Self {
        Reassembler::default()
    }

    pub(crate) fn datagrams(&self) -> usize {
        self.partials.len()
    }

    pub(crate) fn memory(&self) -> usize {
        self.memory
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.partials.values().map(|p| p.expires_at).min()
    }

    /// Adds one fragment (`repr.is_fragment()`); returns the datagram when it completes.
    pub(crate) fn insert(
        &mut self,
        now: Instant,
        repr: &Ipv4Repr,
        header: &[u8],
        payload: &[u8],
        stats: &mut Stats,
    ) -> Option<Reassembled> {
        let key = Key {
            src: repr.src_addr,
            dst: repr.dst_addr,
            ident: repr.ident,
            protocol: u8::from(repr.protocol),
        };
        let offset = usize::from(repr.frag_offset);
        let mut end = offset + payload.len();
        if repr.more_fragments {
            // RFC 791: all but the last fragment carry a multiple of 8 bytes; Linux trims.
            end &= !7;
        }
        if header.len() + end > MAX_PACKET_LEN {
            stats.ipv4_reassembly_oversize += 1;
            self.discard(&key);
            return None;
        }
        if !self.partials.contains_key(&key) {
            if self.partials.len() >= limits::REASSEMBLY_DATAGRAMS
                || self.memory + limits::REASSEMBLY_OVERHEAD > limits::REASSEMBLY_MEMORY
            {
                stats.ipv4_reassembly_overflow += 1;
                return None;
            }
            self.memory += limits::REASSEMBLY_OVERHEAD;
            self.partials.insert(
                key,
                Partial {
                    expires_at: now + limits::REASSEMBLY_TIMEOUT,
                    data: Vec::new(),
                    ranges: Vec::new(),
                    end: None,
                    header: [0; MAX_HEADER_LEN],
                    header_len: 0,
                    charged: limits::REASSEMBLY_OVERHEAD,
                },
            );
        }
        let partial = self.partials.get_mut(&key)?;
        let max_received = partial.ranges.last().map_or(0, |r| r.1);
        let consistent = if end <= offset {
            false // empty fragment (or trimmed to nothing)
        } else if !repr.more_fragments {
            // The last fragment fixes the end: nothing may lie beyond it, and it may not move.
            end >= max_received && partial.end.is_none_or(|e| e == end)
        } else {
            partial.end.is_none_or(|e| end <= e)
        };
        if !consistent {
            stats.ipv4_reassembly_inconsistent += 1;
            self.discard(&key);
            return None;
        }
        match classify(&partial.ranges, offset, end) {
            Placement::Duplicate => {
                stats.ipv4_reassembly_duplicate += 1;
                return None;
            }
            Placement::Overlap => {
                stats.ipv4_reassembly_overlap += 1;
                self.discard(&key);
                return None;
            }
            Placement::New => {}
        }
        if end > partial.data.len() {
            let old_capacity = partial.data.capacity();
            let needed = end.saturating_sub(old_capacity);
            if self.memory + needed > limits::REASSEMBLY_MEMORY {
                stats.ipv4_reassembly_overflow += 1;
                return None;
            }
            partial.data.reserve_exact(end - partial.data.len());
            partial.data.resize(end, 0);
            let grown = partial.data.capacity().saturating_sub(old_capacity);
            partial.charged += grown;
            self.memory += grown;
        }
        let (Some(dst), Some(src)) = (
            partial.data.get_mut(offset..end),
            payload.get(..end - offset),
        ) else {
            return None;
        };
        dst.copy_from_slice(src);
        insert_range(&mut partial.ranges, offset, end);
        if !repr.more_fragments {
            partial.end = Some(end);
        }
        if offset == 0 {
            let len = header.len().min(MAX_HEADER_LEN);
            partial.header[..len].copy_from_slice(&header[..len]);
            partial.header_len = len;
        }
        if !partial.is_complete() {
            return None;
        }
        let partial = self.partials.remove(&key)?;
        self.memory = self.memory.saturating_sub(partial.charged);
        let mut payload = partial.data;
        payload.truncate(partial.end.unwrap_or(0));
        Some(Reassembled {
            header: partial.header,
            header_len: partial.header_len,
            payload,
        })
    }

    /// Discards every partial datagram whose time has run out, calling `on_expired` for each.
    pub(crate) fn expire(&mut self, now: Instant, on_expired: &mut dyn FnMut(Expired<'_>)) {
        let mut freed = 0;
        self.partials.retain(|_, partial| {
            if partial.expires_at > now {
                return true;
            }
            freed += partial.charged;
            let first_fragment = partial.first_header().map(|header| {
                let first_len = partial.ranges.first().map_or(0, |r| r.1);
                (header, partial.data.get(..first_len).unwrap_or(&[]))
            });
            on_expired(Expired { first_fragment });
            false
        });
        self.memory = self.memory.saturating_sub(freed);
    }

    fn discard(&mut self, key: &Key) {
        if let Some(partial) = self.partials.remove(key) {
            self.memory = self.memory.saturating_sub(partial.charged);
        }
    }
}

enum Placement {
    New,
    Duplicate,
    Overlap,
}

/// Where `offset..end` falls relative to the received ranges.
fn classify(ranges: &[(usize, usize)], offset: usize, end: usize) -> Placement {
    for &(start, stop) in ranges {
        if end <= start || offset >= stop {
            continue;
        }
        return if offset >= start && end <= stop {
            Placement::Duplicate
        } else {
            Placement::Overlap
        };
    }
    Placement::New
}

/// Adds `offset..end` (which overlaps nothing) to the sorted ranges, merging neighbours.
fn insert_range(ranges: &mut Vec<(usize, usize)>, offset: usize, end: usize) {
    let index = ranges.partition_point(|r| r.0 < offset);
    ranges.insert(index, (offset, end));
    // Merge with the following range, then with the preceding one.
    if let Some(&(next_start, next_end)) = ranges.get(index + 1) {
        if next_start == end {
            ranges[index].1 = next_end;
            ranges.remove(index + 1);
        }
    }
    if index > 0 {
        if let (Some(&(_, prev_end)), Some(&(_, this_end))) =
            (ranges.get(index - 1), ranges.get(index))
        {
            if prev_end == offset {
                ranges[index - 1].1 = this_end;
                ranges.remove(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::HEADER_LEN as ETH;
    use crate::wire::fixtures;
    use crate::wire::ipv4::Ipv4Packet;
    use std::time::Duration;

    fn fragments() -> Vec<Ipv4Packet<'static>> {
        [
            &fixtures::FRAG_REQUEST_0[..],
            &fixtures::FRAG_REQUEST_1,
            &fixtures::FRAG_REQUEST_2,
        ]
        .into_iter()
        .map(|f| Ipv4Packet::parse(&f[ETH..]).unwrap())
        .collect()
    }

    fn feed(
        r: &mut Reassembler,
        now: Instant,
        p: &Ipv4Packet,
        stats: &mut Stats,
    ) -> Option<Reassembled> {
        r.insert(now, &p.repr, p.header, p.payload, stats)
    }

    fn expected_payload() -> Vec<u8> {
        fragments()
            .iter()
            .flat_map(|p| p.payload.to_vec())
            .collect()
    }

    #[test]
    fn every_order_of_the_captured_fragments() {
        let frags = fragments();
        for order in [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ] {
            let mut r = Reassembler::new();
            let mut stats = Stats::default();
            let mut done = None;
            for (n, &i) in order.iter().enumerate() {
                let out = feed(&mut r, Instant::ZERO, &frags[i], &mut stats);
                assert_eq!(out.is_some(), n == 2, "order {order:?}");
                done = done.or(out);
            }
            let done = done.unwrap();
            assert_eq!(done.payload, expected_payload(), "order {order:?}");
            assert_eq!(done.header(), frags[0].header);
            assert_eq!((r.datagrams(), r.memory()), (0, 0));
        }
    }

    #[test]
    fn duplicates_are_ignored() {
        let frags = fragments();
        let mut r = Reassembler::new();
        let mut stats = Stats::default();
        assert!(feed(&mut r, Instant::ZERO, &frags[1], &mut stats).is_none());
        assert!(feed(&mut r, Instant::ZERO, &frags[1], &mut stats).is_none());
        assert!(feed(&mut r, Instant::ZERO, &frags[0], &mut stats).is_none());
        assert!(feed(&mut r, Instant::ZERO, &frags[0], &mut stats).is_none());
        let done = feed(&mut r, Instant::ZERO, &frags[2], &mut stats).unwrap();
        assert_eq!(done.payload, expected_payload());
        assert_eq!(stats.ipv4_reassembly_duplicate, 2);
    }

    #[test]
    fn partial_overlap_discards_the_datagram() {
        let frags = fragments();
        let mut r = Reassembler::new();
        let mut stats = Stats::default();
        feed(&mut r, Instant::ZERO, &frags[0], &mut stats);
        // A fragment at offset 1472 (8 bytes into fragment 0's data) with 16 bytes.
        let mut overlapping = frags[1].repr;
        overlapping.frag_offset = 1472;
        let data = &frags[1].payload[..16];
        assert!(r
            .insert(
                Instant::ZERO,
                &overlapping,
                frags[1].header,
                data,
                &mut stats
            )
            .is_none());
        assert_eq!(stats.ipv4_reassembly_overlap, 1);
        assert_eq!((r.datagrams(), r.memory()), (0, 0));
        // The rest of the datagram now starts a new partial one that never completes.
        assert!(feed(&mut r, Instant::ZERO, &frags[1], &mut stats).is_none());
        assert!(feed(&mut r, Instant::ZERO, &frags[2], &mut stats).is_none());
        assert_eq!(r.datagrams(), 1);
    }

    #[test]
    fn inconsistent_ends_and_empty_fragments_discard() {
        let frags = fragments();
        let mut stats = Stats::default();
        // Two different last fragments.
        let mut r = Reassembler::new();
        feed(&mut r, Instant::ZERO, &frags[2], &mut stats);
        let mut other_last = frags[2].repr;
        other_last.frag_offset = 2968;
        r.insert(
            Instant::ZERO,
            &other_last,
            frags[2].header,
            frags[2].payload,
            &mut stats,
        );
        assert_eq!((stats.ipv4_reassembly_inconsistent, r.datagrams()), (1, 0));
        // A last fragment ending before data already received.
        let mut r = Reassembler::new();
        feed(&mut r, Instant::ZERO, &frags[1], &mut stats);
        let mut early_last = frags[0].repr;
        early_last.more_fragments = false;
        r.insert(
            Instant::ZERO,
            &early_last,
            frags[0].header,
            &frags[0].payload[..8],
            &mut stats,
        );
        assert_eq!((stats.ipv4_reassembly_inconsistent, r.datagrams()), (2, 0));
        // An empty fragment.
        let mut r = Reassembler::new();
        feed(&mut r, Instant::ZERO, &frags[1], &mut stats);
        r.insert(
            Instant::ZERO,
            &frags[0].repr,
            frags[0].header,
            &[],
            &mut stats,
        );
        assert_eq!((stats.ipv4_reassembly_inconsistent, r.datagrams()), (3, 0));
    }

    #[test]
    fn non_multiple_of_eight_is_trimmed() {
        let frags = fragments();
        let mut r = Reassembler::new();
        let mut stats = Stats::default();
        // Fragment 0 with 3 extra bytes: trimmed back to 1480.
        let mut longer = frags[0].payload.to_vec();
        longer.extend_from_slice(&[0xee; 3]);
        r.insert(
            Instant::ZERO,
            &frags[0].repr,
            frags[0].header,
            &longer,
            &mut stats,
        );
        feed(&mut r, Instant::ZERO, &frags[1], &mut stats);
        let done = feed(&mut r, Instant::ZERO, &frags[2], &mut stats).unwrap();
        assert_eq!(done.payload, expected_payload());
    }

    #[test]
    fn oversize_is_discarded() {
        let frags = fragments();
        let mut r = Reassembler::new();
        let mut stats = Stats::default();
        feed(&mut r, Instant::ZERO, &frags[0], &mut stats);
        // Ping of death: last fragment at the highest offset, 65528 + 20 + 48 > 65535.
        let mut last = frags[2].repr;
        last.frag_offset = 65528;
        r.insert(
            Instant::ZERO,
            &last,
            frags[2].header,
            frags[2].payload,
            &mut stats,
        );
        assert_eq!((stats.ipv4_reassembly_oversize, r.datagrams()), (1, 0));
    }

    #[test]
    fn timeout_reports_first_fragment_once() {
        let frags = fragments();
        let mut r = Reassembler::new();
        let mut stats = Stats::default();
        let t0 = Instant::from_millis(500);
        feed(&mut r, t0, &frags[0], &mut stats);
        feed(&mut r, t0 + Duration::from_secs(10), &frags[2], &mut stats);
        assert_eq!(r.next_deadline(), Some(t0 + limits::REASSEMBLY_TIMEOUT));
        let mut seen = Vec::new();
        r.expire(t0 + Duration::from_secs(29), &mut |e| {
            seen.push(e.first_fragment.is_some())
        });
        assert!(seen.is_empty());
        r.expire(t0 + limits::REASSEMBLY_TIMEOUT, &mut |e| {
            let (header, data) = e.first_fragment.unwrap();
            assert_eq!(header, frags[0].header);
            assert_eq!(data, frags[0].payload);
            seen.push(true);
        });
        assert_eq!(seen, [true]);
        assert_eq!((r.datagrams(), r.memory(), r.next_deadline()), (0, 0, None));
        // Without fragment zero there is nothing to quote.
        feed(&mut r, t0, &frags[1], &mut stats);
        r.expire(t0 + Duration::from_secs(60), &mut |e| {
            seen.push(e.first_fragment.is_some())
        });
        assert_eq!(seen, [true, false]);
    }

    #[test]
    fn memory_bound_holds_under_a_flood_of_far_fragments() {
        let frags = fragments();
        let mut r = Reassembler::new();
        let mut stats = Stats::default();
        for ident in 0..2000u16 {
            let mut repr = frags[1].repr;
            repr.ident = ident;
            repr.frag_offset = 60000;
            r.insert(
                Instant::ZERO,
                &repr,
                frags[1].header,
                &frags[1].payload[..8],
                &mut stats,
            );
            assert!(r.memory() <= limits::REASSEMBLY_MEMORY);
            assert!(r.datagrams() <= limits::REASSEMBLY_DATAGRAMS);
        }
        assert!(stats.ipv4_reassembly_overflow > 0);
    }

    #[test]
    fn ranges_merge() {
        let mut ranges = Vec::new();
        insert_range(&mut ranges, 16, 24);
        insert_range(&mut ranges, 0, 8);
        assert_eq!(ranges, [(0, 8), (16, 24)]);
        insert_range(&mut ranges, 8, 16);
        assert_eq!(ranges, [(0, 24)]);
        insert_range(&mut ranges, 40, 48);
        insert_range(&mut ranges, 24, 32);
        assert_eq!(ranges, [(0, 32), (40, 48)]);
    }
}
