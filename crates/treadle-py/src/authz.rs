//! `Authz`: the authorization evaluator, with its `Policy`, `Snapshot` and `Decision`.

mod decision;
mod policy;
mod snapshot;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyList;
use treadle_core::authz::{Item, Resource};

pub(crate) use decision::Decision;
pub(crate) use policy::Policy;
pub(crate) use snapshot::Snapshot;

use crate::errors::Error;
use crate::gil::detach_if;

/// Batches at least this long are decided with the GIL released.
const DETACH_AT: usize = 64;

/// One batch item as Python gives it:
/// (subject, action, resource_type, resource_id, team_id | None).
type RawItem = (
    PyBackedStr,
    PyBackedStr,
    PyBackedStr,
    PyBackedStr,
    Option<PyBackedStr>,
);

/// The authorization evaluator: a ``Policy`` plus the newest ``Snapshot`` loaded per
/// organization, swapped atomically.
///
/// Precedence: a user who is not a member gets ``not_member``; then deny ACL > allow ACL
/// > role (the team role when ``team_id`` names a team the user sits in, then the
/// organization role). An ``api_key`` subject has no roles: its ``scopes`` grant
/// instead (the first that is ``"*"`` or the action), and ACL entries on the key still
/// apply. ``scopes`` are ignored for users and teams. ACL entries apply to the
/// principal and, for a user, to each team they are in; when several match, the
/// smallest entry id is reported.
#[pyclass(module = "treadle._core", frozen)]
pub(crate) struct Authz {
    inner: treadle_core::authz::Authz,
}

#[pymethods]
impl Authz {
    #[new]
    fn new(policy: &Policy) -> Self {
        Self {
            inner: treadle_core::authz::Authz::new(policy.inner.clone()),
        }
    }

    /// Install ``snapshot`` unless its organization already has the same or a newer
    /// revision. Returns whether it was installed.
    fn load(&self, snapshot: &Snapshot) -> bool {
        self.inner.load(snapshot.inner.clone())
    }

    /// The revision loaded for ``org_id``, or ``None``.
    fn revision(&self, org_id: &str) -> Option<u64> {
        self.inner.revision(org_id)
    }

    /// Forget ``org_id``'s snapshot; the next ``load`` installs any revision.
    /// Returns whether one was loaded.
    fn drop(&self, org_id: &str) -> bool {
        self.inner.remove(org_id)
    }

    /// May ``subject`` (``user:<id>``, ``team:<id>`` or ``api_key:<id>``) perform
    /// ``action`` on the resource? With ``excluding``, decide as if the ACL entry with
    /// that id were not there. Raises ``AuthzError`` for a malformed subject.
    #[pyo3(signature = (org_id, subject, action, resource_type, resource_id, team_id = None, scopes = None, excluding = None))]
    #[allow(clippy::too_many_arguments, reason = "mirrors the Python signature")]
    fn check(
        &self,
        org_id: &str,
        subject: &str,
        action: &str,
        resource_type: &str,
        resource_id: &str,
        team_id: Option<&str>,
        scopes: Option<Vec<PyBackedStr>>,
        excluding: Option<&str>,
    ) -> Result<Decision, Error> {
        let scopes = borrow_all(scopes.as_deref());
        let item = Item {
            subject,
            action,
            resource: Resource {
                resource_type,
                resource_id,
                team_id,
            },
        };
        Ok(Decision(
            self.inner
                .check_excluding(org_id, &item, &scopes, excluding)?,
        ))
    }

    /// Decide every ``(subject, action, resource_type, resource_id, team_id | None)``
    /// against one snapshot, answers in request order. An item that is not such a tuple,
    /// or whose subject is malformed, gets ``reason == "invalid_item"``. Large batches
    /// run with the GIL released.
    #[pyo3(signature = (org_id, items, scopes = None))]
    fn check_batch<'py>(
        &self,
        py: Python<'py>,
        org_id: &str,
        items: &Bound<'py, PyAny>,
        scopes: Option<Vec<PyBackedStr>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let raw: Vec<Option<RawItem>> = items
            .try_iter()?
            .map(|item| item.map(|item| item.extract::<RawItem>().ok()))
            .collect::<PyResult<_>>()?;
        let scopes = borrow_all(scopes.as_deref());
        let batch: Vec<Option<Item<'_>>> = raw
            .iter()
            .map(|item| {
                item.as_ref().map(|(subject, action, kind, id, team)| Item {
                    subject,
                    action,
                    resource: Resource {
                        resource_type: kind,
                        resource_id: id,
                        team_id: team.as_deref(),
                    },
                })
            })
            .collect();
        let decisions = detach_if(py, batch.len() >= DETACH_AT, || {
            self.inner.check_batch(org_id, &batch, &scopes)
        });
        PyList::new(py, decisions.into_iter().map(Decision))
    }

    /// Every action in the policy that ``subject`` may perform on the resource, sorted
    /// (the actions ``check`` would allow), in one pass. ``[]`` for an unknown
    /// organization. Raises ``AuthzError`` for a malformed subject.
    #[pyo3(signature = (org_id, subject, resource_type, resource_id, team_id = None, scopes = None))]
    fn permissions(
        &self,
        org_id: &str,
        subject: &str,
        resource_type: &str,
        resource_id: &str,
        team_id: Option<&str>,
        scopes: Option<Vec<PyBackedStr>>,
    ) -> Result<Vec<&str>, Error> {
        let scopes = borrow_all(scopes.as_deref());
        let resource = Resource {
            resource_type,
            resource_id,
            team_id,
        };
        Ok(self
            .inner
            .permissions(org_id, subject, &resource, &scopes)?)
    }

    /// The number of organizations loaded.
    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

fn borrow_all(strings: Option<&[PyBackedStr]>) -> Vec<&str> {
    strings.unwrap_or_default().iter().map(|s| &**s).collect()
}
