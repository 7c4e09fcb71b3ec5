//! The WAN emulator's accuracy, measured through real namespaces, veths and the TUN device:
//! `didmpc-lab calibrate` builds two public homes around the emulator and probes from one to
//! the other. This checks the emulator against its settings (not didmpc's speed):
//! - round trips of 20, 80 and 150 ms: the median within ±10 % or ±1 ms, whichever is larger,
//!   and nothing faster than asked (less 1 ms);
//! - 1 % loss one way: the round-trip loss of 10,000 probes within 4.5 standard deviations of
//!   1 − 0.99² (a false alarm about once in 150,000 runs), and the emulator's own count of
//!   losses per spoke crossing likewise near its per-crossing setting.
//!
//! Needs root (network namespaces), iproute2, nftables and ethtool.

use std::process::Command;

use serde_json::Value;

#[test]
fn emulator_delays_and_loses_what_it_is_told() {
    let out = Command::new(env!("CARGO_BIN_EXE_didmpc-lab"))
        .args(["calibrate", "--rtt", "20,80,150", "--probes", "200", "--loss", "1", "--loss-probes", "10000"])
        .output()
        .expect("run didmpc-lab calibrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "calibrate failed ({}): {stderr}", out.status);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    eprintln!("{stderr}");

    let rtts = v["rtt"].as_array().expect("rtt results");
    assert_eq!(rtts.len(), 3);
    for r in rtts {
        let nominal = r["nominal_ms"].as_f64().unwrap();
        let median = r["median_ms"].as_f64().unwrap_or_else(|| panic!("no probe came back at {nominal} ms: {r}"));
        let min = r["min_ms"].as_f64().unwrap();
        let tolerance = (nominal * 0.10).max(1.0);
        assert_eq!(r["received"], r["sent"], "no loss was asked for at {nominal} ms: {r}");
        assert!(
            (median - nominal).abs() <= tolerance,
            "median RTT {median:.3} ms at {nominal} ms nominal is off by more than {tolerance} ms: {r}"
        );
        assert!(min >= nominal - 1.0, "a probe came back in {min:.3} ms, faster than {nominal} ms: {r}");
    }

    let l = &v["loss"];
    let (sent, received) = (l["sent"].as_f64().unwrap(), l["received"].as_f64().unwrap());
    assert_eq!(sent, 10_000.0);
    let one_way = l["one_way_pct"].as_f64().unwrap() / 100.0;
    let expected = 1.0 - (1.0 - one_way).powi(2);
    let measured = 1.0 - received / sent;
    let sd = (expected * (1.0 - expected) / sent).sqrt();
    assert!(
        (measured - expected).abs() <= 4.5 * sd,
        "round-trip loss {measured:.4} vs expected {expected:.4} ± {:.4} (4.5 sd): {l}",
        4.5 * sd
    );
    // The emulator's own draws: each packet crosses two spokes, each losing 1 − √0.99.
    let model = &l["emulator"]["model"];
    let (lost, delivered) = (model["lost"].as_f64().unwrap(), model["delivered"].as_f64().unwrap());
    let per_pair = lost / (lost + delivered);
    let sd = (one_way * (1.0 - one_way) / (lost + delivered)).sqrt();
    assert!(
        (per_pair - one_way).abs() <= 4.5 * sd,
        "the emulator lost {per_pair:.4} of the packets it saw, asked {one_way} ± {:.4}: {model}",
        4.5 * sd
    );
}
