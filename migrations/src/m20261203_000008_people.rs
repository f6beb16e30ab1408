//! Invitations, password resets and two-factor sign-in.
//!
//! An invitation (`invitations`) carries the invitee's e-mail, built-in role and bindings (JSON,
//! as `stead_api_types::NewRoleBinding`), and the SHA-256 of its one-time link token; accepting
//! it sets `accepted_at` once. A password reset (`password_resets`) is the SHA-256 of a one-time
//! token for one user. A person's TOTP secret is `users.totp_secret`, sealed (AES-256-GCM) with a
//! key derived from the server's signing secret; `totp_pending` holds one being set up;
//! `totp_last_step` the last time step a code was accepted for (so a code works once);
//! `recovery_codes` the SHA-256 of the unused recovery codes (JSON array). A tenant can require
//! two-factor sign-in (`tenants.require_two_factor`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Invitations {
    Table,
    Id,
    TenantId,
    Email,
    Name,
    Role,
    Bindings,
    TokenHash,
    InvitedBy,
    CreatedAt,
    ExpiresAt,
    AcceptedAt,
    AcceptedUserId,
    RevokedAt,
    MailStatus,
    MailError,
}

#[derive(DeriveIden)]
enum PasswordResets {
    Table,
    Id,
    UserId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    TotpSecret,
    TotpPending,
    TotpLastStep,
    RecoveryCodes,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    RequireTwoFactor,
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
                    .table(Invitations::Table)
                    .col(uuid(Invitations::Id).primary_key())
                    .col(uuid(Invitations::TenantId))
                    .col(string_len(Invitations::Email, 254))
                    .col(text(Invitations::Name))
                    .col(string_len(Invitations::Role, 32))
                    .col(json(Invitations::Bindings))
                    .col(string_len(Invitations::TokenHash, 64).unique_key())
                    .col(uuid(Invitations::InvitedBy))
                    .col(timestamp_with_time_zone(Invitations::CreatedAt))
                    .col(timestamp_with_time_zone(Invitations::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Invitations::AcceptedAt))
                    .col(uuid_null(Invitations::AcceptedUserId))
                    .col(timestamp_with_time_zone_null(Invitations::RevokedAt))
                    .col(string_len(Invitations::MailStatus, 16))
                    .col(text_null(Invitations::MailError))
                    .foreign_key(&mut cascade(
                        (Invitations::Table, Invitations::TenantId),
                        (Tenants::Table, Tenants::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_invitations_tenant")
                    .table(Invitations::Table)
                    .col(Invitations::TenantId)
                    .col(Invitations::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PasswordResets::Table)
                    .col(uuid(PasswordResets::Id).primary_key())
                    .col(uuid(PasswordResets::UserId))
                    .col(string_len(PasswordResets::TokenHash, 64).unique_key())
                    .col(timestamp_with_time_zone(PasswordResets::CreatedAt))
                    .col(timestamp_with_time_zone(PasswordResets::ExpiresAt))
                    .col(timestamp_with_time_zone_null(PasswordResets::UsedAt))
                    .foreign_key(&mut cascade(
                        (PasswordResets::Table, PasswordResets::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        for column in [
            text_null(Users::TotpSecret),
            text_null(Users::TotpPending),
            big_integer_null(Users::TotpLastStep),
            json_null(Users::RecoveryCodes),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .add_column(boolean(Tenants::RequireTwoFactor).default(false))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE tenants DROP COLUMN require_two_factor")
            .await?;
        for column in [
            "recovery_codes",
            "totp_last_step",
            "totp_pending",
            "totp_secret",
        ] {
            db.execute_unprepared(&format!("ALTER TABLE users DROP COLUMN {column}"))
                .await?;
        }
        for table in [
            PasswordResets::Table.into_iden(),
            Invitations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
