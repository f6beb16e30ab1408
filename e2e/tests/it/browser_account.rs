//! My account in the console: a person sees where they are signed in (this browser marked), signs
//! out another session, and changes their password (a wrong current one is refused with its
//! reason); the other session's tokens stop working, and the new password signs in.

use crate::browser::{
    Console, click, fill, screenshot, submit_login, wait_count, wait_css, wait_text,
};

const EMAIL: &str = "admin@acme.example.com";
const PASSWORD: &str = "tenant-admin-password";
const NEW: &str = "a-brand-new-password-42";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_ends_a_session_and_changes_their_password() {
    let console = Console::start().await;
    let b = console.sign_in().await;
    // Two more sessions of the same person, from elsewhere (the test's own logins).
    let (elsewhere, _) = console
        .server
        .client()
        .login(EMAIL, PASSWORD)
        .await
        .unwrap();
    let (third, _) = console
        .server
        .client()
        .login(EMAIL, PASSWORD)
        .await
        .unwrap();

    click(&b, "[data-test=nav-account]").await;
    wait_text(&b, "h1", "My account").await;
    // The test's own `Console` sign-in, this browser, and the two above.
    let rows = 4;
    wait_count(&b, "[data-test=session-row]", rows).await;
    wait_count(&b, "[data-test=this-session]", 1).await;
    wait_text(&b, "[data-test=session-row].current", "Chrome on Linux").await;
    screenshot(&b, "account").await;

    // Signing one out: its row goes, its tokens stop working.
    click(&b, "[data-test=end-session]").await;
    wait_count(&b, "[data-test=session-row]", rows - 1).await;
    let ended = [&elsewhere, &third, &console.acme.admin];
    let mut refused = 0;
    for c in ended {
        if c.get("/api/v1/me").await.unwrap().status == 401 {
            refused += 1;
        }
    }
    assert_eq!(refused, 1, "exactly the session signed out is refused");

    // A wrong current password is refused with its reason; the right one changes it.
    fill(&b, "input[name=current_password]", "not-my-password").await;
    fill(&b, "input[name=new_password]", NEW).await;
    fill(&b, "input[name=repeat_password]", NEW).await;
    click(&b, "[data-test=change-password]").await;
    wait_text(
        &b,
        "[data-test=password-error]",
        "current password is not right",
    )
    .await;
    fill(&b, "input[name=current_password]", PASSWORD).await;
    click(&b, "[data-test=change-password]").await;
    wait_text(&b, ".toast", "Password changed").await;
    // Only this browser's session is left.
    wait_count(&b, "[data-test=session-row]", 1).await;
    wait_count(&b, "[data-test=this-session]", 1).await;
    assert_eq!(elsewhere.get("/api/v1/me").await.unwrap().status, 401);

    // The new password signs in; the old one does not.
    click(&b, "[data-test=logout]").await;
    submit_login(&b, EMAIL, PASSWORD).await;
    wait_css(&b, "[data-test=error]").await;
    fill(&b, "input[name=password]", NEW).await;
    click(&b, "button[type=submit]").await;
    wait_text(&b, "[data-test=current-user]", EMAIL).await;
}
