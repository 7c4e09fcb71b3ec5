//! The scenario file (`lab/scenarios.toml`): network profiles, programs and the matrices
//! that cross them with NAT types, party counts and transports.
//!
//! Geometry: the lab is a star around a core. Every site — each party's home and the public
//! server that hosts the didmpc mediator and the WireGuard hub — sits on its own spoke with a
//! one-way delay to the core. A profile's `rtt_ms` is the round trip between two homes, so a
//! home's spoke is `rtt_ms / 4` one way; the server's spoke defaults to the same, which puts it
//! as far from every home as the homes are from each other (an equilateral triangle: a path
//! relayed through the server is twice the direct one). `server_ms = 0` puts it in the core.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenarios {
    /// Defaults for every run.
    #[serde(default)]
    pub defaults: Defaults,
    /// Network profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// Programs by name.
    pub programs: BTreeMap<String, Program>,
    /// Matrices by name (`quick`, `full`, …): each a list of blocks whose rows add up.
    pub matrix: BTreeMap<String, Vec<Block>>,
}

/// Settings shared by every run.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Rate of every spoke, each direction, Mbit/s (absent: unlimited).
    #[serde(default)]
    pub rate_mbit: Option<f64>,
    /// Longest serialiser backlog before tail drop, ms.
    #[serde(default = "default_queue_ms")]
    pub queue_ms: f64,
    /// The programs' `--seed` and the emulator's random draws.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Longest time one run may take, seconds (then it counts as failed).
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// Probes per RTT measurement before each run.
    #[serde(default = "default_probes")]
    pub rtt_probes: u32,
}

fn default_queue_ms() -> f64 {
    200.0
}
fn default_seed() -> u64 {
    1
}
fn default_timeout() -> u64 {
    300
}
fn default_probes() -> u32 {
    10
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            rate_mbit: None,
            queue_ms: default_queue_ms(),
            seed: default_seed(),
            timeout_s: default_timeout(),
            rtt_probes: default_probes(),
        }
    }
}

/// A network profile.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Round trip between two homes, ms.
    pub rtt_ms: f64,
    /// Jitter per spoke crossing, ms (uniform ±).
    #[serde(default)]
    pub jitter_ms: f64,
    /// One-way loss between any two sites, percent.
    #[serde(default)]
    pub loss_pct: f64,
    /// One-way delay of the server's spoke, ms (default `rtt_ms / 4`: as far as a home).
    #[serde(default)]
    pub server_ms: Option<f64>,
    /// One-way delays of the homes' spokes, ms, cycled over the parties (default: all
    /// `rtt_ms / 4`). With unequal homes, `rtt_ms` stays the nominal figure of the row.
    #[serde(default)]
    pub home_ms: Vec<f64>,
    /// What it stands for.
    #[serde(default)]
    pub about: String,
}

impl Profile {
    /// One-way delay of home `i`'s spoke.
    pub fn home_delay(&self, i: usize) -> f64 {
        if self.home_ms.is_empty() {
            self.rtt_ms / 4.0
        } else {
            self.home_ms[i % self.home_ms.len()]
        }
    }

    /// One-way delay of the server's spoke.
    pub fn server_delay(&self) -> f64 {
        self.server_ms.unwrap_or(self.rtt_ms / 4.0)
    }

    /// Loss per spoke crossing so that two crossings (site to site) lose `loss_pct`.
    pub fn spoke_loss_pct(&self) -> f64 {
        let l = self.loss_pct / 100.0;
        (1.0 - (1.0 - l).sqrt()) * 100.0
    }
}

/// An MPyC program.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// File name under `mpc/programs/`.
    pub file: String,
    /// Its arguments (the lab adds `--seed`).
    #[serde(default)]
    pub args: Vec<String>,
}

/// One block of a matrix: the cross product of its lists.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// Party counts.
    pub parties: Vec<usize>,
    /// Profile names.
    pub profiles: Vec<String>,
    /// NAT types of the homes.
    pub nats: Vec<Nat>,
    /// Program names.
    pub programs: Vec<String>,
    /// Transports, run in this order on each scenario.
    pub transports: Vec<Transport>,
    /// Runs of each program over each transport (interleaved; the row has the medians).
    #[serde(default = "one")]
    pub repeat: usize,
}

fn one() -> usize {
    1
}

/// What stands between a party and the Internet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Nat {
    /// A public address, no NAT.
    Public,
    /// A home router doing `masquerade`: port-restricted cone.
    PortRestricted,
    /// A home router doing `masquerade random`: symmetric.
    Symmetric,
    /// A home router behind a carrier-grade NAT.
    Cgnat,
    /// Homes cycle through port-restricted, symmetric and CGNAT.
    Mixed,
}

impl Nat {
    /// The NAT of home `i` under this type.
    pub fn of_home(self, i: usize) -> Nat {
        match self {
            Nat::Mixed => [Nat::PortRestricted, Nat::Symmetric, Nat::Cgnat][i % 3],
            n => n,
        }
    }
}

impl fmt::Display for Nat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Nat::Public => "public",
            Nat::PortRestricted => "port-restricted",
            Nat::Symmetric => "symmetric",
            Nat::Cgnat => "cgnat",
            Nat::Mixed => "mixed",
        })
    }
}

impl FromStr for Nat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Nat> {
        toml::Value::String(s.into()).try_into().map_err(|_| Error::Config(format!("unknown NAT type {s:?}")))
    }
}

/// How the parties' MPyC traffic travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// MPyC's own TCP between public addresses or port forwards.
    Plain,
    /// WireGuard (wireguard-go), hub and spoke through the public server.
    Wireguard,
    /// didmpc with `--relay-only`: sessions through the mediator's relay.
    Didmpc,
    /// didmpc as it runs by default: sessions punch a direct UDP path where the NATs allow
    /// it, the relay otherwise.
    DidmpcDirect,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Plain => "plain",
            Transport::Wireguard => "wireguard",
            Transport::Didmpc => "didmpc",
            Transport::DidmpcDirect => "didmpc-direct",
        })
    }
}

/// One network scenario of a matrix: a topology to build, and what to run on it.
#[derive(Clone, Debug)]
pub struct Case {
    /// NAT type.
    pub nat: Nat,
    /// Profile name.
    pub profile: String,
    /// Number of parties.
    pub parties: usize,
    /// Program names.
    pub programs: Vec<String>,
    /// Transports.
    pub transports: Vec<Transport>,
    /// Runs of each program over each transport.
    pub repeat: usize,
}

impl Scenarios {
    /// Parses and checks a scenario file.
    pub fn parse(text: &str) -> Result<Scenarios> {
        let s: Scenarios = toml::from_str(text)?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        for (name, p) in &self.profiles {
            let ok = |v: f64| v.is_finite() && (0.0..=10_000.0).contains(&v);
            if !ok(p.rtt_ms) || !ok(p.jitter_ms) || !p.server_ms.is_none_or(ok) || !p.home_ms.iter().all(|&v| ok(v)) {
                return bad(format!("profile {name}: delays must be in 0..=10000 ms"));
            }
            if !(p.loss_pct.is_finite() && (0.0..100.0).contains(&p.loss_pct)) {
                return bad(format!("profile {name}: loss_pct must be in 0..100"));
            }
        }
        for (name, blocks) in &self.matrix {
            for b in blocks {
                for p in &b.profiles {
                    if !self.profiles.contains_key(p) {
                        return bad(format!("matrix {name}: no profile {p:?}"));
                    }
                }
                for p in &b.programs {
                    if !self.programs.contains_key(p) {
                        return bad(format!("matrix {name}: no program {p:?}"));
                    }
                }
                if !(1..=20).contains(&b.repeat) {
                    return bad(format!("matrix {name}: repeat must be in 1..=20"));
                }
                if let Some(n) = b.parties.iter().find(|&&n| !(2..=40).contains(&n)) {
                    return bad(format!("matrix {name}: {n} parties (2..=40 supported)"));
                }
            }
        }
        Ok(())
    }

    /// The scenarios of matrix `name`, in file order (each topology once; programs and
    /// transports of blocks naming the same topology are merged).
    pub fn cases(&self, name: &str) -> Result<Vec<Case>> {
        let blocks = self.matrix.get(name).ok_or_else(|| {
            let known: Vec<_> = self.matrix.keys().cloned().collect();
            Error::Config(format!("no matrix {name:?} (the file has {})", known.join(", ")))
        })?;
        let mut cases: Vec<Case> = Vec::new();
        for b in blocks {
            for &parties in &b.parties {
                for profile in &b.profiles {
                    for &nat in &b.nats {
                        let i =
                            cases.iter().position(|c| c.nat == nat && &c.profile == profile && c.parties == parties);
                        let c = match i {
                            Some(i) => &mut cases[i],
                            None => {
                                cases.push(Case {
                                    nat,
                                    profile: profile.clone(),
                                    parties,
                                    programs: vec![],
                                    transports: vec![],
                                    repeat: b.repeat,
                                });
                                cases.last_mut().expect("just pushed")
                            }
                        };
                        c.repeat = c.repeat.max(b.repeat);
                        for p in &b.programs {
                            if !c.programs.contains(p) {
                                c.programs.push(p.clone());
                            }
                        }
                        for t in &b.transports {
                            if !c.transports.contains(t) {
                                c.transports.push(*t);
                            }
                        }
                    }
                }
            }
        }
        Ok(cases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_file_parses() {
        let s = Scenarios::parse(include_str!("../scenarios.toml")).unwrap();
        let quick = s.cases("quick").unwrap();
        assert!(quick.iter().all(|c| c.parties == 3));
        assert!(quick.iter().any(|c| c.nat == Nat::Symmetric) && quick.iter().any(|c| c.nat == Nat::PortRestricted));
        let rtts: std::collections::BTreeSet<u64> =
            quick.iter().map(|c| s.profiles[&c.profile].rtt_ms as u64).collect();
        assert_eq!(rtts.len(), 2, "quick: two RTTs");
        assert!(s.cases("full").unwrap().len() > quick.len());
        for rtt in [20.0, 80.0, 150.0] {
            assert!(s.profiles.values().any(|p| p.rtt_ms == rtt && p.loss_pct == 0.0), "a {rtt} ms preset");
        }
        assert!(s.profiles.values().any(|p| p.loss_pct == 1.0), "a 1 % lossy profile");
    }

    #[test]
    fn geometry() {
        let p: Profile = toml::from_str("rtt_ms = 80\nloss_pct = 1").unwrap();
        assert_eq!(p.home_delay(3), 20.0);
        assert_eq!(p.server_delay(), 20.0);
        let per_spoke = p.spoke_loss_pct() / 100.0;
        assert!(((1.0 - (1.0 - per_spoke).powi(2)) - 0.01).abs() < 1e-12);
        assert_eq!(Nat::Mixed.of_home(4), Nat::Symmetric);
        assert_eq!("cgnat".parse::<Nat>().unwrap(), Nat::Cgnat);
        assert!("carrier".parse::<Nat>().is_err());
    }

    #[test]
    fn bad_files_are_refused() {
        let base = "[profiles.a]\nrtt_ms = 20\n[programs.p]\nfile = \"p.py\"\n";
        let m = |b: &str| format!("{base}[[matrix.q]]\n{b}");
        let good =
            "parties = [3]\nprofiles = [\"a\"]\nnats = [\"symmetric\"]\nprograms = [\"p\"]\ntransports = [\"plain\"]";
        assert!(Scenarios::parse(&m(good)).is_ok());
        assert!(Scenarios::parse(&m(&good.replace("\"a\"]", "\"b\"]"))).is_err(), "unknown profile");
        assert!(Scenarios::parse(&m(&good.replace("[3]", "[1]"))).is_err(), "one party");
        assert!(Scenarios::parse(&m(&good.replace("symmetric", "full-cone"))).is_err(), "unknown NAT");
        assert!(Scenarios::parse(&m(&good.replace("plain", "carrier-pigeon"))).is_err(), "unknown transport");
        assert!(Scenarios::parse(&format!("{base}[profiles.x]\nrtt_ms = -1\n[matrix]\n")).is_err(), "negative");
        assert!(Scenarios::parse(&m(good)).unwrap().cases("nope").is_err());
    }
}
