//! Invitations, password reset and two-factor sign-in in the console, against a real SMTP server
//! (`mail::Mailbox`): a tenant admin invites a person with a custom role, who opens the mailed link
//! in the browser, chooses a password and sees only what the role allows; a person turns on
//! two-factor sign-in from the QR code's key and signs in with codes an app would show (and with a
//! recovery code); a forgotten password is reset from the mailed link. Without a mail server the
//! console hands the links over instead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fantoccini::{Client as Browser, Locator};
use serde_json::json;
use stead_api_types::{
    CustomRole, Invitation, InvitationStatus, Me, Page, Role, RoleRef, TokenResponse,
};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::browser::{
    Console, click, fill, screenshot, shown_text, submit_login, wait_count, wait_css, wait_gone,
    wait_text,
};
use crate::harness::Options;
use crate::mail::Mailbox;
use crate::mqtt::device;

const ADMIN: &str = "admin@acme.example.com";
const ADMIN_PASSWORD: &str = "tenant-admin-password";
const INVITEE: &str = "invitee@acme.example.com";
const INVITEE_PASSWORD: &str = "invitee-password-1";

/// The console with a mail server that the server sends through.
async fn console_with_mail() -> (Console, Mailbox) {
    let mailbox = Mailbox::start().await;
    let options = Options {
        env: mailbox.env(),
        ..Options::default()
    };
    (Console::start_with(options).await, mailbox)
}

async fn sign_out(b: &Browser) {
    click(b, "[data-test=logout]").await;
    wait_css(b, "input[name=email]").await;
}

fn invitations(page: Page<Invitation>, email: &str) -> Vec<Invitation> {
    page.items
        .into_iter()
        .filter(|i| i.email == email)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_person_with_a_custom_role_sees_only_what_it_allows() {
    let (console, mailbox) = console_with_mail().await;
    let admin = &console.acme.admin;
    device(admin, "pump-1").await;
    device(admin, "valve-9").await;

    let b = console.sign_in().await;
    // A custom role that only reads devices.
    click(&b, "[data-test=nav-roles]").await;
    click(&b, "[data-test=new-role]").await;
    fill(&b, "input[name=name]", "Device readers").await;
    click(&b, "input[data-test=permission][value='devices.read']").await;
    click(&b, "[data-test=save-role]").await;
    wait_text(&b, "[data-test=role-row]", "Device readers").await;
    let roles: Vec<CustomRole> = admin.get("/api/v1/roles").await.unwrap().ok().unwrap();
    let role = roles.iter().find(|r| r.name == "Device readers").unwrap();
    assert_eq!(role.permissions, [stead_api_types::Permission::DevicesRead]);

    // The invitation: a member, with that role over the whole tenant.
    click(&b, "[data-test=nav-invitations]").await;
    wait_text(&b, "h1", "Invitations").await;
    wait_css(&b, "[data-test=no-invitations]").await;
    click(&b, "[data-test=new-invitation]").await;
    fill(&b, "input[name=email]", INVITEE).await;
    fill(&b, "input[name=name]", "Ivy Invitee").await;
    wait_css(&b, "select[name=role]")
        .await
        .select_by_value("member")
        .await
        .unwrap();
    click(&b, "[data-test=add-binding]").await;
    wait_css(&b, "[data-test=binding-role]")
        .await
        .select_by_value(&role.id.to_string())
        .await
        .unwrap();
    wait_text(&b, "[data-test=binding]", "Over the whole tenant").await;
    screenshot(&b, "invitation-new").await;
    click(&b, "[data-test=send-invitation]").await;
    wait_text(&b, ".toast", "Invitation sent").await;
    wait_text(&b, "[data-test=invitation-row]", INVITEE).await;
    wait_text(&b, "[data-test=invitation-row]", "Pending").await;
    wait_text(
        &b,
        "[data-test=binding-badge]",
        "Device readers · whole tenant",
    )
    .await;

    let sent: Page<Invitation> = admin
        .get("/api/v1/invitations")
        .await
        .unwrap()
        .ok()
        .unwrap();
    let sent = invitations(sent, INVITEE);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].role, Role::Member);
    assert_eq!(sent[0].bindings.len(), 1);
    assert_eq!(sent[0].bindings[0].role, RoleRef::Custom(role.id));
    assert!(sent[0].bindings[0].groups.is_empty());
    assert_eq!(sent[0].invited_by_email, ADMIN);

    let mail = mailbox.wait_for(INVITEE).await;
    let link = mail.link("/invite");
    assert!(
        link.starts_with(&format!("{}/invite#", console.server.base)),
        "the link leads to this server: {link}"
    );
    b.refresh().await.unwrap();
    wait_text(&b, "[data-test=invitation-mail]", "Sent").await;
    screenshot(&b, "invitations").await;

    // The invitee opens the link in this browser, nobody signed in.
    sign_out(&b).await;
    b.goto(&link).await.unwrap();
    wait_text(&b, "[data-test=invitation-intro]", "Join Acme").await;
    let intro = shown_text(&b, "[data-test=invitation-intro]").await;
    assert!(
        intro.contains(ADMIN) && intro.contains(INVITEE),
        "who invites whom: {intro}"
    );
    let name = wait_css(&b, "input[name=name]").await;
    assert_eq!(
        name.prop("value").await.unwrap().as_deref(),
        Some("Ivy Invitee")
    );
    screenshot(&b, "invitation-accept").await;
    fill(&b, "input[name=password]", INVITEE_PASSWORD).await;
    fill(&b, "input[name=repeat_password]", INVITEE_PASSWORD).await;
    click(&b, "[data-test=accept-invitation]").await;

    // Signed in, on the fleet's health: the devices, read-only, and no people pages.
    wait_text(&b, "[data-test=current-user]", INVITEE).await;
    wait_text(&b, "[data-test=fleet-devices]", "2").await;
    click(&b, "[data-test=nav-devices]").await;
    wait_count(&b, "[data-test=device-row]", 2).await;
    wait_text(&b, "[data-test=device-row]", "pump-1").await;
    screenshot(&b, "invitee-devices").await;
    for hidden in [
        "[data-test=new-device]",
        "[data-test=nav-users]",
        "[data-test=nav-roles]",
        "[data-test=nav-invitations]",
        "[data-test=nav-import]",
        "[data-test=nav-api-keys]",
    ] {
        assert!(
            b.find_all(Locator::Css(hidden)).await.unwrap().is_empty(),
            "{hidden} is not shown"
        );
    }

    let after: Page<Invitation> = admin
        .get("/api/v1/invitations")
        .await
        .unwrap()
        .ok()
        .unwrap();
    let after = invitations(after, INVITEE);
    assert_eq!(after[0].status, InvitationStatus::Accepted, "{after:?}");
    let (invitee, _) = console
        .server
        .client()
        .login(INVITEE, INVITEE_PASSWORD)
        .await
        .unwrap();
    let me: Me = invitee.get("/api/v1/me").await.unwrap().ok().unwrap();
    assert_eq!(me.role, Role::Member);
    assert_eq!(me.name, "Ivy Invitee");

    // The link works once.
    sign_out(&b).await;
    b.goto(&link).await.unwrap();
    wait_text(&b, "[data-test=error]", "already used").await;
    assert!(
        b.find_all(Locator::Css("[data-test=accept-invitation]"))
            .await
            .unwrap()
            .is_empty(),
        "no form for a used invitation"
    );
}

/// What an authenticator app holding `secret` (base32) shows.
fn authenticator(secret: &str) -> TOTP {
    let secret: String = secret.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = Secret::Encoded(secret)
        .to_bytes()
        .expect("the shown key is base32");
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, bytes, None, String::new())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits for a time step after `step`, as a code works once, then the app's code for it.
async fn code_after(app: &TOTP, step: u64) -> (String, u64) {
    while now_secs() / 30 <= step {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let now = now_secs();
    (app.generate(now), now / 30)
}

/// A code that is not the app's (around `now`).
fn wrong_code(app: &TOTP) -> String {
    let now = now_secs();
    let taken: Vec<String> = [now - 30, now, now + 30]
        .into_iter()
        .map(|t| app.generate(t))
        .collect();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|c| !taken.contains(c))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_sign_in_in_the_console() {
    let console = Console::start().await;
    let viewer = "viewer@acme.example.com";
    console
        .acme
        .admin
        .post(
            "/api/v1/users",
            &json!({"email": viewer, "password": "viewer-password-1", "role": "viewer"}),
        )
        .await
        .unwrap()
        .ok::<serde_json::Value>()
        .unwrap();
    let b = console.sign_in().await;
    click(&b, "[data-test=nav-account]").await;
    wait_text(&b, "h1", "My account").await;
    wait_text(&b, "[data-test=two-factor-status]", "Off").await;

    // Set up: the password again, then the QR code and its key, then a code from the app.
    click(&b, "[data-test=setup-two-factor]").await;
    fill(&b, "input[name=two_factor_password]", "not-my-password").await;
    click(&b, "[data-test=two-factor-continue]").await;
    wait_css(&b, "[data-test=two-factor-card] [data-test=error]").await;
    fill(&b, "input[name=two_factor_password]", ADMIN_PASSWORD).await;
    click(&b, "[data-test=two-factor-continue]").await;
    let secret = shown_text(&b, "[data-test=two-factor-secret]").await;
    wait_css(&b, "[data-test=two-factor-qr] svg").await;
    screenshot(&b, "two-factor-setup").await;
    let app = authenticator(&secret);

    fill(&b, "input[name=two_factor_code]", &wrong_code(&app)).await;
    click(&b, "[data-test=enable-two-factor]").await;
    wait_css(&b, "[data-test=two-factor-card] [data-test=error]").await;
    let now = now_secs();
    let enabled_step = now / 30;
    fill(&b, "input[name=two_factor_code]", &app.generate(now)).await;
    click(&b, "[data-test=enable-two-factor]").await;

    // The recovery codes, once.
    wait_count(&b, "[data-test=recovery-code]", 10).await;
    let mut codes = Vec::new();
    for el in b
        .find_all(Locator::Css("[data-test=recovery-code]"))
        .await
        .unwrap()
    {
        codes.push(el.text().await.unwrap().trim().to_owned());
    }
    assert!(codes.iter().all(|c| !c.is_empty()), "{codes:?}");
    wait_css(&b, "[data-test=copy-recovery-codes]").await;
    screenshot(&b, "two-factor-recovery-codes").await;
    click(&b, "[data-test=saved-recovery-codes]").await;
    wait_gone(&b, "[data-test=recovery-codes]").await;
    wait_text(&b, "[data-test=two-factor-status]", "On").await;
    wait_css(&b, "[data-test=new-recovery-codes]").await;
    let me: Me = console
        .acme
        .admin
        .get("/api/v1/me")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(me.two_factor);

    // Signing in now asks for a code; a wrong one is refused with its reason.
    sign_out(&b).await;
    submit_login(&b, ADMIN, ADMIN_PASSWORD).await;
    wait_text(&b, "[data-test=two-factor-prompt]", "6-digit code").await;
    screenshot(&b, "two-factor-sign-in").await;
    fill(&b, "input[name=totp_code]", &wrong_code(&app)).await;
    click(&b, "button[type=submit]").await;
    wait_text(&b, "[data-test=error]", "not right").await;

    // A recovery code instead.
    click(&b, "[data-test=use-recovery-code]").await;
    fill(&b, "input[name=recovery_code]", &codes[0]).await;
    click(&b, "button[type=submit]").await;
    wait_text(&b, "[data-test=current-user]", ADMIN).await;

    // The app's code, in the next time step (the one used to turn it on is spent).
    sign_out(&b).await;
    submit_login(&b, ADMIN, ADMIN_PASSWORD).await;
    wait_css(&b, "input[name=totp_code]").await;
    let (code, _) = code_after(&app, enabled_step).await;
    fill(&b, "input[name=totp_code]", &code).await;
    click(&b, "button[type=submit]").await;
    wait_text(&b, "[data-test=current-user]", ADMIN).await;

    // The Users page says who has it; requiring it for everyone sends the others to set it up.
    click(&b, "[data-test=nav-users]").await;
    wait_text(&b, "[data-test=user-row]", ADMIN).await;
    wait_text(&b, "[data-test=user-two-factor]", "On").await;
    click(&b, "[data-test=require-two-factor]").await;
    wait_text(
        &b,
        ".toast",
        "Everyone must now sign in with a second factor",
    )
    .await;
    let security: serde_json::Value = console
        .acme
        .admin
        .get("/api/v1/security")
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(security, json!({"require_two_factor": true}));
    screenshot(&b, "users-two-factor").await;

    sign_out(&b).await;
    submit_login(&b, viewer, "viewer-password-1").await;
    wait_text(&b, "[data-test=current-user]", viewer).await;
    wait_css(&b, "[data-test=two-factor-setup-required]").await;
    wait_text(&b, "h1", "My account").await;
    // Every other page sends them back until they set it up.
    b.goto(&format!("{}/devices", console.server.base))
        .await
        .unwrap();
    wait_css(&b, "[data-test=two-factor-setup-required]").await;
    assert!(
        b.current_url().await.unwrap().path().ends_with("/account"),
        "sent back to My account"
    );
    screenshot(&b, "two-factor-required").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_from_the_mailed_link() {
    let (console, mailbox) = console_with_mail().await;
    let new_password = "a-fresh-password-77";
    let b = console.sign_in().await;
    sign_out(&b).await;

    click(&b, "[data-test=forgot-password]").await;
    wait_text(&b, "h1", "Reset your password").await;
    fill(&b, "input[name=email]", ADMIN).await;
    click(&b, "[data-test=send-reset-link]").await;
    wait_text(&b, "[data-test=reset-sent]", "If an account exists").await;
    screenshot(&b, "password-reset-sent").await;

    let mail = mailbox.wait_for(ADMIN).await;
    let link = mail.link("/reset-password");
    assert!(
        link.starts_with(&format!("{}/reset-password#", console.server.base)),
        "the link leads to this server: {link}"
    );
    b.goto(&link).await.unwrap();
    wait_text(&b, "h1", "Choose a new password").await;
    fill(&b, "input[name=new_password]", new_password).await;
    fill(&b, "input[name=repeat_password]", "something-else-entirely").await;
    click(&b, "[data-test=set-password]").await;
    wait_text(&b, "[data-test=error]", "differ").await;
    fill(&b, "input[name=repeat_password]", new_password).await;
    click(&b, "[data-test=set-password]").await;
    wait_text(&b, "[data-test=password-reset-done]", "Password changed").await;
    screenshot(&b, "password-reset-done").await;

    click(&b, "[data-test=to-sign-in]").await;
    submit_login(&b, ADMIN, new_password).await;
    wait_text(&b, "[data-test=current-user]", ADMIN).await;
    assert!(
        console
            .server
            .client()
            .login(ADMIN, ADMIN_PASSWORD)
            .await
            .is_err(),
        "the old password no longer signs in"
    );

    // The link works once.
    sign_out(&b).await;
    b.goto(&link).await.unwrap();
    fill(&b, "input[name=new_password]", "yet-another-password-9").await;
    fill(&b, "input[name=repeat_password]", "yet-another-password-9").await;
    click(&b, "[data-test=set-password]").await;
    wait_text(&b, "[data-test=error]", "already used").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_mail_server_the_console_hands_over_the_link() {
    let console = Console::start().await;
    let b = console.sign_in().await;
    click(&b, "[data-test=nav-invitations]").await;
    click(&b, "[data-test=new-invitation]").await;
    fill(&b, "input[name=email]", INVITEE).await;
    click(&b, "[data-test=send-invitation]").await;
    let link = shown_text(&b, "[data-test=invitation-link]").await;
    assert!(
        link.trim()
            .starts_with(&format!("{}/invite#", console.server.base)),
        "{link}"
    );
    wait_text(&b, ".modal", "No mail server is configured").await;
    wait_css(&b, "[data-test=copy-invitation-link]").await;
    screenshot(&b, "invitation-link").await;
    click(&b, "[data-test=close-token]").await;
    wait_text(&b, "[data-test=invitation-mail]", "No mail server").await;

    // The handed-over link works like a mailed one.
    let token = link.trim().rsplit('#').next().unwrap().to_owned();
    let accepted: TokenResponse = console
        .server
        .client()
        .post(
            "/api/v1/auth/invitation/accept",
            &json!({"token": token, "password": INVITEE_PASSWORD}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(!accepted.access_token.is_empty());

    // Nothing can mail a reset link: the form says so.
    sign_out(&b).await;
    click(&b, "[data-test=forgot-password]").await;
    fill(&b, "input[name=email]", ADMIN).await;
    click(&b, "[data-test=send-reset-link]").await;
    wait_text(&b, "[data-test=error]", "cannot send e-mail").await;
}
