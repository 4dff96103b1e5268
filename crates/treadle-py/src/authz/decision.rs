//! `Decision`: what a check answers.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyString;
use treadle_core::authz::Reason;

/// The outcome of one check.
///
/// ``reason`` is one of ``acl_deny``, ``acl_allow``, ``team_role``, ``org_role``,
/// ``key_scope``, ``not_member``, ``no_grant``, ``unknown_organization``,
/// ``invalid_item``. ``decided_by`` is the deciding ACL entry's id, ``org_role:<role>``,
/// ``team_role:<team_id>:<role>``, ``scope:<scope>``, or ``None``.
#[pyclass(module = "treadle._core", frozen, eq, hash)]
#[derive(PartialEq, Eq, Hash)]
pub(crate) struct Decision(pub(crate) treadle_core::authz::Decision);

#[pymethods]
impl Decision {
    /// Whether the action is allowed.
    #[getter]
    fn allowed(&self) -> bool {
        self.0.allowed
    }

    /// Why, as a stable snake_case code.
    #[getter]
    fn reason<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        match self.0.reason {
            Reason::AclDeny => intern!(py, "acl_deny"),
            Reason::AclAllow => intern!(py, "acl_allow"),
            Reason::TeamRole => intern!(py, "team_role"),
            Reason::OrgRole => intern!(py, "org_role"),
            Reason::KeyScope => intern!(py, "key_scope"),
            Reason::NotMember => intern!(py, "not_member"),
            Reason::NoGrant => intern!(py, "no_grant"),
            Reason::UnknownOrganization => intern!(py, "unknown_organization"),
            Reason::InvalidItem => intern!(py, "invalid_item"),
            _ => return PyString::new(py, self.0.reason.as_str()),
        }
        .clone()
    }

    /// The ACL entry id, role or scope that decided; ``None`` when nothing did.
    #[getter]
    fn decided_by(&self) -> Option<String> {
        self.0.rule.as_ref().map(ToString::to_string)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let decided_by = match &self.0.rule {
            Some(rule) => PyString::new(py, &rule.to_string()).repr()?.to_string(),
            None => "None".to_owned(),
        };
        let allowed = if self.0.allowed { "True" } else { "False" };
        Ok(format!(
            "Decision(allowed={allowed}, reason='{}', decided_by={decided_by})",
            self.0.reason.as_str()
        ))
    }
}
