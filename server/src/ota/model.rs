//! The OTA tables: packages, the tenants' signing keys, each device's target per kind, and what
//! each device last reported running.

pub mod package {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "ota_packages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        /// `firmware` or `software`.
        pub kind: String,
        pub title: String,
        pub version: String,
        pub description: String,
        pub profile_id: Option<Uuid>,
        pub size: i64,
        /// Hex; the image is the blob `tenants/<tenant>/sha256/<sha256>`.
        pub sha256: String,
        /// Every checksum by algorithm name (`SHA256`, `CRC32`, …), as the device SDKs verify.
        pub checksums: Json,
        pub signing_key_id: Option<Uuid>,
        pub created_by: Option<Uuid>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod signing_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "ota_signing_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub name: String,
        /// Base64 of the 32-byte Ed25519 public key.
        pub public_key: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod target {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "ota_device_targets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub device_id: Uuid,
        /// `firmware` or `software`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        pub tenant_id: Uuid,
        pub package_id: Uuid,
        /// An `OtaState` name (`NOTIFIED`, `DOWNLOADING`, …).
        pub state: String,
        pub reason: Option<String>,
        /// Downloads that ended in `FAILED` for this target.
        pub attempts: i32,
        /// What the device ran when the target was set (for the record, and a roll-back).
        pub previous_title: Option<String>,
        pub previous_version: Option<String>,
        pub assigned_by: Option<Uuid>,
        pub assigned_at: DateTimeUtc,
        pub state_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::package::Entity",
            from = "Column::PackageId",
            to = "super::package::Column::Id"
        )]
        Package,
    }

    impl Related<super::package::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Package.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod version {
    use sea_orm::entity::prelude::*;

    /// What a device last reported running (`current_fw_title`, `current_fw_version`).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "ota_device_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub device_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        pub tenant_id: Uuid,
        pub title: String,
        pub version: String,
        pub reported_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
