//! Who is calling, and what they may do.
//!
//! People log in with e-mail and password (argon2id, hashed off the async threads) and receive a
//! short-lived JWT access token plus a rotating refresh token (stored hashed; re-use of a spent
//! one revokes its whole family). Every request's principal is re-read from the database, so a
//! deactivated user, a changed role or a suspended tenant takes effect at once.
//!
//! Permissions are types (`perm::DevicesWrite`, …): a handler that takes `TenantScope<P>` can only
//! run once the check for `P` has passed, and it receives the `TenantCtx` that every tenant-scoped
//! query requires.

pub mod access;
pub mod http;
mod jwt;
mod keys;
pub mod password;
mod refresh_model;
pub mod reset;
mod reset_model;
pub mod service;
pub mod tokens;
pub mod totp;
pub mod two_factor;

pub use jwt::Keys;
pub use keys::load_or_create_jwt_secret;

pub use stead_api_types::Permission;
use stead_api_types::Role;

use crate::ids::{TenantId, UserId};

/// A permission as a type, for the `TenantScope<P>` / `PlatformScope<P>` extractors.
pub trait Required {
    const PERMISSION: Permission;
}

/// Marker types, one per permission.
pub mod perm {
    macro_rules! marker {
        ($($name:ident),*) => {$(
            pub struct $name;
            impl super::Required for $name {
                const PERMISSION: super::Permission = super::Permission::$name;
            }
        )*};
    }
    marker!(
        TenantsManage,
        UsersRead,
        UsersManage,
        DevicesRead,
        DevicesWrite,
        ProfilesManage,
        CommandsSend,
        AuditRead,
        RolesManage,
        ApiKeysManage,
        QuotasRead,
        WebhooksManage,
        AlarmsRead,
        AlarmsAck,
        AlarmsManage,
        OtaRead,
        OtaManage,
        OtaApprove
    );
}

/// The authenticated person (or API key) behind a request, as the database says now.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The person, or the creator of the API key.
    pub user_id: UserId,
    pub tenant_id: Option<TenantId>,
    /// The person's built-in role (their bindings are in `access`).
    pub role: Role,
    /// What they may do now, over which devices (for a key: narrowed to the key).
    pub access: std::sync::Arc<access::Access>,
    /// Set when the request carries an API key instead of a person's token.
    pub api_key: Option<uuid::Uuid>,
    pub email: String,
    /// Where the request came from (for the audit log); `None` outside a request.
    pub address: Option<std::net::IpAddr>,
    /// The sign-in session the access token belongs to (`None` for tokens issued before
    /// sessions were named).
    pub session: Option<uuid::Uuid>,
    /// Their tenant requires two-factor sign-in and they have not set it up: only their own
    /// account's routes serve them until they do.
    pub two_factor_pending: bool,
}

/// Proof that the platform itself acts, across tenants, where no tenant context can exist yet or
/// at all: authentication (an e-mail, a token or a link's secret before anyone is known), the
/// device ingress (a device found by its credentials), the workers' sweeps and the command line.
/// The few finders that ignore tenants take it; request handlers never build it (the test
/// `tenancy::` checks where each constructor appears), so they reach tenant-owned data only
/// through finders that take a `TenantCtx`.
#[derive(Debug, Clone, Copy)]
pub struct System {
    _private: (),
}

impl System {
    /// Sign-in, tokens, keys and one-time links (`auth`, `apikeys`, `invitations`).
    pub(crate) const fn auth() -> System {
        System { _private: () }
    }

    /// Devices by their credentials (MQTT, the HTTP device API, provisioning).
    pub(crate) const fn ingress() -> System {
        System { _private: () }
    }

    /// Background work over every tenant (presence sweeps, command expiry, import jobs).
    pub(crate) const fn worker() -> System {
        System { _private: () }
    }

    /// The operator's command line (`stead admin …`) and start-up.
    pub const fn cli() -> System {
        System { _private: () }
    }
}

/// Proof that the caller acts inside one tenant, and over which of its devices. Every repository
/// function over tenant-owned data takes it, so a query that forgets the tenant does not compile;
/// the device finders apply its reach, so a group-scoped caller's lists, counts and lookups hold
/// only their groups' devices. Built only by the auth extractors, and by the paths that act for
/// the tenant as a whole (tenant creation, provisioning).
#[derive(Debug, Clone)]
pub struct TenantCtx {
    tenant_id: TenantId,
    reach: access::Reach,
}

impl TenantCtx {
    /// The whole tenant.
    pub(crate) fn new(tenant_id: TenantId) -> TenantCtx {
        TenantCtx {
            tenant_id,
            reach: access::Reach::All,
        }
    }

    pub(crate) fn reaching(tenant_id: TenantId, reach: access::Reach) -> TenantCtx {
        TenantCtx { tenant_id, reach }
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    pub fn reach(&self) -> &access::Reach {
        &self.reach
    }
}
