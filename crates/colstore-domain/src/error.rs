//! The one error type of validated newtypes.

/// Why a value was rejected by a validating constructor (`CollectionName::parse`, `DocKey::parse`, ...).
///
/// The message names the value and the rule it broke; shells add the "how to fix" hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct ValidationError {
    /// What kind of value it was ("collection name", "document key", ...).
    pub what: &'static str,
    /// The rejected input, escaped for display.
    pub value: String,
    /// The rule it broke.
    pub reason: String,
}

impl ValidationError {
    /// The error for `value` (shortened to 120 bytes) of kind `what`, and why it is refused.
    pub fn new(what: &'static str, value: &str, reason: impl Into<String>) -> Self {
        // Never echo megabytes of hostile input back into an error message.
        let value = if value.len() > 120 {
            let mut end = 120;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &value[..end])
        } else {
            value.to_owned()
        };
        Self { what, value, reason: reason.into() }
    }
}
