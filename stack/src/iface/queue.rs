//! Output queues (frames for the device, datagrams for the loopback) and the buffer pools
//! that make them allocation-free in steady state: a buffer goes from the pool, is filled in
//! place, waits in the queue, and returns to the pool once consumed.

use std::collections::VecDeque;

use super::limits;

/// A stack of cleared buffers for reuse. Buffers beyond `max_buffers` are freed.
#[derive(Debug)]
pub(crate) struct BufferPool {
    buffers: Vec<Vec<u8>>,
    max_buffers: usize,
    /// Capacity of newly allocated buffers.
    capacity: usize,
}

impl BufferPool {
    pub(crate) fn new(max_buffers: usize, capacity: usize) -> Self {
        BufferPool {
            buffers: Vec::new(),
            max_buffers,
            capacity,
        }
    }

    /// An empty buffer, reused if one is available.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        self.buffers
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    pub(crate) fn give(&mut self, mut buffer: Vec<u8>) {
        if self.buffers.len() < self.max_buffers {
            buffer.clear();
            self.buffers.push(buffer);
        }
    }
}

/// Frames waiting for the device, in order.
#[derive(Debug)]
pub(crate) struct FrameQueue {
    frames: VecDeque<QueuedFrame>,
    pub(crate) pool: BufferPool,
}

/// A wire frame, or a TCP super-frame (segmentation offload) standing for `segments` wire
/// frames of `segment_size` payload bytes each.
#[derive(Debug)]
struct QueuedFrame {
    bytes: Vec<u8>,
    segment_size: Option<u16>,
    segments: u16,
}

impl FrameQueue {
    pub(crate) fn new(frame_capacity: usize) -> Self {
        FrameQueue {
            frames: VecDeque::new(),
            pool: BufferPool::new(limits::TX_POOL_BUFFERS, frame_capacity),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether `count` more frames fit.
    pub(crate) fn has_room(&self, count: usize) -> bool {
        self.frames.len() + count <= limits::TX_QUEUE_FRAMES
    }

    /// Queues a frame; the caller has checked `has_room`. A frame that does not fit anyway is
    /// returned to the pool and `false` returned.
    pub(crate) fn push(&mut self, frame: Vec<u8>) -> bool {
        self.push_super(frame, None, 1)
    }

    /// Queues a frame that is a super-frame when `segment_size` is given (see [`push`]).
    ///
    /// [`push`]: FrameQueue::push
    pub(crate) fn push_super(
        &mut self,
        frame: Vec<u8>,
        segment_size: Option<u16>,
        segments: u16,
    ) -> bool {
        if self.has_room(1) {
            self.frames.push_back(QueuedFrame {
                bytes: frame,
                segment_size,
                segments: if segment_size.is_some() { segments } else { 1 },
            });
            true
        } else {
            self.pool.give(frame);
            false
        }
    }

    /// Offers wire frames to `send` in order until it refuses one; super-frames are cut into
    /// their segments here first (in software). Returns how many wire frames were taken.
    pub(crate) fn transmit(&mut self, send: &mut dyn FnMut(&[u8]) -> bool) -> u64 {
        let mut sent = 0;
        while let Some(frame) = self.frames.front() {
            if let Some(size) = frame.segment_size {
                self.split_front(size);
                continue;
            }
            if !send(&frame.bytes) {
                break;
            }
            sent += 1;
            if let Some(frame) = self.frames.pop_front() {
                self.pool.give(frame.bytes);
            }
        }
        sent
    }

    /// Offers frames to `send(frame, segment_size)` in order until it refuses one; a
    /// super-frame (`segment_size` given) is for a device that segments TCP itself, and may
    /// be changed in place (checksum fields) by `send`. Returns how many wire frames the
    /// frames taken stand for, and how many of them were super-frames.
    pub(crate) fn transmit_offload(
        &mut self,
        send: &mut dyn FnMut(&mut [u8], Option<u16>) -> bool,
    ) -> (u64, u64) {
        let (mut wire, mut supers) = (0, 0);
        while let Some(frame) = self.frames.front_mut() {
            if !send(&mut frame.bytes, frame.segment_size) {
                break;
            }
            wire += u64::from(frame.segments);
            supers += u64::from(frame.segment_size.is_some());
            if let Some(frame) = self.frames.pop_front() {
                self.pool.give(frame.bytes);
            }
        }
        (wire, supers)
    }

    /// Replaces the super-frame at the front by its wire segments, in order. One that cannot
    /// be segmented (the stack never builds such) is dropped.
    fn split_front(&mut self, segment_size: u16) {
        let Some(frame) = self.frames.pop_front() else {
            return;
        };
        match tapdev::offload::segment_tcp_v4(&frame.bytes, segment_size) {
            Ok(pieces) => {
                for piece in pieces.into_iter().rev() {
                    self.frames.push_front(QueuedFrame {
                        bytes: piece,
                        segment_size: None,
                        segments: 1,
                    });
                }
            }
            Err(e) => tracing::debug!(%e, "super-frame dropped: cannot segment it"),
        }
        self.pool.give(frame.bytes);
    }
}

/// Whole IPv4 datagrams the stack sent to itself, waiting for `process_loopback`.
#[derive(Debug)]
pub(crate) struct LoopbackQueue {
    datagrams: VecDeque<Vec<u8>>,
    bytes: usize,
    pool: BufferPool,
}

impl LoopbackQueue {
    pub(crate) fn new() -> Self {
        LoopbackQueue {
            datagrams: VecDeque::new(),
            bytes: 0,
            pool: BufferPool::new(limits::LOOPBACK_POOL_BUFFERS, 2048),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.datagrams.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.datagrams.len() < limits::LOOPBACK_QUEUE_DATAGRAMS
            && self.bytes + len <= limits::LOOPBACK_QUEUE_BYTES
    }

    pub(crate) fn take_buffer(&mut self) -> Vec<u8> {
        self.pool.take()
    }

    /// Queues a datagram; the caller has checked `has_room`.
    pub(crate) fn push(&mut self, datagram: Vec<u8>) {
        self.bytes += datagram.len();
        self.datagrams.push_back(datagram);
    }

    pub(crate) fn pop(&mut self) -> Option<Vec<u8>> {
        let datagram = self.datagrams.pop_front()?;
        self.bytes = self.bytes.saturating_sub(datagram.len());
        Some(datagram)
    }

    pub(crate) fn recycle(&mut self, datagram: Vec<u8>) {
        self.pool.give(datagram);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmit_stops_when_device_is_full_and_keeps_order() {
        let mut queue = FrameQueue::new(64);
        for i in 0..5u8 {
            let mut frame = queue.pool.take();
            frame.push(i);
            assert!(queue.push(frame));
        }
        let mut seen = Vec::new();
        let sent = queue.transmit(&mut |f| {
            if seen.len() == 2 {
                return false;
            }
            seen.push(f[0]);
            true
        });
        assert_eq!((sent, seen.as_slice(), queue.len()), (2, &[0u8, 1][..], 3));
        let mut rest = Vec::new();
        queue.transmit(&mut |f| {
            rest.push(f[0]);
            true
        });
        assert_eq!(rest, [2, 3, 4]);
        assert!(queue.is_empty());
    }

    #[test]
    fn buffers_are_reused() {
        let mut queue = FrameQueue::new(64);
        let mut frame = queue.pool.take();
        frame.extend_from_slice(&[1; 60]);
        let ptr = frame.as_ptr();
        queue.push(frame);
        queue.transmit(&mut |_| true);
        let again = queue.pool.take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr, "the same allocation comes back");
    }

    #[test]
    fn tx_queue_is_bounded() {
        let mut queue = FrameQueue::new(64);
        for _ in 0..limits::TX_QUEUE_FRAMES {
            let frame = queue.pool.take();
            assert!(queue.push(frame));
        }
        assert!(!queue.has_room(1));
        let frame = queue.pool.take();
        assert!(!queue.push(frame));
        assert_eq!(queue.len(), limits::TX_QUEUE_FRAMES);
    }

    #[test]
    fn loopback_counts_bytes() {
        let mut lo = LoopbackQueue::new();
        let mut d = lo.take_buffer();
        d.extend_from_slice(&[0; 100]);
        assert!(lo.has_room(d.len()));
        lo.push(d);
        assert_eq!((lo.len(), lo.bytes()), (1, 100));
        assert!(!lo.has_room(limits::LOOPBACK_QUEUE_BYTES));
        let d = lo.pop().unwrap();
        assert_eq!((lo.len(), lo.bytes()), (0, 0));
        lo.recycle(d);
        assert!(lo.pop().is_none());
    }
}
