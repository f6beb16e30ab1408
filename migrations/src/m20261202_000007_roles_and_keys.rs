//! Custom roles, role bindings at tenant or device-group scope, and API keys.
//!
//! A tenant defines its own roles (`roles`: a name and a JSON array of permission names). A person
//! keeps their built-in role (`users.role`, which may now be `member`: nothing tenant-wide) and
//! may hold more roles in `role_bindings`: a built-in role by name or a custom role by id, over the
//! whole tenant (`group_id` null) or over one device group (one row per group). An API key
//! (`api_keys`) is stored as the SHA-256 of its secret, with the permissions and groups it is
//! limited to; `audit_log.actor_key_id` names the key a change was made with. A tenant's quota
//! overrides (`stead_api_types::TenantQuotas`) are `tenants.quotas`, JSON; null is the defaults.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Roles {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    Permissions,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RoleBindings {
    Table,
    Id,
    TenantId,
    UserId,
    BuiltinRole,
    RoleId,
    GroupId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    UserId,
    Description,
    Prefix,
    SecretHash,
    Permissions,
    Groups,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    LastUsedAddress,
    RevokedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    ActorKeyId,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Quotas,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum DeviceGroups {
    Table,
    Id,
}

fn cascade(
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .col(uuid(Roles::Id).primary_key())
                    .col(uuid(Roles::TenantId))
                    .col(string_len(Roles::Name, 64))
                    .col(text(Roles::Description))
                    .col(json(Roles::Permissions))
                    .col(timestamp_with_time_zone(Roles::CreatedAt))
                    .col(timestamp_with_time_zone(Roles::UpdatedAt))
                    .foreign_key(&mut cascade(
                        (Roles::Table, Roles::TenantId),
                        (Tenants::Table, Tenants::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_roles_tenant_name")
                    .table(Roles::Table)
                    .col(Roles::TenantId)
                    .col(Roles::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoleBindings::Table)
                    .col(uuid(RoleBindings::Id).primary_key())
                    .col(uuid(RoleBindings::TenantId))
                    .col(uuid(RoleBindings::UserId))
                    .col(string_len_null(RoleBindings::BuiltinRole, 32))
                    .col(uuid_null(RoleBindings::RoleId))
                    .col(uuid_null(RoleBindings::GroupId))
                    .col(timestamp_with_time_zone(RoleBindings::CreatedAt))
                    .foreign_key(&mut cascade(
                        (RoleBindings::Table, RoleBindings::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .foreign_key(&mut cascade(
                        (RoleBindings::Table, RoleBindings::RoleId),
                        (Roles::Table, Roles::Id),
                    ))
                    .foreign_key(&mut cascade(
                        (RoleBindings::Table, RoleBindings::GroupId),
                        (DeviceGroups::Table, DeviceGroups::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_role_bindings_user")
                    .table(RoleBindings::Table)
                    .col(RoleBindings::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(uuid(ApiKeys::Id).primary_key())
                    .col(uuid(ApiKeys::TenantId))
                    .col(uuid(ApiKeys::UserId))
                    .col(text(ApiKeys::Description))
                    .col(string_len(ApiKeys::Prefix, 32))
                    .col(string_len(ApiKeys::SecretHash, 64).unique_key())
                    .col(json(ApiKeys::Permissions))
                    .col(json(ApiKeys::Groups))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone(ApiKeys::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(string_len_null(ApiKeys::LastUsedAddress, 64))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .foreign_key(&mut cascade(
                        (ApiKeys::Table, ApiKeys::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_api_keys_tenant")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::TenantId)
                    .col(ApiKeys::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditLog::Table)
                    .add_column(uuid_null(AuditLog::ActorKeyId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .add_column(json_null(Tenants::Quotas))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .drop_column(Tenants::Quotas)
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE audit_log DROP COLUMN actor_key_id")
            .await?;
        for table in [
            ApiKeys::Table.into_iden(),
            RoleBindings::Table.into_iden(),
            Roles::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
