//! Policy fragments: what a collector that needs an extra system interface adds to the
//! sandbox, declared in `policy/fragments/<name>.json` (which collectors need it, and its
//! seccomp rules per architecture). `build.rs` compiles the `main` filter once per combination
//! of fragments; at start-up [`crate::sandbox::seccomp::apply`] installs the one made of the base
//! policy and the fragments of the enabled collectors only. With the default collectors no
//! fragment is in force.
//!
//! The fragments in force are fixed at start-up: a SIGHUP that enables a collector whose
//! fragment is not in force does not run it (its system calls would kill the process) and
//! says that it takes effect after a restart (`src/reload.rs`).

/// One policy fragment (`policy/fragments/<name>.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// The file's name without `.json`, e.g. `dbus`.
    pub name: &'static str,
    /// The collectors that need it.
    pub collectors: &'static [&'static str],
    /// What it allows and why (the file's `comment`).
    pub comment: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/policy_fragments.rs"));

/// A set of fragments, as the bit mask `build.rs` indexes the compiled variants by (fragment
/// `i` of [`FRAGMENTS`] is bit `i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Set(pub usize);

impl Set {
    /// The fragments the given collectors need.
    pub fn for_collectors<S: AsRef<str>>(enabled: &[S]) -> Set {
        let mut mask = 0;
        for (i, f) in FRAGMENTS.iter().enumerate() {
            if enabled.iter().any(|c| f.collectors.contains(&c.as_ref())) {
                mask |= 1 << i;
            }
        }
        Set(mask)
    }

    /// Whether every fragment of `other` is in this set.
    pub fn contains(self, other: Set) -> bool {
        other.0 & !self.0 == 0
    }

    /// The fragments in the set, in name order.
    pub fn fragments(self) -> impl Iterator<Item = &'static Fragment> {
        FRAGMENTS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, f)| f)
    }

    /// The names, in name order.
    pub fn names(self) -> Vec<&'static str> {
        self.fragments().map(|f| f.name).collect()
    }

    /// For messages: `dbus, netlink-route` or `none`.
    pub fn describe(self) -> String {
        let names = self.names();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fragment_names_known_collectors() {
        assert!(!FRAGMENTS.is_empty());
        for f in FRAGMENTS {
            for c in f.collectors {
                assert!(
                    crate::collectors::known(c).is_some() || crate::collectors::MODES.contains(c),
                    "fragment {} names the unknown collector or mode {c}",
                    f.name
                );
            }
        }
        assert_eq!(MAIN_VARIANTS.len(), 1 << FRAGMENTS.len());
    }

    #[test]
    fn default_collectors_need_no_fragment() {
        let defaults: Vec<&str> = crate::collectors::KNOWN
            .iter()
            .filter(|k| k.default_on)
            .map(|k| k.name)
            .collect();
        assert_eq!(Set::for_collectors(&defaults), Set(0));
        // Nor with their default options (the netlink modes are off).
        let defaults_static: Vec<&'static str> = defaults.clone();
        let users = crate::collectors::policy_users(
            &defaults_static,
            &crate::collectors::Options::default(),
        );
        assert_eq!(Set::for_collectors(&users), Set(0));
        let with_systemd: Vec<&str> = defaults.iter().copied().chain(["systemd"]).collect();
        let set = Set::for_collectors(&with_systemd);
        assert_eq!(set.names(), vec!["dbus"]);
        assert!(set.contains(Set(0)));
        assert!(!Set(0).contains(set));
    }
}
