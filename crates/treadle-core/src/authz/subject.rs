//! Who a check is about: `user:<id>`, `team:<id>` or `api_key:<id>`.

use crate::error::AuthzError;

/// A parsed subject. The id is everything after the first `:` and may itself hold `:`.
///
/// ```
/// use treadle_core::authz::Subject;
///
/// assert_eq!(Subject::parse("user:u_1")?, Subject::User("u_1"));
/// assert_eq!(Subject::parse("api_key:k:2")?, Subject::ApiKey("k:2"));
/// assert!(Subject::parse("u_1").is_err());
/// assert!(Subject::parse("user:").is_err());
/// # Ok::<(), treadle_core::AuthzError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A person, by user id.
    User(&'a str),
    /// A team, by team id.
    Team(&'a str),
    /// An API key, by key id.
    ApiKey(&'a str),
}

impl<'a> Subject<'a> {
    /// Parses `kind:id`.
    ///
    /// # Errors
    ///
    /// [`AuthzError::InvalidSubject`] unless the kind is `user`, `team` or `api_key` and
    /// the id is not empty.
    pub fn parse(subject: &'a str) -> Result<Self, AuthzError> {
        let parsed = match subject.split_once(':') {
            Some(("user", id)) => Self::User(id),
            Some(("team", id)) => Self::Team(id),
            Some(("api_key", id)) => Self::ApiKey(id),
            _ => return Err(invalid(subject)),
        };
        if parsed.id().is_empty() {
            return Err(invalid(subject));
        }
        Ok(parsed)
    }

    /// The id after the kind.
    #[must_use]
    pub const fn id(self) -> &'a str {
        match self {
            Self::User(id) | Self::Team(id) | Self::ApiKey(id) => id,
        }
    }
}

fn invalid(subject: &str) -> AuthzError {
    AuthzError::InvalidSubject {
        subject: subject.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::Subject;

    #[test]
    fn parses_kinds_and_rejects_the_rest() {
        assert_eq!(Subject::parse("team:t"), Ok(Subject::Team("t")));
        for bad in [
            "", ":", "user", "user:", "group:g", "User:u", " user:u", "apikey:k",
        ] {
            assert!(Subject::parse(bad).is_err(), "{bad:?}");
        }
    }
}
