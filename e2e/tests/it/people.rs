//! People joining and getting back in, through the REST API against a real SMTP server
//! (aiosmtpd, `crate::mail`): invitations (one-time links that create the account with the
//! role and bindings they name, re-sent, withdrawn, expired, refused when they grant more than
//! their author holds), password reset by e-mail (every session ends, the link works once), and
//! TOTP two-factor sign-in (codes work once, recovery codes, a tenant that requires it, an admin
//! turning off a lost one). Every change audited; no link token, TOTP secret or recovery code
//! stored or logged in clear.

use std::time::Duration;

use serde_json::json;
use stead_api_types::{
    AuditEntry, DeviceGroup, Invitation, InvitationPreview, InvitationStatus, MailStatus, Me, Page,
    RecoveryCodes, Role, TenantSecurity, TokenResponse, TwoFactorSetup, User,
};
use stead_e2e::Client;

use crate::harness::{Backend, Options, TestServer};
use crate::mail::Mailbox;
use crate::mqtt::device;
use crate::on_both_backends;

on_both_backends!(
    an_invitation_creates_the_account_once_with_what_it_names,
    a_mailed_link_resets_the_password_and_ends_every_session,
    two_factor_codes_work_once_and_a_tenant_can_require_them
);

const NEWCOMER: &str = "newcomer@acme.example.com";
const NEWCOMER_PASSWORD: &str = "newcomer-password-1";

async fn server_with(backend: Backend, env: Vec<(String, String)>) -> TestServer {
    let mut options = Options::default();
    for (k, v) in env {
        options = options.env(&k, v);
    }
    TestServer::start_with(backend, options).await
}

async fn actions(c: &Client) -> Vec<AuditEntry> {
    let page: Page<AuditEntry> = c
        .get("/api/v1/audit?per_page=200")
        .await
        .unwrap()
        .ok()
        .unwrap();
    page.items
}

fn assert_audited(entries: &[AuditEntry], action: &str, actor: &str) {
    assert!(
        entries
            .iter()
            .any(|e| e.action == action && e.actor_email.as_deref() == Some(actor)),
        "no {action} by {actor} in {:?}",
        entries
            .iter()
            .map(|e| (&e.action, &e.actor_email))
            .collect::<Vec<_>>()
    );
}

async fn create_user(admin: &Client, email: &str, password: &str, role: Role) -> User {
    admin
        .post(
            "/api/v1/users",
            &json!({"email": email, "password": password, "role": role}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap()
}

async fn preview(server: &TestServer, token: &str) -> stead_e2e::Reply {
    server
        .client()
        .post("/api/v1/auth/invitation", &json!({"token": token}))
        .await
        .unwrap()
}

async fn accept(server: &TestServer, token: &str, password: &str) -> stead_e2e::Reply {
    server
        .client()
        .post(
            "/api/v1/auth/invitation/accept",
            &json!({"token": token, "password": password, "name": "Nia Newcomer"}),
        )
        .await
        .unwrap()
}

async fn an_invitation_creates_the_account_once_with_what_it_names(backend: Backend) {
    let mailbox = Mailbox::start().await;
    let server = server_with(backend, mailbox.env()).await;
    let acme = server.tenant("Acme").await;
    let other = server.tenant("Other").await;
    let admin = &acme.admin;
    let (pump, _) = device(admin, "pump-1").await;
    let (valve, _) = device(admin, "valve-9").await;
    let north: DeviceGroup = admin
        .post("/api/v1/groups", &json!({"name": "north"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    admin
        .post(
            &format!("/api/v1/groups/{}/devices", north.id),
            &json!({"device_ids": [pump]}),
        )
        .await
        .unwrap();
    let support: serde_json::Value = admin
        .post(
            "/api/v1/roles",
            &json!({"name": "Support", "permissions": ["devices.read"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let support_id = support["id"].as_str().unwrap().to_owned();

    // The invitation names a built-in role and a custom role over one group.
    let reply = admin
        .post(
            "/api/v1/invitations",
            &json!({
                "email": "NewComer@Acme.example.com",
                "name": "Nia",
                "role": "member",
                "bindings": [{"role": {"custom": support_id}, "groups": [north.id]}],
            }),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 201, "{}", reply.body);
    let invitation: Invitation = reply.ok().unwrap();
    assert_eq!(invitation.email, NEWCOMER);
    assert_eq!(invitation.status, InvitationStatus::Pending);
    assert_eq!(
        invitation.mail,
        MailStatus::Sent,
        "{:?}",
        invitation.mail_error
    );
    assert!(invitation.link.is_none(), "a mailed link is not answered");
    assert_eq!(invitation.bindings.len(), 1);
    assert_eq!(invitation.bindings[0].role_name, "Support");
    assert_eq!(invitation.bindings[0].groups, vec![north.id]);

    let mail = mailbox.wait_for(NEWCOMER).await;
    assert!(mail.subject.contains("Acme"), "{}", mail.subject);
    assert!(mail.from.contains("stead@example.test"), "{}", mail.from);
    assert!(
        mail.text.contains("admin@acme.example.com"),
        "{}",
        mail.text
    );
    assert!(
        mail.link("/invite")
            .starts_with(&format!("{}/invite#", server.base)),
        "{}",
        mail.text
    );
    let token = mail.token("/invite");
    assert_eq!(token.len(), 43);

    // The invitee's page learns what the link is for; a made-up token is refused.
    let seen: InvitationPreview = preview(&server, &token).await.ok().unwrap();
    assert_eq!(seen.email, NEWCOMER);
    assert_eq!(seen.tenant_name, "Acme");
    assert_eq!(seen.invited_by_email, "admin@acme.example.com");
    assert_eq!(seen.name, "Nia");
    let bad = preview(&server, "not-a-token").await;
    assert_eq!(
        (bad.status.as_u16(), bad.code()),
        (400, "invalid_link".into())
    );
    let weak = accept(&server, &token, "short").await;
    assert_eq!(
        (weak.status.as_u16(), weak.code()),
        (400, "weak_password".into())
    );

    // Accepting creates the account, signed in, with exactly what the invitation named.
    let tokens: TokenResponse = accept(&server, &token, NEWCOMER_PASSWORD)
        .await
        .ok()
        .unwrap();
    let newcomer = server.client().with_token(tokens.access_token);
    let me: Me = newcomer.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert_eq!(me.email, NEWCOMER);
    assert_eq!(me.name, "Nia Newcomer");
    assert_eq!(me.role, Role::Member);
    assert_eq!(me.groups, Some(vec![north.id]));
    let listed: serde_json::Value = newcomer.get("/api/v1/devices").await.unwrap().ok().unwrap();
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![pump.to_string()]);
    let outside = newcomer
        .get(&format!("/api/v1/devices/{valve}"))
        .await
        .unwrap();
    assert_eq!(outside.status, 404);
    let create = newcomer
        .post("/api/v1/devices", &json!({"name": "mine"}))
        .await
        .unwrap();
    assert_eq!(create.status, 403);
    server
        .client()
        .login(NEWCOMER, NEWCOMER_PASSWORD)
        .await
        .expect("the new password signs in");

    // The link works once.
    let again = accept(&server, &token, NEWCOMER_PASSWORD).await;
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (409, "link_used".into())
    );
    assert_eq!(preview(&server, &token).await.code(), "link_used");
    let done: Invitation = admin
        .get(&format!("/api/v1/invitations/{}", invitation.id))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(done.status, InvitationStatus::Accepted);
    assert!(done.accepted_at.is_some());
    let taken = admin
        .post(
            "/api/v1/invitations",
            &json!({"email": NEWCOMER, "role": "viewer"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (taken.status.as_u16(), taken.code()),
        (409, "email_taken".into())
    );

    // One open invitation per address; re-sending replaces the link; withdrawing ends it.
    let second = "second@acme.example.com";
    let pending: Invitation = admin
        .post(
            "/api/v1/invitations",
            &json!({"email": second, "role": "viewer"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let twice = admin
        .post(
            "/api/v1/invitations",
            &json!({"email": second, "role": "viewer"}),
        )
        .await
        .unwrap();
    assert_eq!(twice.code(), "invitation_pending");
    let first_token = mailbox.wait_for(second).await.token("/invite");
    let resent: Invitation = admin
        .post(
            &format!("/api/v1/invitations/{}/resend", pending.id),
            &json!({}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(resent.mail, MailStatus::Sent);
    let second_token = mailbox.wait_for_nth(second, 2).await.token("/invite");
    assert_ne!(first_token, second_token);
    assert_eq!(preview(&server, &first_token).await.code(), "invalid_link");
    preview(&server, &second_token)
        .await
        .ok::<InvitationPreview>()
        .unwrap();
    let revoked = admin
        .delete(&format!("/api/v1/invitations/{}", pending.id))
        .await
        .unwrap();
    assert_eq!(revoked.status, 204);
    let gone = accept(&server, &second_token, NEWCOMER_PASSWORD).await;
    assert_eq!(
        (gone.status.as_u16(), gone.code()),
        (410, "link_revoked".into())
    );
    let closed = admin
        .post(
            &format!("/api/v1/invitations/{}/resend", pending.id),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(closed.code(), "invitation_closed");

    // Nobody invites with more than they hold.
    let (_, recruiter) =
        crate::access::member(&server, &acme, json!([{"role": {"builtin": "operator"}}])).await;
    let denied = recruiter
        .post(
            "/api/v1/invitations",
            &json!({"email": "x@acme.example.com", "role": "viewer"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (denied.status.as_u16(), denied.code()),
        (403, "permission_denied".into())
    );
    let recruiters: serde_json::Value = admin
        .post(
            "/api/v1/roles",
            &json!({"name": "Recruiter", "permissions": ["users.read", "users.manage", "devices.read"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let (_, recruiter) = crate::access::member(
        &server,
        &acme,
        json!([{"role": {"custom": recruiters["id"]}}]),
    )
    .await;
    for body in [
        json!({"email": "x@acme.example.com", "role": "tenant_admin"}),
        json!({"email": "x@acme.example.com", "role": "member",
               "bindings": [{"role": {"builtin": "operator"}}]}),
    ] {
        let r = recruiter.post("/api/v1/invitations", &body).await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "exceeds_your_access".into()),
            "{body}"
        );
    }
    let fine = recruiter
        .post(
            "/api/v1/invitations",
            &json!({"email": "x@acme.example.com", "role": "member",
                    "bindings": [{"role": {"custom": support_id}}]}),
        )
        .await
        .unwrap();
    assert_eq!(fine.status, 201, "{}", fine.body);
    for body in [
        json!({"email": "not an address", "role": "viewer"}),
        json!({"email": "y@acme.example.com", "role": "platform_admin"}),
        json!({"email": "y@acme.example.com", "role": "member",
               "bindings": [{"role": {"custom": uuid::Uuid::new_v4()}}]}),
    ] {
        let r = admin.post("/api/v1/invitations", &body).await.unwrap();
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }

    // Another tenant sees none of it.
    for reply in [
        other
            .admin
            .get(&format!("/api/v1/invitations/{}", invitation.id))
            .await
            .unwrap(),
        other
            .admin
            .delete(&format!("/api/v1/invitations/{}", pending.id))
            .await
            .unwrap(),
        other
            .admin
            .post(
                &format!("/api/v1/invitations/{}/resend", pending.id),
                &json!({}),
            )
            .await
            .unwrap(),
    ] {
        assert_eq!(reply.status, 404, "{}", reply.body);
    }
    let theirs: Page<Invitation> = other
        .admin
        .get("/api/v1/invitations")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(theirs.total, 0);
    let ours: Page<Invitation> = admin
        .get("/api/v1/invitations")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(ours.total, 3);

    // Audited, chained, and no token in clear anywhere.
    let entries = actions(admin).await;
    for action in [
        "invitation.create",
        "invitation.resend",
        "invitation.revoke",
    ] {
        assert_audited(&entries, action, "admin@acme.example.com");
    }
    assert_audited(&entries, "invitation.accept", NEWCOMER);
    let out = server.stead(&["admin", "verify-audit"]);
    assert!(out.status.success(), "{}", crate::harness::text(&out));
    let stored = server.sql("SELECT token_hash FROM invitations");
    let log = server.log_text();
    for t in [&token, &first_token, &second_token] {
        assert!(!stored.contains(t.as_str()));
        assert!(!log.contains(t.as_str()), "a link token is in the log");
    }
}

async fn a_mailed_link_resets_the_password_and_ends_every_session(backend: Backend) {
    let mailbox = Mailbox::start().await;
    let server = server_with(backend, mailbox.env()).await;
    let acme = server.tenant("Acme").await;
    let email = "forgetful@acme.example.com";
    create_user(&acme.admin, email, "old-password-123", Role::Viewer).await;
    let (before, before_tokens) = server
        .client()
        .login(email, "old-password-123")
        .await
        .unwrap();
    let anon = server.client();
    let ask = |email: &'static str| {
        let anon = anon.clone();
        async move {
            anon.post("/api/v1/auth/password-reset", &json!({"email": email}))
                .await
                .unwrap()
        }
    };

    // The same answer for an address with and without an account; mail only for the first.
    assert_eq!(ask("forgetful@acme.example.com").await.status, 202);
    assert_eq!(ask("nobody@acme.example.com").await.status, 202);
    let invalid = ask("not an address").await;
    assert_eq!(
        (invalid.status.as_u16(), invalid.code()),
        (400, "invalid_email".into())
    );
    let mail = mailbox.wait_for(email).await;
    assert_eq!(mail.subject, "Reset your Stead password");
    assert!(
        mail.link("/reset-password")
            .starts_with(&format!("{}/reset-password#", server.base))
    );
    let token = mail.token("/reset-password");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(mailbox.to("nobody@acme.example.com").is_empty());

    let confirm = |token: String, password: &'static str| {
        let anon = anon.clone();
        async move {
            anon.post(
                "/api/v1/auth/password-reset/confirm",
                &json!({"token": token, "new_password": password}),
            )
            .await
            .unwrap()
        }
    };
    let weak = confirm(token.clone(), "short").await;
    assert_eq!(
        (weak.status.as_u16(), weak.code()),
        (400, "weak_password".into())
    );
    let bad = confirm("made-up".into(), "new-password-456").await;
    assert_eq!(bad.code(), "invalid_link");
    assert_eq!(confirm(token.clone(), "new-password-456").await.status, 204);
    let reused = confirm(token.clone(), "newer-password-789").await;
    assert_eq!(
        (reused.status.as_u16(), reused.code()),
        (409, "link_used".into())
    );

    // The new password works, the old one does not, and the sessions that were open ended.
    let old = anon
        .post(
            "/api/v1/auth/login",
            &json!({"email": email, "password": "old-password-123"}),
        )
        .await
        .unwrap();
    assert_eq!(old.code(), "invalid_credentials");
    server
        .client()
        .login(email, "new-password-456")
        .await
        .unwrap();
    let ended = before.get("/api/v1/me").await.unwrap();
    assert_eq!(
        (ended.status.as_u16(), ended.code()),
        (401, "session_ended".into())
    );
    let refresh = anon
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": before_tokens.refresh_token}),
        )
        .await
        .unwrap();
    assert_eq!(refresh.status, 401);

    // Using one link spends every other one of the account.
    assert_eq!(ask("forgetful@acme.example.com").await.status, 202);
    assert_eq!(ask("forgetful@acme.example.com").await.status, 202);
    let older = mailbox
        .wait_for_nth(email, 2)
        .await
        .token("/reset-password");
    let newer = mailbox
        .wait_for_nth(email, 3)
        .await
        .token("/reset-password");
    assert_eq!(confirm(newer, "third-password-000").await.status, 204);
    assert_eq!(
        confirm(older, "fourth-password-000").await.code(),
        "link_used"
    );
    server
        .client()
        .login(email, "third-password-000")
        .await
        .unwrap();

    let entries = actions(&acme.admin).await;
    assert_audited(&entries, "user.password.reset", email);
    let stored = server.sql("SELECT token_hash FROM password_resets");
    assert!(!stored.contains(&token));
    assert!(
        !server.log_text().contains(&token),
        "a reset token is in the log"
    );
}

fn totp_of(setup: &TwoFactorSetup) -> totp_rs::TOTP {
    totp_rs::TOTP::from_url(&setup.otpauth_url).expect("an otpauth URL an app can read")
}

fn code_at(totp: &totp_rs::TOTP, offset_steps: i64) -> String {
    let now = chrono::Utc::now().timestamp() + offset_steps * 30;
    totp.generate(now as u64)
}

/// A six-digit code that is none of those the server accepts now.
fn wrong_code(totp: &totp_rs::TOTP) -> String {
    let right: Vec<String> = (-1..=1).map(|o| code_at(totp, o)).collect();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|c| !right.contains(c))
        .unwrap()
}

async fn login(server: &TestServer, body: serde_json::Value) -> stead_e2e::Reply {
    server
        .client()
        .post("/api/v1/auth/login", &body)
        .await
        .unwrap()
}

async fn set_up(c: &Client, password: &str) -> (totp_rs::TOTP, RecoveryCodes) {
    let setup: TwoFactorSetup = c
        .post(
            "/api/v1/me/two-factor/setup",
            &json!({"password": password}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let totp = totp_of(&setup);
    let codes: RecoveryCodes = c
        .post(
            "/api/v1/me/two-factor/enable",
            &json!({"code": code_at(&totp, 0)}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    (totp, codes)
}

async fn two_factor_codes_work_once_and_a_tenant_can_require_them(backend: Backend) {
    // No SMTP server here: the routes that would mail say so.
    let server = TestServer::start(backend).await;
    let acme = server.tenant("Acme").await;
    let other = server.tenant("Other").await;
    let admin = &acme.admin;
    let email = "careful@acme.example.com";
    let password = "careful-password-1";
    let person = create_user(admin, email, password, Role::Operator).await;
    let (c, _) = server.client().login(email, password).await.unwrap();

    let wrong = c
        .post(
            "/api/v1/me/two-factor/setup",
            &json!({"password": "not it at all"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (wrong.status.as_u16(), wrong.code()),
        (400, "wrong_password".into())
    );
    let early = c
        .post("/api/v1/me/two-factor/enable", &json!({"code": "123456"}))
        .await
        .unwrap();
    assert_eq!(early.code(), "two_factor_not_set_up");
    let setup: TwoFactorSetup = c
        .post(
            "/api/v1/me/two-factor/setup",
            &json!({"password": password}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(
        setup.otpauth_url.starts_with("otpauth://totp/Stead:"),
        "{}",
        setup.otpauth_url
    );
    assert!(setup.qr_svg.contains("<svg"));
    let totp = totp_of(&setup);
    // Pending is not in force: the password alone still signs in.
    login(&server, json!({"email": email, "password": password}))
        .await
        .ok::<TokenResponse>()
        .unwrap();
    let refused = c
        .post(
            "/api/v1/me/two-factor/enable",
            &json!({"code": wrong_code(&totp)}),
        )
        .await
        .unwrap();
    assert_eq!(refused.code(), "invalid_two_factor_code");
    let codes: RecoveryCodes = c
        .post(
            "/api/v1/me/two-factor/enable",
            &json!({"code": code_at(&totp, 0)}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(codes.recovery_codes.len(), 10);
    let me: Me = c.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert!(me.two_factor && !me.two_factor_setup_required);

    // Sign-in now needs a code, right, and once.
    let bare = login(&server, json!({"email": email, "password": password})).await;
    assert_eq!(
        (bare.status.as_u16(), bare.code()),
        (401, "two_factor_required".into())
    );
    let bad = login(
        &server,
        json!({"email": email, "password": password, "totp_code": wrong_code(&totp)}),
    )
    .await;
    assert_eq!(bad.code(), "invalid_two_factor_code");
    let wrong_password = login(
        &server,
        json!({"email": email, "password": "not the password", "totp_code": code_at(&totp, 1)}),
    )
    .await;
    assert_eq!(wrong_password.code(), "invalid_credentials");
    // The code used to turn it on does not sign in again; the next step's does, once.
    let replay = login(
        &server,
        json!({"email": email, "password": password, "totp_code": code_at(&totp, 0)}),
    )
    .await;
    assert_eq!(replay.code(), "invalid_two_factor_code");
    let next = code_at(&totp, 1);
    login(
        &server,
        json!({"email": email, "password": password, "totp_code": next}),
    )
    .await
    .ok::<TokenResponse>()
    .unwrap();
    let again = login(
        &server,
        json!({"email": email, "password": password, "totp_code": next}),
    )
    .await;
    assert_eq!(again.code(), "invalid_two_factor_code");

    // A recovery code works once; new ones replace the old.
    let recovery = &codes.recovery_codes[0];
    login(
        &server,
        json!({"email": email, "password": password, "recovery_code": recovery.to_uppercase()}),
    )
    .await
    .ok::<TokenResponse>()
    .unwrap();
    let spent = login(
        &server,
        json!({"email": email, "password": password, "recovery_code": recovery}),
    )
    .await;
    assert_eq!(spent.code(), "invalid_two_factor_code");
    let fresh: RecoveryCodes = c
        .post(
            "/api/v1/me/two-factor/recovery-codes",
            &json!({"password": password}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let old = login(
        &server,
        json!({"email": email, "password": password, "recovery_code": codes.recovery_codes[1]}),
    )
    .await;
    assert_eq!(old.code(), "invalid_two_factor_code");
    login(
        &server,
        json!({"email": email, "password": password, "recovery_code": fresh.recovery_codes[0]}),
    )
    .await
    .ok::<TokenResponse>()
    .unwrap();

    // Turned off, the password alone signs in again.
    assert_eq!(
        c.post(
            "/api/v1/me/two-factor/disable",
            &json!({"password": password})
        )
        .await
        .unwrap()
        .status,
        204
    );
    login(&server, json!({"email": email, "password": password}))
        .await
        .ok::<TokenResponse>()
        .unwrap();

    // The tenant requires it: an API key made before still works; people without a second
    // factor reach only their own account until they set it up, at their next request.
    let key: serde_json::Value = admin
        .post(
            "/api/v1/api-keys",
            &json!({"description": "exporter", "permissions": ["devices.read"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let key = server
        .client()
        .with_token(key["secret"].as_str().unwrap().to_owned());
    let viewer = server.user(&acme, Role::Viewer).await;
    let denied = viewer
        .patch("/api/v1/security", &json!({"require_two_factor": true}))
        .await
        .unwrap();
    assert_eq!(denied.code(), "permission_denied");
    let set: TenantSecurity = admin
        .patch("/api/v1/security", &json!({"require_two_factor": true}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(set.require_two_factor);
    let blocked = c.get("/api/v1/devices").await.unwrap();
    assert_eq!(
        (blocked.status.as_u16(), blocked.code()),
        (403, "two_factor_setup_required".into())
    );
    let me: Me = c.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert!(me.two_factor_setup_required);
    assert_eq!(c.get("/api/v1/me/sessions").await.unwrap().status, 200);
    assert_eq!(key.get("/api/v1/devices").await.unwrap().status, 200);
    assert_eq!(
        admin.get("/api/v1/users").await.unwrap().code(),
        "two_factor_setup_required"
    );
    let (totp, _) = set_up(&c, password).await;
    assert_eq!(c.get("/api/v1/devices").await.unwrap().status, 200);
    let kept = c
        .post(
            "/api/v1/me/two-factor/disable",
            &json!({"password": password}),
        )
        .await
        .unwrap();
    assert_eq!(kept.code(), "two_factor_required_by_tenant");
    // The code that turned it on does not sign in; the next one does.
    let replayed = login(
        &server,
        json!({"email": email, "password": password, "totp_code": code_at(&totp, 0)}),
    )
    .await;
    assert_eq!(replayed.code(), "invalid_two_factor_code");

    // A tenant admin turns off a lost second factor: that person's sessions end.
    set_up(admin, "tenant-admin-password").await;
    let security: TenantSecurity = admin.get("/api/v1/security").await.unwrap().ok().unwrap();
    assert!(security.require_two_factor);
    let lost = other
        .admin
        .delete(&format!("/api/v1/users/{}/two-factor", person.id))
        .await
        .unwrap();
    assert_eq!(lost.status, 404);
    let reset = admin
        .delete(&format!("/api/v1/users/{}/two-factor", person.id))
        .await
        .unwrap();
    assert_eq!(reset.status, 204, "{}", reset.body);
    assert_eq!(c.get("/api/v1/me").await.unwrap().code(), "session_ended");
    let users: Page<User> = admin.get("/api/v1/users").await.unwrap().ok().unwrap();
    let listed = users.items.iter().find(|u| u.id == person.id).unwrap();
    assert!(!listed.two_factor);
    let (c, _) = server.client().login(email, password).await.unwrap();
    let me: Me = c.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert!(me.two_factor_setup_required && !me.two_factor);

    // Without SMTP: no reset by mail, and an invitation answers its link to pass on.
    let no_mail = server
        .client()
        .post("/api/v1/auth/password-reset", &json!({"email": email}))
        .await
        .unwrap();
    assert_eq!(
        (no_mail.status.as_u16(), no_mail.code()),
        (503, "mail_not_configured".into())
    );
    let invited: Invitation = admin
        .post(
            "/api/v1/invitations",
            &json!({"email": "hand@acme.example.com", "role": "viewer"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(invited.mail, MailStatus::NotConfigured);
    let link = invited.link.expect("the link, to pass on by hand");
    assert!(
        link.starts_with(&format!("{}/invite#", server.base)),
        "{link}"
    );
    let token = link.split('#').nth(1).unwrap();
    preview(&server, token)
        .await
        .ok::<InvitationPreview>()
        .unwrap();

    // Audited; no secret or recovery code in the database or the log.
    let entries = actions(admin).await;
    for action in [
        "user.two_factor.setup",
        "user.two_factor.enable",
        "user.two_factor.disable",
        "user.two_factor.recovery_codes",
        "user.two_factor.recovery_code_used",
    ] {
        assert_audited(&entries, action, email);
    }
    assert_audited(&entries, "tenant.security.update", "admin@acme.example.com");
    assert_audited(&entries, "user.two_factor.reset", "admin@acme.example.com");
    let stored = server.sql("SELECT totp_secret, totp_pending, recovery_codes FROM users");
    let log = server.log_text();
    for secret in [
        &setup.secret,
        &fresh.recovery_codes[2],
        &codes.recovery_codes[3],
    ] {
        assert!(
            !stored.contains(secret.as_str()),
            "{secret} stored in clear"
        );
        assert!(!log.contains(secret.as_str()), "{secret} in the log");
    }
    let out = server.stead(&["admin", "verify-audit"]);
    assert!(out.status.success(), "{}", crate::harness::text(&out));
}

/// Links that expired, and an e-mail that could not be sent (SQLite only: nothing here depends
/// on the database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_links_are_refused_and_a_failed_mail_shows() {
    let mailbox = Mailbox::start().await;
    let mut env = mailbox.env();
    env.push(("STEAD_INVITATION_TTL_SECS".into(), "2".into()));
    env.push(("STEAD_PASSWORD_RESET_TTL_SECS".into(), "2".into()));
    let server = server_with(Backend::Sqlite, env).await;
    let acme = server.tenant("Acme").await;
    let invitation: Invitation = acme
        .admin
        .post(
            "/api/v1/invitations",
            &json!({"email": NEWCOMER, "role": "viewer"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(invitation.expires_at - invitation.created_at <= chrono::Duration::seconds(3));
    let invite = mailbox.wait_for(NEWCOMER).await;
    assert!(invite.text.contains("for 2 seconds"), "{}", invite.text);
    let invite_token = invite.token("/invite");
    create_user(
        &acme.admin,
        "late@acme.example.com",
        "late-password-1",
        Role::Viewer,
    )
    .await;
    server
        .client()
        .post(
            "/api/v1/auth/password-reset",
            &json!({"email": "late@acme.example.com"}),
        )
        .await
        .unwrap();
    let reset_token = mailbox
        .wait_for("late@acme.example.com")
        .await
        .token("/reset-password");
    tokio::time::sleep(Duration::from_secs(3)).await;

    let late = accept(&server, &invite_token, NEWCOMER_PASSWORD).await;
    assert_eq!(
        (late.status.as_u16(), late.code()),
        (410, "link_expired".into())
    );
    assert_eq!(preview(&server, &invite_token).await.code(), "link_expired");
    let late_reset = server
        .client()
        .post(
            "/api/v1/auth/password-reset/confirm",
            &json!({"token": reset_token, "new_password": "another-password-1"}),
        )
        .await
        .unwrap();
    assert_eq!(late_reset.code(), "link_expired");
    let listed: Invitation = acme
        .admin
        .get(&format!("/api/v1/invitations/{}", invitation.id))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(listed.status, InvitationStatus::Expired);
    // Re-sent, it works again (for another 2 s: accepted at once).
    acme.admin
        .post(
            &format!("/api/v1/invitations/{}/resend", invitation.id),
            &json!({}),
        )
        .await
        .unwrap()
        .ok::<Invitation>()
        .unwrap();
    let fresh = mailbox.wait_for_nth(NEWCOMER, 2).await.token("/invite");
    let accepted = accept(&server, &fresh, NEWCOMER_PASSWORD).await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);

    // An SMTP server that is not there: the invitation says so, with the reason.
    drop(mailbox);
    let dead = server_with(
        Backend::Sqlite,
        vec![("STEAD_SMTP_URL".into(), "smtp://127.0.0.1:9".into())],
    )
    .await;
    let acme = dead.tenant("Acme").await;
    let failed: Invitation = acme
        .admin
        .post(
            "/api/v1/invitations",
            &json!({"email": NEWCOMER, "role": "viewer"}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(failed.mail, MailStatus::Failed);
    assert!(failed.mail_error.is_some());
    assert!(failed.link.is_none());
}
