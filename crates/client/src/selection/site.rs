//! Sites: what per-site isolation keeps apart.
//!
//! A site is a *registrable domain* ("eTLD+1"): the public suffix (from the
//! Public Suffix List) plus one label. `www.example.co.uk` and
//! `img.example.co.uk` are one site, `example.co.uk`; `alice.github.io` and
//! `bob.github.io` are two, because `github.io` is itself a public suffix.
//! This is the boundary browsers use for cookies, so putting one site on one
//! egress keeps a site's own subdomains together (no login broken by a
//! changing address) while different sites cannot correlate a user by a
//! shared egress address.
//!
//! The list is the [`psl`] crate's, compiled into the binary: no file or
//! network access at run time, and it is updated by updating the crate.

use std::fmt;
use std::net::IpAddr;

use openrelay_wire::target::{Host, TargetError};

/// A site: a registrable domain, or an IP address.
///
/// `Debug` is redacted like [`Host`]'s: a site is a destination, and the
/// client logs destinations only at debug level, explicitly
/// ([`SiteKey::as_str`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteKey(String);

impl SiteKey {
    /// The site of a destination host:
    /// * an IP literal is its own site (in canonical form, so an
    ///   IPv4-mapped IPv6 address is the same site as the IPv4 address);
    /// * a name's registrable domain by the public suffix list;
    /// * a name with no registrable domain (a public suffix itself, such as
    ///   `co.uk`, or a single label such as `localhost`) is its own site.
    pub fn of(host: &Host) -> SiteKey {
        match host {
            Host::Ip(ip) => SiteKey::of_ip(*ip),
            // `DomainName` is already lower-case ASCII without a trailing
            // dot, the form the list's lookup expects.
            Host::Name(name) => {
                let name = name.as_str();
                SiteKey(psl::domain_str(name).unwrap_or(name).to_owned())
            }
        }
    }

    /// The site of an IP address.
    pub fn of_ip(ip: IpAddr) -> SiteKey {
        SiteKey(ip.to_canonical().to_string())
    }

    /// The site of a bare host as text (`www.Example.com.`, `192.0.2.1`,
    /// `2001:db8::1`), validated as [`Host::parse`] does.
    pub fn parse(host: &str) -> Result<SiteKey, TargetError> {
        Host::parse(host).map(|host| SiteKey::of(&host))
    }

    /// The site as text: a lower-case domain name or an IP address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SiteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SiteKey(<redacted>)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn site(host: &str) -> String {
        SiteKey::parse(host).unwrap().as_str().to_owned()
    }

    #[test]
    fn names_map_to_their_registrable_domain() {
        assert_eq!(site("example.com"), "example.com");
        assert_eq!(site("www.example.com"), "example.com");
        assert_eq!(site("a.b.c.example.com"), "example.com");
        assert_eq!(site("WWW.Example.COM."), "example.com");
        assert_eq!(site("www.example.co.uk"), "example.co.uk");
        assert_eq!(site("img.example.co.uk"), "example.co.uk");
        assert_eq!(site("news.bbc.co.uk"), "bbc.co.uk");
    }

    #[test]
    fn private_suffixes_separate_their_tenants() {
        assert_eq!(site("alice.github.io"), "alice.github.io");
        assert_eq!(site("www.alice.github.io"), "alice.github.io");
        assert_ne!(site("alice.github.io"), site("bob.github.io"));
    }

    #[test]
    fn names_without_a_registrable_domain_are_their_own_site() {
        assert_eq!(site("co.uk"), "co.uk");
        assert_eq!(site("com"), "com");
        assert_eq!(site("localhost"), "localhost");
        // An unlisted top-level domain: the default rule `*` makes its last
        // label the suffix.
        assert_eq!(site("a.b.internal-tld"), "b.internal-tld");
    }

    #[test]
    fn ip_literals_are_their_own_site() {
        assert_eq!(site("192.0.2.1"), "192.0.2.1");
        assert_ne!(site("192.0.2.1"), site("192.0.2.2"));
        assert_eq!(site("2001:DB8::1"), "2001:db8::1");
        assert_eq!(site("::ffff:192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn debug_does_not_show_the_site() {
        let key = SiteKey::parse("secret.example").unwrap();
        assert!(!format!("{key:?}").contains("secret"));
    }

    proptest! {
        /// Any valid host has a site that is a suffix of the host, made of
        /// whole labels, and every name under it maps to it.
        #[test]
        fn a_site_is_a_label_suffix_and_stable(labels in prop::collection::vec("[a-z0-9-]{1,10}", 1..6)) {
            let host = labels.join(".");
            if let Ok(key) = SiteKey::parse(&host) {
                let key = key.as_str().to_owned();
                let dotted = format!(".{}", key);
                prop_assert!(host == key || host.ends_with(&dotted));
                let sub = format!("www.{host}");
                if SiteKey::parse(&sub).is_ok() && host != key {
                    prop_assert_eq!(site(&sub), key);
                }
            }
        }
    }
}
