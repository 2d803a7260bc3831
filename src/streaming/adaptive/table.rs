//! The streaming sessions held in memory, and who holds them.
//!
//! Sessions are capped in all ([`super::MAX_SESSIONS`]); without a share per holder one client
//! creating sessions in a loop would fill the whole table and shut every new listener out for
//! the half hour sessions take to expire. Each holder (a listener, or an address for anonymous
//! callers) gets a share; past it, its own least recently used session makes room, so a
//! looping client only churns through its own sessions, and a real player, which leaves a
//! session behind at each track when it does not end it, loses only sessions it has stopped
//! using. A share is a bound per address, not per person: a client with many addresses can
//! hold many shares, and callers behind one address (a proxy this server does not trust, a NAT)
//! share one.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::ops::Deref;

/// Sessions a signed-in listener may hold at once: a player per device, a session per track
/// for players that never end theirs, with room to spare.
pub const SESSIONS_PER_USER: usize = 64;

/// Sessions the anonymous callers of one address may hold at once. Generous, because many
/// listeners can share an address (a campus behind NAT); the share only has to be far below
/// the total, so that filling the table takes a hundred addresses rather than one client.
pub const SESSIONS_PER_ADDRESS: usize = 1024;

/// Who holds a session, for the share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionHolder {
    User(String),
    /// An anonymous caller's address. IPv6 addresses count by their /56, what providers
    /// commonly give one customer (a host holds a whole /64, a home network 256 of them).
    Address(IpAddr),
}

impl SessionHolder {
    pub(super) fn key(&self) -> String {
        match self {
            SessionHolder::User(u) => format!("user:{u}"),
            SessionHolder::Address(IpAddr::V4(a)) => format!("ip:{a}"),
            SessionHolder::Address(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) => format!("ip:{v4}"),
                None => {
                    let s = a.segments();
                    format!(
                        "ip:{:x}:{:x}:{:x}:{:x}::/56",
                        s[0],
                        s[1],
                        s[2],
                        s[3] & 0xff00
                    )
                }
            },
        }
    }

    pub(super) fn share(&self) -> usize {
        match self {
            SessionHolder::User(_) => SESSIONS_PER_USER,
            SessionHolder::Address(_) => SESSIONS_PER_ADDRESS,
        }
    }
}

/// What the table needs to know of a session.
pub(super) trait Held {
    /// The holder's key ([`SessionHolder::key`]), if the session has one.
    fn holder(&self) -> Option<&str>;
    /// When the session was last reported on or used.
    fn last_used(&self) -> tokio::time::Instant;
}

/// Sessions by id, and each holder's sessions. Reads go through `Deref` to the map; every
/// change goes through the methods below, which keep both in step.
#[derive(Debug)]
pub(super) struct SessionTable<S> {
    by_id: HashMap<String, S>,
    by_holder: HashMap<String, VecDeque<String>>,
}

impl<S> Default for SessionTable<S> {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            by_holder: HashMap::new(),
        }
    }
}

impl<S> Deref for SessionTable<S> {
    type Target = HashMap<String, S>;

    fn deref(&self) -> &Self::Target {
        &self.by_id
    }
}

impl<S: Held> SessionTable<S> {
    /// Adds (or replaces) a session; if its holder then holds more than `share`, removes and
    /// returns the holder's least recently used sessions beyond it (never the new one).
    pub fn insert(&mut self, id: String, session: S, share: usize) -> Vec<(String, S)> {
        self.remove(&id);
        let mut evicted = Vec::new();
        if let Some(holder) = session.holder() {
            let held = self.by_holder.entry(holder.to_string()).or_default();
            // O(share) per eviction: only a holder past its share pays it.
            while held.len() >= share.max(1) {
                let by_id = &self.by_id;
                let Some((at, _)) = held
                    .iter()
                    .enumerate()
                    .filter_map(|(at, old)| Some((at, by_id.get(old)?.last_used())))
                    .min_by_key(|(_, used)| *used)
                else {
                    break;
                };
                let old = held.remove(at).expect("found in it");
                if let Some(s) = self.by_id.remove(&old) {
                    evicted.push((old, s));
                }
            }
            held.push_back(id.clone());
        }
        self.by_id.insert(id, session);
        evicted
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut S> {
        self.by_id.get_mut(id)
    }

    pub fn remove(&mut self, id: &str) -> Option<S> {
        let session = self.by_id.remove(id)?;
        if let Some(holder) = session.holder() {
            self.forget(holder, id);
        }
        Some(session)
    }

    /// Keeps the sessions `keep` says to; returns the ids of the others.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &S) -> bool) -> Vec<String> {
        let mut gone = Vec::new();
        self.by_id.retain(|id, s| {
            let k = keep(id, s);
            if !k {
                gone.push((id.clone(), s.holder().map(str::to_string)));
            }
            k
        });
        gone.into_iter()
            .map(|(id, holder)| {
                if let Some(h) = holder {
                    self.forget(&h, &id);
                }
                id
            })
            .collect()
    }

    /// Removes every session; returns their ids.
    pub fn drain(&mut self) -> Vec<String> {
        self.by_holder.clear();
        self.by_id.drain().map(|(id, _)| id).collect()
    }

    fn forget(&mut self, holder: &str, id: &str) {
        if let Some(held) = self.by_holder.get_mut(holder) {
            held.retain(|h| h != id);
            if held.is_empty() {
                self.by_holder.remove(holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S(Option<&'static str>, tokio::time::Instant);

    fn s(holder: Option<&'static str>) -> S {
        S(holder, tokio::time::Instant::now())
    }

    impl Held for S {
        fn holder(&self) -> Option<&str> {
            self.0
        }
        fn last_used(&self) -> tokio::time::Instant {
            self.1
        }
    }

    #[test]
    fn a_holder_past_its_share_loses_its_least_used_sessions_only() {
        let mut t = SessionTable::default();
        assert!(t.insert("other".into(), s(Some("b")), 2).is_empty());
        assert!(t.insert("free".into(), s(None), 2).is_empty());
        // a0 was created first but used since: a1 is the one left unused.
        let (a0, a1) = (s(Some("a")), s(Some("a")));
        let a0 = S(a0.0, a1.1 + std::time::Duration::from_secs(5));
        assert!(t.insert("a0".into(), a0, 2).is_empty());
        assert!(t.insert("a1".into(), a1, 2).is_empty());
        let evicted: Vec<String> = t
            .insert("a2".into(), s(Some("a")), 2)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(evicted, ["a1"]);
        let mut ids: Vec<&String> = t.keys().collect();
        ids.sort();
        assert_eq!(ids, ["a0", "a2", "free", "other"]);
        // Removed sessions leave the holder's count: two more fit without an eviction.
        assert!(t.remove("a0").is_some());
        assert_eq!(t.retain(|id, _| id != "a2"), ["a2"]);
        assert!(t.insert("a3".into(), s(Some("a")), 2).is_empty());
        assert!(t.insert("a4".into(), s(Some("a")), 2).is_empty());
        // Replacing a session does not count it twice.
        assert!(t.insert("a4".into(), s(Some("a")), 2).is_empty());
        assert_eq!(t.len(), 4);
        assert_eq!(t.drain().len(), 4);
        assert!(t.by_holder.is_empty());
    }

    #[test]
    fn ipv6_callers_count_by_their_56_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:200:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2ff:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:300::1".parse().unwrap();
        let key = |ip| SessionHolder::Address(ip).key();
        assert_eq!(key(a), key(b));
        assert_ne!(key(a), key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(key(mapped), key("192.0.2.7".parse().unwrap()));
        assert_ne!(
            SessionHolder::User("192.0.2.7".into()).key(),
            key("192.0.2.7".parse().unwrap())
        );
    }
}
