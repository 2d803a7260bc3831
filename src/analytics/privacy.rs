//! What is kept of a listener's IP address.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// How IP addresses are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpPolicy {
    /// IPv4 /24, IPv6 /48: enough for a region, not for a household.
    Truncate,
    /// A keyed hash: the same address maps to the same token, which cannot be reversed without
    /// the key (kept in the data directory).
    Hash(Vec<u8>),
    /// Nothing.
    Drop,
    /// The full address (only where the operator has a legal basis for it).
    Keep,
}

impl IpPolicy {
    pub fn apply(&self, ip: &str) -> Option<String> {
        let parsed: Option<IpAddr> = ip.trim().parse().ok();
        match self {
            IpPolicy::Drop => None,
            IpPolicy::Keep => Some(ip.trim().to_string()),
            IpPolicy::Truncate => parsed.map(|a| match a {
                IpAddr::V4(v4) => {
                    let o = v4.octets();
                    format!("{}.{}.{}.0/24", o[0], o[1], o[2])
                }
                IpAddr::V6(v6) => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
                }
            }),
            IpPolicy::Hash(key) => {
                let mut h = Sha256::new();
                h.update(key);
                h.update(ip.trim().as_bytes());
                Some(
                    h.finalize()[..12]
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert_eq!(
            IpPolicy::Truncate.apply("192.168.1.100").as_deref(),
            Some("192.168.1.0/24")
        );
        assert_eq!(
            IpPolicy::Truncate
                .apply("2001:db8:85a3::8a2e:370:7334")
                .as_deref(),
            Some("2001:db8:85a3::/48")
        );
        assert_eq!(IpPolicy::Truncate.apply("not an ip"), None);
        assert_eq!(IpPolicy::Drop.apply("1.2.3.4"), None);
        let h = IpPolicy::Hash(b"k".to_vec());
        assert_eq!(h.apply("1.2.3.4"), h.apply("1.2.3.4"));
        assert_ne!(h.apply("1.2.3.4"), h.apply("1.2.3.5"));
        assert!(!h.apply("1.2.3.4").unwrap().contains("1.2.3"));
    }
}
