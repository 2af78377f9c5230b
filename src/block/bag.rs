//! [`Bag`]: what blocks send each other, and the runtime's own keys in it.

use std::collections::BTreeMap;

use crate::block::value::Value;

/// What blocks send each other: a string-keyed map of [`Value`]s, the
/// memphis Go adapter's `map[string]any`.
///
/// ```
/// use syncmq::block::Bag;
///
/// let bag = Bag::new().with("line", "hello").with("seq", 7);
/// assert_eq!(bag.get("line").and_then(|v| v.as_str()), Some("hello"));
/// assert_eq!(bag.from(), None); // the runtime sets `__from` on delivery
/// ```
///
/// Blocks agree among themselves on what a bag holds; the runtime forces
/// one rule: keys starting with [`Bag::RESERVED_PREFIX`] (`__`) are the
/// runtime's. A bag that carries one is refused by
/// [`Controller::try_enqueue`](crate::block::Controller::try_enqueue), and
/// the runtime sets [`Bag::FROM_KEY`] (`__from`) to the sending block's
/// responsibility on every bag it delivers ([`Bag::from`] reads it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bag {
    entries: BTreeMap<String, Value>,
}

impl Bag {
    /// The prefix of the keys the runtime keeps for itself.
    pub const RESERVED_PREFIX: &'static str = "__";

    /// The key under which the runtime puts the sender's responsibility.
    pub const FROM_KEY: &'static str = "__from";

    /// An empty bag. The Go adapter allows enqueueing a nil bag; here that is an
    /// empty one, which arrives holding only `__from`.
    pub fn new() -> Self {
        Bag::default()
    }

    /// Adds `key`, replacing an earlier value.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.entries.insert(key.into(), value.into());
        self
    }

    /// Adds `key`, returning the value it replaced.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.entries.insert(key.into(), value.into())
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    /// Takes the value under `key` out of the bag.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.entries.remove(key)
    }

    /// The responsibility of the block that sent the bag, set by the runtime
    /// on delivery. `None` for a bag sent from outside the blocks (through
    /// [`Runtime::controller`](crate::block::Runtime::controller)).
    pub fn from(&self) -> Option<&str> {
        self.get(Bag::FROM_KEY).and_then(Value::as_str)
    }

    /// The number of entries, the runtime's included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the bag holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The first key that starts with `__`, if any.
    pub(crate) fn reserved_key(&self) -> Option<&str> {
        self.entries
            .keys()
            .find(|k| k.starts_with(Bag::RESERVED_PREFIX))
            .map(String::as_str)
    }

    /// Sets the runtime's `__from`.
    pub(crate) fn set_from(&mut self, from: Option<&str>) {
        let value = from.map_or(Value::Null, Value::from);
        self.entries.insert(Bag::FROM_KEY.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_keys_are_found_and_set() {
        let mut bag = Bag::new().with("a", 1).with("__secret", 2);
        assert_eq!(bag.reserved_key(), Some("__secret"));
        bag.remove("__secret");
        assert_eq!(bag.reserved_key(), None);
        bag.set_from(Some("reader"));
        assert_eq!(bag.from(), Some("reader"));
        bag.set_from(None);
        assert_eq!(bag.from(), None);
        assert_eq!(bag.len(), 2);
    }
}
