//! Two sessions behind simulated NATs, in simulated time: punching per NAT pair, the choice
//! of path, fallback when the direct path dies and the upgrade when it comes back, loss and
//! reordering on the direct path, and congestion control at a bottleneck.

mod sim;

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use sim::*;

#[test]
fn without_candidates_everything_stays_on_the_relay() {
    let mut net = Net::new([Kind::Easy, Kind::Easy], 1, cfg());
    let data = pattern(200_000);
    assert_eq!(transfer(&mut net, &data, Duration::from_secs(30), |_| {}), data);
    assert_eq!(net.udp_sent, [0, 0], "no candidates: not one datagram");
    assert!(!net.direct(0) && !net.direct(1));
}

#[test]
fn easy_nats_go_direct_and_prefer_the_lower_rtt() {
    for kinds in [[Kind::Easy, Kind::Easy], [Kind::Open, Kind::Easy], [Kind::Easy, Kind::Open]] {
        let mut net = Net::new(kinds, 3, cfg());
        net.punch();
        net.run_for(Duration::from_secs(2));
        for i in 0..2 {
            assert!(net.direct(i), "{kinds:?}: party {i} is direct: {:?}", net.s[i].path_report());
            let r = net.s[i].path_report();
            let direct = r.paths.iter().find(|p| p.active).unwrap();
            assert_eq!(direct.state, PathState::Validated);
            assert!(direct.srtt.unwrap() < Duration::from_millis(50), "{r:?}");
            assert_eq!(r.switches.len(), 1);
            assert_eq!(r.switches[0].why, SwitchReason::Upgrade);
            assert_eq!(r.sprayed, 0, "no spraying between easy NATs");
        }
        let data = pattern(1 << 20);
        assert_eq!(transfer(&mut net, &data, Duration::from_secs(60), |_| {}), data);
        // Data went direct in small packets: nothing bigger than the UDP packet size.
        let r = net.s[0].path_report();
        let udp = r.paths.iter().find(|p| p.active).unwrap();
        assert!(udp.sent > (1 << 20) / 1200, "{r:?}");
    }
}

#[test]
fn easy_to_hard_goes_direct_by_spraying() {
    let mut direct = 0;
    for seed in 1..=6u64 {
        let mut net = Net::new([Kind::Easy, Kind::Hard], seed, cfg());
        net.punch();
        net.run_for(Duration::from_secs(12));
        let (r0, r1) = (net.s[0].path_report(), net.s[1].path_report());
        assert!(r0.sprayed > 0 && r0.sprayed <= 2048, "the easy side sprays, bounded: {}", r0.sprayed);
        assert_eq!(r1.sprayed, 0);
        // Bounded: 2,048 sprays; 256 sockets × 20 rounds; candidates every 200 ms for 10 s;
        // answers to what came through.
        assert!(net.udp_sent[0] < 2048 + 1000, "easy side sent {}", net.udp_sent[0]);
        assert!(net.udp_sent[1] < 256 * 20 + 1000, "hard side sent {}", net.udp_sent[1]);
        if net.direct(0) && net.direct(1) {
            direct += 1;
            // Two validated direct paths end the spray early (expected ≈ 8 matches in 2,048).
            assert!(r0.sprayed < 2048, "the spray stopped once two paths validated: {}", r0.sprayed);
            let a = r1.paths.iter().find(|p| p.active).unwrap();
            assert!(
                matches!(a.addr, PathAddr::Udp { local, .. } if local > 0),
                "the hard side uses a spray socket: {a:?}"
            );
        }
        // After punching, the datagrams stop (only keepalives of the validated path).
        let before = net.udp_sent;
        net.run_for(Duration::from_secs(10));
        let after = [net.udp_sent[0] - before[0], net.udp_sent[1] - before[1]];
        assert!(after[0] < 60 && after[1] < 60, "punching is over: {after:?}");
    }
    // (1 − 256/64,512)^2,048 ≈ 0.03 % failure per attempt.
    assert_eq!(direct, 6, "every seed punched through");
}

#[test]
fn hard_to_hard_stays_relayed_and_punching_is_bounded() {
    let mut net = Net::new([Kind::Hard, Kind::Hard], 5, cfg());
    net.punch();
    net.run_for(Duration::from_secs(15));
    assert!(!net.direct(0) && !net.direct(1));
    let r = net.s[0].path_report();
    assert_eq!(r.sprayed, 0);
    assert!(r.paths.iter().skip(1).all(|p| p.state == PathState::Abandoned), "{r:?}");
    // Only the host candidate (another home's private address), every 200 ms for 10 s.
    assert!(net.udp_sent[0] <= 51 && net.udp_sent[1] <= 51, "{:?}", net.udp_sent);
    let data = pattern(300_000);
    assert_eq!(transfer(&mut net, &data, Duration::from_secs(30), |_| {}), data);
}

/// The direct path is cut in the middle of a transfer: the sender falls back to the relay
/// within the failure bound, the bytes arrive identically, and when the path comes back
/// both sides upgrade again.
#[test]
fn cut_falls_back_within_the_bound_and_upgrades_when_restored() {
    let mut net = Net::new([Kind::Easy, Kind::Easy], 9, cfg());
    net.punch();
    net.run_for(Duration::from_secs(1));
    assert!(net.direct(0) && net.direct(1));
    let t0 = net.now;
    let data = pattern(3 << 20);
    let mut cut_at = None;
    let got = transfer(&mut net, &data, Duration::from_secs(120), |n| {
        if cut_at.is_none() && n.now > t0 + Duration::from_millis(300) {
            n.cut = true;
            cut_at = Some(n.now);
        }
    });
    assert_eq!(got, data, "no byte lost, none out of order");
    let cut_at = cut_at.unwrap();
    for i in 0..2 {
        let r = net.s[i].path_report();
        let fb = r.switches.iter().find(|s| s.why == SwitchReason::Failed).unwrap_or_else(|| panic!("{r:?}"));
        assert_eq!(fb.to, PathAddr::Relay);
        let bound = PathConfig::default().fail_max;
        assert!(fb.silent_for.unwrap() <= bound + Duration::from_millis(50), "party {i}: {fb:?}");
        let at = net.s[i].paths().started_at() + fb.at;
        assert!(
            at - cut_at <= bound + Duration::from_millis(100),
            "party {i} fell back {:?} after the cut",
            at - cut_at
        );
    }
    net.cut = false;
    net.run_for(PathConfig::default().retry_max + Duration::from_secs(2));
    for i in 0..2 {
        assert!(net.direct(i), "party {i} upgrades again: {:?}", net.s[i].path_report());
        let r = net.s[i].path_report();
        assert_eq!(r.switches.last().unwrap().why, SwitchReason::Upgrade);
    }
}

#[test]
fn one_percent_loss_on_the_direct_path() {
    let mut net = Net::new([Kind::Easy, Kind::Easy], 11, cfg());
    net.loss = 0.01;
    net.punch();
    net.run_for(Duration::from_secs(2));
    let data = pattern(2 << 20);
    assert_eq!(transfer(&mut net, &data, Duration::from_secs(120), |_| {}), data);
    assert!(net.direct(0), "1 % loss does not kill the path: {:?}", net.s[0].path_report());
    let st = net.s[0].stats();
    assert!(st.retransmits > 0 && st.lost > 0, "{st:?}");
    assert_eq!(net.s[0].path_report().switch_count, 1, "no spurious fallback");
}

/// A 10 Mbit/s bottleneck with 50 ms of queue: NewReno keeps the queue from overflowing
/// all the time, and the bytes arrive identically.
#[test]
fn congestion_control_at_a_bottleneck() {
    let mut net = Net::new([Kind::Easy, Kind::Easy], 13, cfg());
    net.bottleneck = Some((10e6 / 8.0, Duration::from_millis(50)));
    net.punch();
    net.run_for(Duration::from_secs(1));
    let data = pattern(4 << 20);
    let mut max_in_flight = 0u64;
    let mut last = (0u64, 0u64);
    let got = transfer(&mut net, &data, Duration::from_secs(120), |n| {
        let p = n.s[0].paths();
        let a = p.get(p.active());
        if a.addr.is_direct() {
            // In flight only grows while under the window (+1 probe packet).
            if a.in_flight > last.0 {
                assert!(a.in_flight <= last.1.max(a.cc.window()) + 2 * a.mtu as u64, "{} > {:?}", a.in_flight, last);
            }
            last = (a.in_flight, a.cc.window());
            max_in_flight = max_in_flight.max(a.in_flight);
        }
    });
    assert_eq!(got, data);
    let sent = net.s[0].path_report().paths.iter().map(|p| p.sent).sum::<u64>();
    assert!(net.udp_dropped_at_queue > 0, "slow start finds the bottleneck");
    assert!((net.udp_dropped_at_queue as f64) < 0.1 * sent as f64, "{} of {sent} dropped", net.udp_dropped_at_queue);
    // The bottleneck holds 20 ms × 10 Mbit/s (path) + 50 ms (queue) ≈ 90 kB: the window
    // does not run away from it.
    assert!(max_in_flight < 400_000, "max in flight {max_in_flight}");
    assert!(net.direct(0));
}

#[test]
fn paths_are_compared_by_their_recent_minimum_rtt() {
    let ms = Duration::from_millis;
    let mut net = Net::new([Kind::Easy, Kind::Easy], 17, cfg());
    (net.relay_delay, net.udp_delay) = (ms(10), ms(8));
    // The direct path's own traffic queues at a bottleneck: its smoothed RTT climbs far
    // above the relay's, its minimum does not.
    net.bottleneck = Some((2e6 / 8.0, ms(200)));
    net.punch();
    net.run_for(Duration::from_secs(1));
    assert!(net.direct(0));
    let data = pattern(1 << 20);
    let mut max_srtt = Duration::ZERO;
    let got = transfer(&mut net, &data, Duration::from_secs(120), |n| {
        let p = n.s[0].paths();
        max_srtt = max_srtt.max(p.get(p.active()).rtt.get());
    });
    assert_eq!(got, data);
    assert!(max_srtt > ms(20) * 5 / 4 + ms(5), "the queue showed in the smoothed RTT: {max_srtt:?}");
    let r = net.s[0].path_report();
    assert!(net.direct(0), "{r:?}");
    assert_eq!(r.switches.len(), 1, "no switch to the relay on queueing alone: {r:?}");
    // The direct path really gets slower than the relay (80 ms RTT against 20 ms): within two
    // RTT windows of traffic the session moves to the relay.
    net.bottleneck = None;
    net.udp_delay = ms(40);
    let window = PathConfig::default().rtt_window;
    let (changed, data) = (net.now, pattern(256 << 10));
    let mut moved = None;
    while moved.is_none() && net.now < changed + window * 3 {
        let got = transfer(&mut net, &data, Duration::from_secs(60), |n| {
            if moved.is_none() && !n.direct(0) {
                moved = Some(n.now - changed);
            }
        });
        assert_eq!(got, data);
    }
    let r = net.s[0].path_report();
    let at = moved.unwrap_or_else(|| panic!("never moved to the relay: {r:?}"));
    assert!(at <= window * 2 + Duration::from_secs(1), "moved after {at:?}");
    assert_eq!(r.switches.last().unwrap().why, SwitchReason::Rtt, "{r:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    /// Whatever the direct path does (loss, reordering, a cut of any length at any time),
    /// the stream arrives identically; once the path is healthy again the session ends up
    /// direct.
    #[test]
    fn any_direct_path_weather(
        seed in 1u64..u64::MAX,
        loss in 0.0f64..0.05,
        jitter_ms in 0u64..30,
        cut_from_ms in 0u64..3000,
        cut_for_ms in 0u64..6000,
        size in 1usize..600_000,
    ) {
        let mut net = Net::new([Kind::Easy, Kind::Easy], seed, cfg());
        net.loss = loss;
        net.jitter = Duration::from_millis(jitter_ms);
        net.punch();
        let t0 = net.now;
        let (from, until) = (t0 + Duration::from_millis(cut_from_ms), t0 + Duration::from_millis(cut_from_ms + cut_for_ms));
        let data = pattern(size);
        let got = transfer(&mut net, &data, Duration::from_secs(300), |n| n.cut = n.now >= from && n.now < until);
        prop_assert_eq!(got, data);
        net.cut = false;
        net.loss = 0.0;
        net.run_for(PathConfig::default().retry_max * 2 + Duration::from_secs(2));
        prop_assert!(net.direct(0) && net.direct(1), "{:?}", net.s[0].path_report());
    }
}
