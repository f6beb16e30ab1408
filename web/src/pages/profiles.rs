//! `/profiles`: device profiles, the settings a kind of device shares: how it may provision
//! itself (key and secret, the secret shown once), when it counts as inactive, and rate-limit
//! overrides. One profile is the tenant's default; a profile in use cannot be deleted. Each
//! profile's alarm rules open in a dialog of their own (`alarms::rules`).

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use stead_api_types::{
    CreateProfile, DeviceProfile, Permission, ProfileLimits, ProvisionStrategy, SavedProfile,
    UpdateProfile,
};

use super::alarms::ProfileAlarmRules;
use crate::api;
use crate::session::use_session;
use crate::shell::RequireTenant;
use crate::ui::{
    Action, ConfirmDialog, ErrorMessage, FormActions, HeaderButton, Loader, Modal, PageHeader,
    Secret, SecretReveal, Spinner, StatusBadge, TableHead, Tone, format_ms, non_empty, use_toasts,
};

const STRATEGIES: [ProvisionStrategy; 3] = [
    ProvisionStrategy::Disabled,
    ProvisionStrategy::AllowCreate,
    ProvisionStrategy::PreProvisioned,
];

fn strategy_value(s: ProvisionStrategy) -> &'static str {
    match s {
        ProvisionStrategy::Disabled => "disabled",
        ProvisionStrategy::AllowCreate => "allow_create",
        ProvisionStrategy::PreProvisioned => "pre_provisioned",
    }
}

fn strategy_label(s: ProvisionStrategy) -> &'static str {
    match s {
        ProvisionStrategy::Disabled => "No provisioning",
        ProvisionStrategy::AllowCreate => "Devices may create themselves",
        ProvisionStrategy::PreProvisioned => "Pre-provisioned devices only",
    }
}

fn strategy_parse(value: &str) -> ProvisionStrategy {
    STRATEGIES
        .into_iter()
        .find(|s| strategy_value(*s) == value)
        .unwrap_or_default()
}

/// 90 → "90 s", 600 → "10 min", 7200 → "2 h", 172800 → "2 d"; uneven values in the largest unit
/// that divides them.
pub fn format_secs(secs: u64) -> String {
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[component]
pub fn ProfilesPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <ProfileList/>
        </RequireTenant>
    }
}

/// What the profile dialog is open for.
#[derive(Clone, Debug, PartialEq)]
enum Editing {
    New,
    Existing(DeviceProfile),
}

#[component]
fn ProfileList() -> impl IntoView {
    crate::ui::set_title("Device profiles");
    let session = use_session();
    let toasts = use_toasts();
    let can_manage = Memo::new(move |_| session.can(Permission::ProfilesManage));
    let can_see_rules = Memo::new(move |_| session.can(Permission::AlarmsRead));
    let profiles = Loader::new(move || api::list_profiles(session));
    let rules_of = RwSignal::new(None::<DeviceProfile>);

    let editing = RwSignal::new(None::<Editing>);
    let revealed = RwSignal::new(None::<SavedProfile>);
    let deleting = RwSignal::new(None::<DeviceProfile>);
    let deletion = Action::new();
    let defaulting = RwSignal::new(None::<uuid::Uuid>);

    let make_default = move |p: DeviceProfile| {
        defaulting.set(Some(p.id));
        spawn_local(async move {
            let body = UpdateProfile {
                make_default: true,
                ..Default::default()
            };
            match api::update_profile(session, p.id, &body).await {
                Ok(_) => {
                    toasts.success(format!("New devices now get “{}”.", p.name));
                    profiles.reload();
                }
                Err(e) => toasts.error(e.detail),
            }
            defaulting.try_set(None);
        });
    };

    let confirm_delete = move |_| {
        let Some(p) = deleting.get_untracked() else {
            return;
        };
        // The server says why (the default profile, or devices still use it).
        deletion.run(api::delete_profile(session, p.id), move |()| {
            toasts.success(format!("Profile “{}” deleted.", p.name));
            deleting.try_set(None);
            profiles.reload();
        });
    };

    view! {
        <div class="page">
            <PageHeader title="Device profiles" intro="What devices of one kind share: provisioning, when they count as inactive, rate limits.">
                <HeaderButton when=can_manage label="+ New profile" test="new-profile" on_click=Callback::new(move |_| editing.set(Some(Editing::New)))/>
            </PageHeader>

            <ErrorMessage error=profiles.error_text()/>

            {move || match profiles.data.get() {
                None if profiles.loading.get() => view! { <div class="card"><Spinner label="Loading profiles…"/></div> }.into_any(),
                None => ().into_any(),
                Some(list) => view! {
                    <div class="card table-card" class:is-loading=move || profiles.loading.get()>
                        <table class="table">
                            <TableHead columns=&["Name", "Devices", "Provisioning", "Inactive after", "Rate limits"] actions=true/>
                            <tbody>
                                {list.into_iter().map(|p| {
                                    let (for_edit, for_default, for_delete, for_rules) = (p.clone(), p.clone(), p.clone(), p.clone());
                                    let pid = p.id;
                                    let is_default = p.is_default;
                                    let limits = [
                                        p.limits.device_messages.as_ref().map(|l| format!("messages {l}")),
                                        p.limits.device_data_points.as_ref().map(|l| format!("points {l}")),
                                    ].into_iter().flatten().collect::<Vec<_>>();
                                    view! {
                                        <tr data-test="profile-row">
                                            <td>
                                                <div class="strong">
                                                    {p.name.clone()}
                                                    {is_default.then(|| view! { <span class="badge badge-accent" data-test="default-profile">"Default"</span> })}
                                                </div>
                                                {p.description.clone().map(|d| view! { <div class="muted small">{d}</div> })}
                                            </td>
                                            <td>
                                                <A href=format!("/devices?profile={pid}") attr:class="count-link" attr:data-test="profile-devices">
                                                    {format!("{} {}", p.device_count, if p.device_count == 1 { "device" } else { "devices" })}
                                                </A>
                                            </td>
                                            <td>
                                                {match p.provision_strategy {
                                                    ProvisionStrategy::Disabled => view! { <StatusBadge tone=Tone::Neutral text="Off"/> }.into_any(),
                                                    ProvisionStrategy::AllowCreate => view! { <StatusBadge tone=Tone::Info text="Allow create"/> }.into_any(),
                                                    ProvisionStrategy::PreProvisioned => view! { <StatusBadge tone=Tone::Info text="Pre-provisioned"/> }.into_any(),
                                                }}
                                                {p.provision_key.clone().map(|k| view! { <div class="muted small">"Key " <code>{k}</code></div> })}
                                            </td>
                                            <td>{p.inactivity_timeout_secs.map(format_secs).unwrap_or_else(|| "—".into())}</td>
                                            <td class="small">
                                                {if limits.is_empty() {
                                                    view! { <span class="muted">"Tenant defaults"</span> }.into_any()
                                                } else {
                                                    limits.into_iter().map(|l| view! { <div><code>{l}</code></div> }).collect_view().into_any()
                                                }}
                                            </td>
                                            <td class="actions-col">
                                                <Show when=move || can_see_rules.get()>
                                                    {
                                                        let for_rules = for_rules.clone();
                                                        view! {
                                                            <button type="button" class="button button-ghost button-small" data-test="profile-alarm-rules"
                                                                on:click=move |_| rules_of.set(Some(for_rules.clone()))>
                                                                "Alarm rules"
                                                            </button>
                                                        }
                                                    }
                                                </Show>
                                                <Show when=move || can_manage.get()>
                                                    {
                                                        let (for_edit, for_default, for_delete) = (for_edit.clone(), for_default.clone(), for_delete.clone());
                                                        view! {
                                                            <button type="button" class="button button-ghost button-small" data-test="edit-profile"
                                                                on:click=move |_| editing.set(Some(Editing::Existing(for_edit.clone())))>
                                                                "Edit"
                                                            </button>
                                                            {(!is_default).then(|| view! {
                                                                <button type="button" class="button button-ghost button-small" data-test="make-default"
                                                                    disabled=move || defaulting.get() == Some(pid)
                                                                    on:click=move |_| make_default(for_default.clone())>
                                                                    "Make default"
                                                                </button>
                                                                <button type="button" class="button button-ghost button-small danger-text" data-test="delete-profile"
                                                                    on:click=move |_| {
                                                                        deletion.error.set(None);
                                                                        deleting.set(Some(for_delete.clone()));
                                                                    }>
                                                                    "Delete"
                                                                </button>
                                                            })}
                                                        }
                                                    }
                                                </Show>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            }}

            {move || editing.get().map(|e| view! {
                <ProfileForm
                    editing=e
                    on_close=Callback::new(move |_| editing.set(None))
                    on_saved=Callback::new(move |saved: SavedProfile| {
                        editing.set(None);
                        profiles.reload();
                        if saved.provision_secret.is_some() {
                            revealed.set(Some(saved));
                        }
                    })
                />
            })}

            {move || rules_of.get().map(|p| view! {
                <ProfileAlarmRules profile=p on_close=Callback::new(move |_| rules_of.set(None))/>
            })}

            {move || revealed.get().map(|saved| {
                let mut secrets = Vec::new();
                if let Some(key) = saved.profile.provision_key.clone() {
                    secrets.push(Secret { label: "Provisioning key", value: key, test: "provision-key", copy_test: "copy-provision-key" });
                }
                if let Some(secret) = saved.provision_secret.clone() {
                    secrets.push(Secret { label: "Provisioning secret", value: secret, test: "provision-secret", copy_test: "copy-provision-secret" });
                }
                view! {
                    <SecretReveal
                        title="Provisioning secret"
                        secrets=secrets
                        intro=format!("Devices of “{}” provision themselves with this key and secret.", saved.profile.name)
                        warning=("Store the secret now.", "It will not be shown again. If it is lost, generate a new one (the old pair stops working).")
                        close_label="I have stored the secret"
                        on_close=Callback::new(move |_| revealed.set(None))
                    />
                }
            })}

            {move || deleting.get().map(|p| view! {
                <ConfirmDialog
                    title="Delete profile"
                    message=format!("Delete the profile “{}”? Only a profile no device uses can be deleted.", p.name)
                    confirm_label="Delete profile"
                    busy=deletion.busy
                    error=deletion.error
                    on_confirm=Callback::new(confirm_delete)
                    on_cancel=Callback::new(move |_| deleting.set(None))
                />
            })}
        </div>
    }
}

/// Create or edit a profile.
#[component]
fn ProfileForm(
    editing: Editing,
    on_close: Callback<()>,
    on_saved: Callback<SavedProfile>,
) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let existing = match &editing {
        Editing::New => None,
        Editing::Existing(p) => Some(p.clone()),
    };
    let name = RwSignal::new(
        existing
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default(),
    );
    let description = RwSignal::new(
        existing
            .as_ref()
            .and_then(|p| p.description.clone())
            .unwrap_or_default(),
    );
    let strategy = RwSignal::new(
        existing
            .as_ref()
            .map(|p| p.provision_strategy)
            .unwrap_or_default(),
    );
    let timeout = RwSignal::new(
        existing
            .as_ref()
            .and_then(|p| p.inactivity_timeout_secs)
            .map(|s| s.to_string())
            .unwrap_or_default(),
    );
    let messages = RwSignal::new(
        existing
            .as_ref()
            .and_then(|p| p.limits.device_messages.clone())
            .unwrap_or_default(),
    );
    let points = RwSignal::new(
        existing
            .as_ref()
            .and_then(|p| p.limits.device_data_points.clone())
            .unwrap_or_default(),
    );
    let regenerate = RwSignal::new(false);
    let action = Action::new();
    let key = existing.as_ref().and_then(|p| p.provision_key.clone());
    let has_key = key.is_some();
    let id = existing.as_ref().map(|p| p.id);
    let title = if existing.is_some() {
        "Edit profile"
    } else {
        "New profile"
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(profile_name) = non_empty(&name.get_untracked()) else {
            action.refuse("Give the profile a name.");
            return;
        };
        let timeout_secs = match non_empty(&timeout.get_untracked()) {
            None => None,
            Some(t) => match t.parse::<u64>() {
                Ok(secs) if secs > 0 => Some(secs),
                _ => {
                    action.refuse(
                        "The inactivity timeout is a whole number of seconds, such as 600.",
                    );
                    return;
                }
            },
        };
        let limits = ProfileLimits {
            device_messages: non_empty(&messages.get_untracked()),
            device_data_points: non_empty(&points.get_untracked()),
        };
        let description_value = non_empty(&description.get_untracked());
        let fut = async move {
            match id {
                None => {
                    let body = CreateProfile {
                        name: profile_name,
                        description: description_value,
                        provision_strategy: Some(strategy.get_untracked()),
                        inactivity_timeout_secs: timeout_secs,
                        limits: Some(limits),
                    };
                    api::create_profile(session, &body).await
                }
                Some(id) => {
                    let body = UpdateProfile {
                        name: Some(profile_name),
                        description: Some(description_value),
                        provision_strategy: Some(strategy.get_untracked()),
                        regenerate_provision_secret: regenerate.get_untracked(),
                        inactivity_timeout_secs: Some(timeout_secs),
                        limits: Some(limits),
                        make_default: false,
                    };
                    api::update_profile(session, id, &body).await
                }
            }
        };
        action.run(fut, move |saved| {
            toasts.success(format!("Profile “{}” saved.", saved.profile.name));
            on_saved.run(saved);
        });
    };

    view! {
        <Modal title=title on_close=on_close wide=true>
            <form class="form" on:submit=submit novalidate=true>
                <div class="field-row">
                    <label class="field">
                        <span>"Name" <em class="required">"required"</em></span>
                        <input type="text" name="name" autocomplete="off" placeholder="Thermometers" bind:value=name/>
                    </label>
                    <label class="field">
                        <span>"Description"</span>
                        <input type="text" name="description" autocomplete="off" bind:value=description/>
                    </label>
                </div>
                <label class="field">
                    <span>"Provisioning"</span>
                    <select name="provision_strategy" on:change=move |ev| strategy.set(strategy_parse(&event_target_value(&ev)))>
                        {STRATEGIES.into_iter().map(|s| view! {
                            <option value=strategy_value(s) selected=move || strategy.get() == s>{strategy_label(s)}</option>
                        }).collect_view()}
                    </select>
                    <small class="hint">
                        "With provisioning, a device that knows the profile's key and secret gets its credentials by itself: a new device (allow create) or one created beforehand by name (pre-provisioned)."
                    </small>
                </label>
                {key.map(|k| view! {
                    <div class="field">
                        <span class="field-label">"Provisioning key"</span>
                        <code class="token-inline" data-test="profile-provision-key">{k}</code>
                    </div>
                })}
                <Show when=move || has_key && strategy.get() != ProvisionStrategy::Disabled>
                    <label class="checkbox">
                        <input type="checkbox" name="regenerate" prop:checked=move || regenerate.get() on:change=move |ev| regenerate.set(event_target_checked(&ev))/>
                        <span>"Generate a new key and secret (devices using the old pair can no longer provision)"</span>
                    </label>
                </Show>
                <label class="field">
                    <span>"Inactivity timeout " <em class="hint">"(seconds)"</em></span>
                    <input type="number" min="1" name="inactivity_timeout_secs" placeholder="None: only disconnects count" bind:value=timeout/>
                    <small class="hint">"A device silent for longer is shown offline, with the reason “inactive”."</small>
                </label>
                <fieldset class="fieldset">
                    <legend>"Rate limits " <em class="hint">"(empty: the tenant's)"</em></legend>
                    <div class="field-row">
                        <label class="field">
                            <span>"Messages"</span>
                            <input type="text" name="device_messages" class="mono" placeholder="200:1,6000:60" bind:value=messages/>
                        </label>
                        <label class="field">
                            <span>"Data points"</span>
                            <input type="text" name="device_data_points" class="mono" placeholder="2000:1,60000:60" bind:value=points/>
                        </label>
                    </div>
                    <small class="hint">"count:seconds, comma-separated: 200:1,6000:60 allows 200 a second and 6000 a minute."</small>
                </fieldset>
                {existing.as_ref().map(|p| view! {
                    <p class="hint">{format!("Created {}; updated {}.", format_ms(p.created_at), format_ms(p.updated_at))}</p>
                })}
                <ErrorMessage error=action.error/>
                <FormActions busy=action.busy on_cancel=on_close label="Save profile" busy_label="Saving…" test="save-profile"/>
            </form>
        </Modal>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_largest_even_unit() {
        assert_eq!(format_secs(45), "45 s");
        assert_eq!(format_secs(90), "90 s");
        assert_eq!(format_secs(600), "10 min");
        assert_eq!(format_secs(7200), "2 h");
        assert_eq!(format_secs(172_800), "2 d");
    }

    #[test]
    fn strategies_round_trip_through_their_form_values() {
        for s in STRATEGIES {
            assert_eq!(strategy_parse(strategy_value(s)), s);
        }
    }
}
