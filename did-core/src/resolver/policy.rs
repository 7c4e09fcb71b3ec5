//! What DID resolution may reach over the network, and how long it may take.
//!
//! did:web names an HTTPS URL, and a DID often comes from a stranger (an envelope's `skid`,
//! a signature's `kid`, a `from_prior`). Fetching it blindly would let that stranger make us
//! request any URL, including services on our own machine or private network (SSRF). The
//! [`ResolverPolicy`] says which addresses may be reached ([`Reach`]), with [`AddrClass::of`]
//! classifying every address before it is connected to, plus timeouts, a size cap and the
//! cache bounds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::RwLock;
use std::time::Duration;

use crate::error::{Error, Result};

/// Environment variable that widens [`ResolverPolicy::process_default`]: `1`/`true`/`yes`/
/// `private` allow loopback and private networks, `loopback` allows loopback only, `0`/
/// `false`/`no`/empty (or unset) allow public addresses only.
pub const ENV_RESOLVE_PRIVATE: &str = "DIDMPC_RESOLVE_PRIVATE";

/// What kind of network an IP address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// Globally routable unicast.
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16 (RFC 1918), fec0::/10 (deprecated site-local).
    Private,
    /// 100.64.0.0/10, shared by carrier-grade NATs (RFC 6598).
    SharedCgnat,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// fc00::/7 (RFC 4193).
    UniqueLocal,
    /// 224/4, ff00::/8.
    Multicast,
    /// 0.0.0.0, ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// Anything else not globally routable: 0/8, 240/4, documentation, benchmarking and
    /// protocol-assignment ranges, IPv4-compatible and Teredo IPv6, addresses outside 2000::/3.
    Reserved,
}

impl AddrClass {
    /// Classifies `ip`. IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
    /// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are classified by the embedded address.
    pub fn of(ip: IpAddr) -> AddrClass {
        match ip {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => Self::of_v6(v6),
        }
    }

    fn of_v4(ip: Ipv4Addr) -> AddrClass {
        let [a, b, c, _] = ip.octets();
        match (a, b, c) {
            _ if ip.is_unspecified() => AddrClass::Unspecified,
            _ if ip.is_broadcast() => AddrClass::Broadcast,
            (127, ..) => AddrClass::Loopback,
            (10, ..) | (192, 168, _) => AddrClass::Private,
            (172, b, _) if (16..32).contains(&b) => AddrClass::Private,
            (100, b, _) if (64..128).contains(&b) => AddrClass::SharedCgnat,
            (169, 254, _) => AddrClass::LinkLocal,
            (224..=239, ..) => AddrClass::Multicast,
            (0, ..) | (240..=255, ..) => AddrClass::Reserved,
            (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) | (192, 88, 99) => AddrClass::Reserved,
            (198, 18 | 19, _) => AddrClass::Reserved,
            _ => AddrClass::Public,
        }
    }

    fn of_v6(ip: Ipv6Addr) -> AddrClass {
        let s = ip.segments();
        let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        match s {
            _ if ip.is_unspecified() => AddrClass::Unspecified,
            _ if ip.is_loopback() => AddrClass::Loopback,
            [0, 0, 0, 0, 0, 0xffff, hi, lo] => Self::of_v4(embedded(hi, lo)),
            [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Self::of_v4(embedded(hi, lo)),
            [0x2002, hi, lo, ..] => Self::of_v4(embedded(hi, lo)),
            [0x64, 0xff9b, 1, ..] => AddrClass::Private,
            [0, 0, 0, 0, 0, 0, _, _] | [0x100, 0, 0, 0, ..] => AddrClass::Reserved,
            [0x2001, 0, ..] | [0x2001, 0xdb8, ..] => AddrClass::Reserved,
            [x, ..] if x & 0xff00 == 0xff00 => AddrClass::Multicast,
            [x, ..] if x & 0xfe00 == 0xfc00 => AddrClass::UniqueLocal,
            [x, ..] if x & 0xffc0 == 0xfe80 => AddrClass::LinkLocal,
            [x, ..] if x & 0xffc0 == 0xfec0 => AddrClass::Private,
            [x, ..] if x & 0xe000 == 0x2000 => AddrClass::Public,
            _ => AddrClass::Reserved,
        }
    }
}

/// Which addresses resolution may connect to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reach {
    /// Public addresses only (the default).
    #[default]
    PublicOnly,
    /// Public addresses and loopback (a local demo or test).
    Loopback,
    /// Public addresses and every local unicast network: loopback, private, CGNAT-shared,
    /// link-local, unique-local and reserved ranges (an intranet deployment or a lab).
    Private,
}

impl Reach {
    /// Whether an address of this policy may be connected to. Unspecified, multicast and
    /// broadcast addresses never may.
    pub fn permits(self, ip: IpAddr) -> bool {
        match AddrClass::of(ip) {
            AddrClass::Public => true,
            AddrClass::Loopback => self != Reach::PublicOnly,
            AddrClass::Private
            | AddrClass::SharedCgnat
            | AddrClass::LinkLocal
            | AddrClass::UniqueLocal
            | AddrClass::Reserved => self == Reach::Private,
            AddrClass::Multicast | AddrClass::Unspecified | AddrClass::Broadcast => false,
        }
    }

    /// Whether host names that always mean this machine (`localhost`, `*.localhost`, RFC 6761)
    /// may be used.
    pub fn permits_localhost(self) -> bool {
        self != Reach::PublicOnly
    }

    /// Parses the value of [`ENV_RESOLVE_PRIVATE`].
    pub fn parse(value: &str) -> Result<Reach> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "0" | "false" | "no" => Ok(Reach::PublicOnly),
            "loopback" => Ok(Reach::Loopback),
            "1" | "true" | "yes" | "private" => Ok(Reach::Private),
            _ => Err(Error::Resolution {
                did: String::new(),
                reason: format!("{ENV_RESOLVE_PRIVATE} must be 1, loopback or 0 (got {:?})", crate::error::clip(value)),
            }),
        }
    }
}

/// How DID resolution behaves on the network, and how much it remembers.
///
/// The default is strict: public addresses only, no redirects (always), 3 s to connect, 5 s in
/// all, 256 KiB per document, 10,000 cached documents for 5 minutes, 1,000 failures remembered
/// for 1 minute, 16 fetches at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolverPolicy {
    /// Which addresses did:web fetches may connect to.
    pub reach: Reach,
    /// Longest wait for a TCP (and TLS) connection, including the DNS lookup.
    pub connect_timeout: Duration,
    /// Longest time for one whole fetch.
    pub timeout: Duration,
    /// Largest document accepted, bytes.
    pub max_document_bytes: usize,
    /// Most resolved documents cached (pinned documents do not count).
    pub cache_entries: usize,
    /// How long a fetched (did:web) document is used before it is fetched again.
    pub cache_ttl: Duration,
    /// Most did:web failures remembered.
    pub negative_cache_entries: usize,
    /// How long a did:web failure is remembered (answered again without a fetch).
    pub negative_ttl: Duration,
    /// Most did:web fetches in flight at once; more wait (within `timeout`).
    pub max_concurrent_fetches: usize,
}

impl Default for ResolverPolicy {
    fn default() -> Self {
        ResolverPolicy {
            reach: Reach::PublicOnly,
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(5),
            max_document_bytes: crate::method::web::MAX_DOC_BYTES,
            cache_entries: 10_000,
            cache_ttl: Duration::from_secs(300),
            negative_cache_entries: 1_000,
            negative_ttl: Duration::from_secs(60),
            max_concurrent_fetches: 16,
        }
    }
}

/// The policy set by [`ResolverPolicy::set_process_default`], if any.
static PROCESS_DEFAULT: RwLock<Option<ResolverPolicy>> = RwLock::new(None);

impl ResolverPolicy {
    /// The strict default with `reach` replaced.
    pub fn with_reach(reach: Reach) -> ResolverPolicy {
        ResolverPolicy { reach, ..ResolverPolicy::default() }
    }

    /// The default policy, widened by [`ENV_RESOLVE_PRIVATE`] when it is set.
    pub fn from_env() -> Result<ResolverPolicy> {
        let reach = match std::env::var(ENV_RESOLVE_PRIVATE) {
            Ok(v) => Reach::parse(&v)?,
            Err(std::env::VarError::NotPresent) => Reach::PublicOnly,
            Err(std::env::VarError::NotUnicode(_)) => Reach::parse("\u{fffd}")?,
        };
        Ok(ResolverPolicy::with_reach(reach))
    }

    /// What [`crate::Resolver::with_http`] uses: the policy given to
    /// [`ResolverPolicy::set_process_default`], else [`ResolverPolicy::from_env`].
    pub fn process_default() -> Result<ResolverPolicy> {
        match PROCESS_DEFAULT.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(p) => Ok(p.clone()),
            None => ResolverPolicy::from_env(),
        }
    }

    /// Sets (or with `None` clears) the policy of every resolver built later by
    /// [`crate::Resolver::with_http`] in this process: for programs that embed the agent, and
    /// for tests that must reach loopback without touching the environment.
    pub fn set_process_default(policy: Option<ResolverPolicy>) {
        *PROCESS_DEFAULT.write().unwrap_or_else(|e| e.into_inner()) = policy;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddrClass {
        AddrClass::of(s.parse().unwrap())
    }

    #[test]
    fn classifies_every_range() {
        use AddrClass::*;
        let table = [
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("100.64.0.1", SharedCgnat),
            ("100.127.255.254", SharedCgnat),
            ("100.128.0.1", Public),
            ("169.254.169.254", LinkLocal),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Reserved),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("192.0.2.1", Reserved),
            ("198.18.0.1", Reserved),
            ("203.0.113.7", Reserved),
            ("::", Unspecified),
            ("::1", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:8.8.8.8", Public),
            ("::127.0.0.1", Reserved),
            ("64:ff9b::a00:1", Private),
            ("64:ff9b::808:808", Public),
            ("2002:7f00:1::1", Loopback),
            ("2002:c0a8:101::1", Private),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("fec0::1", Private),
            ("ff02::1", Multicast),
            ("2001:db8::1", Reserved),
            ("2001:0:4136:e378::1", Reserved),
            ("2606:4700::1111", Public),
            ("4000::1", Reserved),
        ];
        for (ip, want) in table {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn reach_permits() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for reach in [Reach::PublicOnly, Reach::Loopback, Reach::Private] {
            assert!(reach.permits(ip("8.8.8.8")));
            for never in ["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "ff02::1"] {
                assert!(!reach.permits(ip(never)), "{reach:?} {never}");
            }
        }
        for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(!Reach::PublicOnly.permits(ip(local)));
            assert!(Reach::Loopback.permits(ip(local)));
            assert!(Reach::Private.permits(ip(local)));
        }
        for private in ["10.0.0.1", "100.64.0.1", "169.254.169.254", "fd00::1", "::ffff:192.168.0.1", "198.18.0.1"] {
            assert!(!Reach::PublicOnly.permits(ip(private)), "{private}");
            assert!(!Reach::Loopback.permits(ip(private)), "{private}");
            assert!(Reach::Private.permits(ip(private)), "{private}");
        }
        assert!(!Reach::PublicOnly.permits_localhost());
        assert!(Reach::Loopback.permits_localhost());
    }

    #[test]
    fn parses_the_knob() {
        assert_eq!(Reach::parse("").unwrap(), Reach::PublicOnly);
        assert_eq!(Reach::parse("0").unwrap(), Reach::PublicOnly);
        assert_eq!(Reach::parse("1").unwrap(), Reach::Private);
        assert_eq!(Reach::parse(" TRUE ").unwrap(), Reach::Private);
        assert_eq!(Reach::parse("loopback").unwrap(), Reach::Loopback);
        let e = Reach::parse("maybe").unwrap_err().to_string();
        assert!(e.contains(ENV_RESOLVE_PRIVATE), "{e}");
        let d = ResolverPolicy::default();
        assert_eq!(d.reach, Reach::PublicOnly);
        assert!(d.timeout <= Duration::from_secs(5) && d.connect_timeout <= d.timeout);
    }
}
