//! `logind` collector: sessions registered in systemd-logind, over D-Bus, as node_exporter
//! 1.12's `collector/logind_linux.go` (Apache-2.0; name, labels, help text and the fixed label
//! values follow it). Off by default, as there.
//!
//! One family, `node_logind_sessions{seat,remote,type,class}`: for every combination of
//! `remote` in (`true`, `false`), `type` in (`other`, `unspecified`, `tty`, `x11`, `wayland`,
//! `mir`, `web`), `class` in (`other`, `user`, `greeter`, `lock-screen`, `background`) and
//! `seat` in the seats `ListSeats` returns plus the empty seat (remote sessions such as SSH),
//! the number of sessions of `ListSessions` with those properties (0 included). A session's
//! `Type` or `Class` outside those lists counts as `other`.
//!
//! A session whose `Remote`, `Type` or `Class` property cannot be read is not counted, as
//! node_exporter; a failed `ListSeats` or `ListSessions` fails the collector.
//!
//! **The connection** is the one the `systemd` collector uses (`systemd::with_bus`): the system
//! bus, first reached before the sandbox, reconnected under it through the `dbus` policy
//! fragment, which lists this collector. node_exporter opens a new private connection on every
//! scrape; the answers are the same.
//!
//! Known difference: a `Remote` property that is not a boolean (logind always sends one) makes
//! the session uncounted here; node_exporter would print the variant as it is.

use std::collections::HashMap;

use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use super::systemd::with_bus;
use super::{CollectError, Collector, Options, Paths};
use crate::exposition::MetricFamily;

const DEST: &str = "org.freedesktop.login1";
const MANAGER_PATH: &str = "/org/freedesktop/login1";
const MANAGER: &str = "org.freedesktop.login1.Manager";
const SESSION: &str = "org.freedesktop.login1.Session";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// node_exporter's `attrRemoteValues`, `attrTypeValues`, `attrClassValues` (logind as of
/// systemd 229, `other` for values added later).
pub const REMOTE: [&str; 2] = ["true", "false"];
pub const TYPES: [&str; 7] = [
    "other",
    "unspecified",
    "tty",
    "x11",
    "wayland",
    "mir",
    "web",
];
pub const CLASSES: [&str; 5] = ["other", "user", "greeter", "lock-screen", "background"];

pub fn collector(_opts: &Options) -> Box<dyn Collector> {
    Box::new(Logind)
}

/// One session's labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Session {
    pub seat: String,
    pub remote: bool,
    pub kind: String,
    pub class: String,
}

fn known_or_other(v: &str, known: &[&str]) -> String {
    if known.contains(&v) {
        v.to_string()
    } else {
        "other".to_string()
    }
}

/// The family for the seats (without the empty seat, which is added here) and sessions.
pub fn families(seats: &[String], sessions: &[Session]) -> Vec<MetricFamily> {
    let mut counts: HashMap<(&str, &str, &str, &str), u64> = HashMap::new();
    let normalised: Vec<(String, &str, String, String)> = sessions
        .iter()
        .map(|s| {
            (
                s.seat.clone(),
                if s.remote { "true" } else { "false" },
                known_or_other(&s.kind, &TYPES),
                known_or_other(&s.class, &CLASSES),
            )
        })
        .collect();
    for (seat, remote, kind, class) in &normalised {
        *counts
            .entry((seat.as_str(), *remote, kind.as_str(), class.as_str()))
            .or_default() += 1;
    }
    let mut all_seats: Vec<&str> = seats.iter().map(String::as_str).collect();
    all_seats.push("");
    let mut fam = MetricFamily::gauge(
        "node_logind_sessions",
        "Number of sessions registered in logind.",
    );
    for remote in REMOTE {
        for kind in TYPES {
            for class in CLASSES {
                for seat in &all_seats {
                    let n = counts
                        .get(&(*seat, remote, kind, class))
                        .copied()
                        .unwrap_or(0);
                    fam.push(
                        &[
                            ("class", class),
                            ("remote", remote),
                            ("seat", seat),
                            ("type", kind),
                        ],
                        n as f64,
                    );
                }
            }
        }
    }
    vec![fam]
}

/// Whether a zbus error means the connection is gone (not an error reply).
fn broken(e: zbus::Error, what: &str) -> (CollectError, bool) {
    let b = !matches!(e, zbus::Error::MethodError(..) | zbus::Error::FDO(..));
    (CollectError::Other(format!("{what}: {e}")), b)
}

async fn property(conn: &zbus::Connection, path: &str, prop: &str) -> Option<OwnedValue> {
    let reply = conn
        .call_method(Some(DEST), path, Some(PROPERTIES), "Get", &(SESSION, prop))
        .await
        .ok()?;
    reply.body().deserialize::<OwnedValue>().ok()
}

type SeatsReply = Vec<(String, OwnedObjectPath)>;
type SessionsReply = Vec<(String, u32, String, String, OwnedObjectPath)>;

/// One scrape's calls: the seats, and each session's properties.
async fn read(conn: zbus::Connection) -> Result<(Vec<String>, Vec<Session>), (CollectError, bool)> {
    let seats: SeatsReply = conn
        .call_method(Some(DEST), MANAGER_PATH, Some(MANAGER), "ListSeats", &())
        .await
        .map_err(|e| broken(e, "unable to get seats"))?
        .body()
        .deserialize()
        .map_err(|e| broken(e, "unable to get seats"))?;
    let listed: SessionsReply = conn
        .call_method(Some(DEST), MANAGER_PATH, Some(MANAGER), "ListSessions", &())
        .await
        .map_err(|e| broken(e, "unable to get sessions"))?
        .body()
        .deserialize()
        .map_err(|e| broken(e, "unable to get sessions"))?;
    let mut sessions = Vec::with_capacity(listed.len());
    for (_id, _uid, _user, seat, path) in listed {
        let path = path.as_str();
        let Some(remote) = property(&conn, path, "Remote").await else {
            continue;
        };
        let Ok(remote) = bool::try_from(remote) else {
            continue;
        };
        let Some(kind) = property(&conn, path, "Type").await else {
            continue;
        };
        let Ok(kind) = String::try_from(kind) else {
            continue;
        };
        let Some(class) = property(&conn, path, "Class").await else {
            continue;
        };
        let Ok(class) = String::try_from(class) else {
            continue;
        };
        sessions.push(Session {
            seat,
            remote,
            kind,
            class,
        });
    }
    Ok((seats.into_iter().map(|(id, _)| id).collect(), sessions))
}

struct Logind;

impl Collector for Logind {
    fn name(&self) -> &'static str {
        "logind"
    }
    fn collect(&self, _paths: &Paths) -> Result<Vec<MetricFamily>, CollectError> {
        let (seats, sessions) = with_bus(|bus| bus.run("logind", read))?;
        Ok(families(&seats, &sessions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(seat: &str, remote: bool, kind: &str, class: &str) -> Session {
        Session {
            seat: seat.into(),
            remote,
            kind: kind.into(),
            class: class.into(),
        }
    }

    fn value(f: &MetricFamily, labels: [(&str, &str); 4]) -> Option<f64> {
        f.samples
            .iter()
            .find(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
    }

    #[test]
    fn counts_every_combination_as_node_exporter() {
        let seats = vec!["seat0".to_string()];
        let sessions = [
            session("seat0", false, "x11", "user"),
            session("seat0", false, "x11", "user"),
            session("", true, "tty", "user"),
            session("", true, "mosh", "manager"),
        ];
        let fams = families(&seats, &sessions);
        let f = &fams[0];
        // 2 remote values × 7 types × 5 classes × 2 seats (seat0 and the empty seat).
        assert_eq!(f.samples.len(), 2 * 7 * 5 * 2);
        let l = |seat, remote, kind, class| {
            [
                ("seat", seat),
                ("remote", remote),
                ("type", kind),
                ("class", class),
            ]
        };
        assert_eq!(value(f, l("seat0", "false", "x11", "user")), Some(2.0));
        assert_eq!(value(f, l("", "true", "tty", "user")), Some(1.0));
        // Unknown type and class count as `other`.
        assert_eq!(value(f, l("", "true", "other", "other")), Some(1.0));
        assert_eq!(
            value(f, l("seat0", "true", "wayland", "greeter")),
            Some(0.0)
        );
        let total: f64 = f.samples.iter().map(|s| s.value).sum();
        assert_eq!(total, 4.0);
    }

    #[test]
    fn a_session_on_an_unlisted_seat_is_not_exported() {
        // node_exporter iterates over the listed seats only.
        let fams = families(&[], &[session("seat9", false, "tty", "user")]);
        let total: f64 = fams[0].samples.iter().map(|s| s.value).sum();
        assert_eq!(total, 0.0);
        assert_eq!(fams[0].samples.len(), 2 * 7 * 5);
    }
}
