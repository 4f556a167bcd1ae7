//! Loss recovery over a fast, lossy path (what the TAP benchmark sees): one-way bulk transfers
//! over a seeded link in virtual time, counting the sender's retransmission timeouts.

mod tcp_sim;

use std::time::Duration;

use tcp_sim::{LinkProfile, Sim};
use ustack::tcp::config::TcpConfig;

/// A sub-millisecond path at about 2.4 Gbit/s with `loss` in each direction.
fn fast_lossy(loss: f64) -> LinkProfile {
    LinkProfile {
        loss,
        delay: Duration::from_micros(50),
        rate: 300_000_000,
        max_queue: Duration::from_millis(2),
        ..LinkProfile::clean(0)
    }
}

fn one_way(seed: u64, bytes: u64, link: LinkProfile) -> tcp_sim::Outcome {
    let cfg = TcpConfig {
        time_wait: Duration::from_secs(1),
        ..TcpConfig::default()
    };
    let mut sim = Sim::new(seed, cfg, link, link, bytes);
    sim.server_app.to_send = 0;
    sim.client_app.expected = 0;
    sim.run(Duration::from_secs(3600))
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
}

#[test]
#[ignore]
fn report_fast_lossy_path() {
    for seed in 0..5 {
        let bytes = 50 << 20;
        let outcome = one_way(seed, bytes, fast_lossy(0.01));
        let secs = outcome.client_data_delivered.unwrap().as_secs_f64();
        println!(
            "seed {seed}: {:.3} s, {:.2} Gbit/s, client {:?}",
            secs,
            bytes as f64 * 8.0 / secs / 1e9,
            outcome.client_counters
        );
    }
}
