//! Collector options. A collector that has any declares them once, in its own file, with
//! [`collector_options!`]: one type that is both its command-line flags
//! (`--collector.<name>.<option>`) and its table in the configuration file
//! (`[collector.<name>]`, the same options with `_` for `-`). Every option is optional: a flag
//! wins over the file, the collector's own default over nothing. The registry's `Options`
//! (`collectors::Options`, made by [`options_table!`]) mounts each such type once, flattened
//! into the command line and read from the file's `[collector]` table.

use std::str::FromStr;

use regex::Regex;

/// A regular expression option (Go RE2 syntax, as node_exporter's flags; Rust's regex crate
/// reads the same syntax), parsed from a flag or from the file.
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl Pattern {
    /// The pattern, or `default` (a built-in pattern) when the option is not set.
    pub fn or_default(p: &Option<Pattern>, default: &str) -> Regex {
        match p {
            Some(p) => p.0.clone(),
            None => Regex::new(default).unwrap_or_else(|_| unreachable!("built-in pattern")),
        }
    }
}

impl FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Regex::new(s)
            .map(Pattern)
            .map_err(|e| format!("invalid regular expression '{s}': {e}"))
    }
}

impl PartialEq for Pattern {
    fn eq(&self, o: &Self) -> bool {
        self.0.as_str() == o.0.as_str()
    }
}

impl<'de> serde::Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A path flag whose empty value means "none", as node_exporter's string flags with an empty
/// default (`--collector.qdisc.fixtures=`); clap's own path parser refuses an empty value.
pub fn parse_path_or_empty(s: &str) -> Result<std::path::PathBuf, String> {
    Ok(std::path::PathBuf::from(s))
}

/// A boolean flag's value: `--flag` alone (clap's `default_missing_value = "true"`),
/// `--flag=true` / `--flag=false` (also `1` / `0`), as node_exporter's kingpin booleans.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true or false, not '{s}'")),
    }
}

/// A duration option in Go's `time.ParseDuration` syntax (`500ms`, `5s`, `1m30s`), as
/// node_exporter's duration flags; the file takes the same string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDurationOpt(pub std::time::Duration);

impl FromStr for GoDurationOpt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::values::parse_go_duration(s).map(GoDurationOpt)
    }
}

impl<'de> serde::Deserialize<'de> for GoDurationOpt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What every collector's options type does: combine the flags (`self`) with the file's
/// table, and check what the types alone cannot (e.g. mutually exclusive options).
pub trait Merge: Sized {
    fn merge(self, file: Self) -> Self;
    fn check(&self) -> Result<(), String>;
}

/// Declares a collector's options type: clap arguments and a TOML table in one. Every field is
/// an `Option`; an optional `check(self) { ... }` block validates the merged value.
macro_rules! collector_options {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : Option<$ty:ty> ),* $(,)?
        }
        $( check($s:ident) $body:block )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* #[serde(default)] pub $field: Option<$ty>, )*
        }

        impl $crate::collector::options::Merge for $name {
            fn merge(self, file: Self) -> Self {
                $name { $( $field: self.$field.or(file.$field), )* }
            }
            #[allow(unreachable_code)]
            fn check(&self) -> Result<(), String> {
                $( let $s = self; return $body; )?
                Ok(())
            }
        }
    };
}
pub(crate) use collector_options;

/// Mounts each collector's options type once, as `Options` (invoked by the registry,
/// the collectors module).
macro_rules! options_table {
    ($(#[$meta:meta])* $($field:ident: $ty:ty),* $(,)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Options {
            $( #[command(flatten)] #[serde(default)] pub $field: $ty, )*
        }

        impl Options {
            /// The flags (`self`) over the file's values.
            pub fn merge(self, file: Options) -> Options {
                use $crate::collector::options::Merge;
                Options { $( $field: Merge::merge(self.$field, file.$field), )* }
            }

            /// Each collector's own check, named.
            pub fn check(&self) -> Result<(), String> {
                use $crate::collector::options::Merge;
                $( Merge::check(&self.$field).map_err(|e| format!("{}: {e}", stringify!($field)))?; )*
                Ok(())
            }
        }
    };
}
pub(crate) use options_table;
