//! `stead admin verify-audit`: walks every tenant's audit hash chain and says, in words, where
//! the first broken link of each is. Read-only; exit code 1 when a chain is broken.

use std::process::ExitCode;

use sea_orm::EntityTrait;

use crate::audit::chain;
use crate::config::Config;

pub async fn verify(config: &Config) -> anyhow::Result<ExitCode> {
    let db = crate::db::connect(config).await?;
    let reports = chain::verify(&db).await?;
    let names: std::collections::HashMap<uuid::Uuid, String> =
        crate::tenants::model::Entity::find()
            .all(&db)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect();
    let mut broken = 0;
    for r in &reports {
        let whose = if r.chain.is_nil() {
            "platform".to_owned()
        } else {
            match names.get(&r.chain) {
                Some(name) => format!("tenant {name:?} ({})", r.chain),
                None => format!("tenant {} (deleted)", r.chain),
            }
        };
        let span = match (r.first_seq, r.last_seq) {
            (Some(a), Some(b)) => format!("entries {a} to {b}"),
            _ => "no entries".to_owned(),
        };
        match &r.broken {
            None => println!("ok    {whose}: {} verified ({span})", r.verified),
            Some((seq, why)) => {
                broken += 1;
                println!(
                    "fail  {whose}: the chain breaks at entry {seq}: {why} ({} entries before it verified)",
                    r.verified
                );
            }
        }
    }
    println!(
        "stead: {} audit chains checked, {broken} broken",
        reports.len()
    );
    Ok(if broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
