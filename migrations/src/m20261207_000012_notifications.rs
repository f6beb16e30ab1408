//! Alarm notifications: rules (which changes, to whom, by which channels, grouped, escalated),
//! silences, the people's in-app notifications, and `alarm_notices`, the outbox of alarm changes
//! the notifier works through (written in the change's own transaction, like `events`); and an
//! index for the fleet page's latest refused connects.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let pg = manager.get_database_backend() == DatabaseBackend::Postgres;
        let (id, ts, json, serial) = if pg {
            ("uuid", "timestamptz", "jsonb", "bigserial PRIMARY KEY")
        } else {
            (
                "blob",
                "timestamp_with_timezone_text",
                "json_text",
                "integer PRIMARY KEY AUTOINCREMENT",
            )
        };
        for sql in [
            format!(
                "CREATE TABLE notification_rules (
                    id {id} PRIMARY KEY,
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    name varchar(100) NOT NULL,
                    enabled boolean NOT NULL,
                    spec {json} NOT NULL,
                    created_at {ts} NOT NULL,
                    updated_at {ts} NOT NULL
                )"
            ),
            "CREATE INDEX idx_notification_rules_tenant ON notification_rules (tenant_id)".into(),
            format!(
                "CREATE TABLE silences (
                    id {id} PRIMARY KEY,
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    device_id {id} REFERENCES devices(id) ON DELETE CASCADE,
                    group_id {id} REFERENCES device_groups(id) ON DELETE CASCADE,
                    alarm_type varchar(64),
                    starts_at {ts} NOT NULL,
                    ends_at {ts} NOT NULL,
                    reason text,
                    created_by {id},
                    created_at {ts} NOT NULL
                )"
            ),
            "CREATE INDEX idx_silences_tenant_end ON silences (tenant_id, ends_at)".into(),
            format!(
                "CREATE TABLE notifications (
                    id {id} PRIMARY KEY,
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    user_id {id} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    alarm_id {id} REFERENCES alarms(id) ON DELETE SET NULL,
                    title text NOT NULL,
                    body text NOT NULL,
                    severity varchar(16) NOT NULL,
                    created_at {ts} NOT NULL,
                    read_at {ts}
                )"
            ),
            "CREATE INDEX idx_notifications_user ON notifications (user_id, created_at)".into(),
            format!(
                "CREATE TABLE alarm_notices (
                    id {serial},
                    tenant_id {id} NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    alarm_id {id} NOT NULL REFERENCES alarms(id) ON DELETE CASCADE,
                    change varchar(32) NOT NULL,
                    event_seq bigint NOT NULL,
                    at {ts} NOT NULL,
                    processed boolean NOT NULL DEFAULT false
                )"
            ),
            "CREATE INDEX idx_alarm_notices_pending ON alarm_notices (id) WHERE processed = false"
                .into(),
            // The fleet page's latest refused connects of a tenant.
            "CREATE INDEX idx_device_events_tenant_kind ON device_events (tenant_id, kind, id)"
                .into(),
            format!(
                "CREATE TABLE alarm_escalations (
                    alarm_id {id} NOT NULL REFERENCES alarms(id) ON DELETE CASCADE,
                    rule_id {id} NOT NULL REFERENCES notification_rules(id) ON DELETE CASCADE,
                    at {ts} NOT NULL,
                    PRIMARY KEY (alarm_id, rule_id)
                )"
            ),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX idx_device_events_tenant_kind")
            .await?;
        for table in [
            "alarm_escalations",
            "alarm_notices",
            "notifications",
            "silences",
            "notification_rules",
        ] {
            db.execute_unprepared(&format!("DROP TABLE {table}"))
                .await?;
        }
        Ok(())
    }
}
