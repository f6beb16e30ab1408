//! Alarms: rules (on a device profile, or on one device), the alarms they raise, and every change
//! of an alarm with who or what made it.
//!
//! At most one alarm per (device, type) is active: a unique partial index over the rows not yet
//! cleared says so, so two nodes raising the same alarm at once make one row, whatever their
//! timing. An alarm's `details` are the values that raised (or last stepped) it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AlarmRules {
    Table,
    Id,
    TenantId,
    ProfileId,
    DeviceId,
    AlarmType,
    Description,
    Enabled,
    Spec,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Alarms {
    Table,
    Id,
    TenantId,
    DeviceId,
    AlarmType,
    RuleId,
    Severity,
    Active,
    Acknowledged,
    StartedAt,
    UpdatedAt,
    AcknowledgedAt,
    ClearedAt,
    EndedAt,
    Details,
    AssigneeId,
}

#[derive(DeriveIden)]
enum AlarmHistory {
    Table,
    Id,
    AlarmId,
    TenantId,
    At,
    Kind,
    Severity,
    Actor,
    Text,
    Values,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum DeviceProfiles {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

fn fk(
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(on_delete)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ForeignKeyAction::{Cascade, SetNull};
        manager
            .create_table(
                Table::create()
                    .table(AlarmRules::Table)
                    .col(uuid(AlarmRules::Id).primary_key())
                    .col(uuid(AlarmRules::TenantId))
                    .col(uuid_null(AlarmRules::ProfileId))
                    .col(uuid_null(AlarmRules::DeviceId))
                    .col(string_len(AlarmRules::AlarmType, 64))
                    .col(text_null(AlarmRules::Description))
                    .col(boolean(AlarmRules::Enabled))
                    .col(json(AlarmRules::Spec))
                    .col(timestamp_with_time_zone(AlarmRules::CreatedAt))
                    .col(timestamp_with_time_zone(AlarmRules::UpdatedAt))
                    .foreign_key(&mut fk(
                        (AlarmRules::Table, AlarmRules::TenantId),
                        (Tenants::Table, Tenants::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        (AlarmRules::Table, AlarmRules::ProfileId),
                        (DeviceProfiles::Table, DeviceProfiles::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        (AlarmRules::Table, AlarmRules::DeviceId),
                        (Devices::Table, Devices::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alarms::Table)
                    .col(uuid(Alarms::Id).primary_key())
                    .col(uuid(Alarms::TenantId))
                    .col(uuid(Alarms::DeviceId))
                    .col(string_len(Alarms::AlarmType, 64))
                    .col(uuid_null(Alarms::RuleId))
                    .col(string_len(Alarms::Severity, 16))
                    .col(boolean(Alarms::Active))
                    .col(boolean(Alarms::Acknowledged))
                    .col(timestamp_with_time_zone(Alarms::StartedAt))
                    .col(timestamp_with_time_zone(Alarms::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Alarms::AcknowledgedAt))
                    .col(timestamp_with_time_zone_null(Alarms::ClearedAt))
                    .col(timestamp_with_time_zone_null(Alarms::EndedAt))
                    .col(json(Alarms::Details))
                    .col(uuid_null(Alarms::AssigneeId))
                    .foreign_key(&mut fk(
                        (Alarms::Table, Alarms::TenantId),
                        (Tenants::Table, Tenants::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        (Alarms::Table, Alarms::DeviceId),
                        (Devices::Table, Devices::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        (Alarms::Table, Alarms::RuleId),
                        (AlarmRules::Table, AlarmRules::Id),
                        SetNull,
                    ))
                    .foreign_key(&mut fk(
                        (Alarms::Table, Alarms::AssigneeId),
                        (Users::Table, Users::Id),
                        SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AlarmHistory::Table)
                    .col(big_pk_auto(AlarmHistory::Id))
                    .col(uuid(AlarmHistory::AlarmId))
                    .col(uuid(AlarmHistory::TenantId))
                    .col(timestamp_with_time_zone(AlarmHistory::At))
                    .col(string_len(AlarmHistory::Kind, 32))
                    .col(string_len(AlarmHistory::Severity, 16))
                    .col(string(AlarmHistory::Actor))
                    .col(text_null(AlarmHistory::Text))
                    .col(json_null(AlarmHistory::Values))
                    .foreign_key(&mut fk(
                        (AlarmHistory::Table, AlarmHistory::AlarmId),
                        (Alarms::Table, Alarms::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for sql in [
            // The guarantee: one active alarm per (device, type), whoever raises it.
            "CREATE UNIQUE INDEX idx_alarms_one_active ON alarms (device_id, alarm_type) WHERE active",
            "CREATE INDEX idx_alarms_tenant_started ON alarms (tenant_id, started_at)",
            "CREATE INDEX idx_alarms_device_started ON alarms (device_id, started_at)",
            "CREATE INDEX idx_alarm_history_alarm ON alarm_history (alarm_id, id)",
            // A type once per profile and once per device.
            "CREATE UNIQUE INDEX idx_alarm_rules_profile_type ON alarm_rules (profile_id, alarm_type) WHERE profile_id IS NOT NULL",
            "CREATE UNIQUE INDEX idx_alarm_rules_device_type ON alarm_rules (device_id, alarm_type) WHERE device_id IS NOT NULL",
            "CREATE INDEX idx_alarm_rules_tenant ON alarm_rules (tenant_id)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["alarm_history", "alarms", "alarm_rules"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
