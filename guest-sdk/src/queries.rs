//! [`Queries`]: a projection's named queries, each name beside the function
//! that answers it. The names the host is told at `describe` are read from
//! the same list that answers the queries, so a query cannot be answered
//! without being declared, nor declared without being answered.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::{Params, QueryError, View};

type Answer<P> = Box<dyn Fn(&P, &mut View, &Params) -> Result<Value, QueryError>>;

/// The named queries of projection `P`, from
/// [`Projection::queries`](crate::Projection::queries).
///
/// A query gets the projection, a read-only [`View`] and the HTTP query
/// string as [`Params`]: the same order, `(view, params)`, as in the Python
/// and JavaScript SDKs. It returns anything that serializes to JSON.
///
/// ```
/// use prism_guest::{Params, Queries, QueryError, View};
///
/// #[derive(Default)]
/// struct Balances;
///
/// impl Balances {
///     fn balance(&self, view: &mut View, params: &Params) -> Result<i64, QueryError> {
///         let account: String = params.get("account")?;
///         Ok(view.get_json::<i64>(&account)?.unwrap_or(0))
///     }
/// }
///
/// let queries = Queries::<Balances>::new()
///     .query("balance", Balances::balance)
///     .query("count", |_, view, _| Ok(view.scan("", None, 1000)?.len()));
/// assert_eq!(queries.names().collect::<Vec<_>>(), ["balance", "count"]);
/// ```
pub struct Queries<P> {
    entries: Vec<(String, Answer<P>)>,
}

impl<P> Queries<P> {
    /// No queries.
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Answer the query `name` (`GET /views/{plugin}/_query/{name}`) with
    /// `answer`.
    ///
    /// # Panics
    /// If `name` is empty or already declared: `describe` then fails, in a
    /// unit test as in the host, with a message that names the query.
    #[track_caller]
    pub fn query<T, F>(mut self, name: impl Into<String>, answer: F) -> Self
    where
        T: Serialize,
        F: Fn(&P, &mut View, &Params) -> Result<T, QueryError> + 'static,
    {
        let name = name.into();
        assert!(!name.is_empty(), "a query needs a name");
        assert!(
            self.names().all(|declared| declared != name),
            "query `{name}` is declared twice"
        );
        let answer: Answer<P> = Box::new(move |projection, view, params| {
            let value = answer(projection, view, params)?;
            serde_json::to_value(value).map_err(|error| {
                QueryError::Failed(format!("the answer is not JSON-serializable: {error}"))
            })
        });
        self.entries.push((name, answer));
        self
    }

    /// The declared names, in the order they were declared.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }

    /// Answers the query `name`, or [`QueryError::UnknownQuery`].
    pub fn answer(
        &self,
        projection: &P,
        view: &mut View,
        name: &str,
        params: &Params,
    ) -> Result<Value, QueryError> {
        let (_, answer) = self
            .entries
            .iter()
            .find(|(declared, _)| declared == name)
            .ok_or_else(|| QueryError::UnknownQuery(name.to_owned()))?;
        answer(projection, view, params)
    }
}

impl<P> Default for Queries<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> fmt::Debug for Queries<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::MemoryBackend;

    struct Nothing;

    #[test]
    fn an_answer_is_serialized_and_an_unknown_name_is_refused() {
        let queries = Queries::<Nothing>::new().query("two", |_, _, _| Ok([1, 2]));
        let mut backend = MemoryBackend::new();
        let mut view = View::read_only(&mut backend);
        let params = Params::new();
        assert_eq!(
            queries.answer(&Nothing, &mut view, "two", &params),
            Ok(json!([1, 2]))
        );
        assert_eq!(
            queries.answer(&Nothing, &mut view, "three", &params),
            Err(QueryError::UnknownQuery("three".into()))
        );
    }

    #[test]
    #[should_panic(expected = "query `top` is declared twice")]
    fn a_name_declared_twice_is_refused() {
        let _ = Queries::<Nothing>::new()
            .query("top", |_, _, _| Ok(1))
            .query("top", |_, _, _| Ok(2));
    }
}
