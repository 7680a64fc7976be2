//! Login sessions: bearer → account, until the session expires. Bounded:
//! an account holds at most [`MAX_PER_ACCOUNT`] sessions (a new login
//! replaces its oldest), so memory grows only with accounts, which each cost
//! a registration puzzle. Expired sessions are dropped at the account's next
//! login and by [`Sessions::prune`], which the issuer runs with its key
//! rotation (at least once a minute).

use std::collections::{HashMap, VecDeque};

/// Sessions one account may hold at once.
pub const MAX_PER_ACCOUNT: usize = 16;

#[derive(Debug)]
struct Session {
    username: String,
    expires: u64,
}

/// The open sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    by_bearer: HashMap<String, Session>,
    /// Each account's bearers, oldest first.
    by_account: HashMap<String, VecDeque<String>>,
}

impl Sessions {
    /// Opens a session `bearer` for `username` until `expires`, at `now`.
    pub fn open(&mut self, bearer: String, username: &str, expires: u64, now: u64) {
        self.expire(username, now);
        let bearers = self.by_account.entry(username.to_owned()).or_default();
        while bearers.len() >= MAX_PER_ACCOUNT {
            if let Some(oldest) = bearers.pop_front() {
                self.by_bearer.remove(&oldest);
            }
        }
        bearers.push_back(bearer.clone());
        self.by_bearer.insert(
            bearer,
            Session {
                username: username.to_owned(),
                expires,
            },
        );
    }

    /// The account of `bearer`, if its session is open at `now`.
    pub fn account(&self, bearer: &str, now: u64) -> Option<&str> {
        self.by_bearer
            .get(bearer)
            .filter(|s| s.expires > now)
            .map(|s| s.username.as_str())
    }

    /// Drops `username`'s expired sessions.
    fn expire(&mut self, username: &str, now: u64) {
        let Some(bearers) = self.by_account.get_mut(username) else {
            return;
        };
        let by_bearer = &mut self.by_bearer;
        bearers.retain(|bearer| match by_bearer.get(bearer) {
            Some(session) if session.expires > now => true,
            _ => {
                by_bearer.remove(bearer);
                false
            }
        });
        if bearers.is_empty() {
            self.by_account.remove(username);
        }
    }

    /// Drops every session expired at `now`.
    pub fn prune(&mut self, now: u64) {
        self.by_bearer.retain(|_, s| s.expires > now);
        let by_bearer = &self.by_bearer;
        self.by_account.retain(|_, bearers| {
            bearers.retain(|b| by_bearer.contains_key(b));
            !bearers.is_empty()
        });
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.by_bearer.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by_bearer.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_an_account_holds_a_bounded_number() {
        let mut sessions = Sessions::default();
        sessions.open("a".into(), "alice", 100, 0);
        assert_eq!(sessions.account("a", 99), Some("alice"));
        assert_eq!(sessions.account("a", 100), None);
        for n in 0..1000 {
            sessions.open(format!("b{n}"), "bob", 1000, 1);
        }
        assert_eq!(sessions.len(), 1 + MAX_PER_ACCOUNT);
        assert_eq!(sessions.account("b999", 2), Some("bob"));
        assert_eq!(sessions.account("b0", 2), None, "the oldest was replaced");
        // Alice's expired session goes at her next login.
        sessions.open("c".into(), "alice", 300, 200);
        assert_eq!(sessions.len(), 1 + MAX_PER_ACCOUNT);
        sessions.prune(1000);
        assert_eq!(sessions.len(), 0);
        assert!(sessions.by_account.is_empty());
    }
}
