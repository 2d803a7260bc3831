//! Which events one connection receives (design.md, "Subscriptions"): a new connection receives
//! every event it may see; after `Subscribe`, only the named events; `Unsubscribe` removes names.
//!
//! "Never subscribed" and "subscribed to a set that became empty" are different states: a
//! connection that unsubscribes from everything it subscribed to receives no events at all (only
//! the replies to its own commands), not every event again.

use super::protocol::EVENT_NAMES;

/// Replies to a connection's own commands: delivered whatever it subscribed to.
pub(super) const REPLIES: &[&str] = &["CommandResponse", "RateLimitWarning"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// Never subscribed: every event except the names unsubscribed since (none at first).
    AllExcept(Vec<String>),
    /// Subscribed: only these names (none once all were unsubscribed).
    Only(Vec<String>),
}

impl Default for Subscription {
    fn default() -> Self {
        Self::AllExcept(Vec::new())
    }
}

impl Subscription {
    /// Whether the event named `name` is wanted (replies are not subject to subscriptions: the
    /// hub delivers them without asking).
    pub fn wants(&self, name: &str) -> bool {
        match self {
            Self::AllExcept(removed) => !removed.iter().any(|e| e == name),
            Self::Only(names) => names.iter().any(|e| e == name),
        }
    }

    /// `Subscribe`: from now on the named events only, added to those subscribed before.
    pub fn subscribe(&mut self, events: impl IntoIterator<Item = String>) {
        if matches!(self, Self::AllExcept(_)) {
            *self = Self::Only(Vec::new());
        }
        if let Self::Only(names) = self {
            for e in events {
                if !names.contains(&e) {
                    names.push(e);
                }
            }
        }
    }

    /// `Unsubscribe`: the named events are no longer received. On a connection that never
    /// subscribed, that is every event but those (names no event has are ignored, so the list
    /// stays bounded).
    pub fn unsubscribe(&mut self, events: &[String]) {
        match self {
            Self::AllExcept(removed) => {
                for e in events {
                    if EVENT_NAMES.contains(&e.as_str()) && !removed.contains(e) {
                        removed.push(e.clone());
                    }
                }
            }
            Self::Only(names) => names.retain(|e| !events.contains(e)),
        }
    }

    /// The names of the events received, as `GetStatus` and the answers to `Subscribe` and
    /// `Unsubscribe` report them (every event name but the replies when never subscribed).
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::AllExcept(removed) => EVENT_NAMES
                .iter()
                .filter(|n| !REPLIES.contains(*n) && !removed.iter().any(|r| r == *n))
                .map(|n| n.to_string())
                .collect(),
            Self::Only(names) => names.clone(),
        }
    }

    /// Whether this is a new connection's "every event" (for the stats).
    pub fn is_everything(&self) -> bool {
        matches!(self, Self::AllExcept(removed) if removed.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_new_connection_wants_every_event() {
        let s = Subscription::default();
        assert!(s.is_everything());
        for name in EVENT_NAMES {
            assert!(s.wants(name), "{name}");
        }
        assert_eq!(s.names().len(), EVENT_NAMES.len() - REPLIES.len());
    }

    #[test]
    fn subscribe_narrows_to_the_named_events() {
        let mut s = Subscription::default();
        s.subscribe(names(&["PlaybackStarted"]));
        s.subscribe(names(&["LiveStats", "PlaybackStarted"]));
        assert!(s.wants("PlaybackStarted") && s.wants("LiveStats"));
        assert!(!s.wants("QualityChanged"));
        assert_eq!(s.names(), names(&["PlaybackStarted", "LiveStats"]));
    }

    #[test]
    fn unsubscribing_every_subscribed_event_leaves_none() {
        let mut s = Subscription::default();
        s.subscribe(names(&["PlaybackStarted"]));
        s.unsubscribe(&names(&["PlaybackStarted"]));
        assert_eq!(s, Subscription::Only(Vec::new()));
        assert!(!s.is_everything());
        for name in EVENT_NAMES {
            assert!(!s.wants(name), "{name} after unsubscribing from everything");
        }
        assert!(s.names().is_empty());
    }

    #[test]
    fn unsubscribing_without_subscribing_removes_names_from_everything() {
        let mut s = Subscription::default();
        s.unsubscribe(&names(&[
            "PlaybackProgress",
            "NoSuchEvent",
            "PlaybackProgress",
        ]));
        assert_eq!(s, Subscription::AllExcept(names(&["PlaybackProgress"])));
        assert!(!s.wants("PlaybackProgress"));
        assert!(s.wants("PlaybackStarted") && s.wants("LiveStats"));
        assert!(!s.names().contains(&"PlaybackProgress".to_string()));
        assert_eq!(s.names().len(), EVENT_NAMES.len() - REPLIES.len() - 1);
        // A later Subscribe narrows to what it names, as on any connection.
        s.subscribe(names(&["LiveStats"]));
        assert_eq!(s, Subscription::Only(names(&["LiveStats"])));
    }
}
