//! What each role may do: the one table of the ledger's permissions.
//!
//! Every operation of the HTTP API names the permission it needs (or none,
//! for the public ones) in `api::permissions`; the API checks it in one
//! place before the handler runs, and the OpenAPI document states it per
//! operation. The aggregates still check ownership themselves: a
//! permission says what kind of thing a role may do, the aggregate whose
//! thing it is.

use serde::Serialize;

use crate::common::Role;

/// A named power. Its wire name (`as_str`) is what the OpenAPI document
/// and a 403 name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Permission {
    /// Read and change one's own account: profile, onboarding, password,
    /// sessions.
    AccountOwn,
    /// Read one's own keys (never their secrets), bots, trades and
    /// positions (everyone's, with [`Permission::TradingReadAll`]).
    TradingRead,
    /// Issue trading commands: connect one's own exchange keys, configure,
    /// start, stop and trigger one's own bots.
    TradingWrite,
    /// Open, read and reply to one's own support tickets.
    TicketsOwn,
    /// Read every ticket, reply as staff, assign, close and reopen any.
    TicketsStaff,
    /// List, search and read users (profile and status, never a secret).
    UsersRead,
    /// Read any user's keys (never their secrets), bots, trades and
    /// positions.
    TradingReadAll,
    /// Disable and re-enable users, grant roles, erase personal data.
    UsersManage,
    /// The audit trail: events, folded state, exports and their checks.
    AuditRead,
}

impl Permission {
    pub const ALL: [Permission; 9] = [
        Permission::AccountOwn,
        Permission::TradingRead,
        Permission::TradingWrite,
        Permission::TicketsOwn,
        Permission::TicketsStaff,
        Permission::UsersRead,
        Permission::TradingReadAll,
        Permission::UsersManage,
        Permission::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::AccountOwn => "account.own",
            Permission::TradingRead => "trading.read",
            Permission::TradingWrite => "trading.write",
            Permission::TicketsOwn => "tickets.own",
            Permission::TicketsStaff => "tickets.staff",
            Permission::UsersRead => "users.read",
            Permission::TradingReadAll => "trading.read_all",
            Permission::UsersManage => "users.manage",
            Permission::AuditRead => "audit.read",
        }
    }

    /// The roles that hold this permission, in [`Role::ALL`]'s order.
    pub fn roles(self) -> Vec<Role> {
        Role::ALL
            .into_iter()
            .filter(|role| role.has(self))
            .collect()
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

use Permission::*;

/// The table: each role and the permissions it holds. Nothing else grants
/// a permission.
pub const ROLE_PERMISSIONS: [(Role, &[Permission]); 4] = [
    (
        Role::User,
        &[AccountOwn, TradingRead, TradingWrite, TicketsOwn],
    ),
    (
        Role::Support,
        &[
            AccountOwn,
            TradingRead,
            TradingWrite,
            TicketsOwn,
            TicketsStaff,
            UsersRead,
        ],
    ),
    (
        Role::Admin,
        &[
            AccountOwn,
            TradingRead,
            TradingWrite,
            TicketsOwn,
            TicketsStaff,
            UsersRead,
            TradingReadAll,
            UsersManage,
            AuditRead,
        ],
    ),
    // Auditors read and replay; they do not trade (the Bot and the
    // ExchangeKey refuse them too, `Actor::ensure_may_trade`).
    (
        Role::Auditor,
        &[
            AccountOwn,
            TradingRead,
            TicketsOwn,
            TradingReadAll,
            AuditRead,
        ],
    ),
];

impl Role {
    /// The permissions this role holds, from [`ROLE_PERMISSIONS`].
    pub fn permissions(self) -> &'static [Permission] {
        ROLE_PERMISSIONS
            .iter()
            .find(|(role, _)| *role == self)
            .map(|(_, permissions)| *permissions)
            .unwrap_or(&[])
    }

    pub fn has(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_is_in_the_table_once() {
        for role in Role::ALL {
            let rows = ROLE_PERMISSIONS.iter().filter(|(r, _)| *r == role).count();
            assert_eq!(rows, 1, "{role:?}");
        }
    }

    #[test]
    fn every_permission_is_held_by_admin_and_by_no_role_it_is_not_listed_for() {
        for permission in Permission::ALL {
            assert!(Role::Admin.has(permission), "{permission}");
        }
        assert!(!Role::User.has(Permission::UsersRead));
        assert!(!Role::Support.has(Permission::TradingReadAll));
        assert!(!Role::Auditor.has(Permission::UsersManage));
        assert!(!Role::Auditor.has(Permission::TradingWrite));
    }
}
