//! The integration tables: webhook endpoints, deliveries (webhook and NATS), attempts, and each
//! tenant's NATS sink.

pub mod endpoint {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_endpoints")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub url: String,
        pub description: String,
        /// JSON array of event type names; empty: every type.
        pub event_types: Json,
        pub group_id: Option<Uuid>,
        pub format: String,
        pub ordered: bool,
        pub max_concurrency: i32,
        pub enabled: bool,
        pub disabled_reason: Option<String>,
        pub failing_since: Option<DateTimeUtc>,
        /// Sealed (AES-256-GCM, bound to the endpoint's id).
        pub secret: String,
        pub previous_secret: Option<String>,
        pub previous_secret_expires_at: Option<DateTimeUtc>,
        pub created_by: Uuid,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod delivery {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "event_deliveries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        /// The webhook endpoint; `None` for the NATS sink.
        pub endpoint_id: Option<Uuid>,
        /// `webhook` or `nats`.
        pub sink: String,
        pub event_seq: i64,
        pub event_id: Uuid,
        pub event_type: String,
        /// `pending`, `succeeded` or `failed`.
        pub status: String,
        pub attempts: i32,
        pub next_attempt_at: Option<DateTimeUtc>,
        /// A worker is sending it until then.
        pub leased_until: Option<DateTimeUtc>,
        pub last_status_code: Option<i32>,
        pub last_error: Option<String>,
        pub last_latency_ms: Option<i64>,
        pub replay: bool,
        pub created_at: DateTimeUtc,
        pub finished_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod attempt {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_attempts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub delivery_id: Uuid,
        pub tenant_id: Uuid,
        pub attempt: i32,
        pub at: DateTimeUtc,
        pub status_code: Option<i32>,
        pub response_body: Option<String>,
        pub error: Option<String>,
        pub latency_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod nats_sink {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "nats_sinks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        pub enabled: bool,
        pub event_types: Json,
        pub delivered: i64,
        pub last_error: Option<String>,
        pub last_delivered_at: Option<DateTimeUtc>,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
