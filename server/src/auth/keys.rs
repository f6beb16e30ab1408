//! The access-token signing key: from configuration, or generated once and kept in the database
//! so that every node (and every restart) signs and checks with the same key.

use sea_orm::entity::prelude::*;
use sea_orm::{DatabaseConnection, Set};

use crate::config::Config;

const JWT_KEY_NAME: &str = "jwt_hs256";

mod model {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "platform_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub value: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub async fn load_or_create_jwt_secret(
    config: &Config,
    db: &DatabaseConnection,
) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.expose().as_bytes().to_vec());
    }
    if let Some(row) = model::Entity::find_by_id(JWT_KEY_NAME).one(db).await? {
        return Ok(row.value.into_bytes());
    }
    let value = format!(
        "{}{}",
        super::tokens::random_token(),
        super::tokens::random_token()
    );
    let inserted = model::ActiveModel {
        name: Set(JWT_KEY_NAME.into()),
        value: Set(value),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(db)
    .await;
    if let Err(e) = inserted {
        // Another node won the race; use its key.
        tracing::debug!(error = %e, "signing key already created elsewhere");
    }
    model::Entity::find_by_id(JWT_KEY_NAME)
        .one(db)
        .await?
        .map(|row| row.value.into_bytes())
        .ok_or_else(|| anyhow::anyhow!("the access-token signing key could not be stored"))
}
