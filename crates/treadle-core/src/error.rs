//! Every error `treadle-core` returns, one enum per concern.

use std::fmt;

/// A route could not be added to a [`Router`](crate::Router).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteError {
    /// The method is empty or has a character an HTTP method token may not contain.
    InvalidMethod {
        /// The method as given.
        method: String,
    },
    /// The template does not follow the template rules.
    InvalidTemplate {
        /// The template as given.
        template: String,
        /// What is wrong with it.
        problem: TemplateProblem,
    },
    /// The method and template are already registered. Templates that differ only in
    /// their parameter names (`/users/{id}` and `/users/{uid}`) count as the same.
    Duplicate {
        /// The method as given.
        method: String,
        /// The template as given.
        template: String,
    },
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidMethod { method } => {
                write!(f, "invalid HTTP method {method:?}: use a token such as GET")
            }
            Self::InvalidTemplate { template, problem } => {
                write!(f, "invalid route template {template:?}: {problem}")
            }
            Self::Duplicate { method, template } => {
                write!(
                    f,
                    "duplicate route: {method} {template} is already registered"
                )
            }
        }
    }
}

impl std::error::Error for RouteError {}

/// Why a route template was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateProblem {
    /// The template does not start with `/`.
    MissingLeadingSlash,
    /// The template has an empty segment (`//`) or a trailing `/`.
    EmptySegment,
    /// A `{` or `}` is not part of a whole-segment `{name}` parameter.
    StrayBrace,
    /// A parameter name is empty or has a character outside `[A-Za-z0-9_]`.
    InvalidParamName,
    /// Two parameters in one template share a name.
    DuplicateParamName,
    /// The template has more than [`MAX_PARAMS`](crate::router::MAX_PARAMS) parameters.
    TooManyParams,
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingLeadingSlash => "it must start with '/'",
            Self::EmptySegment => "it has an empty segment or a trailing '/'",
            Self::StrayBrace => "a parameter must be a whole segment of the form {name}",
            Self::InvalidParamName => "parameter names must be non-empty [A-Za-z0-9_]",
            Self::DuplicateParamName => "two parameters share a name",
            Self::TooManyParams => "it has too many parameters",
        })
    }
}

/// A JWT failed verification, or claims could not be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is not three base64url segments holding JSON objects, or a required
    /// claim is missing or has the wrong type.
    Malformed {
        /// Which part is wrong, for humans.
        detail: &'static str,
    },
    /// The signature does not match the header and claims under this key.
    BadSignature,
    /// `exp` is at or before `now - leeway`.
    Expired,
    /// `nbf` is after `now + leeway`.
    NotYetValid,
    /// The header names an algorithm other than HS256 (including `none`), or asks for
    /// extensions through `crit`.
    UnsupportedAlgorithm,
}

impl TokenError {
    /// The stable, machine-readable code for this error: `malformed`, `bad_signature`,
    /// `expired`, `not_yet_valid` or `unsupported_algorithm`.
    #[must_use]
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { detail } => write!(f, "malformed token: {detail}"),
            Self::BadSignature => f.write_str("token signature does not match"),
            Self::Expired => f.write_str("token has expired"),
            Self::NotYetValid => f.write_str("token is not valid yet (nbf is in the future)"),
            Self::UnsupportedAlgorithm => {
                f.write_str("unsupported token algorithm: only HS256 is accepted")
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// A key, hash or random-token operation could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// A key has the wrong length.
    InvalidKeyLength {
        /// The length the operation needs, in bytes.
        expected: usize,
        /// The length that was given, in bytes.
        actual: usize,
    },
    /// A random token longer than the limit was asked for.
    TokenTooLong {
        /// The number of bytes asked for.
        requested: usize,
        /// The largest number of bytes allowed.
        max: usize,
    },
    /// The operating system's random source failed.
    EntropyUnavailable,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidKeyLength { expected, actual } => {
                write!(f, "key must be {expected} bytes, got {actual}")
            }
            Self::TokenTooLong { requested, max } => {
                write!(
                    f,
                    "random token of {requested} bytes asked for; at most {max}"
                )
            }
            Self::EntropyUnavailable => f.write_str("the OS random source failed"),
        }
    }
}

impl std::error::Error for CryptoError {}

/// A policy or snapshot could not be built, or a check named a malformed subject.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthzError {
    /// A role name is not one of the roles of its scope.
    UnknownRole {
        /// `"organization"` or `"team"`.
        scope: &'static str,
        /// The role as given.
        role: String,
    },
    /// A subject is not `user:<id>`, `team:<id>` or `api_key:<id>` with a non-empty id.
    InvalidSubject {
        /// The subject as given.
        subject: String,
    },
    /// An ACL effect is neither `allow` nor `deny`.
    InvalidEffect {
        /// The effect as given.
        effect: String,
    },
    /// A field that must name something is empty.
    EmptyField {
        /// Which field, e.g. `resource_type`.
        field: &'static str,
    },
    /// Two ACL entries in one snapshot share an id.
    DuplicateEntry {
        /// The id both entries carry.
        entry_id: String,
    },
}

impl fmt::Display for AuthzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownRole { scope, role } => {
                let known = if *scope == "team" {
                    "admin, member, viewer"
                } else {
                    "owner, admin, member, viewer"
                };
                write!(f, "unknown {scope} role {role:?}: use one of {known}")
            }
            Self::InvalidSubject { subject } => write!(
                f,
                "invalid subject {subject:?}: use user:<id>, team:<id> or api_key:<id>"
            ),
            Self::InvalidEffect { effect } => {
                write!(f, "invalid ACL effect {effect:?}: use allow or deny")
            }
            Self::EmptyField { field } => write!(f, "{field} must not be empty"),
            Self::DuplicateEntry { entry_id } => {
                write!(f, "duplicate ACL entry id {entry_id:?} in one snapshot")
            }
        }
    }
}

impl std::error::Error for AuthzError {}

/// An API key could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// The environment is neither `live` nor `test`.
    UnknownEnvironment {
        /// The environment as given.
        environment: String,
    },
    /// The operating system's random source failed.
    EntropyUnavailable,
}

impl fmt::Display for ApiKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownEnvironment { environment } => {
                write!(
                    f,
                    "unknown API key environment {environment:?}: use live or test"
                )
            }
            Self::EntropyUnavailable => f.write_str("the OS random source failed"),
        }
    }
}

impl std::error::Error for ApiKeyError {}

/// A rate-limit quota or cost is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitError {
    /// The limit is zero.
    ZeroLimit,
    /// The period is not a positive, finite number of microseconds.
    InvalidPeriod,
    /// The time given as `now` is not finite or out of range.
    InvalidTime,
}

impl fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroLimit => "rate limit must allow at least 1 request per period",
            Self::InvalidPeriod => "rate-limit period must be a positive, finite duration",
            Self::InvalidTime => "rate-limit time must be a finite UNIX time",
        })
    }
}

impl std::error::Error for RateLimitError {}

/// A fan-out hub, filter or event id was given something malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FanoutError {
    /// An event id is not a Redis stream id: two unsigned 64-bit decimal numbers joined
    /// by `-`, such as `1700000000000-0`.
    InvalidEventId {
        /// The id as given.
        id: String,
    },
    /// A topic pattern is empty, or has a `*` other than a whole `*` or a trailing `.*`.
    InvalidTopic {
        /// The pattern as given.
        pattern: String,
    },
    /// A filter was given an empty list of topics, which would match nothing.
    NoTopics,
    /// A hub was asked for subscriber queues of size 0.
    ZeroQueueSize,
}

impl fmt::Display for FanoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidEventId { id } => write!(
                f,
                "invalid event id {id:?}: use a stream id such as 1700000000000-0"
            ),
            Self::InvalidTopic { pattern } => write!(
                f,
                "invalid topic pattern {pattern:?}: use a topic, a prefix ending in .* or *"
            ),
            Self::NoTopics => {
                f.write_str("topics must name at least one topic: pass none for every topic")
            }
            Self::ZeroQueueSize => f.write_str("subscriber queue size must be at least 1"),
        }
    }
}

impl std::error::Error for FanoutError {}
