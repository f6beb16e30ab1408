//! Quotas per tenant: how many devices, people and live API keys a tenant may have (and the data
//! points per day it may send, counted by the ingress: `ingress::daily`). The platform's
//! defaults come from configuration (`STEAD_QUOTA_*`); the platform admin may set a tenant's own
//! (`PATCH /tenants/{id}` `quotas`). Every way of adding one (REST, import, provisioning) checks
//! here first, and going over answers 409 `quota_exceeded` naming the quota.

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, PaginatorTrait};
use stead_api_types::{QuotaUse, TenantQuotas, TenantSummary, Usage};

use super::model;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::TenantId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Devices,
    Users,
    ApiKeys,
}

impl Quota {
    fn noun(self) -> &'static str {
        match self {
            Quota::Devices => "devices",
            Quota::Users => "people",
            Quota::ApiKeys => "active API keys",
        }
    }
}

/// The platform's defaults, taken from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    devices: u64,
    users: u64,
    api_keys: u64,
    data_points_per_day: u64,
    ota_bytes: u64,
}

impl Defaults {
    pub fn of(cfg: &Config) -> Defaults {
        Defaults {
            devices: cfg.quota_devices,
            users: cfg.quota_users,
            api_keys: cfg.quota_api_keys,
            data_points_per_day: cfg.quota_data_points_per_day,
            ota_bytes: cfg.quota_ota_bytes,
        }
    }

    /// Bytes of OTA packages the tenant may store.
    pub fn ota_bytes_of(&self, overrides: &TenantQuotas) -> u64 {
        overrides.ota_bytes.unwrap_or(self.ota_bytes)
    }

    fn limit(&self, overrides: &TenantQuotas, quota: Quota) -> u64 {
        match quota {
            Quota::Devices => overrides.devices.unwrap_or(self.devices),
            Quota::Users => overrides.users.unwrap_or(self.users),
            Quota::ApiKeys => overrides.api_keys.unwrap_or(self.api_keys),
        }
    }
}

pub fn overrides_of(t: &model::Model) -> TenantQuotas {
    t.quotas
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

async fn used(db: &impl ConnectionTrait, tenant: TenantId, quota: Quota) -> Result<u64> {
    Ok(match quota {
        Quota::Devices => {
            use crate::devices::model as devices;
            devices::Entity::find()
                .filter(devices::Column::TenantId.eq(tenant.0))
                .count(db)
                .await?
        }
        Quota::Users => {
            use crate::users::model as users;
            users::Entity::find()
                .filter(users::Column::TenantId.eq(tenant.0))
                .count(db)
                .await?
        }
        Quota::ApiKeys => {
            use crate::apikeys::model as keys;
            keys::Entity::find()
                .filter(keys::Column::TenantId.eq(tenant.0))
                .filter(keys::Column::RevokedAt.is_null())
                .filter(keys::Column::ExpiresAt.gt(chrono::Utc::now()))
                .count(db)
                .await?
        }
    })
}

/// Refuses adding `adding` more of `quota` when the tenant would go over it.
pub async fn check(
    db: &impl ConnectionTrait,
    defaults: &Defaults,
    tenant: TenantId,
    quota: Quota,
    adding: u64,
) -> Result<()> {
    let overrides = super::repo::find(db, tenant)
        .await?
        .map(|t| overrides_of(&t))
        .unwrap_or_default();
    let limit = defaults.limit(&overrides, quota);
    let used = used(db, tenant, quota).await?;
    if used + adding > limit {
        return Err(Error::conflict(
            "quota_exceeded",
            format!(
                "the {} quota is reached: this tenant may have {limit} {} and has {used}; \
                 ask the platform operator to raise it",
                match quota {
                    Quota::Devices => "devices",
                    Quota::Users => "users",
                    Quota::ApiKeys => "api_keys",
                },
                quota.noun()
            ),
        ));
    }
    Ok(())
}

/// A tenant's use of each quota.
pub async fn usage(
    db: &impl ConnectionTrait,
    live: &crate::live::LiveStore,
    defaults: &Defaults,
    tenant: &model::Model,
) -> Result<Usage> {
    let overrides = overrides_of(tenant);
    let id = TenantId(tenant.id);
    let overrides = &overrides;
    let of = |quota| async move {
        Ok::<_, Error>(QuotaUse {
            used: used(db, id, quota).await?,
            limit: defaults.limit(overrides, quota),
        })
    };
    Ok(Usage {
        tenant: TenantSummary {
            id: tenant.id,
            name: tenant.name.clone(),
        },
        devices: of(Quota::Devices).await?,
        users: of(Quota::Users).await?,
        api_keys: of(Quota::ApiKeys).await?,
        data_points_today: QuotaUse {
            used: crate::ingress::daily::DailyPoints::used_today(live, id).await?,
            limit: overrides
                .data_points_per_day
                .unwrap_or(defaults.data_points_per_day),
        },
        ota_bytes: QuotaUse {
            used: crate::ota::repo::stored_bytes(db, &crate::auth::TenantCtx::new(id)).await?,
            limit: defaults.ota_bytes_of(overrides),
        },
    })
}
