//! Names: our index names as Weaviate class names, metadata field paths as property names.
//!
//! Weaviate wants class names `^[A-Z][_0-9A-Za-z]{0,254}$`, capitalises the first letter itself, and refuses a
//! class that equals an existing one ignoring case; property names are `^[_A-Za-z][_0-9A-Za-z]{0,230}$` with the
//! first letter lowercased. Our names hold `-` (index names, field paths), `.` (field paths) and may hold uppercase
//! letters, so both go through one escape code over `[a-z0-9_]`:
//!
//! | in the name | written as |
//! |---|---|
//! | `a`-`z`, `0`-`9` | itself |
//! | `-` | `_0` |
//! | `_` followed by a digit | `_1` (so `_0`, `_1`, … stay escapes) |
//! | any other `_` | `_` |
//! | an uppercase letter `X` | `_2x` |
//! | `.` (field paths only) | `_3` |
//!
//! The code is a prefix code (an `_` followed by `0`-`3` always starts an escape), so it is reversible, and its output
//! holds no uppercase letter, so two different names never give classes equal ignoring case. Typical names stay
//! readable: `cs_1a2b3c4d_notes` → `Cs_11a2b3c4d_notes`, `cs_abcdef12_my-notes` → `Cs_abcdef12_my_0notes`.

use colstore_domain::IndexName;
use colstore_domain::ports::IndexError;

use crate::WEAVIATE_KIND;

/// Longest class name Weaviate accepts.
const MAX_CLASS: usize = 255;
/// Longest property name Weaviate accepts.
pub(crate) const MAX_PROPERTY: usize = 231;

/// The Weaviate class of index `index`: the name escaped (module docs) with its first letter capitalised.
///
/// # Errors
/// `IndexError::Backend` when the name does not start with a lowercase letter (a class must start with an
/// uppercase one, and capitalising an uppercase letter would not be reversible) or its class would be longer than
/// Weaviate's 255 characters.
pub fn class_name(index: &IndexName) -> Result<String, IndexError> {
    let name = index.as_str();
    let refuse = |why: &str| IndexError::Backend {
        backend: WEAVIATE_KIND,
        source: format!("index name {name:?} cannot be a Weaviate class: {why}").into(),
    };
    let mut chars = name.chars();
    let first = chars.next().filter(char::is_ascii_lowercase).ok_or_else(|| refuse("it must start with a lowercase letter a-z"))?;
    let class = format!("{}{}", first.to_ascii_uppercase(), escape(chars.as_str(), false));
    if class.len() > MAX_CLASS {
        return Err(refuse(&format!("its class would have {} characters, more than Weaviate's {MAX_CLASS}", class.len())));
    }
    Ok(class)
}

/// The index name a class stands for, when it is one of ours (the inverse of [`class_name`]).
pub fn index_name_of(class: &str) -> Option<IndexName> {
    let mut chars = class.chars();
    let first = chars.next().filter(char::is_ascii_uppercase)?;
    let rest = unescape(chars.as_str(), false)?;
    let name = IndexName::parse(&format!("{}{rest}", first.to_ascii_lowercase())).ok()?;
    (class_name(&name).ok()? == class).then_some(name)
}

/// `s` escaped for a class or property name (module docs); `.` is escaped only when `dots`.
pub(crate) fn escape(s: &str, dots: bool) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            '-' => out.push_str("_0"),
            '_' if chars.peek().is_some_and(char::is_ascii_digit) => out.push_str("_1"),
            '_' => out.push('_'),
            'A'..='Z' => {
                out.push_str("_2");
                out.push(c.to_ascii_lowercase());
            }
            '.' if dots => out.push_str("_3"),
            // Not in our alphabets (index names and field paths are validated); kept visible rather than dropped,
            // so Weaviate refuses the name instead of two names colliding.
            other => out.push(other),
        }
    }
    out
}

/// The inverse of [`escape`], `None` for text [`escape`] cannot produce.
pub(crate) fn unescape(s: &str, dots: bool) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            '_' => match chars.peek().copied() {
                Some('0') => {
                    chars.next();
                    out.push('-');
                }
                Some('1') => {
                    chars.next();
                    out.push('_');
                    // `_1` is only written before a digit.
                    chars.peek().filter(|d| d.is_ascii_digit())?;
                }
                Some('2') => {
                    chars.next();
                    out.push(chars.next().filter(char::is_ascii_lowercase)?.to_ascii_uppercase());
                }
                Some('3') if dots => {
                    chars.next();
                    out.push('.');
                }
                Some(d) if d.is_ascii_digit() => return None,
                _ => out.push('_'),
            },
            _ => return None,
        }
    }
    Some(out)
}

/// What a typed metadata property holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Strings (`text[]`, field tokenization).
    Text,
    /// Integers that fit `i64` (`int[]`), for exact matches.
    Int,
    /// Booleans (`boolean[]`).
    Bool,
    /// Every number of a value that holds at most one (`number[]`), for ranges.
    Number,
    /// The numbers of values that hold several (`number[]`): a range with two bounds cannot be asked of them exactly,
    /// because Weaviate checks each bound against any element, not both against the same one.
    Numbers,
    /// A marker, never written: some string value of this path has leading or trailing whitespace, which Weaviate's
    /// `field` tokenization trims, so text matches on the path are confirmed on our side.
    Padded,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Text => "mt_",
            Kind::Int => "mi_",
            Kind::Bool => "mb_",
            Kind::Number => "mn_",
            Kind::Numbers => "ma_",
            Kind::Padded => "mw_",
        }
    }

    /// The Weaviate data type.
    pub(crate) fn data_type(self) -> &'static str {
        match self {
            Kind::Text | Kind::Padded => "text[]",
            Kind::Int => "int[]",
            Kind::Bool => "boolean[]",
            Kind::Number | Kind::Numbers => "number[]",
        }
    }
}

/// The property holding `kind` values of metadata path `path`, `None` when the name would be too long for Weaviate
/// (such a path is then filtered on our side).
pub(crate) fn property(kind: Kind, path: &str) -> Option<String> {
    let name = format!("{}{}", kind.prefix(), escape(path, true));
    (name.len() <= MAX_PROPERTY).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips() {
        for s in ["cs_1a_notes", "a-b", "a_1", "a__1", "_-", "A_B-c", "x_", "a.b-c_0.D", "_0_1_2_3"] {
            assert_eq!(unescape(&escape(s, true), true).as_deref(), Some(s), "{s}");
        }
        assert_eq!(unescape("a_9", false), None);
        assert_eq!(unescape("a_1x", false), None);
        assert_eq!(unescape("a_2X", false), None);
    }
}
