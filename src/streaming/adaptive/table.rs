//! The streaming sessions held in memory, and who holds them.
//!
//! Sessions are capped in all ([`super::MAX_SESSIONS`]); without a share per holder one client
//! creating sessions in a loop would fill the whole table and shut every new listener out for
//! the half hour sessions take to expire. Each holder (a listener, or an address for anonymous
//! callers) gets a share; past it, its own oldest session makes room, so a looping client only
//! ever churns through its own sessions, and a real player, which leaves a session behind at
//! each track when it does not end it, loses only sessions it has long stopped using.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::ops::Deref;

/// Sessions a signed-in listener may hold at once: a player per device, a session per track
/// for players that never end theirs, with room to spare.
pub const SESSIONS_PER_USER: usize = 64;

/// Sessions the anonymous callers of one address may hold at once. Generous, because many
/// listeners can share an address (a campus behind NAT); the share only has to be far below
/// the total, so that filling the table takes a hundred networks rather than one client.
pub const SESSIONS_PER_ADDRESS: usize = 1024;

/// Who holds a session, for the share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionHolder {
    User(String),
    /// An anonymous caller's address. IPv6 addresses count by their /64, which one host
    /// commonly holds whole.
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
                    format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
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
}

/// Sessions by id, and each holder's sessions oldest first. Reads go through `Deref` to the
/// map; every change goes through the methods below, which keep both in step.
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
    /// returns the holder's oldest sessions beyond it.
    pub fn insert(&mut self, id: String, session: S, share: usize) -> Vec<(String, S)> {
        self.remove(&id);
        let mut evicted = Vec::new();
        if let Some(holder) = session.holder() {
            let held = self.by_holder.entry(holder.to_string()).or_default();
            held.push_back(id.clone());
            let over = held.len().saturating_sub(share.max(1));
            let oldest: Vec<String> = held.drain(..over).collect();
            for old in oldest {
                if let Some(s) = self.by_id.remove(&old) {
                    evicted.push((old, s));
                }
            }
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

    struct S(Option<&'static str>);

    impl Held for S {
        fn holder(&self) -> Option<&str> {
            self.0
        }
    }

    #[test]
    fn a_holder_past_its_share_loses_its_oldest_sessions_only() {
        let mut t = SessionTable::default();
        assert!(t.insert("other".into(), S(Some("b")), 2).is_empty());
        assert!(t.insert("free".into(), S(None), 2).is_empty());
        for i in 0..2 {
            assert!(t.insert(format!("a{i}"), S(Some("a")), 2).is_empty());
        }
        let evicted: Vec<String> = t
            .insert("a2".into(), S(Some("a")), 2)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(evicted, ["a0"]);
        let mut ids: Vec<&String> = t.keys().collect();
        ids.sort();
        assert_eq!(ids, ["a1", "a2", "free", "other"]);
        // Removed sessions leave the holder's count: two more fit without an eviction.
        assert!(t.remove("a1").is_some());
        assert_eq!(t.retain(|id, _| id != "a2"), ["a2"]);
        assert!(t.insert("a3".into(), S(Some("a")), 2).is_empty());
        assert!(t.insert("a4".into(), S(Some("a")), 2).is_empty());
        // Replacing a session does not count it twice.
        assert!(t.insert("a4".into(), S(Some("a")), 2).is_empty());
        assert_eq!(t.len(), 4);
        assert_eq!(t.drain().len(), 4);
        assert!(t.by_holder.is_empty());
    }

    #[test]
    fn ipv6_callers_count_by_their_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
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
