//! Every built-in role against every route: exactly the expected status.

use reqwest::Method;
use serde_json::json;
use stead_api_types::{CreatedApiKey, CreatedDevice, CustomRole, ImportJob, Role, Tenant, User};
use stead_e2e::Client;

use crate::access::member;
use crate::harness::{Backend, TestServer};
use crate::on_both_backends;

on_both_backends!(permission_matrix);

/// Expected status per caller: platform admin, tenant admin, operator, viewer, anonymous, then a
/// person holding only a custom role (devices.read, commands.send, audit.read), a person holding
/// operator over one device group only (which holds the target device), and an API key the
/// tenant admin made with devices.read and devices.write.
type Row = (Method, String, Option<serde_json::Value>, [u16; 8]);

async fn permission_matrix(backend: Backend) {
    let server = TestServer::start(backend).await;
    let platform = server.admin().await;
    let acme = server.tenant("Acme").await;
    let operator = server.user(&acme, Role::Operator).await;
    let viewer = server.user(&acme, Role::Viewer).await;
    let anon = server.client();
    let group: stead_api_types::DeviceGroup = acme
        .admin
        .post("/api/v1/groups", &serde_json::json!({"name": "matrix"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let g = group.id;
    let support: CustomRole = acme
        .admin
        .post(
            "/api/v1/roles",
            &json!({"name": "Support", "permissions": ["devices.read", "commands.send", "audit.read"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let (_, custom) = member(&server, &acme, json!([{"role": {"custom": support.id}}])).await;
    let (_, grouped) = member(
        &server,
        &acme,
        json!([{"role": {"builtin": "operator"}, "groups": [g]}]),
    )
    .await;
    let key: CreatedApiKey = acme
        .admin
        .post(
            "/api/v1/api-keys",
            &json!({"description": "matrix", "permissions": ["devices.read", "devices.write"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let keyed = server.client().with_token(key.secret);
    let callers: [(&str, &Client); 8] = [
        ("platform_admin", &platform),
        ("tenant_admin", &acme.admin),
        ("operator", &operator),
        ("viewer", &viewer),
        ("anonymous", &anon),
        ("custom_role", &custom),
        ("group_operator", &grouped),
        ("api_key", &keyed),
    ];

    let target_user: User = acme
        .admin
        .post("/api/v1/users", &serde_json::json!({"email": "target@acme.io", "password": "target-password", "role": "viewer"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let device: CreatedDevice = acme
        .admin
        .post("/api/v1/devices", &serde_json::json!({"name": "target"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let profiles: Vec<stead_api_types::DeviceProfile> = acme
        .admin
        .get("/api/v1/profiles")
        .await
        .unwrap()
        .ok()
        .unwrap();
    let p = profiles[0].id;
    // The group-scoped caller's group holds the target device.
    acme.admin
        .post(
            &format!("/api/v1/groups/{g}/devices"),
            &json!({"device_ids": [device.device.id]}),
        )
        .await
        .unwrap()
        .ok::<serde_json::Value>()
        .unwrap();
    let job: ImportJob = acme
        .admin
        .raw(
            Method::POST,
            "/api/v1/devices/import",
            "text/csv",
            "name,access_token\nimported,imported-token-0123456789\n",
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let j = job.id;
    let t = acme.tenant.id;
    let u = target_user.id;
    let d = device.device.id;
    let r = support.id;
    let k = key.key.id;

    let rows: Vec<Row> = vec![
        (
            Method::GET,
            "/api/v1/me".into(),
            None,
            [200, 200, 200, 200, 401, 200, 200, 200],
        ),
        // Anyone signed in has their own sessions and password, and nobody else's.
        (
            Method::GET,
            "/api/v1/me/sessions".into(),
            None,
            [200, 200, 200, 200, 401, 200, 200, 403],
        ),
        (
            Method::DELETE,
            format!("/api/v1/me/sessions/{}", uuid::Uuid::new_v4()),
            None,
            [404, 404, 404, 404, 401, 404, 404, 403],
        ),
        (
            Method::POST,
            "/api/v1/me/password".into(),
            Some(
                json!({"current_password": "not-the-password", "new_password": "another-password-1"}),
            ),
            [400, 400, 400, 400, 401, 400, 400, 403],
        ),
        (
            Method::GET,
            "/api/v1/tenants".into(),
            None,
            [200, 403, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/audit".into(),
            None,
            [403, 200, 403, 403, 401, 200, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/audit/export.csv".into(),
            None,
            [403, 200, 403, 403, 401, 200, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{t}"),
            None,
            [200, 403, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::PATCH,
            format!("/api/v1/tenants/{t}"),
            Some(json!({"name": "Acme"})),
            [200, 403, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/users".into(),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/users/{u}"),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{u}"),
            Some(json!({"name": "T"})),
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/devices".into(),
            None,
            [403, 200, 200, 200, 401, 200, 200, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/devices/{d}"),
            None,
            [403, 200, 200, 200, 401, 200, 200, 200],
        ),
        (
            Method::PATCH,
            format!("/api/v1/devices/{d}"),
            Some(json!({"label": "x"})),
            [403, 200, 200, 403, 401, 403, 200, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/devices/{d}/credentials/rotate"),
            Some(json!({})),
            [403, 200, 200, 403, 401, 403, 200, 200],
        ),
        // Device management: profiles (tenant admins), groups, attributes, commands.
        (
            Method::GET,
            "/api/v1/profiles".into(),
            None,
            [403, 200, 200, 200, 401, 200, 200, 200],
        ),
        (
            Method::POST,
            "/api/v1/profiles".into(),
            Some(json!({"name": "matrix"})),
            [403, 201, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::PATCH,
            format!("/api/v1/profiles/{p}"),
            Some(json!({"description": "d"})),
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/groups".into(),
            None,
            [403, 200, 200, 200, 401, 200, 200, 200],
        ),
        (
            Method::PATCH,
            format!("/api/v1/groups/{g}"),
            Some(json!({"description": "d"})),
            [403, 200, 200, 403, 401, 403, 403, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/groups/{g}/devices"),
            Some(json!({"device_ids": [d]})),
            [403, 200, 200, 403, 401, 403, 403, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/devices/{d}/groups"),
            None,
            [403, 200, 200, 200, 401, 200, 200, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/devices/{d}/attributes"),
            None,
            [403, 200, 200, 200, 401, 200, 200, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/devices/{d}/attributes/shared"),
            Some(json!({"k": 1})),
            [403, 200, 200, 403, 401, 403, 200, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/groups/{g}/attributes/server"),
            Some(json!({"k": 1})),
            [403, 200, 200, 403, 401, 403, 403, 200],
        ),
        (
            Method::DELETE,
            format!("/api/v1/devices/{d}/attributes/server?keys=none"),
            None,
            [403, 204, 204, 403, 401, 403, 204, 204],
        ),
        (
            Method::GET,
            format!("/api/v1/devices/{d}/rpc"),
            None,
            [403, 200, 200, 200, 401, 200, 200, 200],
        ),
        // Allowed, and the device is offline.
        (
            Method::POST,
            format!("/api/v1/devices/{d}/rpc"),
            Some(json!({"method": "m"})),
            [403, 409, 409, 403, 401, 409, 409, 403],
        ),
        (
            Method::PUT,
            format!("/api/v1/devices/{d}/credentials"),
            Some(json!({"type": "access_token"})),
            [403, 200, 200, 403, 401, 403, 200, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/devices/{d}/credentials/revoke"),
            Some(json!({})),
            [403, 200, 200, 403, 401, 403, 200, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/devices/{d}/disable"),
            Some(json!({"reason": "test"})),
            [403, 200, 200, 403, 401, 403, 200, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/devices/{d}/enable"),
            Some(json!({})),
            [403, 200, 200, 403, 401, 403, 200, 200],
        ),
        (
            Method::GET,
            "/api/v1/devices/credentials/expiring".into(),
            None,
            [403, 200, 200, 200, 401, 200, 200, 200],
        ),
        // Bulk import and bulk actions.
        (
            Method::POST,
            "/api/v1/devices/bulk".into(),
            Some(json!({"device_ids": [d], "action": {"type": "enable"}})),
            [403, 200, 200, 403, 401, 403, 403, 200],
        ),
        (
            Method::GET,
            "/api/v1/imports".into(),
            None,
            [403, 200, 200, 200, 401, 200, 403, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/imports/{j}"),
            None,
            [403, 200, 200, 200, 401, 200, 403, 200],
        ),
        // The job generated no credentials: found, but nothing to hand out.
        (
            Method::GET,
            format!("/api/v1/imports/{j}/credentials.csv"),
            None,
            [403, 404, 404, 403, 401, 403, 403, 404],
        ),
        // Usage against the quotas: a tenant's admins, and the platform admin for every tenant.
        (
            Method::GET,
            "/api/v1/usage".into(),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/tenants/usage".into(),
            None,
            [200, 403, 403, 403, 401, 403, 403, 403],
        ),
        // Roles, bindings and API keys: tenant admins only.
        (
            Method::GET,
            "/api/v1/roles".into(),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::PATCH,
            format!("/api/v1/roles/{r}"),
            Some(json!({"description": "d"})),
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/users/{u}/bindings"),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::PUT,
            format!("/api/v1/users/{u}/bindings"),
            Some(json!({"bindings": []})),
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/api-keys".into(),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/api-keys/{k}"),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        // Invitations and the tenant's sign-in rules: tenant admins only.
        (
            Method::GET,
            "/api/v1/invitations".into(),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::POST,
            format!("/api/v1/invitations/{}/resend", uuid::Uuid::nil()),
            Some(json!({})),
            [403, 404, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/security".into(),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::PATCH,
            "/api/v1/security".into(),
            Some(json!({"require_two_factor": false})),
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        // Allowed, and the person has no second factor to turn off.
        (
            Method::DELETE,
            format!("/api/v1/users/{u}/two-factor"),
            None,
            [403, 409, 403, 403, 401, 403, 403, 403],
        ),
        // Webhooks and the tenant's NATS sink: tenant admins; the sink's setting: the platform.
        (
            Method::GET,
            "/api/v1/webhooks".into(),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/events/types".into(),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/webhooks/{}/deliveries", uuid::Uuid::nil()),
            None,
            [403, 404, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/{}/test", uuid::Uuid::nil()),
            Some(json!({})),
            [403, 404, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::POST,
            "/api/v1/webhooks".into(),
            Some(json!({"url": "ftp://example.com/"})),
            [403, 400, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/integrations/nats".into(),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::PUT,
            format!("/api/v1/tenants/{}/nats-sink", acme.tenant.id),
            Some(json!({"enabled": false})),
            [200, 403, 403, 403, 401, 403, 403, 403],
        ),
        // Alarms: whoever holds alarms.read (acknowledging: alarms.ack), tenant-wide or over
        // groups; rules: read tenant-wide, changed with alarms.manage.
        (
            Method::GET,
            "/api/v1/alarms".into(),
            None,
            [403, 200, 200, 200, 401, 403, 200, 403],
        ),
        (
            Method::GET,
            "/api/v1/alarms/counts".into(),
            None,
            [403, 200, 200, 200, 401, 403, 200, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/alarms/{}", uuid::Uuid::nil()),
            None,
            [403, 404, 404, 404, 401, 403, 404, 403],
        ),
        (
            Method::POST,
            format!("/api/v1/alarms/{}/actions", uuid::Uuid::nil()),
            Some(json!({"action": "acknowledge"})),
            [403, 404, 404, 403, 401, 403, 404, 403],
        ),
        (
            Method::POST,
            "/api/v1/alarms/bulk".into(),
            Some(json!({"ids": [uuid::Uuid::nil()], "action": "acknowledge"})),
            [403, 200, 200, 403, 401, 403, 200, 403],
        ),
        (
            Method::GET,
            "/api/v1/alarm-rules".into(),
            None,
            [403, 200, 200, 200, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/alarm-rules/{}", uuid::Uuid::nil()),
            None,
            [403, 404, 404, 404, 401, 403, 403, 403],
        ),
        (
            Method::POST,
            "/api/v1/alarm-rules".into(),
            Some(json!({"alarm_type": "x", "create": {}})),
            [403, 400, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::DELETE,
            format!("/api/v1/alarm-rules/{}", uuid::Uuid::nil()),
            None,
            [403, 404, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/notification-rules".into(),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::POST,
            "/api/v1/notification-rules".into(),
            Some(json!({"name": "x", "channels": [], "recipients": {}})),
            [403, 400, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/silences".into(),
            None,
            [403, 200, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::DELETE,
            format!("/api/v1/silences/{}", uuid::Uuid::nil()),
            None,
            [403, 404, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/fleet/health".into(),
            None,
            [403, 200, 200, 200, 401, 200, 200, 200],
        ),
        // OTA: read by operators and viewers (tenant-wide only), changed with ota.manage.
        (
            Method::GET,
            "/api/v1/ota/packages".into(),
            None,
            [403, 200, 200, 200, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/ota/packages/{}", uuid::Uuid::nil()),
            None,
            [403, 404, 404, 404, 401, 403, 403, 403],
        ),
        (
            Method::POST,
            "/api/v1/ota/packages".into(),
            Some(json!({})),
            [403, 400, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::DELETE,
            format!("/api/v1/ota/packages/{}", uuid::Uuid::nil()),
            None,
            [403, 404, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/ota/signing-keys".into(),
            None,
            [403, 200, 200, 200, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/devices/{}/ota", uuid::Uuid::nil()),
            None,
            [403, 404, 404, 404, 401, 403, 403, 403],
        ),
        (
            Method::PUT,
            format!("/api/v1/devices/{}/ota/firmware", uuid::Uuid::nil()),
            Some(json!({"package_id": uuid::Uuid::nil()})),
            [403, 404, 403, 403, 401, 403, 403, 403],
        ),
        // Campaigns: read with ota.read, made and steered with ota.manage, started with
        // ota.approve (tenant admins).
        (
            Method::GET,
            "/api/v1/ota/campaigns".into(),
            None,
            [403, 200, 200, 200, 401, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/ota/campaigns/{}", uuid::Uuid::nil()),
            None,
            [403, 404, 404, 404, 401, 403, 403, 403],
        ),
        (
            Method::POST,
            "/api/v1/ota/campaigns".into(),
            Some(json!({"name": "matrix", "package_id": uuid::Uuid::nil(),
                        "target": {"device_ids": [uuid::Uuid::nil()]},
                        "rollout": {"kind": "waves", "percents": [100]}, "max_in_flight": 1})),
            [403, 400, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::POST,
            format!("/api/v1/ota/campaigns/{}/start", uuid::Uuid::nil()),
            Some(json!({})),
            [403, 404, 403, 403, 401, 403, 403, 403],
        ),
        (
            Method::POST,
            format!("/api/v1/ota/campaigns/{}/pause", uuid::Uuid::nil()),
            Some(json!({})),
            [403, 404, 403, 403, 401, 403, 403, 403],
        ),
        // One's own notifications: any person of a tenant, never a key.
        (
            Method::GET,
            "/api/v1/notifications".into(),
            None,
            [403, 200, 200, 200, 401, 200, 200, 403],
        ),
        (
            Method::POST,
            format!("/api/v1/notifications/{}/read", uuid::Uuid::nil()),
            Some(json!({})),
            [403, 404, 404, 404, 401, 404, 404, 403],
        ),
        // One's own second factor: any person (the password is wrong here), never a key.
        (
            Method::POST,
            "/api/v1/me/two-factor/setup".into(),
            Some(json!({"password": "not the password"})),
            [400, 400, 400, 400, 401, 400, 400, 403],
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body, expected) in &rows {
        for ((who, client), want) in callers.iter().zip(expected) {
            let reply = client
                .send(method.clone(), path, body.as_ref())
                .await
                .unwrap();
            if reply.status.as_u16() != *want {
                failures.push(format!(
                    "{who} {method} {path}: want {want}, got {} {}",
                    reply.status, reply.body
                ));
            } else if *want == 403 {
                let code = reply.code();
                if !["permission_denied", "tenant_required", "person_required"]
                    .contains(&code.as_str())
                {
                    failures.push(format!("{who} {method} {path}: 403 with code {code}"));
                }
            }
        }
    }

    // Routes that create or destroy: a fresh body or target per caller.
    for (i, ((who, client), want)) in callers
        .iter()
        .zip([403, 201, 403, 403, 401, 403, 403, 403])
        .enumerate()
    {
        let r = client
            .post("/api/v1/users", &json!({"email": format!("new{i}@acme.io"), "password": "new-user-password", "role": "viewer"}))
            .await
            .unwrap();
        if r.status.as_u16() != want {
            failures.push(format!(
                "{who} POST /api/v1/users: want {want}, got {}",
                r.status
            ));
        }
    }
    for (i, ((who, client), want)) in callers
        .iter()
        .zip([201, 403, 403, 403, 401, 403, 403, 403])
        .enumerate()
    {
        let r = client
            .post("/api/v1/tenants", &json!({"name": format!("T{i}"), "admin_email": format!("a{i}@t.io"), "admin_password": "tenant-password-1"}))
            .await
            .unwrap();
        if r.status.as_u16() != want {
            failures.push(format!(
                "{who} POST /api/v1/tenants: want {want}, got {}",
                r.status
            ));
        } else if want == 201 {
            r.ok::<Tenant>().unwrap();
        }
    }
    for (i, ((who, client), want)) in callers
        .iter()
        .zip([403, 201, 201, 403, 401, 403, 403, 201])
        .enumerate()
    {
        let r = client
            .post("/api/v1/devices", &json!({"name": format!("dev-{i}")}))
            .await
            .unwrap();
        if r.status.as_u16() != want {
            failures.push(format!(
                "{who} POST /api/v1/devices: want {want}, got {}",
                r.status
            ));
        }
    }
    for ((who, client), want) in callers.iter().zip([403, 200, 200, 403, 401, 403, 403, 200]) {
        let r = client
            .raw(
                Method::POST,
                "/api/v1/devices/import?dry_run=true",
                "text/csv",
                "name\nplanned\n",
            )
            .await
            .unwrap();
        if r.status.as_u16() != want {
            failures.push(format!(
                "{who} POST /api/v1/devices/import?dry_run=true: want {want}, got {}",
                r.status
            ));
        }
    }
    for ((who, client), want) in callers.iter().zip([403, 204, 204, 403, 401, 403, 404, 204]) {
        let victim: CreatedDevice = acme
            .admin
            .post("/api/v1/devices", &json!({"name": format!("victim-{who}")}))
            .await
            .unwrap()
            .ok()
            .unwrap();
        let r = client
            .delete(&format!("/api/v1/devices/{}", victim.device.id))
            .await
            .unwrap();
        if r.status.as_u16() != want {
            failures.push(format!(
                "{who} DELETE /api/v1/devices/{{id}}: want {want}, got {}",
                r.status
            ));
        }
    }
    for (i, ((who, client), want)) in callers
        .iter()
        .zip([403, 201, 403, 403, 401, 403, 403, 403])
        .enumerate()
    {
        let r = client
            .post(
                "/api/v1/roles",
                &json!({"name": format!("role-{i}"), "permissions": ["devices.read"]}),
            )
            .await
            .unwrap();
        if r.status.as_u16() != want {
            failures.push(format!(
                "{who} POST /api/v1/roles: want {want}, got {}",
                r.status
            ));
        }
        let r = client
            .post(
                "/api/v1/api-keys",
                &json!({"description": format!("key-{i}"), "permissions": ["devices.read"]}),
            )
            .await
            .unwrap();
        if r.status.as_u16() != want {
            failures.push(format!(
                "{who} POST /api/v1/api-keys: want {want}, got {}",
                r.status
            ));
        }
        let doomed: CustomRole = acme
            .admin
            .post(
                "/api/v1/roles",
                &json!({"name": format!("doomed-{i}"), "permissions": []}),
            )
            .await
            .unwrap()
            .ok()
            .unwrap();
        let r = client
            .delete(&format!("/api/v1/roles/{}", doomed.id))
            .await
            .unwrap();
        let want = if want == 201 { 204 } else { want };
        if r.status.as_u16() != want {
            failures.push(format!(
                "{who} DELETE /api/v1/roles/{{id}}: want {want}, got {}",
                r.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "permission matrix mismatches:\n{}",
        failures.join("\n")
    );
}
