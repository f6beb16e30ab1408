//! Integrations: the event outbox, webhook endpoints, deliveries with their attempts, and each
//! tenant's NATS JetStream sink.
//!
//! `events` is the transactional outbox: a change writes its event in its own transaction, so an
//! event exists exactly when its change committed. `seq` orders them; `dispatched` is false until
//! a worker has turned the event into deliveries (a partial index finds those cheaply). One
//! `event_deliveries` row is one event on its way to one webhook endpoint (`endpoint_id`) or to
//! the tenant's NATS sink (`sink = 'nats'`), with its status, attempts and next retry; each HTTP
//! request is a `webhook_attempts` row (the delivery log). An endpoint's signing secret is sealed
//! (AES-256-GCM, bound to the endpoint's id), never stored in the clear.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    Seq,
    Id,
    TenantId,
    EventType,
    DeviceId,
    Data,
    CreatedAt,
    Dispatched,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    TenantId,
    Url,
    Description,
    EventTypes,
    GroupId,
    Format,
    Ordered,
    MaxConcurrency,
    Enabled,
    DisabledReason,
    FailingSince,
    Secret,
    PreviousSecret,
    PreviousSecretExpiresAt,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum EventDeliveries {
    Table,
    Id,
    TenantId,
    EndpointId,
    Sink,
    EventSeq,
    EventId,
    EventType,
    Status,
    Attempts,
    NextAttemptAt,
    LeasedUntil,
    LastStatusCode,
    LastError,
    LastLatencyMs,
    Replay,
    CreatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    TenantId,
    Attempt,
    At,
    StatusCode,
    ResponseBody,
    Error,
    LatencyMs,
}

#[derive(DeriveIden)]
enum NatsSinks {
    Table,
    TenantId,
    Enabled,
    EventTypes,
    Delivered,
    LastError,
    LastDeliveredAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
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
                    .table(Events::Table)
                    .col(big_pk_auto(Events::Seq))
                    .col(uuid(Events::Id).unique_key())
                    .col(uuid(Events::TenantId))
                    .col(string_len(Events::EventType, 48))
                    .col(uuid_null(Events::DeviceId))
                    .col(json(Events::Data))
                    .col(timestamp_with_time_zone(Events::CreatedAt))
                    .col(boolean(Events::Dispatched).default(false))
                    .foreign_key(&mut cascade(
                        (Events::Table, Events::TenantId),
                        (Tenants::Table, Tenants::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // Both backends take a partial index: only the undispatched few are in it.
        db.execute_unprepared(
            "CREATE INDEX idx_events_undispatched ON events (seq) WHERE dispatched = false",
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_events_tenant_time")
                    .table(Events::Table)
                    .col(Events::TenantId)
                    .col(Events::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(uuid(WebhookEndpoints::Id).primary_key())
                    .col(uuid(WebhookEndpoints::TenantId))
                    .col(text(WebhookEndpoints::Url))
                    .col(text(WebhookEndpoints::Description))
                    .col(json(WebhookEndpoints::EventTypes))
                    .col(uuid_null(WebhookEndpoints::GroupId))
                    .col(string_len(WebhookEndpoints::Format, 16))
                    .col(boolean(WebhookEndpoints::Ordered))
                    .col(integer(WebhookEndpoints::MaxConcurrency))
                    .col(boolean(WebhookEndpoints::Enabled))
                    .col(text_null(WebhookEndpoints::DisabledReason))
                    .col(timestamp_with_time_zone_null(
                        WebhookEndpoints::FailingSince,
                    ))
                    .col(text(WebhookEndpoints::Secret))
                    .col(text_null(WebhookEndpoints::PreviousSecret))
                    .col(timestamp_with_time_zone_null(
                        WebhookEndpoints::PreviousSecretExpiresAt,
                    ))
                    .col(uuid(WebhookEndpoints::CreatedBy))
                    .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookEndpoints::UpdatedAt))
                    .foreign_key(&mut cascade(
                        (WebhookEndpoints::Table, WebhookEndpoints::TenantId),
                        (Tenants::Table, Tenants::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_endpoints_tenant")
                    .table(WebhookEndpoints::Table)
                    .col(WebhookEndpoints::TenantId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EventDeliveries::Table)
                    .col(uuid(EventDeliveries::Id).primary_key())
                    .col(uuid(EventDeliveries::TenantId))
                    .col(uuid_null(EventDeliveries::EndpointId))
                    .col(string_len(EventDeliveries::Sink, 16))
                    .col(big_integer(EventDeliveries::EventSeq))
                    .col(uuid(EventDeliveries::EventId))
                    .col(string_len(EventDeliveries::EventType, 48))
                    .col(string_len(EventDeliveries::Status, 16))
                    .col(integer(EventDeliveries::Attempts).default(0))
                    .col(timestamp_with_time_zone_null(
                        EventDeliveries::NextAttemptAt,
                    ))
                    .col(timestamp_with_time_zone_null(EventDeliveries::LeasedUntil))
                    .col(integer_null(EventDeliveries::LastStatusCode))
                    .col(text_null(EventDeliveries::LastError))
                    .col(big_integer_null(EventDeliveries::LastLatencyMs))
                    .col(boolean(EventDeliveries::Replay).default(false))
                    .col(timestamp_with_time_zone(EventDeliveries::CreatedAt))
                    .col(timestamp_with_time_zone_null(EventDeliveries::FinishedAt))
                    .foreign_key(&mut cascade(
                        (EventDeliveries::Table, EventDeliveries::EndpointId),
                        (WebhookEndpoints::Table, WebhookEndpoints::Id),
                    ))
                    .foreign_key(&mut cascade(
                        (EventDeliveries::Table, EventDeliveries::TenantId),
                        (Tenants::Table, Tenants::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "idx_event_deliveries_due",
                vec![EventDeliveries::Status, EventDeliveries::NextAttemptAt],
            ),
            (
                "idx_event_deliveries_endpoint",
                vec![
                    EventDeliveries::EndpointId,
                    EventDeliveries::Status,
                    EventDeliveries::EventSeq,
                ],
            ),
            (
                "idx_event_deliveries_log",
                vec![EventDeliveries::EndpointId, EventDeliveries::CreatedAt],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(EventDeliveries::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(uuid(WebhookAttempts::Id).primary_key())
                    .col(uuid(WebhookAttempts::DeliveryId))
                    .col(uuid(WebhookAttempts::TenantId))
                    .col(integer(WebhookAttempts::Attempt))
                    .col(timestamp_with_time_zone(WebhookAttempts::At))
                    .col(integer_null(WebhookAttempts::StatusCode))
                    .col(text_null(WebhookAttempts::ResponseBody))
                    .col(text_null(WebhookAttempts::Error))
                    .col(big_integer(WebhookAttempts::LatencyMs))
                    .foreign_key(&mut cascade(
                        (WebhookAttempts::Table, WebhookAttempts::DeliveryId),
                        (EventDeliveries::Table, EventDeliveries::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_attempts_delivery")
                    .table(WebhookAttempts::Table)
                    .col(WebhookAttempts::DeliveryId)
                    .col(WebhookAttempts::Attempt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NatsSinks::Table)
                    .col(uuid(NatsSinks::TenantId).primary_key())
                    .col(boolean(NatsSinks::Enabled))
                    .col(json(NatsSinks::EventTypes))
                    .col(big_integer(NatsSinks::Delivered).default(0))
                    .col(text_null(NatsSinks::LastError))
                    .col(timestamp_with_time_zone_null(NatsSinks::LastDeliveredAt))
                    .col(timestamp_with_time_zone(NatsSinks::UpdatedAt))
                    .foreign_key(&mut cascade(
                        (NatsSinks::Table, NatsSinks::TenantId),
                        (Tenants::Table, Tenants::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            NatsSinks::Table.into_iden(),
            WebhookAttempts::Table.into_iden(),
            EventDeliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
            Events::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
