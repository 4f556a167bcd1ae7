//! Byte storage of a TCP connection: the send buffer and the receive buffer.
//!
//! [`SendBuffer`] holds what the application wrote and the peer has not acknowledged yet
//! (offset 0 is `SND.UNA`): segments are cut from it with [`SendBuffer::peek`] and it shrinks
//! from the front as ACKs arrive (RFC 9293 3.10.7.4, "SND.UNA < SEG.ACK").
//!
//! [`RecvBuffer`] holds in-order bytes the application has not read yet, followed by the
//! receive window. Out-of-order segments are written straight into the ring at their place in
//! the window and tracked by an [`Assembler`]; when the gap before them is filled they become
//! readable without being copied again (RFC 9293 3.10.7.4: segments beyond `RCV.NXT` are held
//! for later processing). The out-of-order ranges are reported as SACK blocks most recent
//! first (RFC 2018 4).
//!
//! Memory: both are rings in a single `Vec<u8>` that is allocated lazily and grows on demand
//! (doubling, at least [`MIN_STORAGE`] bytes, never beyond the capacity), so an idle
//! connection that never carried data costs no buffer memory, and steady-state writes never
//! allocate. Storage is not given back automatically when a buffer drains (that would make a
//! request/response connection allocate on every exchange); call `release_if_empty` for
//! connections that go idle, as the layer sees fit.

use super::assembler::Assembler;

/// The first allocation of a ring, in bytes (or the capacity, if smaller).
pub const MIN_STORAGE: usize = 2048;

/// The bound on out-of-order ranges a [`RecvBuffer`] tracks (RFC 2018 lets at most 4 be
/// reported per segment; more are kept so later SACKs stay accurate).
pub const MAX_OUT_OF_ORDER_RANGES: usize = 32;

/// A ring of bytes: logical offsets `[0, len)` map to `storage[(head + offset) % size]`.
#[derive(Debug, Clone, Default)]
struct Ring {
    /// The ring's memory; its length is the ring size (all initialised).
    storage: Vec<u8>,
    /// Where logical offset 0 lives. Invariant: `head < storage.len()`, or 0 if empty storage.
    head: usize,
    /// Logical bytes in use from `head`. Invariant: `len <= storage.len()`.
    len: usize,
}

impl Ring {
    fn size(&self) -> usize {
        self.storage.len()
    }

    /// Storage index of logical `offset` (`offset <= size`).
    fn index(&self, offset: usize) -> usize {
        let size = self.size();
        if size == 0 {
            return 0;
        }
        let position = self.head + offset; // both <= size <= isize::MAX: cannot overflow
        if position >= size {
            position - size
        } else {
            position
        }
    }

    /// Makes room for logical offsets `[0, needed)`: grows the storage (doubling, at least
    /// `MIN_STORAGE`, at most `limit` unless `needed` is larger) and straightens the ring.
    fn reserve(&mut self, needed: usize, limit: usize) {
        if needed <= self.size() {
            return;
        }
        let new_size = self
            .size()
            .saturating_mul(2)
            .max(MIN_STORAGE)
            .min(limit)
            .max(needed);
        self.relocate(new_size);
    }

    /// Moves the bytes in use to fresh storage of `new_size >= len` bytes, starting at 0.
    fn relocate(&mut self, new_size: usize) {
        let mut storage = vec![0u8; new_size.max(self.len)];
        let (first, second) = self.slices(0, self.len);
        copy_into(&mut storage, 0, first);
        copy_into(&mut storage, first.len(), second);
        self.storage = storage;
        self.head = 0;
    }

    /// Up to `max` bytes from logical `offset`, as two slices (the second non-empty only when
    /// the range wraps around the end of the storage).
    fn slices(&self, offset: usize, max: usize) -> (&[u8], &[u8]) {
        if offset >= self.len {
            return (&[], &[]);
        }
        let count = max.min(self.len - offset);
        let start = self.index(offset);
        let first_len = count.min(self.size() - start);
        let first = self.storage.get(start..start + first_len).unwrap_or(&[]);
        let second = self.storage.get(..count - first_len).unwrap_or(&[]);
        (first, second)
    }

    /// Copies `data` to logical `offset` and extends `len` to cover it. The caller has
    /// reserved `offset + data.len()` bytes.
    fn write_at(&mut self, offset: usize, data: &[u8]) {
        let end = offset + data.len();
        debug_assert!(end <= self.size(), "ring write past reserved storage");
        if end > self.size() {
            return;
        }
        let start = self.index(offset);
        let first_len = data.len().min(self.size() - start);
        let (first, second) = data.split_at(first_len);
        copy_into(&mut self.storage, start, first);
        copy_into(&mut self.storage, 0, second);
        self.len = self.len.max(end);
    }

    /// Drops `n` bytes (at most `len`) from the front.
    fn advance(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = self.index(n);
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }

    /// Gives the storage back if no bytes are held.
    fn release_if_empty(&mut self) -> bool {
        if self.len == 0 {
            self.storage = Vec::new();
            self.head = 0;
            true
        } else {
            false
        }
    }

    /// After a capacity cut that could not shrink the storage (too many bytes held), shrinks
    /// it once the bytes fit: one reallocation, not one per ACK.
    fn settle(&mut self, capacity: usize) {
        if self.size() > capacity && self.len <= capacity {
            self.shrink_to(capacity);
        }
    }

    /// Shrinks the storage to `max(limit, len)` bytes if it is larger.
    fn shrink_to(&mut self, limit: usize) {
        let target = limit.max(self.len);
        if self.size() > target {
            if target == 0 {
                self.storage = Vec::new();
                self.head = 0;
            } else {
                self.relocate(target);
            }
        }
    }
}

/// Copies `src` into `dst` at `at`; out-of-range requests copy nothing (callers keep the
/// indices in range; this keeps a logic slip from becoming a panic).
fn copy_into(dst: &mut [u8], at: usize, src: &[u8]) {
    if let Some(target) = at
        .checked_add(src.len())
        .and_then(|end| dst.get_mut(at..end))
    {
        target.copy_from_slice(src);
    } else {
        debug_assert!(false, "copy_into out of range");
    }
}

/// Copies the two ring slices into `dst`; returns how many bytes were copied.
fn copy_slices(first: &[u8], second: &[u8], dst: &mut [u8]) -> usize {
    let from_first = first.len().min(dst.len());
    let (dst_first, dst_rest) = dst.split_at_mut(from_first);
    dst_first.copy_from_slice(&first[..from_first]);
    let from_second = second.len().min(dst_rest.len());
    if let (Some(d), Some(s)) = (dst_rest.get_mut(..from_second), second.get(..from_second)) {
        d.copy_from_slice(s);
    }
    from_first + from_second
}

/// Bytes written by the application and not yet acknowledged (offset 0 = `SND.UNA`).
#[derive(Debug, Clone)]
pub struct SendBuffer {
    ring: Ring,
    /// Most bytes `write` will hold (SO_SNDBUF). May be below `len()` after a shrink.
    capacity: usize,
}

impl SendBuffer {
    /// An empty buffer that will hold up to `cap` bytes; allocates nothing yet.
    pub fn with_capacity(cap: usize) -> Self {
        SendBuffer {
            ring: Ring::default(),
            capacity: cap,
        }
    }

    /// Appends as much of `data` as fits; returns the number of bytes accepted.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let accepted = data.len().min(self.free());
        if accepted == 0 {
            return 0;
        }
        let at = self.ring.len;
        self.ring.reserve(at + accepted, self.capacity);
        self.ring.write_at(at, &data[..accepted]);
        accepted
    }

    /// Bytes held (sent or not, all unacknowledged).
    pub fn len(&self) -> usize {
        self.ring.len
    }

    pub fn is_empty(&self) -> bool {
        self.ring.len == 0
    }

    /// Room left for `write`.
    pub fn free(&self) -> usize {
        self.capacity.saturating_sub(self.ring.len)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the capacity (SO_SNDBUF). Stored bytes are never dropped: if the new capacity
    /// is smaller than `len()`, `free()` is 0 until enough is acknowledged.
    pub fn set_capacity(&mut self, cap: usize) {
        self.capacity = cap;
        self.ring.shrink_to(cap);
    }

    /// Up to `max` bytes starting `offset` bytes after `SND.UNA`, as two slices (the second is
    /// non-empty only when the bytes wrap around the ring). Empty if `offset >= len()`.
    pub fn peek(&self, offset: usize, max: usize) -> (&[u8], &[u8]) {
        self.ring.slices(offset, max)
    }

    /// Copies bytes starting `offset` bytes after `SND.UNA` into `dst`; returns the count.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) -> usize {
        let (first, second) = self.ring.slices(offset, dst.len());
        copy_slices(first, second, dst)
    }

    /// Appends up to `len` bytes from `offset` on to `out`; returns how many (no zero-filled
    /// buffer to copy into first).
    pub fn append_to(&self, offset: usize, len: usize, out: &mut Vec<u8>) -> usize {
        let (first, second) = self.ring.slices(offset, len);
        out.extend_from_slice(first);
        out.extend_from_slice(second);
        first.len() + second.len()
    }

    /// Drops `n` acknowledged bytes from the front (at most `len()`).
    pub fn ack(&mut self, n: usize) {
        self.ring.advance(n);
        self.ring.settle(self.capacity);
    }

    /// Bytes of memory the buffer holds now (0 until the first write).
    pub fn allocated(&self) -> usize {
        self.ring.size()
    }

    /// Frees the storage if the buffer is empty (for idle connections); true if it did.
    pub fn release_if_empty(&mut self) -> bool {
        self.ring.release_if_empty()
    }
}

/// In-order bytes the application has not read yet, followed by the receive window, where
/// out-of-order bytes are stored at their offsets.
#[derive(Debug, Clone)]
pub struct RecvBuffer {
    /// Logical `[0, readable)`: in-order bytes. `[readable, ring.len)`: the window up to the
    /// last out-of-order byte stored; only the parts the assembler lists hold data.
    ring: Ring,
    /// In-order bytes ready for the application. Offset `readable` in the ring is `RCV.NXT`.
    readable: usize,
    /// Most bytes held (SO_RCVBUF): the window is `capacity - readable`.
    capacity: usize,
    /// Out-of-order ranges, relative to `RCV.NXT`.
    assembler: Assembler,
}

impl RecvBuffer {
    /// An empty buffer that will hold up to `cap` bytes; allocates nothing yet.
    pub fn with_capacity(cap: usize) -> Self {
        RecvBuffer {
            ring: Ring::default(),
            readable: 0,
            capacity: cap,
            assembler: Assembler::new(MAX_OUT_OF_ORDER_RANGES),
        }
    }

    /// Stores `data` at `offset` bytes past the first byte not yet received in order
    /// (offset 0 = `RCV.NXT`). Bytes beyond the window are cut; returns how many bytes became
    /// contiguous (the amount `RCV.NXT` advances by). Duplicate and overlapping data is fine;
    /// a segment that would need more than [`MAX_OUT_OF_ORDER_RANGES`] separate ranges is
    /// dropped (returns 0, nothing stored).
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let window = self.window();
        if offset >= window {
            return 0;
        }
        let count = data.len().min(window - offset);
        if count == 0 {
            return 0;
        }
        if self.assembler.insert(offset, count).is_err() {
            return 0;
        }
        let at = self.readable + offset;
        self.ring.reserve(at + count, self.capacity);
        self.ring.write_at(at, &data[..count]);
        let contiguous = self.assembler.take_front();
        self.readable += contiguous;
        contiguous
    }

    /// In-order bytes the application can read.
    pub fn readable(&self) -> usize {
        self.readable
    }

    /// Copies and removes up to `dst.len()` readable bytes; returns the count.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let (first, second) = self.peek(dst.len());
        let copied = copy_slices(first, second, dst);
        self.consume(copied);
        copied
    }

    /// Up to `max` readable bytes without removing them (two slices: ring wrap).
    pub fn peek(&self, max: usize) -> (&[u8], &[u8]) {
        self.ring.slices(0, max.min(self.readable))
    }

    /// Removes `n` readable bytes (at most `readable()`).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.readable);
        self.ring.advance(n);
        self.readable -= n;
        self.ring.settle(self.capacity);
    }

    /// Free space counting from `RCV.NXT`: what may be advertised as the receive window.
    /// Out-of-order bytes lie inside it and do not reduce it.
    pub fn window(&self) -> usize {
        self.capacity.saturating_sub(self.readable)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the capacity (SO_RCVBUF). Stored bytes, in order or not, are never dropped;
    /// the window may shrink to zero until the application reads. (Not shrinking the
    /// advertised right edge, RFC 9293 3.8.6, is the connection's job.)
    pub fn set_capacity(&mut self, cap: usize) {
        self.capacity = cap;
        self.ring.shrink_to(cap);
    }

    /// Out-of-order ranges as `(offset_from_rcv_nxt, len)`, at most `max`, the most recently
    /// received first (RFC 2018 4: the first block holds the most recent segment).
    pub fn sack_ranges(&self, max: usize) -> Vec<(usize, usize)> {
        self.assembler.ranges_most_recent_first(max)
    }

    /// True when bytes past a gap are held.
    pub fn has_out_of_order(&self) -> bool {
        !self.assembler.is_empty()
    }

    /// Bytes of memory the buffer holds now (0 until the first write).
    pub fn allocated(&self) -> usize {
        self.ring.size()
    }

    /// Frees the storage if nothing is held (no readable and no out-of-order bytes).
    pub fn release_if_empty(&mut self) -> bool {
        if self.readable == 0 && self.assembler.is_empty() {
            self.ring.len = 0;
            self.ring.release_if_empty()
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn joined((a, b): (&[u8], &[u8])) -> Vec<u8> {
        let mut v = a.to_vec();
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn send_buffer_allocates_lazily_and_bounds_writes() {
        let mut buf = SendBuffer::with_capacity(10_000);
        assert_eq!(buf.allocated(), 0);
        assert_eq!(buf.write(b"hello"), 5);
        assert_eq!(buf.allocated(), MIN_STORAGE);
        assert_eq!(buf.write(&[7u8; 20_000]), 9_995);
        assert_eq!(buf.len(), 10_000);
        assert_eq!(buf.free(), 0);
        assert!(buf.allocated() <= 10_000);
        assert_eq!(buf.write(b"x"), 0);
        assert_eq!(joined(buf.peek(0, 5)), b"hello");
        assert_eq!(joined(buf.peek(3, 4)), b"lo\x07\x07");
        assert_eq!(joined(buf.peek(10_000, 4)), b"");
    }

    #[test]
    fn send_buffer_wraps_and_peeks_in_two_slices() {
        let mut buf = SendBuffer::with_capacity(8);
        assert_eq!(buf.write(b"abcdef"), 6);
        buf.ack(4);
        assert_eq!(buf.write(b"ghijkl"), 6);
        assert_eq!(buf.allocated(), 8);
        let (first, second) = buf.peek(0, 100);
        assert_eq!(first, b"efgh");
        assert_eq!(second, b"ijkl");
        let mut out = [0u8; 5];
        assert_eq!(buf.copy_out(1, &mut out), 5);
        assert_eq!(&out, b"fghij");
        let mut big = [0u8; 20];
        assert_eq!(buf.copy_out(6, &mut big), 2);
        assert_eq!(&big[..2], b"kl");
        buf.ack(100);
        assert!(buf.is_empty());
        assert!(buf.release_if_empty());
        assert_eq!(buf.allocated(), 0);
    }

    #[test]
    fn send_buffer_shrinking_capacity_keeps_bytes() {
        let mut buf = SendBuffer::with_capacity(100);
        buf.write(&[1u8; 80]);
        buf.set_capacity(50);
        assert_eq!(buf.len(), 80);
        assert_eq!(buf.free(), 0);
        assert_eq!(joined(buf.peek(0, 100)), vec![1u8; 80]);
        buf.ack(60);
        assert_eq!(buf.free(), 30);
        buf.set_capacity(10);
        assert_eq!(buf.allocated(), 20);
        assert_eq!(joined(buf.peek(0, 100)), vec![1u8; 20]);
    }

    #[test]
    fn recv_buffer_in_order_and_out_of_order() {
        let mut buf = RecvBuffer::with_capacity(100);
        assert_eq!(buf.allocated(), 0);
        assert_eq!(buf.write_at(0, b"abc"), 3);
        assert_eq!(buf.readable(), 3);
        assert_eq!(buf.window(), 97);
        // A gap: "def" missing, "ghi" arrives.
        assert_eq!(buf.write_at(3, b"ghi"), 0);
        assert!(buf.has_out_of_order());
        assert_eq!(buf.sack_ranges(4), vec![(3, 3)]);
        assert_eq!(buf.window(), 97);
        // The hole is filled (overlapping "ghi" again).
        assert_eq!(buf.write_at(0, b"defgh"), 6);
        assert!(!buf.has_out_of_order());
        let mut out = [0u8; 20];
        assert_eq!(buf.read(&mut out), 9);
        assert_eq!(&out[..9], b"abcdefghi");
        assert_eq!(buf.window(), 100);
    }

    #[test]
    fn recv_buffer_cuts_at_window() {
        let mut buf = RecvBuffer::with_capacity(10);
        assert_eq!(buf.write_at(0, b"0123456789abc"), 10);
        assert_eq!(buf.window(), 0);
        assert_eq!(buf.write_at(0, b"x"), 0);
        buf.consume(4);
        assert_eq!(buf.window(), 4);
        // Out of order beyond the window is dropped entirely.
        assert_eq!(buf.write_at(4, b"zz"), 0);
        assert!(!buf.has_out_of_order());
        assert_eq!(buf.write_at(2, b"CDEF"), 0);
        assert_eq!(buf.sack_ranges(4), vec![(2, 2)]);
        assert_eq!(buf.write_at(0, b"AB"), 4);
        let mut out = [0u8; 10];
        assert_eq!(buf.read(&mut out), 10);
        assert_eq!(&out, b"456789ABCD");
    }

    #[test]
    fn sack_ranges_most_recent_first() {
        let mut buf = RecvBuffer::with_capacity(1000);
        buf.write_at(100, &[1; 10]); // A
        buf.write_at(300, &[1; 10]); // B
        buf.write_at(200, &[1; 10]); // C
        assert_eq!(buf.sack_ranges(4), vec![(200, 10), (300, 10), (100, 10)]);
        buf.write_at(110, &[1; 10]); // extends A
        assert_eq!(buf.sack_ranges(3), vec![(100, 20), (200, 10), (300, 10)]);
        assert_eq!(buf.sack_ranges(1), vec![(100, 20)]);
        // In-order data shifts the offsets (they are relative to RCV.NXT).
        assert_eq!(buf.write_at(0, &[1; 50]), 50);
        assert_eq!(buf.sack_ranges(3), vec![(50, 20), (150, 10), (250, 10)]);
    }

    #[test]
    fn recv_buffer_drops_segments_past_the_range_bound() {
        let mut buf = RecvBuffer::with_capacity(10_000);
        for i in 0..MAX_OUT_OF_ORDER_RANGES {
            assert_eq!(buf.write_at(10 + 10 * i, b"x"), 0);
        }
        let before = buf.sack_ranges(usize::MAX);
        assert_eq!(before.len(), MAX_OUT_OF_ORDER_RANGES);
        assert_eq!(buf.write_at(5_000, b"y"), 0);
        assert_eq!(buf.sack_ranges(usize::MAX).len(), MAX_OUT_OF_ORDER_RANGES);
        // In-order data is still accepted.
        assert_eq!(buf.write_at(0, &[0; 10]), 11);
    }

    #[test]
    fn recv_buffer_wraps_and_releases() {
        let mut buf = RecvBuffer::with_capacity(8);
        assert_eq!(buf.write_at(0, b"abcdef"), 6);
        buf.consume(5);
        assert_eq!(buf.write_at(3, b"jk"), 0);
        assert_eq!(buf.write_at(0, b"ghi"), 5);
        assert_eq!(joined(buf.peek(100)), b"fghijk");
        let (first, second) = buf.peek(100);
        assert!(!second.is_empty(), "wrapped: {first:?} {second:?}");
        assert!(!buf.release_if_empty());
        buf.consume(6);
        assert!(buf.release_if_empty());
        assert_eq!(buf.allocated(), 0);
        assert_eq!(buf.write_at(0, b"again"), 5);
        assert_eq!(joined(buf.peek(100)), b"again");
    }

    #[derive(Debug, Clone)]
    enum SendOp {
        Write(Vec<u8>),
        Ack(usize),
        Peek(usize, usize),
        SetCapacity(usize),
    }

    fn send_op() -> impl Strategy<Value = SendOp> {
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(SendOp::Write),
            3 => (0usize..400).prop_map(SendOp::Ack),
            3 => (0usize..500, 0usize..500).prop_map(|(o, m)| SendOp::Peek(o, m)),
            1 => (0usize..3000).prop_map(SendOp::SetCapacity),
        ]
    }

    proptest! {
        #[test]
        fn send_buffer_matches_model(
            cap in 0usize..3000,
            ops in proptest::collection::vec(send_op(), 0..200),
        ) {
            let mut buf = SendBuffer::with_capacity(cap);
            let mut model: VecDeque<u8> = VecDeque::new();
            let mut cap = cap;
            for op in ops {
                match op {
                    SendOp::Write(data) => {
                        let expected = data.len().min(cap.saturating_sub(model.len()));
                        prop_assert_eq!(buf.write(&data), expected);
                        model.extend(&data[..expected]);
                    }
                    SendOp::Ack(n) => {
                        buf.ack(n);
                        model.drain(..n.min(model.len()));
                    }
                    SendOp::Peek(offset, max) => {
                        let want: Vec<u8> = model.iter().skip(offset).take(max).copied().collect();
                        prop_assert_eq!(joined(buf.peek(offset, max)), want.clone());
                        let mut dst = vec![0u8; max];
                        let n = buf.copy_out(offset, &mut dst);
                        prop_assert_eq!(&dst[..n], &want[..]);
                    }
                    SendOp::SetCapacity(c) => {
                        buf.set_capacity(c);
                        cap = c;
                    }
                }
                prop_assert_eq!(buf.len(), model.len());
                prop_assert_eq!(buf.free(), cap.saturating_sub(model.len()));
                if model.len() <= cap {
                    prop_assert!(buf.allocated() <= cap);
                }
            }
            let all: Vec<u8> = model.iter().copied().collect();
            prop_assert_eq!(joined(buf.peek(0, usize::MAX)), all);
        }

        /// A stream is cut into random segments which arrive duplicated, overlapping and out
        /// of order, while the application reads at random moments. Every byte must be
        /// delivered exactly once, in order, and the bookkeeping must match a bitmap model.
        #[test]
        fn recv_buffer_delivers_stream_exactly_once_in_order(
            stream in proptest::collection::vec(any::<u8>(), 1..2000),
            cap in 1usize..1500,
            segments in proptest::collection::vec((0usize..2000, 1usize..300), 1..200),
            reads in proptest::collection::vec(0usize..400, 1..200),
        ) {
            let mut buf = RecvBuffer::with_capacity(cap);
            let mut rcv_nxt = 0usize; // absolute stream offset of RCV.NXT
            let mut delivered: Vec<u8> = Vec::new();
            // Absolute offsets the model knows are held out of order.
            let mut held = vec![false; stream.len()];
            let mut reads = reads.into_iter().cycle();
            for (start, len) in segments {
                let start = start % stream.len();
                let end = (start + len).min(stream.len());
                // The connection trims what is before RCV.NXT (RFC 9293 3.10.7.4).
                if end <= rcv_nxt {
                    continue;
                }
                let seg_start = start.max(rcv_nxt);
                let offset = seg_start - rcv_nxt;
                let window = buf.window();
                let readable_before = buf.readable();
                let advanced = buf.write_at(offset, &stream[seg_start..end]);

                // Model: the part inside the window is held, unless keeping it would need
                // more than MAX_OUT_OF_ORDER_RANGES separate ranges past RCV.NXT (then the
                // segment is dropped: nothing changes and nothing advances).
                let accepted_end = end.min(rcv_nxt + window);
                let mut next = held.clone();
                for bit in next.iter_mut().take(accepted_end).skip(seg_start) {
                    *bit = true;
                }
                let out_of_order_runs = (rcv_nxt..next.len())
                    .filter(|&i| next[i] && i > rcv_nxt && !next[i - 1])
                    .count();
                if out_of_order_runs <= MAX_OUT_OF_ORDER_RANGES {
                    held = next;
                }
                let mut new_nxt = rcv_nxt;
                while new_nxt < stream.len() && held[new_nxt] {
                    new_nxt += 1;
                }
                prop_assert_eq!(advanced, new_nxt - rcv_nxt);
                prop_assert_eq!(buf.readable(), readable_before + advanced);
                rcv_nxt = new_nxt;

                // The out-of-order ranges match the model's runs beyond RCV.NXT.
                let mut model_runs = Vec::new();
                let mut i = rcv_nxt;
                while i < held.len() {
                    if held[i] {
                        let s = i;
                        while i < held.len() && held[i] {
                            i += 1;
                        }
                        model_runs.push((s - rcv_nxt, i - s));
                    } else {
                        i += 1;
                    }
                }
                let mut sacks = buf.sack_ranges(usize::MAX);
                sacks.sort_unstable();
                prop_assert_eq!(sacks, model_runs);

                let want = reads.next().unwrap_or(0);
                let mut dst = vec![0u8; want];
                let n = buf.read(&mut dst);
                delivered.extend_from_slice(&dst[..n]);
                prop_assert!(buf.window() <= cap);
            }
            let mut rest = vec![0u8; cap];
            let n = buf.read(&mut rest);
            delivered.extend_from_slice(&rest[..n]);
            prop_assert_eq!(delivered.len(), rcv_nxt);
            prop_assert_eq!(&delivered[..], &stream[..rcv_nxt]);
        }
    }
}
