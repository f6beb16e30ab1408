//! Tenancy enforced at the query layer, checked on the source: request handlers (every
//! `http.rs`, and the device API) reach tenant-owned data only through the domains' repositories
//! and services, never with a query of their own; the finders that ignore tenants take a
//! `System` proof, and each of its constructors is used only where the platform acts for itself
//! (sign-in, the ingress, the workers, the command line). So a new handler cannot read another
//! tenant's rows by forgetting a filter: the finders it can reach all take a `TenantCtx`.

use std::path::{Path, PathBuf};

use crate::harness::workspace_root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root().join("server/src"))
        .unwrap()
        .display()
        .to_string()
}

/// The code of a file without its comments and its unit tests.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn server_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("server/src"), &mut files);
    files.sort();
    files
}

#[test]
fn handlers_query_only_through_scoped_repositories() {
    // What a query of its own looks like with sea-orm.
    const RAW: [&str; 14] = [
        "Entity::",
        "Column::",
        "find_by_id(",
        "update_many(",
        "delete_many(",
        "insert_many(",
        "Statement::",
        "execute_unprepared",
        "query_one(",
        "query_all(",
        ".one(&",
        ".all(&",
        ".exec(&",
        "ActiveModelTrait",
    ];
    let mut found = Vec::new();
    let mut handlers = 0;
    for path in server_files() {
        let name = relative(&path);
        let handler = name.ends_with("/http.rs") || name == "devices/device_api.rs";
        if !handler || name.starts_with("http/") {
            continue;
        }
        handlers += 1;
        let code = code(&path);
        for raw in RAW {
            if code.contains(raw) {
                found.push(format!("{name}: `{raw}`"));
            }
        }
        if code.contains("System::") {
            found.push(format!("{name}: builds a `System` proof"));
        }
    }
    assert!(handlers >= 14, "only {handlers} handler files found");
    assert!(
        found.is_empty(),
        "handlers must go through their domain's repository or service (which take the \
         TenantCtx): {found:#?}"
    );
}

#[test]
fn system_proofs_are_built_only_where_the_platform_acts_for_itself() {
    let allowed: [(&str, &[&str]); 4] = [
        (
            "System::auth()",
            &["auth/", "apikeys/service.rs", "invitations/service.rs"],
        ),
        (
            "System::ingress()",
            &["ingress/", "devices/device_api.rs", "provisioning.rs"],
        ),
        (
            "System::worker()",
            &[
                "devices/lost.rs",
                "devices/inactivity.rs",
                "rpc/mod.rs",
                "imports/mod.rs",
                // The event dispatcher and the webhook sender work across tenants.
                "events/",
                "webhooks/deliver.rs",
                "alarms/engine.rs",
                "notifications/dispatch.rs",
                // Update progress from every tenant's devices, and the campaigns' engine.
                "ota/tracker.rs",
                "campaigns/engine.rs",
            ],
        ),
        ("System::cli()", &["app.rs", "main.rs", "ops/"]),
    ];
    let mut found = Vec::new();
    let mut uses = 0;
    for path in server_files() {
        let name = relative(&path);
        let code = code(&path);
        for (constructor, places) in allowed {
            if code.contains(constructor) {
                uses += 1;
                if !places.iter().any(|p| name.starts_with(p)) {
                    found.push(format!("{name}: {constructor}"));
                }
            }
        }
    }
    assert!(
        uses >= 10,
        "only {uses} files build a System proof: the check looks wrong"
    );
    assert!(
        found.is_empty(),
        "a System proof built outside its paths: {found:#?}"
    );
}

#[test]
fn unscoped_finders_take_a_system_proof() {
    // Every repository function that reaches the database takes the tenant's context, or the
    // proof that the platform acts for itself, or is about tenants themselves.
    let mut found = Vec::new();
    for path in server_files() {
        let name = relative(&path);
        if !name.ends_with("/repo.rs") || name == "tenants/repo.rs" {
            continue;
        }
        let code = code(&path);
        let mut rest = code.as_str();
        while let Some(i) = rest.find("pub async fn ") {
            rest = &rest[i + "pub async fn ".len()..];
            let end = rest.find('{').unwrap_or(rest.len());
            let signature = &rest[..end];
            let fn_name: String = signature
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let scoped = signature.contains("TenantCtx") || signature.contains("System");
            // Writing back a model that was read through a scoped finder is scoped too.
            let saves =
                signature.contains("ActiveModel") || signature.contains("key: model::Model");
            if !scoped && !saves {
                found.push(format!("{name}: {fn_name}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "repository functions that take neither a TenantCtx nor a System proof: {found:#?}"
    );
}
