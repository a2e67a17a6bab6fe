// Which sections each role sees. This mirrors the ledger's one table,
// `domain::permissions::ROLE_PERMISSIONS`: the API checks every request
// itself, so a section shown by mistake is refused there, never granted;
// this table only keeps the console from offering what would be refused.

export const ROLE_PERMISSIONS = {
  user: ['account.own', 'trading.read', 'trading.write', 'tickets.own'],
  support: ['account.own', 'trading.read', 'trading.write', 'tickets.own', 'tickets.staff', 'users.read'],
  admin: [
    'account.own',
    'trading.read',
    'trading.write',
    'tickets.own',
    'tickets.staff',
    'users.read',
    'trading.read_all',
    'users.manage',
    'audit.read',
  ],
  auditor: ['account.own', 'trading.read', 'tickets.own', 'trading.read_all', 'audit.read'],
};

/** Whether `role` holds `permission` (an unknown role holds nothing). */
export function may(role, permission) {
  return (ROLE_PERMISSIONS[role] || []).includes(permission);
}
