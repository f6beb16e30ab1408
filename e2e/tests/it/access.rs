//! Custom roles, role bindings at group scope, and API keys, through the real server.

use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::Method;
use serde_json::json;
use stead_api_types::{
    ApiKey, AuditEntry, CreatedApiKey, CustomRole, Device, DeviceGroup, Page, RoleBinding, User,
};
use stead_e2e::Client;
use uuid::Uuid;

use crate::harness::{Backend, Options, TestServer, TestTenant};
use crate::mqtt::device;
use crate::on_both_backends;

on_both_backends!(
    a_group_scoped_user_reaches_only_their_groups_devices,
    custom_roles_grant_exactly_their_permissions_and_nobody_grants_what_they_lack,
    api_keys_hold_no_more_than_their_creator_and_stop_when_revoked_or_expired,
);

/// A member (nothing tenant-wide) of `tenant`, with `bindings`: their id and their client.
pub async fn member(
    server: &TestServer,
    tenant: &TestTenant,
    bindings: serde_json::Value,
) -> (Uuid, Client) {
    let email = format!("member-{}@acme.example.com", Uuid::new_v4().simple());
    let user: User = tenant
        .admin
        .post(
            "/api/v1/users",
            &json!({"email": email, "password": "member-password-1", "role": "member"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    bind(tenant, user.id, bindings).await;
    let client = server
        .client()
        .login(&email, "member-password-1")
        .await
        .unwrap()
        .0;
    (user.id, client)
}

async fn bind(tenant: &TestTenant, user: Uuid, bindings: serde_json::Value) -> Vec<RoleBinding> {
    tenant
        .admin
        .send(
            Method::PUT,
            &format!("/api/v1/users/{user}/bindings"),
            Some(&json!({"bindings": bindings})),
        )
        .await
        .unwrap()
        .ok()
        .unwrap()
}

async fn group(c: &Client, name: &str, devices: &[Uuid]) -> Uuid {
    let g: DeviceGroup = c
        .post("/api/v1/groups", &json!({"name": name}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    c.post(
        &format!("/api/v1/groups/{}/devices", g.id),
        &json!({"device_ids": devices}),
    )
    .await
    .unwrap()
    .ok::<serde_json::Value>()
    .unwrap();
    g.id
}

fn names(page: &Page<Device>) -> Vec<String> {
    let mut n: Vec<String> = page.items.iter().map(|d| d.name.clone()).collect();
    n.sort();
    n
}

/// Reads a live view until `needle` shows, or gives up after `within`.
pub async fn read_until(
    live: &mut (impl futures_util::Stream<Item = reqwest::Result<impl AsRef<[u8]>>> + Unpin),
    needle: &str,
    within: Duration,
) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + within;
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, live.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(chunk.as_ref())),
            Ok(_) => break,
            Err(_) => panic!("no {needle:?} on the live view within {within:?}: {seen}"),
        }
    }
    seen
}

async fn a_group_scoped_user_reaches_only_their_groups_devices(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        Options::default().env("STEAD_LIVE_RECHECK_SECS", "1"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let admin = &acme.admin;
    let (n1, _) = device(admin, "north-1").await;
    let (n2, _) = device(admin, "north-2").await;
    let (s1, _) = device(admin, "south-1").await;
    let (loose, _) = device(admin, "loose").await;
    let north = group(admin, "north", &[n1, n2]).await;
    let south = group(admin, "south", &[s1]).await;
    let (user, customer) = member(
        &server,
        &acme,
        json!([{"role": {"builtin": "operator"}, "groups": [north]}]),
    )
    .await;

    // Lists and counts hold exactly the group's devices.
    let page: Page<Device> = customer.get("/api/v1/devices").await.unwrap().ok().unwrap();
    assert_eq!(names(&page), ["north-1", "north-2"]);
    assert_eq!(page.total, 2);
    let found: Page<Device> = customer
        .get("/api/v1/devices?search=south")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(found.total, 0);
    let groups: Vec<DeviceGroup> = customer.get("/api/v1/groups").await.unwrap().ok().unwrap();
    assert_eq!(groups.iter().map(|g| g.id).collect::<Vec<_>>(), vec![north]);
    let me: stead_api_types::Me = customer.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert_eq!(me.groups, Some(vec![north]));

    // Every other device, and the other group, answer 404, whatever the route.
    for other in [s1, loose] {
        for path in [
            format!("/api/v1/devices/{other}"),
            format!("/api/v1/devices/{other}/telemetry/latest"),
            format!("/api/v1/devices/{other}/attributes"),
            format!("/api/v1/devices/{other}/timeline"),
            format!("/api/v1/devices/{other}/rpc"),
            format!("/api/v1/devices/{other}/groups"),
            format!("/api/v1/devices/{other}/live"),
        ] {
            let r = customer.get(&path).await.unwrap();
            assert_eq!(r.status, 404, "{path}: {}", r.body);
        }
        let r = customer
            .patch(&format!("/api/v1/devices/{other}"), &json!({"label": "x"}))
            .await
            .unwrap();
        assert_eq!(r.status, 404);
        let r = customer
            .post(
                &format!("/api/v1/devices/{other}/rpc"),
                &json!({"method": "reboot"}),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 404);
    }
    assert_eq!(
        customer
            .get(&format!("/api/v1/groups/{south}"))
            .await
            .unwrap()
            .status,
        404
    );
    // Their own devices they may operate.
    let r = customer
        .patch(&format!("/api/v1/devices/{n1}"), &json!({"label": "mine"}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // Tenant-wide work is not theirs: creating devices, changing groups, imports.
    let r = customer
        .post("/api/v1/devices", &json!({"name": "sneaky"}))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(
        r.error().detail.contains("only over some device groups"),
        "{}",
        r.body
    );
    let r = customer
        .post(
            &format!("/api/v1/groups/{north}/devices"),
            &json!({"device_ids": [s1]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);

    // A live view of n1; moving n1 out of the group removes it from their view at once and ends
    // the stream.
    let mut live = reqwest::Client::new()
        .get(format!("{}/api/v1/devices/{n1}/live", server.base))
        .bearer_auth(customer.token().unwrap())
        .send()
        .await
        .unwrap()
        .bytes_stream();
    read_until(&mut live, "event: presence", Duration::from_secs(5)).await;
    admin
        .post(
            &format!("/api/v1/groups/{north}/devices/remove"),
            &json!({"device_ids": [n1]}),
        )
        .await
        .unwrap()
        .ok::<serde_json::Value>()
        .unwrap();
    let page: Page<Device> = customer.get("/api/v1/devices").await.unwrap().ok().unwrap();
    assert_eq!(names(&page), ["north-2"]);
    assert_eq!(
        customer
            .get(&format!("/api/v1/devices/{n1}"))
            .await
            .unwrap()
            .status,
        404
    );
    let seen = read_until(&mut live, "event: ended", Duration::from_secs(5)).await;
    assert!(seen.contains("device_out_of_reach"), "{seen}");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .expect("the stream closes")
            .is_none(),
        "the stream closed after saying why"
    );

    // A second live view, of n2: removing the binding ends it too, and the next request is refused.
    let mut live = reqwest::Client::new()
        .get(format!("{}/api/v1/devices/{n2}/live", server.base))
        .bearer_auth(customer.token().unwrap())
        .send()
        .await
        .unwrap()
        .bytes_stream();
    read_until(&mut live, "event: presence", Duration::from_secs(5)).await;
    bind(&acme, user, json!([])).await;
    let r = customer.get("/api/v1/devices").await.unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    let seen = read_until(&mut live, "event: ended", Duration::from_secs(5)).await;
    assert!(seen.contains("permission_denied"), "{seen}");

    // Bound again over the whole tenant as a viewer: everything is in view, read-only.
    bind(&acme, user, json!([{"role": {"builtin": "viewer"}}])).await;
    let page: Page<Device> = customer.get("/api/v1/devices").await.unwrap().ok().unwrap();
    assert_eq!(page.total, 4);
    let r = customer
        .patch(&format!("/api/v1/devices/{s1}"), &json!({"label": "x"}))
        .await
        .unwrap();
    assert_eq!(r.status, 403);

    // Bindings are validated: another tenant's group, an unknown role, the platform role.
    let other = server.tenant("Other").await;
    let foreign = group(&other.admin, "theirs", &[]).await;
    for (bindings, code) in [
        (
            json!([{"role": {"builtin": "viewer"}, "groups": [foreign]}]),
            "unknown_group",
        ),
        (
            json!([{"role": {"custom": Uuid::new_v4()}}]),
            "unknown_role",
        ),
        (
            json!([{"role": {"builtin": "platform_admin"}}]),
            "invalid_role",
        ),
    ] {
        let r = admin
            .send(
                Method::PUT,
                &format!("/api/v1/users/{user}/bindings"),
                Some(&json!({"bindings": bindings})),
            )
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, code.to_owned()),
            "{}",
            r.body
        );
    }
    // Another tenant's admin cannot see or bind this tenant's people.
    let r = other
        .admin
        .get(&format!("/api/v1/users/{user}/bindings"))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let entries: Page<AuditEntry> = admin
        .get(&format!(
            "/api/v1/audit?action=user.bindings.set&target={user}"
        ))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(entries.total, 3, "each successful change is audited");
}

async fn custom_roles_grant_exactly_their_permissions_and_nobody_grants_what_they_lack(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let admin = &acme.admin;
    let (d, _) = device(admin, "pump").await;
    let reader: CustomRole = admin
        .post(
            "/api/v1/roles",
            &json!({"name": "Reader", "description": "looks only", "permissions": ["devices.read"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        reader.permissions,
        [stead_api_types::Permission::DevicesRead]
    );
    let (user, person) = member(&server, &acme, json!([{"role": {"custom": reader.id}}])).await;
    assert_eq!(person.get("/api/v1/devices").await.unwrap().status, 200);
    let patch = || async {
        person
            .patch(&format!("/api/v1/devices/{d}"), &json!({"label": "x"}))
            .await
            .unwrap()
    };
    assert_eq!(patch().await.status, 403);
    // Changing the role takes effect on the holder's next request.
    let updated: CustomRole = admin
        .patch(
            &format!("/api/v1/roles/{}", reader.id),
            &json!({"permissions": ["devices.read", "devices.write"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(updated.users, 1);
    assert_eq!(patch().await.status, 200);

    // Refused: duplicate names, the platform permission, deleting a role in use.
    let r = admin
        .post(
            "/api/v1/roles",
            &json!({"name": "reader ", "permissions": []}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "names differ by case: {}", r.body);
    let r = admin
        .post(
            "/api/v1/roles",
            &json!({"name": " Reader", "permissions": []}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "role_name_taken".into())
    );
    let r = admin
        .post(
            "/api/v1/roles",
            &json!({"name": "Root", "permissions": ["tenants.manage"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "invalid_permission".into())
    );
    let r = admin
        .post(
            "/api/v1/roles",
            &json!({"name": "Bad", "permissions": ["devices.everything"]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let r = admin
        .delete(&format!("/api/v1/roles/{}", reader.id))
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (409, "role_in_use".into()));

    // A person who may manage roles cannot hand out more than they hold.
    let role_admin: CustomRole = admin
        .post(
            "/api/v1/roles",
            &json!({"name": "Role admin", "permissions": ["roles.manage", "users.read", "devices.read", "alarms.read", "ota.read"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let (_, delegate) = member(&server, &acme, json!([{"role": {"custom": role_admin.id}}])).await;
    let r = delegate
        .post(
            "/api/v1/roles",
            &json!({"name": "Escalate", "permissions": ["users.manage"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "exceeds_your_access".into())
    );
    let r = delegate
        .send(
            Method::PUT,
            &format!("/api/v1/users/{user}/bindings"),
            Some(&json!({"bindings": [{"role": {"builtin": "tenant_admin"}}]})),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "exceeds_your_access".into())
    );
    // What they hold they may give.
    let r = delegate
        .send(
            Method::PUT,
            &format!("/api/v1/users/{user}/bindings"),
            Some(&json!({"bindings": [{"role": {"builtin": "viewer"}}]})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        patch().await.status,
        403,
        "the reader role is gone with its binding"
    );

    // Other tenants see none of it.
    let other = server.tenant("Other").await;
    let r = other
        .admin
        .get(&format!("/api/v1/roles/{}", reader.id))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = other
        .admin
        .patch(
            &format!("/api/v1/roles/{}", reader.id),
            &json!({"name": "x"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let theirs: Vec<CustomRole> = other
        .admin
        .get("/api/v1/roles")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(theirs.is_empty());

    // Unused now, the role can go; each change is in the audit log.
    let r = admin
        .delete(&format!("/api/v1/roles/{}", reader.id))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let entries: Page<AuditEntry> = admin
        .get("/api/v1/audit?action=role.")
        .await
        .unwrap()
        .ok()
        .unwrap();
    let actions: Vec<&str> = entries.items.iter().map(|e| e.action.as_str()).collect();
    for action in ["role.create", "role.update", "role.delete"] {
        assert!(actions.contains(&action), "{actions:?}");
    }
}

async fn api_keys_hold_no_more_than_their_creator_and_stop_when_revoked_or_expired(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let admin = &acme.admin;
    let (d, _) = device(admin, "pump").await;

    let created: CreatedApiKey = admin
        .post(
            "/api/v1/api-keys",
            &json!({"description": "ERP sync", "permissions": ["devices.read", "devices.write"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let secret = created.secret.clone();
    assert!(
        secret.starts_with("stead_") && secret.len() > 40,
        "{secret}"
    );
    assert!(secret.starts_with(&created.key.prefix));
    let key = server.client().with_token(&secret);

    // Works where a person's token works, as far as it was given.
    let page: Page<Device> = key.get("/api/v1/devices").await.unwrap().ok().unwrap();
    assert_eq!(page.total, 1);
    let r = key
        .patch(&format!("/api/v1/devices/{d}"), &json!({"label": "by key"}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = key.get("/api/v1/users").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "permission_denied".into())
    );
    assert!(r.error().detail.contains("this API key"), "{}", r.body);
    let me: stead_api_types::Me = key.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert_eq!(me.api_key, Some(created.key.id));
    // A key is not a person: no password change, no sessions.
    let r = key.get("/api/v1/me/sessions").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "person_required".into())
    );

    // Its changes are audited as the key's, and the chain verifies.
    let entries: Page<AuditEntry> = admin
        .get(&format!("/api/v1/audit?target={d}&action=device.update"))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let entry = &entries.items[0];
    assert_eq!(entry.actor_kind, stead_api_types::ActorKind::ApiKey);
    assert_eq!(entry.actor_key_id, Some(created.key.id));
    let out = server.stead(&["admin", "verify-audit"]);
    assert!(out.status.success(), "{}", crate::harness::text(&out));

    // Listed with its last use, never with its secret.
    let keys: Vec<ApiKey> = admin.get("/api/v1/api-keys").await.unwrap().ok().unwrap();
    let listed = keys.iter().find(|k| k.id == created.key.id).unwrap();
    assert!(listed.last_used_at.is_some());
    assert_eq!(listed.last_used_address.as_deref(), Some("127.0.0.1"));
    let listing = admin.get("/api/v1/api-keys").await.unwrap().body;
    assert!(!listing.to_string().contains(&secret));

    // A key cannot hold more than its creator: a person with devices.read and apikeys.manage.
    let maker: CustomRole = admin
        .post(
            "/api/v1/roles",
            &json!({"name": "Integrator", "permissions": ["devices.read", "apikeys.manage"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let (maker_id, integrator) =
        member(&server, &acme, json!([{"role": {"custom": maker.id}}])).await;
    let r = integrator
        .post(
            "/api/v1/api-keys",
            &json!({"description": "too much", "permissions": ["devices.read", "devices.write"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "exceeds_your_access".into())
    );
    let theirs: CreatedApiKey = integrator
        .post(
            "/api/v1/api-keys",
            &json!({"description": "reader", "permissions": ["devices.read", "apikeys.manage"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let their_key = server.client().with_token(&theirs.secret);
    assert_eq!(their_key.get("/api/v1/devices").await.unwrap().status, 200);
    // A key does not mint keys.
    let r = their_key
        .post(
            "/api/v1/api-keys",
            &json!({"description": "child", "permissions": ["devices.read"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "person_required".into())
    );
    // When its creator loses a permission, so does the key, at its next request.
    bind(&acme, maker_id, json!([])).await;
    let r = their_key.get("/api/v1/devices").await.unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    // And a deactivated creator's keys stop.
    admin
        .patch(
            &format!("/api/v1/users/{maker_id}"),
            &json!({"active": false}),
        )
        .await
        .unwrap()
        .ok::<User>()
        .unwrap();
    let r = their_key.get("/api/v1/me").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "account_disabled".into())
    );

    // Expiry: refused past it; out-of-range expiries are refused at creation.
    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
    let short: CreatedApiKey = admin
        .post(
            "/api/v1/api-keys",
            &json!({"description": "short", "permissions": ["devices.read"], "expires_at": soon}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let short_key = server.client().with_token(&short.secret);
    assert_eq!(short_key.get("/api/v1/devices").await.unwrap().status, 200);
    for bad in [
        chrono::Utc::now() - chrono::Duration::days(1),
        chrono::Utc::now() + chrono::Duration::days(400),
    ] {
        let r = admin
            .post(
                "/api/v1/api-keys",
                &json!({"description": "bad", "permissions": ["devices.read"], "expires_at": bad}),
            )
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, "invalid_expiry".into())
        );
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = short_key.get("/api/v1/devices").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "api_key_expired".into())
    );

    // Revocation: the next request is refused; an unknown secret too.
    let revoked: ApiKey = admin
        .delete(&format!("/api/v1/api-keys/{}", created.key.id))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    let r = key.get("/api/v1/devices").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "api_key_revoked".into())
    );
    let r = server
        .client()
        .with_token("stead_not-a-key-at-all")
        .get("/api/v1/devices")
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "invalid_api_key".into())
    );

    // Other tenants cannot see or revoke it.
    let other = server.tenant("Other").await;
    let r = other
        .admin
        .delete(&format!("/api/v1/api-keys/{}", theirs.key.id))
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // The secrets are nowhere: not in the logs, not in the database (only their hashes).
    let logs = server.log_text();
    for s in [&secret, &theirs.secret, &short.secret] {
        assert!(!logs.contains(s.as_str()), "a secret in the logs");
        let random = &s["stead_".len()..];
        for table in ["api_keys", "audit_log"] {
            let dump = server.sql(&format!("SELECT * FROM {table}"));
            assert!(!dump.contains(random), "a secret in {table}");
        }
    }
    let hashes = server.sql("SELECT secret_hash FROM api_keys");
    assert_eq!(hashes.lines().count(), 3);
}

/// A key over its rate is answered 429 with Retry-After, and other keys go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_rate_limited_each_on_its_own() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default().env("STEAD_API_KEY_REQUESTS_PER_MINUTE", "5"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let mut keys = Vec::new();
    for name in ["busy", "quiet"] {
        let k: CreatedApiKey = acme
            .admin
            .post(
                "/api/v1/api-keys",
                &json!({"description": name, "permissions": ["devices.read"]}),
            )
            .await
            .unwrap()
            .ok()
            .unwrap();
        keys.push(server.client().with_token(k.secret));
    }
    for _ in 0..5 {
        assert_eq!(keys[0].get("/api/v1/devices").await.unwrap().status, 200);
    }
    let r = keys[0].get("/api/v1/devices").await.unwrap();
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(keys[1].get("/api/v1/devices").await.unwrap().status, 200);
}

/// A key revoked through one node is refused by another at its next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_on_every_node_at_once() {
    let a = TestServer::start(Backend::Postgres).await;
    let b = TestServer::start_with(
        Backend::Postgres,
        Options {
            join: Some(a.shared()),
            ..Options::default()
        },
    )
    .await;
    let acme = a.tenant("Acme").await;
    let k: CreatedApiKey = acme
        .admin
        .post(
            "/api/v1/api-keys",
            &json!({"description": "sync", "permissions": ["devices.read"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let on_b = b.client().with_token(&k.secret);
    assert_eq!(on_b.get("/api/v1/devices").await.unwrap().status, 200);
    acme.admin
        .delete(&format!("/api/v1/api-keys/{}", k.key.id))
        .await
        .unwrap()
        .ok::<ApiKey>()
        .unwrap();
    let started = std::time::Instant::now();
    let r = on_b.get("/api/v1/devices").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "api_key_revoked".into())
    );
    eprintln!("revocation seen on node B after {:?}", started.elapsed());
}

type Events = std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// A server-sent event stream at `path`, read as `client`.
async fn stream_of(server: &TestServer, client: &Client, path: &str) -> Events {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .bearer_auth(client.token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    Box::pin(r.bytes_stream().map(|chunk| chunk.map(|b| b.to_vec())))
}

/// Reads `live` until it says `ended` with `reason`, then checks that it closes.
async fn ends_with(live: &mut Events, reason: &str) {
    let seen = read_until(live, "event: ended", Duration::from_secs(6)).await;
    assert!(seen.contains(reason), "ended, but not for {reason}: {seen}");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .expect("the stream closes")
            .is_none(),
        "the stream closed after saying why"
    );
}

/// Live streams (a device's, and the alarm stream) end, saying why, once their viewer loses
/// access: the role loses the permission, the person is deactivated, the tenant is suspended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_end_when_access_ends() {
    let server = TestServer::start_with(
        Backend::Sqlite,
        Options::default().env("STEAD_LIVE_RECHECK_SECS", "1"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let admin = &acme.admin;
    let (d, _) = device(admin, "pump").await;
    let watcher: CustomRole = admin
        .post(
            "/api/v1/roles",
            &json!({"name": "Watcher", "permissions": ["devices.read", "alarms.read"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let live = format!("/api/v1/devices/{d}/live");
    let (_, by_role) = member(&server, &acme, json!([{"role": {"custom": watcher.id}}])).await;
    let (deactivated, by_person) =
        member(&server, &acme, json!([{"role": {"builtin": "viewer"}}])).await;
    let (_, by_tenant) = member(&server, &acme, json!([{"role": {"builtin": "viewer"}}])).await;
    let mut role_live = stream_of(&server, &by_role, &live).await;
    let mut role_alarms = stream_of(&server, &by_role, "/api/v1/alarms/stream").await;
    let mut person_live = stream_of(&server, &by_person, &live).await;
    let mut tenant_live = stream_of(&server, &by_tenant, &live).await;
    let mut tenant_alarms = stream_of(&server, &by_tenant, "/api/v1/alarms/stream").await;
    for s in [&mut role_live, &mut person_live, &mut tenant_live] {
        read_until(s, "event: presence", Duration::from_secs(5)).await;
    }
    for s in [&mut role_alarms, &mut tenant_alarms] {
        read_until(s, "event: counts", Duration::from_secs(5)).await;
    }

    // The role loses `devices.read`: the device stream ends, the alarm stream goes on.
    admin
        .patch(
            &format!("/api/v1/roles/{}", watcher.id),
            &json!({"permissions": ["alarms.read"]}),
        )
        .await
        .unwrap()
        .ok::<CustomRole>()
        .unwrap();
    ends_with(&mut role_live, "permission_denied").await;
    assert!(
        tokio::time::timeout(Duration::from_secs(2), role_alarms.next())
            .await
            .map_or(true, |next| next.is_some()),
        "the alarm stream ended although alarms.read stayed"
    );

    // The person is deactivated.
    admin
        .patch(
            &format!("/api/v1/users/{deactivated}"),
            &json!({"active": false}),
        )
        .await
        .unwrap()
        .ok::<User>()
        .unwrap();
    ends_with(&mut person_live, "").await;

    // The tenant is suspended: every stream of its people ends.
    let platform = server.admin().await;
    platform
        .patch(
            &format!("/api/v1/tenants/{}", acme.tenant.id),
            &json!({"status": "suspended"}),
        )
        .await
        .unwrap()
        .ok::<serde_json::Value>()
        .unwrap();
    ends_with(&mut tenant_live, "").await;
    ends_with(&mut tenant_alarms, "").await;
    ends_with(&mut role_alarms, "").await;
}
