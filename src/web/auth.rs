//! `basic_auth_users` and `rate_limit`, built so that authentication is no CPU weapon:
//! - bcrypt runs on tokio's blocking pool, never on the async workers, at most
//!   [`BCRYPT_PARALLEL`] at a time;
//! - a successful (user, password) is remembered (keyed by SHA-256 of the user, the stored
//!   hash and the password, so a changed hash or a cache-poisoning user name never matches:
//!   CVE-2022-46146), so a legitimate scraper costs one bcrypt per process lifetime;
//! - failures are rate-limited per peer address (IPv6 by /64) before any bcrypt runs;
//! - an unknown user costs one bcrypt against a dummy hash of the users' usual cost, as a
//!   wrong password does (no user enumeration by timing).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// bcrypt checks running at once (each takes a core for its duration).
pub const BCRYPT_PARALLEL: usize = 2;
/// Successful logins remembered (exporter-toolkit keeps 100).
const CACHE_SIZE: usize = 100;
/// Failed attempts a peer may make at once, and how fast the allowance comes back.
const PEER_FAILURE_BURST: f64 = 5.0;
const PEER_FAILURE_REFILL: Duration = Duration::from_secs(1);
/// Failed attempts from all peers together: a burst, then this many a second. Bounds the CPU
/// an attacker with many addresses can make bcrypt burn (about 10 × 65 ms ≈ 0.65 of a core
/// at cost 10); past it, uncached credentials get 429 until the budget refills.
const GLOBAL_FAILURE_BURST: u32 = 20;
const GLOBAL_FAILURES_PER_SECOND: u32 = 10;
/// Peers tracked; beyond this, peers whose allowance is full are forgotten first.
const MAX_PEERS: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A token bucket: `burst` tokens, one more every `every` (golang.org/x/time/rate's
/// `Limiter.Allow`; a burst of 0 allows nothing).
#[derive(Debug)]
pub struct Bucket {
    every: Duration,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub fn new(every: Duration, burst: u32) -> Bucket {
        Bucket {
            every,
            burst: burst as f64,
            state: Mutex::new((burst as f64, Instant::now())),
        }
    }

    fn refill(&self, s: &mut (f64, Instant), now: Instant) {
        let gained = now.duration_since(s.1).as_secs_f64() / self.every.as_secs_f64();
        s.0 = (s.0 + gained).min(self.burst);
        s.1 = now;
    }

    /// Takes a token if one is there.
    pub fn allow(&self) -> bool {
        let mut s = lock(&self.state);
        self.refill(&mut s, Instant::now());
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The users and their hashes, with the cache of successful logins (replaced with them by a
/// reload).
#[derive(Debug)]
pub struct Users {
    hashes: BTreeMap<String, String>,
    /// The users' most common bcrypt cost: the dummy hash's.
    dummy_cost: u32,
    dummy: OnceLock<String>,
    cache: Mutex<HashSet<[u8; 32]>>,
}

/// Checks a bcrypt hash's format and cost (Go's `bcrypt.Cost`).
pub fn hash_cost(hash: &str) -> Result<u32, String> {
    if hash.len() < 59 {
        return Err("crypto/bcrypt: hashedSecret too short to be a bcrypted password".into());
    }
    hash.parse::<bcrypt::HashParts>()
        .map(|p| p.get_cost())
        .map_err(|e| format!("not a bcrypt hash: {e}"))
}

impl Users {
    /// `hashes` must have passed [`hash_cost`].
    pub fn new(hashes: BTreeMap<String, String>) -> Users {
        let mut by_cost: BTreeMap<u32, usize> = BTreeMap::new();
        for h in hashes.values() {
            if let Ok(c) = hash_cost(h) {
                *by_cost.entry(c).or_default() += 1;
            }
        }
        // The most common cost; on a tie the lowest (cheapest to make).
        let dummy_cost = by_cost
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map_or(bcrypt::DEFAULT_COST, |(c, _)| *c);
        Users {
            hashes,
            dummy_cost,
            dummy: OnceLock::new(),
            cache: Mutex::new(HashSet::new()),
        }
    }

    fn dummy(&self) -> &str {
        self.dummy.get_or_init(|| {
            bcrypt::hash("monitoring-agent: not a password", self.dummy_cost).unwrap_or_else(|_| {
                // Same string as exporter-toolkit's fixed hash ("fakepassword", cost 10).
                "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi".into()
            })
        })
    }
}

fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The outcome of a request's `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// 401 with `WWW-Authenticate: Basic`.
    Denied,
    /// 429: this peer failed too often; no bcrypt was run.
    Throttled,
}

/// Shared by every request, across reloads: the bcrypt slots and the per-peer failure budget.
pub struct Guard {
    slots: Arc<Semaphore>,
    peers: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    /// One failure allowance back every this long.
    refill: Duration,
    /// Failures from all peers together (see [`GLOBAL_FAILURE_BURST`]).
    global: Mutex<(f64, Instant)>,
    pub bcrypt_runs: std::sync::atomic::AtomicU64,
    pub throttled: std::sync::atomic::AtomicU64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            slots: Arc::new(Semaphore::new(BCRYPT_PARALLEL)),
            peers: Mutex::new(HashMap::new()),
            refill: PEER_FAILURE_REFILL,
            global: Mutex::new((GLOBAL_FAILURE_BURST as f64, Instant::now())),
            bcrypt_runs: Default::default(),
            throttled: Default::default(),
        }
    }
}

/// The peer's key: its address, or its /64 for IPv6 (one host usually holds a whole /64).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl Guard {
    fn refill(&self, s: &mut (f64, Instant), now: Instant) {
        let gained = now.duration_since(s.1).as_secs_f64() / self.refill.as_secs_f64();
        s.0 = (s.0 + gained).min(PEER_FAILURE_BURST);
        s.1 = now;
    }

    fn refill_global(g: &mut (f64, Instant)) {
        let now = Instant::now();
        let gained = now.duration_since(g.1).as_secs_f64() * GLOBAL_FAILURES_PER_SECOND as f64;
        g.0 = (g.0 + gained).min(GLOBAL_FAILURE_BURST as f64);
        g.1 = now;
    }

    /// Takes one attempt from this peer's allowance and from the global one, before any bcrypt
    /// runs (so requests waiting for a bcrypt slot are already counted); false, taking nothing,
    /// when either is empty. A success gives both back ([`Guard::refund`]).
    fn take(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut peers = lock(&self.peers);
        if !peers.contains_key(&peer_key(ip)) && peers.len() >= MAX_PEERS {
            peers.retain(|_, s| {
                self.refill(s, now);
                s.0 < PEER_FAILURE_BURST
            });
            if peers.len() >= MAX_PEERS {
                // Still full of failing peers: forget the one that failed longest ago.
                if let Some(oldest) = peers.iter().min_by_key(|(_, s)| s.1).map(|(k, _)| *k) {
                    peers.remove(&oldest);
                }
            }
        }
        let s = peers
            .entry(peer_key(ip))
            .or_insert((PEER_FAILURE_BURST, now));
        self.refill(s, now);
        if s.0 < 1.0 {
            return false;
        }
        let mut g = lock(&self.global);
        Self::refill_global(&mut g);
        if g.0 < 1.0 {
            return false;
        }
        g.0 -= 1.0;
        s.0 -= 1.0;
        true
    }

    /// Gives back what [`Guard::take`] took (the credentials were good).
    fn refund(&self, ip: IpAddr) {
        if let Some(s) = lock(&self.peers).get_mut(&peer_key(ip)) {
            s.0 = (s.0 + 1.0).min(PEER_FAILURE_BURST);
        }
        let mut g = lock(&self.global);
        g.0 = (g.0 + 1.0).min(GLOBAL_FAILURE_BURST as f64);
    }

    /// Checks the request's credentials against `users`.
    pub async fn check(
        &self,
        users: &Arc<Users>,
        peer: IpAddr,
        authorization: Option<&[u8]>,
    ) -> Verdict {
        use std::sync::atomic::Ordering;
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Verdict::Denied;
        };
        let stored = users.hashes.get(&user).cloned();
        let key = cache_key(&user, stored.as_deref().unwrap_or(""), &password);
        if stored.is_some() && lock(&users.cache).contains(&key) {
            return Verdict::Ok;
        }
        if !self.take(peer) {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return Verdict::Throttled;
        }
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            return Verdict::Denied;
        };
        self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
        let u = users.clone();
        let ok = tokio::task::spawn_blocking(move || match stored {
            Some(h) => bcrypt::verify(&password, &h).unwrap_or(false),
            None => {
                // The same work as a wrong password, and never a success.
                let _ = bcrypt::verify(&password, u.dummy());
                false
            }
        })
        .await
        .unwrap_or(false);
        if ok {
            let mut cache = lock(&users.cache);
            if cache.len() >= CACHE_SIZE {
                // Rare (a hundred distinct good logins): start over.
                cache.clear();
            }
            cache.insert(key);
            drop(cache);
            self.refund(peer);
            Verdict::Ok
        } else {
            Verdict::Denied
        }
    }
}

/// `Authorization: Basic base64(user:password)`.
fn parse_basic(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(rest.trim())?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Standard base64 with padding (RFC 4648), as `Authorization: Basic` uses.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let b = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 != 0 || s.len() - b.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() * 3 / 4);
    for chunk in b.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_parses() {
        // "dave:dave123"
        assert_eq!(
            parse_basic(b"Basic ZGF2ZTpkYXZlMTIz"),
            Some(("dave".into(), b"dave123".to_vec()))
        );
        // "a:b:c" keeps the colon in the password.
        assert_eq!(
            parse_basic(b"basic YTpiOmM="),
            Some(("a".into(), b"b:c".to_vec()))
        );
        assert_eq!(parse_basic(b"Bearer x"), None);
        assert_eq!(parse_basic(b"Basic !!!!"), None);
        assert_eq!(parse_basic(b"Basic bm9jb2xvbg=="), None); // "nocolon"
    }

    #[test]
    fn bucket_follows_x_time_rate() {
        let b = Bucket::new(Duration::from_secs(3600), 0);
        assert!(!b.allow(), "a burst of 0 allows nothing");
        let b = Bucket::new(Duration::from_secs(3600), 2);
        assert!(b.allow() && b.allow());
        assert!(!b.allow());
    }

    #[test]
    fn bcrypt_cost_check_is_gos() {
        assert_eq!(
            hash_cost("$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu"),
            Ok(10)
        );
        assert!(hash_cost("doe")
            .expect_err("short")
            .contains("hashedSecret too short"));
    }

    #[test]
    fn cache_keys_separate_user_hash_and_password() {
        // CVE-2022-46146: "alice$2y$..." + "x" must not equal "alice" + "$2y$...x".
        assert_ne!(cache_key("ab", "c", b"d"), cache_key("a", "bc", b"d"));
        assert_ne!(cache_key("a", "b", b"cd"), cache_key("a", "bc", b"d"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_are_throttled_per_peer_and_good_logins_cached() {
        // carol/carol123 and dave/dave123: exporter-toolkit's test users (cost 10).
        let users = Arc::new(Users::new(BTreeMap::from([
            (
                "carol".to_string(),
                "$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu".to_string(),
            ),
            (
                "dave".to_string(),
                "$2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq".to_string(),
            ),
        ])));
        // Slow refill: debug-build bcrypt takes long enough to earn allowances back.
        let g = Guard {
            refill: Duration::from_secs(3600),
            ..Guard::default()
        };
        let bad: IpAddr = "192.0.2.1".parse().expect("ip");
        let good: IpAddr = "192.0.2.2".parse().expect("ip");
        // "dave:wrong", "nobody:x"
        for _ in 0..5 {
            assert_eq!(
                g.check(&users, bad, Some(b"Basic ZGF2ZTp3cm9uZw==")).await,
                Verdict::Denied
            );
        }
        assert_eq!(
            g.check(&users, bad, Some(b"Basic bm9ib2R5Ong=")).await,
            Verdict::Throttled
        );
        let runs = g.bcrypt_runs.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(runs, 5, "a throttled attempt runs no bcrypt");
        // Another peer is unaffected; its good login runs bcrypt once, then comes from the cache.
        assert_eq!(
            g.check(&users, good, Some(b"Basic Y2Fyb2w6Y2Fyb2wxMjM="))
                .await,
            Verdict::Ok
        );
        assert_eq!(
            g.check(&users, good, Some(b"Basic Y2Fyb2w6Y2Fyb2wxMjM="))
                .await,
            Verdict::Ok
        );
        assert_eq!(
            g.bcrypt_runs.load(std::sync::atomic::Ordering::Relaxed),
            runs + 1
        );
        // Unknown user: denied after one bcrypt (against the dummy hash), like a wrong password.
        assert_eq!(
            g.check(&users, good, Some(b"Basic bm9ib2R5Ong=")).await,
            Verdict::Denied
        );
        assert_eq!(
            g.bcrypt_runs.load(std::sync::atomic::Ordering::Relaxed),
            runs + 2
        );
        assert_eq!(users.dummy_cost, 10);
        assert_eq!(hash_cost(users.dummy()), Ok(10));
    }
}
