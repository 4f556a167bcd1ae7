//! The connection's timers: a small table indexed by [`Timer`], the next deadline its minimum
//! (as quinn's `TimerTable`).

use crate::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Retransmission of SYN, SYN-ACK, data or FIN (RFC 6298).
    Retransmit,
    /// A delayed ACK is due (RFC 1122 4.2.3.2).
    DelayedAck,
    /// Zero-window probe / sender SWS override (RFC 9293 3.8.6.1, RFC 1122 4.2.3.4).
    Persist,
    /// Keepalive probe or abort (RFC 1122 4.2.3.6).
    Keepalive,
    /// TIME-WAIT expiry, or the orphaned FIN-WAIT-2 timeout.
    Close,
}

const COUNT: usize = 5;
const ALL: [Timer; COUNT] = [
    Timer::Retransmit,
    Timer::DelayedAck,
    Timer::Persist,
    Timer::Keepalive,
    Timer::Close,
];

impl Timer {
    fn index(self) -> usize {
        match self {
            Timer::Retransmit => 0,
            Timer::DelayedAck => 1,
            Timer::Persist => 2,
            Timer::Keepalive => 3,
            Timer::Close => 4,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Timers {
    deadlines: [Option<Instant>; COUNT],
}

impl Timers {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Sets the timer unless it is already running.
    pub fn set_if_idle(&mut self, timer: Timer, at: Instant) {
        let slot = &mut self.deadlines[timer.index()];
        if slot.is_none() {
            *slot = Some(at);
        }
    }

    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    pub fn is_running(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    pub fn stop_all(&mut self) {
        self.deadlines = [None; COUNT];
    }

    /// The earliest deadline of all running timers.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Stops and returns the timers that expired at `now`, earliest first.
    pub fn take_expired(&mut self, now: Instant) -> Vec<Timer> {
        let mut expired: Vec<(Instant, Timer)> = ALL
            .iter()
            .filter_map(|&t| self.get(t).filter(|&at| at <= now).map(|at| (at, t)))
            .collect();
        expired.sort_by_key(|&(at, _)| at);
        for &(_, t) in &expired {
            self.stop(t);
        }
        expired.into_iter().map(|(_, t)| t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_deadline_is_the_minimum_and_expiry_stops() {
        let mut timers = Timers::default();
        assert_eq!(timers.next_deadline(), None);
        timers.set(Timer::Keepalive, Instant::from_millis(50));
        timers.set(Timer::DelayedAck, Instant::from_millis(40));
        timers.set_if_idle(Timer::DelayedAck, Instant::from_millis(10));
        assert_eq!(timers.next_deadline(), Some(Instant::from_millis(40)));
        assert_eq!(timers.take_expired(Instant::from_millis(39)), vec![]);
        assert_eq!(
            timers.take_expired(Instant::from_millis(60)),
            vec![Timer::DelayedAck, Timer::Keepalive]
        );
        assert!(!timers.is_running(Timer::Keepalive));
    }
}
