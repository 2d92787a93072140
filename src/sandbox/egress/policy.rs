//! What a sandbox may reach through the egress proxy, and the operator's ceiling over it.
//!
//! Domain patterns (OpenAI documents none; these are codex-network-proxy's): `example.com`
//! is that host only, `*.example.com` its subdomains only, `**.example.com` both. The
//! operator's ceiling may also be `*`, every name. Names are compared lowercased, without a
//! trailing dot; IP addresses are never names, so no allowlist reaches an address directly.

use std::fmt;
use std::net::IpAddr;

/// One allowlist entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainPattern {
    /// `*`: every name (the operator's ceiling only).
    Any,
    /// `example.com`.
    Exact(String),
    /// `*.example.com`: subdomains, not the domain itself.
    Subdomains(String),
    /// `**.example.com`: the domain and its subdomains.
    DomainAndSubdomains(String),
}

impl DomainPattern {
    /// Parses one entry; `any` allows `*`. The error says what is wrong, for a 400.
    pub fn parse(entry: &str, any: bool) -> Result<DomainPattern, String> {
        let entry = entry.trim().trim_end_matches('.').to_ascii_lowercase();
        if entry == "*" {
            return if any {
                Ok(DomainPattern::Any)
            } else {
                Err("'*' is not a domain; list the domains the container may reach".into())
            };
        }
        let (make, name): (fn(String) -> DomainPattern, &str) =
            if let Some(rest) = entry.strip_prefix("**.") {
                (DomainPattern::DomainAndSubdomains, rest)
            } else if let Some(rest) = entry.strip_prefix("*.") {
                (DomainPattern::Subdomains, rest)
            } else {
                (DomainPattern::Exact, entry.as_str())
            };
        check_name(name)?;
        Ok(make(name.to_string()))
    }

    /// Whether `host` (lowercased, no trailing dot) is allowed by this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            DomainPattern::Any => true,
            DomainPattern::Exact(d) => host == d,
            DomainPattern::Subdomains(d) => is_strict_subdomain(host, d),
            DomainPattern::DomainAndSubdomains(d) => host == d || is_strict_subdomain(host, d),
        }
    }

    /// Whether every name `other` allows is allowed by `self`.
    pub fn covers(&self, other: &DomainPattern) -> bool {
        use DomainPattern::*;
        match (self, other) {
            (Any, _) => true,
            (_, Any) => false,
            (Exact(a), Exact(b)) => a == b,
            (Exact(_), _) => false,
            (Subdomains(a), Exact(b)) => is_strict_subdomain(b, a),
            (Subdomains(a), Subdomains(b) | DomainAndSubdomains(b)) => is_strict_subdomain(b, a),
            (DomainAndSubdomains(a), Exact(b) | Subdomains(b) | DomainAndSubdomains(b)) => {
                b == a || is_strict_subdomain(b, a)
            }
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Any => write!(f, "*"),
            DomainPattern::Exact(d) => write!(f, "{d}"),
            DomainPattern::Subdomains(d) => write!(f, "*.{d}"),
            DomainPattern::DomainAndSubdomains(d) => write!(f, "**.{d}"),
        }
    }
}

fn is_strict_subdomain(host: &str, domain: &str) -> bool {
    host.len() > domain.len() + 1
        && host.ends_with(domain)
        && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
}

fn check_name(name: &str) -> Result<(), String> {
    if name.contains("://") || name.contains('/') {
        return Err(format!(
            "'{name}' is not a bare domain name (no scheme or path)"
        ));
    }
    if name.contains(':') && name.parse::<IpAddr>().is_err() {
        return Err(format!("'{name}' is not a bare domain name (no port)"));
    }
    if name.parse::<IpAddr>().is_ok() || name.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return Err(format!(
            "'{name}' is an IP address; network policies allow domain names only"
        ));
    }
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !labels.iter().all(label_ok) {
        return Err(format!("'{name}' is not a valid domain name"));
    }
    Ok(())
}

/// A secret the proxy puts into requests to one domain in place of its placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct DomainSecret {
    pub domain: DomainPattern,
    pub name: String,
    pub value: String,
}

impl fmt::Debug for DomainSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DomainSecret")
            .field("domain", &self.domain.to_string())
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

impl DomainSecret {
    /// The text code sends where the secret belongs; the proxy swaps it for the value.
    pub fn placeholder(&self) -> String {
        placeholder(&self.name)
    }
}

/// The placeholder for secret `name`: what the sandbox sees instead of the value.
pub fn placeholder(name: &str) -> String {
    format!("assistd-secret-{name}")
}

/// One container's network policy.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum EgressPolicy {
    /// Nothing goes out.
    #[default]
    Disabled,
    /// Names matching `domains` go out through the proxy.
    Allowlist {
        domains: Vec<DomainPattern>,
        secrets: Vec<DomainSecret>,
    },
}

impl EgressPolicy {
    /// Whether `host` may be reached.
    pub fn allows(&self, host: &str) -> bool {
        match self {
            EgressPolicy::Disabled => false,
            EgressPolicy::Allowlist { domains, .. } => domains.iter().any(|d| d.matches(host)),
        }
    }

    /// The secrets to substitute in requests to `host`.
    pub fn secrets_for<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a DomainSecret> {
        let secrets: &[DomainSecret] = match self {
            EgressPolicy::Disabled => &[],
            EgressPolicy::Allowlist { secrets, .. } => secrets,
        };
        secrets.iter().filter(move |s| s.domain.matches(host))
    }

    /// `allowlist` or `disabled`, as the container object reports it.
    pub fn kind(&self) -> &'static str {
        match self {
            EgressPolicy::Disabled => "disabled",
            EgressPolicy::Allowlist { .. } => "allowlist",
        }
    }

    /// The allowed domains as entries (empty when disabled).
    pub fn domain_entries(&self) -> Vec<String> {
        match self {
            EgressPolicy::Disabled => Vec::new(),
            EgressPolicy::Allowlist { domains, .. } => {
                domains.iter().map(ToString::to_string).collect()
            }
        }
    }
}

/// What the operator allows at most (`ASSISTD_SANDBOX_NETWORK` and
/// `ASSISTD_SANDBOX_ALLOWED_DOMAINS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ceiling {
    /// No network for any sandbox.
    Off,
    /// Through the egress proxy, to these names at most.
    Proxy(Vec<DomainPattern>),
    /// Docker's own network mode (e.g. `bridge`), unfiltered: only `disabled` can narrow it.
    Direct(String),
}

impl Ceiling {
    /// The widest policy: what a session gets when nothing narrows it. With Docker's network
    /// unfiltered that is `*`, which only a `disabled` policy narrows.
    pub fn widest(&self) -> EgressPolicy {
        match self {
            Ceiling::Off => EgressPolicy::Disabled,
            Ceiling::Direct(_) => EgressPolicy::Allowlist {
                domains: vec![DomainPattern::Any],
                secrets: Vec::new(),
            },
            Ceiling::Proxy(domains) => EgressPolicy::Allowlist {
                domains: domains.clone(),
                secrets: Vec::new(),
            },
        }
    }

    /// Whether sandboxes can reach anything at all.
    pub fn any_network(&self) -> bool {
        !matches!(self, Ceiling::Off)
    }

    /// Checks that `policy` asks for no more than this allows; the error is the 400's reason.
    pub fn admits(&self, policy: &EgressPolicy) -> Result<(), String> {
        let EgressPolicy::Allowlist { domains, .. } = policy else {
            return Ok(());
        };
        match self {
            Ceiling::Off => Err("this server gives sandboxes no network access \
                 (ASSISTD_SANDBOX_NETWORK=none); only {\"type\": \"disabled\"} is accepted"
                .into()),
            Ceiling::Direct(mode) => Err(format!(
                "this server gives sandboxes Docker's '{mode}' network unfiltered and cannot \
                 enforce an allowlist (the operator must set ASSISTD_SANDBOX_NETWORK=proxy)"
            )),
            Ceiling::Proxy(ceiling) => match domains
                .iter()
                .find(|d| !ceiling.iter().any(|c| c.covers(d)))
            {
                None => Ok(()),
                Some(d) => Err(format!(
                    "'{d}' is outside the domains this server allows sandboxes to reach ({})",
                    ceiling
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
        }
    }
}

/// Whether `ip` is an address sandboxes must not reach unless the operator allows it:
/// loopback, private, link-local (cloud metadata), CGNAT, unspecified, multicast, documentation
/// and benchmarking ranges, IPv6 unique-local, and IPv4 addresses mapped into IPv6.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// An address range the operator lets sandboxes reach although it is internal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{s}' is not an address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("'{s}' has a bad prefix length"))?,
        };
        Ok(Cidr { net, bits })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => prefix_eq(&n.octets(), &i.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(i)) => prefix_eq(&n.octets(), &i.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let whole = (bits / 8) as usize;
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || (a[whole] ^ b[whole]) & (0xffu8 << (8 - rest)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DomainPattern {
        DomainPattern::parse(s, true).unwrap()
    }

    #[test]
    fn patterns_match_as_codex_does() {
        assert!(p("example.com").matches("example.com"));
        assert!(!p("example.com").matches("api.example.com"));
        assert!(p("*.example.com").matches("api.example.com"));
        assert!(!p("*.example.com").matches("example.com"));
        assert!(!p("*.example.com").matches("badexample.com"));
        assert!(p("**.example.com").matches("example.com"));
        assert!(p("**.example.com").matches("a.b.example.com"));
        assert!(p("*").matches("anything.test"));
        assert_eq!(p("Example.COM.").to_string(), "example.com");
    }

    #[test]
    fn entries_that_are_not_bare_names_are_refused() {
        for bad in [
            "https://example.com",
            "example.com/path",
            "example.com:443",
            "10.0.0.1",
            "::1",
            "[::1]",
            "",
            "exa mple.com",
            "-a.com",
        ] {
            assert!(DomainPattern::parse(bad, false).is_err(), "{bad}");
        }
        assert!(DomainPattern::parse("*", false).is_err());
    }

    #[test]
    fn a_request_may_narrow_the_ceiling_but_not_widen_it() {
        let ceiling = Ceiling::Proxy(vec![p("**.example.com"), p("pypi.test")]);
        let ask = |d: &[&str]| {
            ceiling.admits(&EgressPolicy::Allowlist {
                domains: d.iter().map(|s| p(s)).collect(),
                secrets: vec![],
            })
        };
        assert!(ask(&["example.com", "*.example.com", "a.example.com"]).is_ok());
        assert!(ask(&["pypi.test"]).is_ok());
        assert!(ask(&["other.test"]).is_err());
        assert!(ask(&["**.pypi.test"]).is_err());
        assert!(ask(&["*"]).is_err());
        assert!(Ceiling::Off.admits(&EgressPolicy::Disabled).is_ok());
        assert!(Ceiling::Off
            .admits(&EgressPolicy::Allowlist {
                domains: vec![p("a.test")],
                secrets: vec![]
            })
            .is_err());
        let sub = Ceiling::Proxy(vec![p("*.example.com")]);
        assert!(sub.covers_for_test("a.example.com"));
        assert!(!sub.covers_for_test("example.com"));
    }

    impl Ceiling {
        fn covers_for_test(&self, d: &str) -> bool {
            self.admits(&EgressPolicy::Allowlist {
                domains: vec![p(d)],
                secrets: vec![],
            })
            .is_ok()
        }
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.17.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn cidrs_contain_their_addresses() {
        let c: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(c.contains("127.1.2.3".parse().unwrap()));
        assert!(!c.contains("128.0.0.1".parse().unwrap()));
        let one: Cidr = "10.0.0.5".parse().unwrap();
        assert!(one.contains("10.0.0.5".parse().unwrap()));
        assert!(!one.contains("10.0.0.6".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    }
}
