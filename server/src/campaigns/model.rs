//! The campaign tables: campaigns, each one's devices with their execution state, and the
//! campaign's progress over time (devices per state, once a minute).

pub mod campaign {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "ota_campaigns")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub name: String,
        pub package_id: Uuid,
        /// `firmware` or `software`: the package's.
        pub kind: String,
        /// The `CampaignSpec` it was made with.
        pub spec: Json,
        /// A `CampaignStatus` name.
        pub status: String,
        pub reason: Option<String>,
        /// The wave under way, from 1.
        pub wave: i32,
        /// The target's devices were enrolled (a snapshot is enrolled once).
        pub enrolled: bool,
        pub created_by: Option<Uuid>,
        pub approved_by: Option<Uuid>,
        pub created_at: DateTimeUtc,
        pub started_at: Option<DateTimeUtc>,
        pub finished_at: Option<DateTimeUtc>,
        /// The worker that runs it now, until when (a lease: another takes over when it lapses).
        pub lease_owner: Option<Uuid>,
        pub lease_until: Option<DateTimeUtc>,
        /// When its progress was last recorded.
        pub progress_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod device {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "ota_campaign_devices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub device_id: Uuid,
        pub tenant_id: Uuid,
        /// Its place in the rollout (waves take devices in this order).
        pub position: i64,
        /// An `OtaState` name.
        pub state: String,
        pub reason: Option<String>,
        /// Times it was notified.
        pub attempts: i32,
        /// A device waiting for a retry is not notified before this.
        pub next_at: Option<DateTimeUtc>,
        pub notified_at: Option<DateTimeUtc>,
        /// When it reported `UPDATED` (its health is watched from then).
        pub updated_at: Option<DateTimeUtc>,
        /// What it ran before (its roll-back target).
        pub previous_title: Option<String>,
        pub previous_version: Option<String>,
        pub state_at: DateTimeUtc,
        /// Every step: `[{"state", "at", "reason"}]`.
        pub history: Json,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod progress {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "ota_campaign_progress")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub at: DateTimeUtc,
        /// Devices per state.
        pub counts: Json,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
