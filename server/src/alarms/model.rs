//! The alarm tables: rules, alarms, and each alarm's history.

pub mod rule {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alarm_rules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub profile_id: Option<Uuid>,
        pub device_id: Option<Uuid>,
        pub alarm_type: String,
        pub description: Option<String>,
        pub enabled: bool,
        /// The whole `AlarmRuleSpec` as given (checked when written).
        pub spec: Json,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod alarm {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alarms")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub device_id: Uuid,
        pub alarm_type: String,
        pub rule_id: Option<Uuid>,
        pub severity: String,
        pub active: bool,
        pub acknowledged: bool,
        pub started_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub acknowledged_at: Option<DateTimeUtc>,
        pub cleared_at: Option<DateTimeUtc>,
        pub ended_at: Option<DateTimeUtc>,
        pub details: Json,
        pub assignee_id: Option<Uuid>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod history {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alarm_history")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub alarm_id: Uuid,
        pub tenant_id: Uuid,
        pub at: DateTimeUtc,
        pub kind: String,
        pub severity: String,
        pub actor: String,
        pub text: Option<String>,
        pub values: Option<Json>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
