//! What a caller may do, and over which devices.
//!
//! A person's access is their built-in role over the whole tenant, plus every role binding they
//! hold: a role over the whole tenant, or over the devices of some device groups. Only
//! [`Permission::group_scopable`] permissions are granted by a group binding; the rest act on the
//! tenant as a whole. An API key's access is its creator's, narrowed to the key's permissions and
//! groups, worked out again at every request (a creator who loses a permission takes it from
//! their keys at once).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use stead_api_types::{Permission, Role};
use uuid::Uuid;

/// Which of the tenant's devices a request may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    All,
    /// Only the devices in these groups (never empty).
    Groups(Arc<[Uuid]>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    tenant_wide: BTreeSet<Permission>,
    groups: BTreeMap<Permission, BTreeSet<Uuid>>,
}

impl Access {
    pub fn of_role(role: Role) -> Access {
        let mut access = Access::default();
        access.grant(Permission::of_role(role), &[]);
        access
    }

    /// Adds permissions over the whole tenant (`groups` empty) or over some groups' devices.
    pub fn grant(&mut self, permissions: impl IntoIterator<Item = Permission>, groups: &[Uuid]) {
        for p in permissions {
            if groups.is_empty() {
                self.tenant_wide.insert(p);
            } else if p.group_scopable() {
                self.groups.entry(p).or_default().extend(groups);
            }
        }
    }

    pub fn tenant_wide(&self, p: Permission) -> bool {
        self.tenant_wide.contains(&p)
    }

    /// The devices `p` reaches, if any.
    pub fn reach(&self, p: Permission) -> Option<Reach> {
        if self.tenant_wide.contains(&p) {
            return Some(Reach::All);
        }
        let groups = self.groups.get(&p).filter(|g| !g.is_empty())?;
        Some(Reach::Groups(groups.iter().copied().collect()))
    }

    /// Every permission held, at any scope (what the console shows).
    pub fn permissions(&self) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.reach(*p).is_some())
            .collect()
    }

    /// The groups device access is limited to, when it reaches no device tenant-wide.
    pub fn groups(&self) -> Option<Vec<Uuid>> {
        if self.tenant_wide(Permission::DevicesRead) {
            return None;
        }
        let all: BTreeSet<Uuid> = self.groups.values().flatten().copied().collect();
        (!all.is_empty()).then(|| all.into_iter().collect())
    }

    /// This access narrowed to `permissions` and, when `groups` is not empty, to those groups:
    /// never more than it had.
    pub fn narrowed(&self, permissions: &[Permission], groups: &[Uuid]) -> Access {
        let mut out = Access::default();
        for &p in permissions {
            match (self.reach(p), groups.is_empty()) {
                (None, _) => {}
                (Some(Reach::All), true) => {
                    out.tenant_wide.insert(p);
                }
                (Some(Reach::All), false) => out.grant([p], groups),
                (Some(Reach::Groups(mine)), _) => {
                    let kept: Vec<Uuid> = mine
                        .iter()
                        .copied()
                        .filter(|g| groups.is_empty() || groups.contains(g))
                        .collect();
                    if !kept.is_empty() {
                        out.grant([p], &kept);
                    }
                }
            }
        }
        out
    }

    /// The first of `permissions` this access does not hold over all of `groups` (the whole
    /// tenant when empty): what a key asked for beyond its creator's reach.
    pub fn lacks(&self, permissions: &[Permission], groups: &[Uuid]) -> Option<Permission> {
        permissions.iter().copied().find(|&p| match self.reach(p) {
            None => true,
            Some(Reach::All) => !groups.is_empty() && !p.group_scopable(),
            Some(Reach::Groups(mine)) => {
                groups.is_empty() || groups.iter().any(|g| !mine.contains(g))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_bindings_grant_only_device_permissions_over_their_groups() {
        let north = Uuid::new_v4();
        let mut a = Access::of_role(Role::Member);
        assert!(a.permissions().is_empty());
        a.grant(Permission::of_role(Role::TenantAdmin), &[north]);
        assert_eq!(
            a.permissions(),
            vec![
                Permission::DevicesRead,
                Permission::DevicesWrite,
                Permission::CommandsSend,
                Permission::AlarmsRead,
                Permission::AlarmsAck
            ]
        );
        assert_eq!(
            a.reach(Permission::DevicesRead),
            Some(Reach::Groups(Arc::from([north])))
        );
        assert!(!a.tenant_wide(Permission::DevicesRead));
        assert_eq!(a.reach(Permission::UsersManage), None);
    }

    #[test]
    fn narrowing_never_widens() {
        let (north, south) = (Uuid::new_v4(), Uuid::new_v4());
        let mut a = Access::of_role(Role::Viewer);
        a.grant([Permission::DevicesWrite], &[north]);
        let k = a.narrowed(
            &[
                Permission::DevicesRead,
                Permission::DevicesWrite,
                Permission::UsersManage,
            ],
            &[],
        );
        assert_eq!(k.reach(Permission::DevicesRead), Some(Reach::All));
        assert_eq!(
            k.reach(Permission::DevicesWrite),
            Some(Reach::Groups(Arc::from([north])))
        );
        assert_eq!(k.reach(Permission::UsersManage), None);
        let k = a.narrowed(&[Permission::DevicesWrite], &[south]);
        assert_eq!(k.reach(Permission::DevicesWrite), None);
        assert_eq!(
            a.lacks(&[Permission::DevicesWrite], &[]),
            Some(Permission::DevicesWrite)
        );
        assert_eq!(a.lacks(&[Permission::DevicesWrite], &[north]), None);
        assert_eq!(a.lacks(&[Permission::DevicesRead], &[south]), None);
        assert_eq!(
            a.lacks(&[Permission::UsersRead], &[]),
            Some(Permission::UsersRead)
        );
    }
}
