//! Fields that were renamed, and the message a file using an old name gets.
//!
//! A renamed field is refused with a message naming its new name rather
//! than accepted under both: the fields renamed so far each weaken a
//! guarantee, and their new names say so (`dangerously_...`, as rustls
//! names `dangerous()`). Accepting the old name with a warning in a log
//! would keep old files weakening it without saying so; refusing costs one
//! edit, once, and the file then says what it does.
//!
//! The check runs only when a file fails to parse (every table is parsed
//! strictly, so a file using an old name always does), and only then reads
//! the file as an untyped TOML table.

use crate::ConfigError;

/// One renamed field: in the table at `table` (a dotted path from the
/// file's root; empty: the root), `old` is now `new`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Renamed {
    pub(crate) table: &'static [&'static str],
    pub(crate) old: &'static str,
    pub(crate) new: &'static str,
    pub(crate) why: &'static str,
}

const SPECIAL_PURPOSE_WHY: &str = "it lets relay endpoints be loopback, private or link-local \
     addresses: only for a network of your own";

/// `allow_special_purpose_endpoints` of a `[directory]`-shaped table at `table`.
pub(crate) const fn special_purpose_endpoints(table: &'static [&'static str]) -> Renamed {
    Renamed {
        table,
        old: "allow_special_purpose_endpoints",
        new: "dangerously_allow_special_purpose_endpoints",
        why: SPECIAL_PURPOSE_WHY,
    }
}

/// `[egress] allow`.
pub(crate) const EGRESS_ALLOW: Renamed = Renamed {
    table: &["egress"],
    old: "allow",
    new: "dangerously_allow_networks",
    why: "it opens private and other special-purpose networks to anonymous users",
};

/// The first of `renames` that `text` uses, as the error to report.
pub(crate) fn find(text: &str, renames: &[Renamed]) -> Option<ConfigError> {
    let root: toml::Table = toml::from_str(text).ok()?;
    renames.iter().find_map(|renamed| {
        let mut table = &root;
        for name in renamed.table {
            table = table.get(*name)?.as_table()?;
        }
        table.contains_key(renamed.old).then(|| {
            let dotted = |field: &str| {
                renamed
                    .table
                    .iter()
                    .copied()
                    .chain([field])
                    .collect::<Vec<_>>()
                    .join(".")
            };
            ConfigError::Renamed {
                origin: String::new(),
                old: dotted(renamed.old),
                new: dotted(renamed.new),
                why: renamed.why,
            }
        })
    })
}
