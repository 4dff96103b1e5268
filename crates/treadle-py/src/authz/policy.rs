//! `Policy`: which actions each role grants.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::Error;

/// What each organization role (``owner > admin > member > viewer``) and team role
/// (``admin > member > viewer``) may do.
///
/// Roles are cumulative: a role also grants every action of the roles below it. ``"*"``
/// grants every action. ``actions`` is every action the policy names, sorted.
/// ``owner_shielded`` actions are ones no deny ACL entry takes from an owner.
/// Raises ``AuthzError`` for an unknown role name or an empty action.
#[pyclass(module = "treadle._core", frozen)]
pub(crate) struct Policy {
    pub(crate) inner: treadle_core::authz::Policy,
}

#[pymethods]
impl Policy {
    #[new]
    #[pyo3(signature = (org_roles, team_roles, owner_shielded = Vec::new()))]
    fn new(
        org_roles: &Bound<'_, PyDict>,
        team_roles: &Bound<'_, PyDict>,
        owner_shielded: Vec<String>,
    ) -> PyResult<Self> {
        let mut builder = treadle_core::authz::Policy::builder();
        for (role, actions) in org_roles {
            let actions: Vec<String> = actions.extract()?;
            builder
                .org_role(&role.extract::<String>()?, actions)
                .map_err(Error::from)?;
        }
        for (role, actions) in team_roles {
            let actions: Vec<String> = actions.extract()?;
            builder
                .team_role(&role.extract::<String>()?, actions)
                .map_err(Error::from)?;
        }
        builder
            .owner_shielded(owner_shielded)
            .map_err(Error::from)?;
        Ok(Self {
            inner: builder.build(),
        })
    }

    /// Every action the policy names (not ``"*"``), sorted.
    #[getter]
    fn actions(&self) -> Vec<&str> {
        self.inner.actions().iter().map(|a| &**a).collect()
    }
}
