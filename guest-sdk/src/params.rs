//! [`Params`]: the parameters of a named query, which reach the plugin as the
//! HTTP query string turned into a JSON object of strings. The typed getters
//! turn a missing or malformed parameter into
//! [`QueryError::InvalidParams`], which the host answers with a 400.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;

use serde_json::Value;

use crate::QueryError;

/// The parameters of one query, by name.
///
/// ```
/// use prism_guest::{Params, QueryError};
///
/// let params = Params::from_json(r#"{"below": "10"}"#).unwrap();
/// assert_eq!(params.get::<u64>("below"), Ok(10));
/// assert_eq!(params.get_or::<u32>("limit", 100), Ok(100));
/// assert!(matches!(params.get::<u64>("above"), Err(QueryError::InvalidParams(_))));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the host's JSON object. Values that are not strings (a host or a
    /// test may pass numbers) are taken as their JSON text.
    pub fn from_json(json: &str) -> Result<Self, QueryError> {
        let object: serde_json::Map<String, Value> =
            serde_json::from_str(json).map_err(|error| {
                QueryError::InvalidParams(format!("parameters are not a JSON object: {error}"))
            })?;
        Ok(object
            .into_iter()
            .map(|(name, value)| match value {
                Value::String(text) => (name, text),
                other => (name, other.to_string()),
            })
            .collect())
    }

    /// These parameters and `name=value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert(name.into(), value.into());
        self
    }

    /// The parameter `name` as given.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The parameter `name` parsed as `T`; missing or unparsable is an error.
    pub fn get<T>(&self, name: &str) -> Result<T, QueryError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.optional(name)?
            .ok_or_else(|| QueryError::InvalidParams(format!("missing parameter `{name}`")))
    }

    /// The parameter `name` parsed as `T`, or `default` when it is missing.
    pub fn get_or<T>(&self, name: &str, default: T) -> Result<T, QueryError>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.optional(name)?.unwrap_or(default))
    }

    /// The parameter `name` parsed as `T`, if given.
    pub fn optional<T>(&self, name: &str) -> Result<Option<T>, QueryError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.raw(name)
            .map(|text| {
                text.parse().map_err(|error| {
                    QueryError::InvalidParams(format!("parameter `{name}`={text:?}: {error}"))
                })
            })
            .transpose()
    }

    /// Every parameter, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        Self {
            values: pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_parameter_says_which_and_why() {
        let params = Params::new().with("below", "ten");
        let Err(QueryError::InvalidParams(message)) = params.get::<u64>("below") else {
            panic!("expected invalid params");
        };
        assert!(message.contains("`below`=\"ten\""), "{message}");
    }

    #[test]
    fn non_string_json_values_are_taken_as_text() {
        let params = Params::from_json(r#"{"below": 5, "name": "x"}"#).unwrap();
        assert_eq!(params.get::<u64>("below"), Ok(5));
        assert_eq!(params.raw("name"), Some("x"));
    }

    #[test]
    fn parameters_that_are_not_an_object_are_invalid() {
        assert!(matches!(
            Params::from_json("[1]"),
            Err(QueryError::InvalidParams(_))
        ));
    }
}
