//! `Snapshot`: one organization's memberships and ACL entries at a revision.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyDict;
use treadle_core::authz::AclEntry;

use crate::errors::Error;
use crate::gil::detach_if;

/// Snapshots with at least this many ACL entries are indexed with the GIL released.
const DETACH_AT: usize = 10_000;

/// One ACL entry as Python gives it:
/// (entry_id, resource_type, resource_id, action, subject, effect).
type Entry = (
    PyBackedStr,
    PyBackedStr,
    PyBackedStr,
    PyBackedStr,
    PyBackedStr,
    PyBackedStr,
);

/// An immutable, indexed view of one organization at ``revision``.
///
/// ``members`` maps user id to organization role; ``team_members`` maps
/// ``(team_id, user_id)`` to team role (seats of non-members are ignored); ``acl`` holds
/// ``(entry_id, resource_type, resource_id, action, subject, effect)`` tuples, where
/// ``resource_id`` and ``action`` may be ``"*"``, ``subject`` is ``user:<id>``,
/// ``team:<id>`` or ``api_key:<id>`` and ``effect`` is ``allow`` or ``deny``.
/// Raises ``AuthzError`` for anything malformed. Large snapshots are indexed with the GIL
/// released.
#[pyclass(module = "treadle._core", frozen)]
pub(crate) struct Snapshot {
    pub(crate) inner: Arc<treadle_core::authz::Snapshot>,
}

#[pymethods]
impl Snapshot {
    #[new]
    fn new(
        org_id: &str,
        revision: u64,
        members: &Bound<'_, PyDict>,
        team_members: &Bound<'_, PyDict>,
        acl: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let mut builder = treadle_core::authz::Snapshot::builder(org_id, revision);
        for (user, role) in members {
            let (user, role): (PyBackedStr, PyBackedStr) = (user.extract()?, role.extract()?);
            builder.member(&user, &role).map_err(Error::from)?;
        }
        for (seat, role) in team_members {
            let (team, user): (PyBackedStr, PyBackedStr) = seat.extract()?;
            let role: PyBackedStr = role.extract()?;
            builder
                .team_member(&team, &user, &role)
                .map_err(Error::from)?;
        }
        for entry in acl.try_iter()? {
            let (entry_id, resource_type, resource_id, action, subject, effect): Entry =
                entry?.extract()?;
            builder
                .acl(AclEntry {
                    entry_id: &entry_id,
                    resource_type: &resource_type,
                    resource_id: &resource_id,
                    action: &action,
                    subject: &subject,
                    effect: &effect,
                })
                .map_err(Error::from)?;
        }
        let heavy = builder.acl_len() >= DETACH_AT;
        let snapshot = detach_if(acl.py(), heavy, || builder.build());
        Ok(Self {
            inner: Arc::new(snapshot),
        })
    }

    /// The organization this snapshot describes.
    #[getter]
    fn org_id(&self) -> &str {
        self.inner.org_id()
    }

    /// The revision it was built at; a larger revision is newer.
    #[getter]
    fn revision(&self) -> u64 {
        self.inner.revision()
    }

    /// The number of organization members.
    #[getter]
    fn member_count(&self) -> usize {
        self.inner.member_len()
    }

    /// The number of ACL entries.
    #[getter]
    fn acl_count(&self) -> usize {
        self.inner.acl_len()
    }
}
