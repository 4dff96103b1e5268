//! The one place core errors become Python exceptions.
//!
//! ```text
//! CoreError            every error raised by treadle._core (also key, random and
//! │                    rate-limit errors)
//! ├── RouteError       RouteError from the router
//! ├── TokenError       TokenError from the JWT decoder; `.reason` is its stable code
//! ├── AuthzError       AuthzError: a bad policy, snapshot or subject
//! └── FanoutError      FanoutError: a bad event id, topic pattern or hub size
//! ```

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::intern;
use pyo3::prelude::*;
use treadle_core::{
    ApiKeyError, AuthzError as CoreAuthzError, CryptoError, FanoutError as CoreFanoutError,
    RateLimitError, RouteError as CoreRouteError, TokenError as CoreTokenError,
};

create_exception!(
    treadle._core,
    CoreError,
    PyException,
    "Base class of every error raised by ``treadle._core``."
);
create_exception!(
    treadle._core,
    RouteError,
    CoreError,
    "A route template is invalid or conflicts with one already added."
);
create_exception!(
    treadle._core,
    TokenError,
    CoreError,
    "A JWT failed verification. ``reason`` is one of ``malformed``, ``bad_signature``, \
     ``expired``, ``not_yet_valid``, ``unsupported_algorithm``."
);
create_exception!(
    treadle._core,
    AuthzError,
    CoreError,
    "A policy, snapshot or check was given something malformed: an unknown role, a \
     subject that is not ``user:<id>``, ``team:<id>`` or ``api_key:<id>``, an effect \
     other than ``allow``/``deny``, an empty field or a duplicate ACL entry id."
);
create_exception!(
    treadle._core,
    FanoutError,
    CoreError,
    "An event id is not a Redis stream id (``<ms>-<seq>``), a topic pattern is not a \
     topic, a ``prefix.*`` or ``*``, a topic list is empty, or a hub queue size is 0."
);

/// Adds the exception classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CoreError", py.get_type::<CoreError>())?;
    m.add("RouteError", py.get_type::<RouteError>())?;
    m.add("TokenError", py.get_type::<TokenError>())?;
    m.add("AuthzError", py.get_type::<AuthzError>())?;
    m.add("FanoutError", py.get_type::<FanoutError>())?;
    Ok(())
}

/// Any core error on its way to Python; lets bindings use `?` on core results.
pub(crate) enum Error {
    Route(CoreRouteError),
    Token(CoreTokenError),
    Crypto(CryptoError),
    Authz(CoreAuthzError),
    ApiKey(ApiKeyError),
    RateLimit(RateLimitError),
    Fanout(CoreFanoutError),
}

impl From<CoreRouteError> for Error {
    fn from(err: CoreRouteError) -> Self {
        Self::Route(err)
    }
}

impl From<CoreTokenError> for Error {
    fn from(err: CoreTokenError) -> Self {
        Self::Token(err)
    }
}

impl From<CryptoError> for Error {
    fn from(err: CryptoError) -> Self {
        Self::Crypto(err)
    }
}

impl From<CoreAuthzError> for Error {
    fn from(err: CoreAuthzError) -> Self {
        Self::Authz(err)
    }
}

impl From<ApiKeyError> for Error {
    fn from(err: ApiKeyError) -> Self {
        Self::ApiKey(err)
    }
}

impl From<RateLimitError> for Error {
    fn from(err: RateLimitError) -> Self {
        Self::RateLimit(err)
    }
}

impl From<CoreFanoutError> for Error {
    fn from(err: CoreFanoutError) -> Self {
        Self::Fanout(err)
    }
}

impl From<Error> for PyErr {
    fn from(err: Error) -> Self {
        match err {
            Error::Route(err) => RouteError::new_err(err.to_string()),
            Error::Crypto(err) => CoreError::new_err(err.to_string()),
            Error::ApiKey(err) => CoreError::new_err(err.to_string()),
            Error::RateLimit(err) => CoreError::new_err(err.to_string()),
            Error::Authz(err) => AuthzError::new_err(err.to_string()),
            Error::Fanout(err) => FanoutError::new_err(err.to_string()),
            Error::Token(err) => Python::attach(|py| {
                let exc = TokenError::new_err(err.to_string());
                match exc.value(py).setattr(intern!(py, "reason"), err.reason()) {
                    Ok(()) => exc,
                    Err(setattr_failed) => setattr_failed,
                }
            }),
        }
    }
}
