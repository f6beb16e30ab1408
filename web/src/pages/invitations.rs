//! `/invitations`: asking people to join the tenant, for holders of `users.manage`. An invitation
//! names the person's built-in role and role bindings; its e-mail carries a one-time link where
//! they choose their password. Pending ones can be re-sent (a new link) or revoked. Without a
//! mail server the link is shown once, to pass on by hand.

use leptos::prelude::*;
use leptos::task::spawn_local;
use stead_api_types::{
    CreateInvitation, Invitation, InvitationStatus, MailStatus, Permission, Role,
};

use crate::api;
use crate::pages::bindings::{
    BindingBadges, BindingRows, BindingsEditor, load_choices, new_bindings,
};
use crate::session::use_session;
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    ConfirmDialog, ErrorMessage, FormActions, HeaderButton, Loader, Modal, PageHeader, Pagination,
    Secret, SecretReveal, Spinner, StatusBadge, TableHead, Toasts, Tone, format_time,
    format_time_title, non_empty, use_toasts,
};

#[component]
pub fn InvitationsPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::UsersManage>
                <InvitationList/>
            </RequirePermission>
        </RequireTenant>
    }
}

/// How a status looks, what it reads, and its `data-status`.
fn status_look(status: InvitationStatus) -> (Tone, &'static str, &'static str) {
    match status {
        InvitationStatus::Pending => (Tone::Info, "Pending", "pending"),
        InvitationStatus::Accepted => (Tone::Good, "Accepted", "accepted"),
        InvitationStatus::Expired => (Tone::Warn, "Expired", "expired"),
        InvitationStatus::Revoked => (Tone::Neutral, "Revoked", "revoked"),
    }
}

fn mail_cell(invitation: &Invitation) -> impl IntoView + use<> {
    let (class, text) = match invitation.mail {
        MailStatus::Sent => ("status status-ok", "Sent"),
        MailStatus::Failed => ("status status-bad", "Not delivered"),
        MailStatus::NotConfigured => ("status status-off", "No mail server"),
    };
    let why = (invitation.mail == MailStatus::Failed)
        .then(|| invitation.mail_error.clone())
        .flatten();
    view! {
        <span class=class data-test="invitation-mail">{text}</span>
        {why.map(|w| view! { <div class="muted small" data-test="invitation-mail-error">{w}</div> })}
    }
}

/// Tells how the invitation's e-mail went; a link to pass on by hand goes to `reveal`.
fn announce(toasts: Toasts, reveal: RwSignal<Option<Invitation>>, invitation: Invitation) {
    match invitation.mail {
        _ if invitation.link.is_some() => reveal.set(Some(invitation)),
        MailStatus::Failed => toasts.error(format!(
            "The invitation to {} is saved, but its e-mail could not be sent: {}. Resend it later.",
            invitation.email,
            invitation
                .mail_error
                .as_deref()
                .unwrap_or("the mail server refused it")
        )),
        _ => toasts.success(format!("Invitation sent to {}.", invitation.email)),
    }
}

#[component]
fn InvitationList() -> impl IntoView {
    crate::ui::set_title("Invitations");
    let session = use_session();
    let toasts = use_toasts();
    let page = RwSignal::new(1u64);
    let invitations = Loader::new(move || {
        let page = page.get();
        async move { api::list_invitations(session, page).await }
    });
    let total =
        Signal::derive(move || invitations.data.with(|d| d.as_ref().map_or(0, |p| p.total)));
    let creating = RwSignal::new(false);
    let reveal = RwSignal::new(None::<Invitation>);
    let revoking = RwSignal::new(None::<Invitation>);
    let resending = RwSignal::new(None::<Invitation>);
    let busy = RwSignal::new(false);
    let intro = move || {
        session
            .me()
            .and_then(|m| m.tenant)
            .map(|t| format!("People you asked to join {}. Each gets an e-mail with a link to choose their password; the link works once.", t.name))
            .unwrap_or_default()
    };

    view! {
        <div class="page">
            <PageHeader title="Invitations" intro=intro()>
                <HeaderButton when=Signal::derive(|| true) label="+ Invite" test="new-invitation" on_click=Callback::new(move |_| creating.set(true))/>
            </PageHeader>
            <ErrorMessage error=invitations.error_text()/>
            {move || match invitations.data.get() {
                None if invitations.loading.get() => view! { <div class="card"><Spinner label="Loading invitations…"/></div> }.into_any(),
                None => ().into_any(),
                Some(p) if p.items.is_empty() && p.page == 1 => view! {
                    <section class="card empty-state" data-test="no-invitations">
                        <h2>"No invitations yet"</h2>
                        <p class="muted">"Invite people by e-mail: they choose their own password, and get the access you pick."</p>
                    </section>
                }.into_any(),
                Some(p) => view! {
                    <section class="card table-card" class:is-loading=move || invitations.loading.get()>
                        <div class="table-scroll">
                        <table class="table">
                            <TableHead columns=&["Person", "Access", "Status", "Mail", "Expires"] actions=true/>
                            <tbody>
                                {p.items.into_iter().map(|i| {
                                    let open = matches!(i.status, InvitationStatus::Pending | InvitationStatus::Expired);
                                    let pending = i.status == InvitationStatus::Pending;
                                    let (for_resend, for_revoke) = (i.clone(), i.clone());
                                    let (tone, status_text, status_key) = status_look(i.status);
                                    view! {
                                        <tr data-test="invitation-row" data-status=status_key class:inactive=!open>
                                            <td class="strong">
                                                {i.email.clone()}
                                                {(!i.name.trim().is_empty()).then(|| view! { <div class="muted small">{i.name.clone()}</div> })}
                                                <div class="muted small" data-test="invited-by">{format!("invited by {}", i.invited_by_email)}</div>
                                            </td>
                                            <td>
                                                <span class="badge-list">
                                                    <span class="badge" data-test="invitation-role">{i.role.label()}</span>
                                                    <BindingBadges bindings=i.bindings.clone()/>
                                                </span>
                                            </td>
                                            <td><StatusBadge tone=tone text=status_text status=status_key/></td>
                                            <td>{mail_cell(&i)}</td>
                                            <td>
                                                {match (i.status, i.accepted_at) {
                                                    (InvitationStatus::Accepted, Some(t)) => view! {
                                                        <span class="muted" title=format_time_title(&t)>{format!("Accepted {}", format_time(&t))}</span>
                                                    }.into_any(),
                                                    _ => view! { <span title=format_time_title(&i.expires_at)>{format_time(&i.expires_at)}</span> }.into_any(),
                                                }}
                                            </td>
                                            <td class="actions-col">
                                                {open.then(|| view! {
                                                    <button type="button" class="button button-ghost button-small" data-test="resend-invitation"
                                                        on:click=move |_| resending.set(Some(for_resend.clone()))>"Resend"</button>
                                                })}
                                                {pending.then(|| view! {
                                                    <button type="button" class="button button-ghost button-small danger-text" data-test="revoke-invitation"
                                                        on:click=move |_| revoking.set(Some(for_revoke.clone()))>"Revoke"</button>
                                                })}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                        </div>
                        <Pagination page=page total=total per_page=api::PER_PAGE noun="invitations"/>
                    </section>
                }.into_any(),
            }}

            <Show when=move || creating.get()>
                <InviteModal
                    on_close=Callback::new(move |_| creating.set(false))
                    on_created=Callback::new(move |invitation: Invitation| {
                        creating.set(false);
                        invitations.reload();
                        announce(toasts, reveal, invitation);
                    })
                />
            </Show>

            {move || reveal.get().and_then(|i| {
                let link = i.link.clone()?;
                Some(view! {
                    <SecretReveal
                        title="Invitation link"
                        secrets=vec![Secret { label: "Invitation link", value: link, test: "invitation-link", copy_test: "copy-invitation-link" }]
                        intro=format!("No mail server is configured: send this link yourself to {}.", i.email)
                        warning=("It is shown only now.", "Stead keeps only a hash of it. If it is lost, resend the invitation for a new link.")
                        close_label="Done"
                        on_close=Callback::new(move |_| reveal.set(None))
                    />
                })
            })}

            {move || resending.get().map(|i| {
                let invitation = i.clone();
                view! {
                    <ConfirmDialog
                        title="Resend invitation"
                        message=format!("Send {} a new link? The link sent before stops working.", i.email)
                        confirm_label="Resend"
                        danger=false
                        busy=busy
                        on_confirm=Callback::new(move |_| {
                            busy.set(true);
                            let id = invitation.id;
                            spawn_local(async move {
                                match api::resend_invitation(session, id).await {
                                    Ok(sent) => {
                                        invitations.reload();
                                        announce(toasts, reveal, sent);
                                    }
                                    Err(e) => toasts.error(e.detail),
                                }
                                busy.try_set(false);
                                resending.try_set(None);
                            });
                        })
                        on_cancel=Callback::new(move |_| resending.set(None))
                    />
                }
            })}

            {move || revoking.get().map(|i| {
                let invitation = i.clone();
                view! {
                    <ConfirmDialog
                        title="Revoke invitation"
                        message=format!("Revoke the invitation of {}? Its link stops working.", i.email)
                        confirm_label="Revoke"
                        busy=busy
                        on_confirm=Callback::new(move |_| {
                            busy.set(true);
                            let invitation = invitation.clone();
                            spawn_local(async move {
                                match api::revoke_invitation(session, invitation.id).await {
                                    Ok(()) => {
                                        toasts.success(format!("The invitation of {} is revoked.", invitation.email));
                                        invitations.reload();
                                    }
                                    Err(e) => toasts.error(e.detail),
                                }
                                busy.try_set(false);
                                revoking.try_set(None);
                            });
                        })
                        on_cancel=Callback::new(move |_| revoking.set(None))
                    />
                }
            })}
        </div>
    }
}

#[component]
fn InviteModal(on_close: Callback<()>, on_created: Callback<Invitation>) -> impl IntoView {
    let session = use_session();
    // Bindings need roles.manage over the whole tenant, as on the Users page.
    let can_bind = Memo::new(move |_| session.can_tenant_wide(Permission::RolesManage));
    let email = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Viewer);
    let rows: BindingRows = RwSignal::new(Vec::new());
    let choices = Loader::new(move || async move {
        if can_bind.get() {
            load_choices(session).await.map(Some)
        } else {
            Ok(None)
        }
    });
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let Some(email_value) = non_empty(&email.get_untracked()) else {
            error.set(Some("Enter the person's e-mail address.".into()));
            return;
        };
        let body = CreateInvitation {
            email: email_value,
            name: non_empty(&name.get_untracked()),
            role: role.get_untracked(),
            bindings: new_bindings(rows),
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::create_invitation(session, &body).await {
                Ok(invitation) => on_created.run(invitation),
                Err(e) => {
                    error.try_set(Some(e.detail));
                    busy.try_set(false);
                }
            }
        });
    };

    view! {
        <Modal title="Invite someone" on_close=on_close wide=true>
            <form class="form" on:submit=submit novalidate=true>
                <label class="field">
                    <span>"E-mail" <em class="required">"required"</em></span>
                    <input type="email" name="email" autocomplete="off" autofocus=true bind:value=email/>
                </label>
                <label class="field">
                    <span>"Name"</span>
                    <input type="text" name="name" autocomplete="off" bind:value=name/>
                    <small class="hint">"They can change it when they accept."</small>
                </label>
                <label class="field">
                    <span>"Built-in role"</span>
                    <select name="role" on:change=move |ev| {
                        if let Some(r) = Role::parse(&event_target_value(&ev)) {
                            role.set(r);
                        }
                    }>
                        {Role::TENANT.iter().map(|r| view! {
                            <option value=r.as_str() selected=move || role.get() == *r>{r.label()}</option>
                        }).collect_view()}
                    </select>
                    <small class="hint">"Member: nothing over the whole tenant, only what the roles below give."</small>
                </label>
                <Show when=move || can_bind.get()>
                    <fieldset class="fieldset">
                        <legend>"More roles"</legend>
                        <ErrorMessage error=choices.error_text()/>
                        {move || choices.data.get().flatten().map(|(roles, groups)| view! {
                            <BindingsEditor rows=rows roles=roles groups=groups/>
                        })}
                    </fieldset>
                </Show>
                <ErrorMessage error=error/>
                <FormActions busy=busy on_cancel=on_close label="Send invitation" busy_label="Sending…" test="send-invitation"/>
            </form>
        </Modal>
    }
}
