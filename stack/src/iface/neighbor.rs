//! The neighbour cache: IPv4 → MAC mappings learned with ARP (RFC 826), with the state
//! machine Linux uses (`net/core/neighbour.c`), minus upper-layer reachability hints:
//!
//! ```text
//!  (none) --send--> INCOMPLETE --reply--> REACHABLE --30 s--> (stale) --send--> DELAY
//!                     |  broadcast request every 1 s,                            | 5 s
//!                     |  3 tries, then FAILED: queued                            v
//!                     |  datagrams dropped with ICMP                           PROBE
//!                     v  host unreachable                   unicast request every 1 s,
//!                  (removed)                                3 tries, then removed
//! ```
//!
//! * While INCOMPLETE, datagrams wait in a bounded queue and go out when the reply arrives.
//! * A REACHABLE entry older than [`ARP_REACHABLE_TIME`](limits::ARP_REACHABLE_TIME) is
//!   stale: still used, but its first use starts a 5-second DELAY after which it is
//!   re-validated with unicast requests (PROBE). Traffic keeps flowing to the known MAC
//!   meanwhile, so a long TCP transfer never stalls on re-resolution. Without hints from TCP
//!   (Linux's `dst_confirm`) a busy entry is re-probed every ~35 s: 1 unicast ARP exchange.
//! * RFC 826 merge: any ARP packet whose sender is already in the cache updates its MAC. An
//!   ARP request for our address creates a STALE entry for the requester (we are about to
//!   answer it), as Linux does. Unsolicited replies do not create entries (Linux
//!   `arp_accept=0`).
//! * Stale entries unused for [`ARP_GC_STALE_TIME`](limits::ARP_GC_STALE_TIME) are forgotten.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use super::{limits, Segmentation};
use crate::time::Instant;
use crate::wire::EthernetAddress;

/// A datagram waiting for resolution: its frames (one, or several fragments), each with a
/// placeholder destination MAC to be patched once known.
#[derive(Debug)]
pub(crate) struct PendingDatagram {
    pub(crate) frames: Vec<Vec<u8>>,
    pub(crate) bytes: usize,
    /// For a TCP super-frame (one frame): its segment size and segment count.
    pub(crate) segmentation: Option<Segmentation>,
}

impl PendingDatagram {
    pub(crate) fn new(frames: Vec<Vec<u8>>, segmentation: Option<Segmentation>) -> Self {
        let bytes = frames.iter().map(Vec::len).sum();
        PendingDatagram {
            frames,
            bytes,
            segmentation,
        }
    }
}

#[derive(Debug)]
enum State {
    Incomplete {
        probes_sent: u8,
        next_probe_at: Instant,
        queue: VecDeque<PendingDatagram>,
    },
    Reachable {
        confirmed_at: Instant,
    },
    Stale,
    Delay {
        probe_at: Instant,
    },
    Probe {
        probes_sent: u8,
        next_probe_at: Instant,
    },
}

#[derive(Debug)]
struct Entry {
    /// Unspecified while INCOMPLETE; a unicast address in every other state.
    mac: EthernetAddress,
    state: State,
    last_used: Instant,
}

/// What the sender should do with a datagram for a neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// Send to this MAC now.
    Known(EthernetAddress),
    /// Queue the datagram with [`NeighborCache::enqueue`]; if `send_request`, the entry was
    /// just created and the first broadcast request must go out.
    Pending { send_request: bool },
    /// No room for a new entry.
    CacheFull,
}

/// How an ARP packet from a neighbour relates to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learned {
    /// A reply addressed to us: confirms reachability.
    Reply,
    /// A request for our address: the requester may be added (we answer it).
    RequestForUs,
    /// Any other ARP packet: only updates an existing entry (RFC 826 merge).
    Other,
}

/// What `handle_timeout` asks the sender to do.
#[derive(Debug)]
pub(crate) enum NeighborEvent {
    /// Send an ARP request for `ip`: broadcast if `unicast_to` is `None`.
    Request {
        ip: Ipv4Addr,
        unicast_to: Option<EthernetAddress>,
    },
    /// Resolution of `ip` failed; these datagrams were waiting for it.
    Failed {
        ip: Ipv4Addr,
        queue: VecDeque<PendingDatagram>,
    },
}

/// Result of [`NeighborCache::enqueue`].
#[derive(Debug)]
pub(crate) enum Enqueued {
    Queued,
    /// Queued; the oldest datagram of this neighbour made room and is returned.
    DroppedOldest(PendingDatagram),
    /// Not queued (the global byte bound, or no resolving entry): returned.
    Refused(PendingDatagram),
}

#[derive(Debug, Default)]
pub(crate) struct NeighborCache {
    entries: BTreeMap<Ipv4Addr, Entry>,
    queued_bytes: usize,
}

impl NeighborCache {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// The MAC known for `ip` (in any state but INCOMPLETE).
    pub(crate) fn lookup(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.entries
            .get(&ip)
            .filter(|e| !matches!(e.state, State::Incomplete { .. }))
            .map(|e| e.mac)
    }

    /// Finds the link address for a datagram to `ip`, creating or advancing the entry.
    pub(crate) fn resolve(&mut self, now: Instant, ip: Ipv4Addr) -> Resolution {
        if !self.entries.contains_key(&ip) && !self.make_room() {
            return Resolution::CacheFull;
        }
        let entry = self.entries.entry(ip).or_insert_with(|| Entry {
            mac: EthernetAddress::UNSPECIFIED,
            state: State::Incomplete {
                probes_sent: 0,
                next_probe_at: now,
                queue: VecDeque::new(),
            },
            last_used: now,
        });
        entry.last_used = now;
        match &mut entry.state {
            State::Incomplete {
                probes_sent,
                next_probe_at,
                ..
            } => {
                // A fresh entry: the first request goes out with this datagram.
                let send_request = *probes_sent == 0;
                if send_request {
                    *probes_sent = 1;
                    *next_probe_at = now + limits::ARP_RETRANS_TIME;
                }
                Resolution::Pending { send_request }
            }
            State::Reachable { confirmed_at } => {
                if now.saturating_duration_since(*confirmed_at) >= limits::ARP_REACHABLE_TIME {
                    entry.state = State::Delay {
                        probe_at: now + limits::ARP_DELAY_FIRST_PROBE,
                    };
                }
                Resolution::Known(entry.mac)
            }
            State::Stale => {
                entry.state = State::Delay {
                    probe_at: now + limits::ARP_DELAY_FIRST_PROBE,
                };
                Resolution::Known(entry.mac)
            }
            State::Delay { .. } | State::Probe { .. } => Resolution::Known(entry.mac),
        }
    }

    /// Queues a datagram for a neighbour being resolved (after `resolve` said `Pending`).
    pub(crate) fn enqueue(&mut self, ip: Ipv4Addr, datagram: PendingDatagram) -> Enqueued {
        if self.queued_bytes + datagram.bytes > limits::NEIGHBOR_QUEUE_BYTES {
            return Enqueued::Refused(datagram);
        }
        let Some(Entry {
            state: State::Incomplete { queue, .. },
            ..
        }) = self.entries.get_mut(&ip)
        else {
            return Enqueued::Refused(datagram);
        };
        let dropped = if queue.len() >= limits::NEIGHBOR_QUEUE_DATAGRAMS {
            queue.pop_front()
        } else {
            None
        };
        self.queued_bytes += datagram.bytes;
        queue.push_back(datagram);
        match dropped {
            Some(old) => {
                self.queued_bytes = self.queued_bytes.saturating_sub(old.bytes);
                Enqueued::DroppedOldest(old)
            }
            None => Enqueued::Queued,
        }
    }

    /// Takes in what an ARP packet says about `ip` (sender protocol address) and `mac`
    /// (sender hardware address, a unicast address). Returns the datagrams that were waiting
    /// for this neighbour if it just resolved.
    pub(crate) fn learn(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        mac: EthernetAddress,
        how: Learned,
    ) -> Option<VecDeque<PendingDatagram>> {
        let confirmed = how == Learned::Reply;
        let Some(entry) = self.entries.get_mut(&ip) else {
            if how == Learned::RequestForUs && self.make_room() {
                self.entries.insert(
                    ip,
                    Entry {
                        mac,
                        state: State::Stale,
                        last_used: now,
                    },
                );
            }
            return None;
        };
        if let State::Incomplete { queue, .. } = &mut entry.state {
            let queue = std::mem::take(queue);
            self.queued_bytes = self
                .queued_bytes
                .saturating_sub(queue.iter().map(|d| d.bytes).sum());
            entry.mac = mac;
            entry.state = if confirmed {
                State::Reachable { confirmed_at: now }
            } else {
                State::Stale
            };
            return Some(queue);
        }
        if confirmed {
            entry.mac = mac;
            entry.state = State::Reachable { confirmed_at: now };
        } else if entry.mac != mac {
            // RFC 826 merge: the binding changed; trust it, but re-validate before long.
            entry.mac = mac;
            entry.state = State::Stale;
        }
        None
    }

    /// Upper-layer reachability confirmation (RFC 4861 7.3.1, Linux `neigh_confirm`): a
    /// transport saw the neighbour answer, so a resolved entry becomes REACHABLE again without
    /// probing. Incomplete or unknown entries are left alone: only ARP creates bindings.
    pub(crate) fn confirm(&mut self, now: Instant, ip: Ipv4Addr) {
        if let Some(entry) = self.entries.get_mut(&ip) {
            if !matches!(entry.state, State::Incomplete { .. }) {
                entry.state = State::Reachable { confirmed_at: now };
            }
        }
    }

    /// Advances timers: sends retries, fails resolutions, forgets old stale entries.
    pub(crate) fn handle_timeout(&mut self, now: Instant, events: &mut Vec<NeighborEvent>) {
        let mut freed = 0usize;
        self.entries.retain(|&ip, entry| match &mut entry.state {
            State::Incomplete {
                probes_sent,
                next_probe_at,
                queue,
            } if *next_probe_at <= now => {
                if *probes_sent < limits::ARP_MULTICAST_PROBES {
                    *probes_sent += 1;
                    *next_probe_at = now + limits::ARP_RETRANS_TIME;
                    events.push(NeighborEvent::Request {
                        ip,
                        unicast_to: None,
                    });
                    true
                } else {
                    let queue = std::mem::take(queue);
                    freed += queue.iter().map(|d| d.bytes).sum::<usize>();
                    events.push(NeighborEvent::Failed { ip, queue });
                    false
                }
            }
            State::Delay { probe_at } if *probe_at <= now => {
                entry.state = State::Probe {
                    probes_sent: 1,
                    next_probe_at: now + limits::ARP_RETRANS_TIME,
                };
                events.push(NeighborEvent::Request {
                    ip,
                    unicast_to: Some(entry.mac),
                });
                true
            }
            State::Probe {
                probes_sent,
                next_probe_at,
            } if *next_probe_at <= now => {
                if *probes_sent < limits::ARP_UNICAST_PROBES {
                    *probes_sent += 1;
                    *next_probe_at = now + limits::ARP_RETRANS_TIME;
                    events.push(NeighborEvent::Request {
                        ip,
                        unicast_to: Some(entry.mac),
                    });
                    true
                } else {
                    events.push(NeighborEvent::Failed {
                        ip,
                        queue: VecDeque::new(),
                    });
                    false
                }
            }
            State::Stale => {
                now.saturating_duration_since(entry.last_used) < limits::ARP_GC_STALE_TIME
            }
            State::Reachable { confirmed_at } => {
                let idle_since = entry.last_used.max(*confirmed_at);
                now.saturating_duration_since(idle_since)
                    < limits::ARP_REACHABLE_TIME + limits::ARP_GC_STALE_TIME
            }
            _ => true,
        });
        self.queued_bytes = self.queued_bytes.saturating_sub(freed);
    }

    /// The earliest timer (retry, probe, failure); GC of idle entries needs no wake-up.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match e.state {
                State::Incomplete { next_probe_at, .. } => Some(next_probe_at),
                State::Delay { probe_at } => Some(probe_at),
                State::Probe { next_probe_at, .. } => Some(next_probe_at),
                State::Reachable { .. } | State::Stale => None,
            })
            .min()
    }

    /// Ensures there is room for one more entry, evicting the least recently used entry that
    /// is not resolving (Reachable or Stale). Returns false if nothing could be evicted.
    fn make_room(&mut self) -> bool {
        if self.entries.len() < limits::NEIGHBOR_ENTRIES {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Reachable { .. } | State::Stale))
            .min_by_key(|(_, e)| e.last_used)
            .map(|(ip, _)| *ip);
        match victim {
            Some(ip) => {
                self.entries.remove(&ip);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PEER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const OTHER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 9]);

    fn secs(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    fn datagram(len: usize) -> PendingDatagram {
        PendingDatagram::new(vec![vec![0; len]], None)
    }

    fn requests(events: &[NeighborEvent]) -> usize {
        events
            .iter()
            .filter(|e| matches!(e, NeighborEvent::Request { .. }))
            .count()
    }

    #[test]
    fn resolution_retries_three_times_then_fails() {
        let mut cache = NeighborCache::default();
        assert_eq!(
            cache.resolve(secs(0), PEER),
            Resolution::Pending { send_request: true }
        );
        assert_eq!(
            cache.resolve(secs(0), PEER),
            Resolution::Pending {
                send_request: false
            }
        );
        assert!(matches!(
            cache.enqueue(PEER, datagram(100)),
            Enqueued::Queued
        ));
        assert_eq!(cache.next_deadline(), Some(secs(1)));
        let mut events = Vec::new();
        cache.handle_timeout(secs(1), &mut events);
        cache.handle_timeout(secs(2), &mut events);
        assert_eq!(
            requests(&events),
            2,
            "3 requests in all, with the first one"
        );
        cache.handle_timeout(secs(2) + Duration::from_millis(999), &mut events);
        assert_eq!(events.len(), 2);
        cache.handle_timeout(secs(3), &mut events);
        match events.last() {
            Some(NeighborEvent::Failed { ip, queue }) => {
                assert_eq!((*ip, queue.len()), (PEER, 1));
            }
            other => panic!("expected failure, got {other:?}"),
        }
        assert_eq!((cache.len(), cache.queued_bytes()), (0, 0));
        assert_eq!(cache.next_deadline(), None);
    }

    #[test]
    fn reply_releases_the_queue_and_bounds_hold() {
        let mut cache = NeighborCache::default();
        cache.resolve(secs(0), PEER);
        for _ in 0..limits::NEIGHBOR_QUEUE_DATAGRAMS {
            assert!(matches!(
                cache.enqueue(PEER, datagram(10)),
                Enqueued::Queued
            ));
        }
        assert!(matches!(
            cache.enqueue(PEER, datagram(20)),
            Enqueued::DroppedOldest(d) if d.bytes == 10
        ));
        assert_eq!(cache.queued_bytes(), 40);
        let released = cache.learn(secs(0), PEER, MAC, Learned::Reply).unwrap();
        assert_eq!(released.len(), limits::NEIGHBOR_QUEUE_DATAGRAMS);
        assert_eq!(released.back().map(|d| d.bytes), Some(20));
        assert_eq!(cache.queued_bytes(), 0);
        assert_eq!(cache.lookup(PEER), Some(MAC));
        assert_eq!(cache.resolve(secs(1), PEER), Resolution::Known(MAC));
        assert_eq!(cache.next_deadline(), None);
    }

    #[test]
    fn global_queue_bytes_are_bounded() {
        let mut cache = NeighborCache::default();
        let mut refused = 0;
        for i in 0..100u32 {
            let ip = Ipv4Addr::from(0x0a4d_0000 + i);
            cache.resolve(secs(0), ip);
            if let Enqueued::Refused(_) = cache.enqueue(ip, datagram(10_000)) {
                refused += 1;
            }
            assert!(cache.queued_bytes() <= limits::NEIGHBOR_QUEUE_BYTES);
        }
        assert!(refused > 0);
    }

    #[test]
    fn stale_entry_is_delayed_probed_and_dropped_without_answer() {
        let mut cache = NeighborCache::default();
        cache.resolve(secs(0), PEER);
        cache.learn(secs(0), PEER, MAC, Learned::Reply);
        // Still reachable at 29 s; at 30 s use moves it to DELAY but keeps sending.
        assert_eq!(cache.resolve(secs(29), PEER), Resolution::Known(MAC));
        assert_eq!(cache.next_deadline(), None);
        assert_eq!(cache.resolve(secs(30), PEER), Resolution::Known(MAC));
        assert_eq!(cache.next_deadline(), Some(secs(35)));
        let mut events = Vec::new();
        cache.handle_timeout(secs(35), &mut events);
        assert!(matches!(
            events.as_slice(),
            [NeighborEvent::Request { unicast_to: Some(m), .. }] if *m == MAC
        ));
        cache.handle_timeout(secs(36), &mut events);
        cache.handle_timeout(secs(37), &mut events);
        assert_eq!(requests(&events), 3);
        assert_eq!(cache.resolve(secs(37), PEER), Resolution::Known(MAC));
        cache.handle_timeout(secs(38), &mut events);
        assert!(matches!(events.last(), Some(NeighborEvent::Failed { .. })));
        assert_eq!(cache.lookup(PEER), None);
    }

    #[test]
    fn probe_answered_goes_back_to_reachable() {
        let mut cache = NeighborCache::default();
        cache.resolve(secs(0), PEER);
        cache.learn(secs(0), PEER, MAC, Learned::Reply);
        cache.resolve(secs(40), PEER);
        let mut events = Vec::new();
        cache.handle_timeout(secs(45), &mut events);
        cache.learn(secs(45), PEER, MAC, Learned::Reply);
        assert_eq!(cache.next_deadline(), None);
        assert_eq!(cache.resolve(secs(50), PEER), Resolution::Known(MAC));
    }

    #[test]
    fn requests_for_us_create_stale_entries_other_packets_only_update() {
        let mut cache = NeighborCache::default();
        assert!(cache.learn(secs(0), PEER, MAC, Learned::Other).is_none());
        assert_eq!(
            cache.lookup(PEER),
            None,
            "no entry from a packet not for us"
        );
        assert!(cache.learn(secs(0), PEER, MAC, Learned::Reply).is_none());
        assert_eq!(
            cache.lookup(PEER),
            None,
            "no entry from an unsolicited reply"
        );
        cache.learn(secs(0), PEER, MAC, Learned::RequestForUs);
        assert_eq!(cache.lookup(PEER), Some(MAC));
        cache.learn(secs(1), PEER, OTHER_MAC, Learned::Other);
        assert_eq!(cache.lookup(PEER), Some(OTHER_MAC), "RFC 826 merge");
        // Using a stale entry schedules a probe 5 s later.
        assert_eq!(cache.resolve(secs(2), PEER), Resolution::Known(OTHER_MAC));
        assert_eq!(cache.next_deadline(), Some(secs(7)));
    }

    #[test]
    fn idle_stale_entries_are_forgotten() {
        let mut cache = NeighborCache::default();
        cache.learn(secs(0), PEER, MAC, Learned::RequestForUs);
        let mut events = Vec::new();
        cache.handle_timeout(secs(59), &mut events);
        assert_eq!(cache.len(), 1);
        cache.handle_timeout(secs(60), &mut events);
        assert_eq!(cache.len(), 0);
        assert!(events.is_empty());
    }

    #[test]
    fn cache_is_bounded_and_evicts_idle_entries_first() {
        let mut cache = NeighborCache::default();
        for i in 0..limits::NEIGHBOR_ENTRIES as u32 {
            assert!(matches!(
                cache.resolve(secs(0), Ipv4Addr::from(0x0a00_0000 + i)),
                Resolution::Pending { .. }
            ));
        }
        assert_eq!(cache.resolve(secs(0), PEER), Resolution::CacheFull);
        // Resolve one: it becomes evictable.
        let first = Ipv4Addr::from(0x0a00_0000);
        cache.learn(secs(0), first, MAC, Learned::Reply);
        assert_eq!(
            cache.resolve(secs(0), PEER),
            Resolution::Pending { send_request: true }
        );
        assert_eq!(cache.lookup(first), None);
        assert_eq!(cache.len(), limits::NEIGHBOR_ENTRIES);
    }
}
