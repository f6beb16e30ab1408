//! `/firmware/campaigns` (for `ota.read`): the tenant's OTA campaigns, newest first, with their
//! package, status and how far each has got (devices succeeded, failed and in flight out of its
//! target), read again every few seconds while one is under way; "New campaign" for
//! `ota.manage`. Also what the campaign pages share: the status words and badge, the tally of
//! devices per outcome and its bar, and the Packages / Campaigns tabs of the firmware pages.

use std::collections::BTreeMap;
use std::time::Duration;

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_location, use_navigate};
use stead_api_types::{Campaign, CampaignStatus, OtaState, Permission};

use crate::api;
use crate::session::use_session;
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    ErrorMessage, HeaderButton, Loader, PageHeader, Pagination, Spinner, StatusBadge, TableHead,
    Tone, format_time, format_time_title,
};

/// How often the list is read again while a campaign runs.
const LIST_POLL: Duration = Duration::from_secs(3);

pub fn status_label(status: CampaignStatus) -> &'static str {
    match status {
        CampaignStatus::Draft => "Draft",
        CampaignStatus::Running => "Running",
        CampaignStatus::Paused => "Paused",
        CampaignStatus::Completed => "Completed",
        CampaignStatus::Aborted => "Aborted",
        CampaignStatus::Canceled => "Canceled",
    }
}

fn status_tone(status: CampaignStatus) -> Tone {
    match status {
        CampaignStatus::Draft | CampaignStatus::Canceled => Tone::Neutral,
        CampaignStatus::Running => Tone::Info,
        CampaignStatus::Paused => Tone::Warn,
        CampaignStatus::Completed => Tone::Good,
        CampaignStatus::Aborted => Tone::Bad,
    }
}

/// The campaign's status as a badge: `data-test=campaign-status` with `data-status`.
#[component]
pub fn CampaignStatusBadge(status: CampaignStatus) -> impl IntoView {
    view! {
        <span data-test="campaign-status" data-status=status.as_str()>
            <StatusBadge tone=status_tone(status) text=status_label(status) status=status.as_str()/>
        </span>
    }
}

/// Where a device's update stands, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Succeeded, or already running the package.
    pub succeeded: u64,
    /// Failed, timed out or rolled back.
    pub failed: u64,
    /// Notified, and not yet through (the health watch included).
    pub in_flight: u64,
    pub queued: u64,
    pub canceled: u64,
    pub total: u64,
}

impl Tally {
    pub fn of(counts: &BTreeMap<OtaState, u64>) -> Tally {
        let mut t = Tally::default();
        for (state, n) in counts {
            let slot = match state {
                OtaState::Succeeded | OtaState::Skipped => &mut t.succeeded,
                OtaState::Failed | OtaState::TimedOut | OtaState::RolledBack => &mut t.failed,
                OtaState::Queued => &mut t.queued,
                OtaState::Canceled => &mut t.canceled,
                _ => &mut t.in_flight,
            };
            *slot += n;
            t.total += n;
        }
        t
    }

    /// "3 succeeded · 1 failed · 2 in flight of 10".
    pub fn words(&self) -> String {
        if self.total == 0 {
            return "No devices yet".to_owned();
        }
        let mut parts = vec![format!("{} succeeded", self.succeeded)];
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        if self.in_flight > 0 {
            parts.push(format!("{} in flight", self.in_flight));
        }
        if self.canceled > 0 {
            parts.push(format!("{} canceled", self.canceled));
        }
        format!("{} of {}", parts.join(" · "), self.total)
    }
}

/// The share of `n` in `total`, in percent, for a bar's width.
fn share(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}

/// A bar of the campaign's devices: succeeded, failed and in flight side by side, the rest
/// (queued, canceled) left empty; the words below it.
#[component]
pub fn TallyBar(#[prop(into)] tally: Signal<Tally>) -> impl IntoView {
    let part = move |class: &'static str, test: &'static str, of: fn(&Tally) -> u64| {
        view! {
            <span class=class data-test=test
                data-count=move || of(&tally.get()).to_string()
                style=move || { let t = tally.get(); format!("width: {}%", share(of(&t), t.total)) }></span>
        }
    };
    view! {
        <div class="campaign-bar" data-test="campaign-progress"
            data-succeeded=move || tally.get().succeeded.to_string()
            data-failed=move || tally.get().failed.to_string()
            data-total=move || tally.get().total.to_string()>
            <div class="campaign-bar-track" role="img" aria-label=move || tally.get().words()>
                {part("campaign-bar-good", "bar-succeeded", |t| t.succeeded)}
                {part("campaign-bar-bad", "bar-failed", |t| t.failed)}
                {part("campaign-bar-busy", "bar-in-flight", |t| t.in_flight)}
            </div>
            <span class="muted small" data-test="campaign-progress-text">{move || tally.get().words()}</span>
        </div>
    }
}

/// The firmware pages' tabs: the package library and the campaigns.
#[component]
pub fn FirmwareTabs() -> impl IntoView {
    let location = use_location();
    let on_campaigns = move || location.pathname.get().starts_with("/firmware/campaigns");
    view! {
        <nav class="tabs firmware-tabs" aria-label="Firmware">
            <A href="/firmware" exact=true attr:class=move || if on_campaigns() { "tab" } else { "tab tab-active" }
                attr:data-test="firmware-tab-packages">"Packages"</A>
            <A href="/firmware/campaigns" attr:class=move || if on_campaigns() { "tab tab-active" } else { "tab" }
                attr:data-test="firmware-tab-campaigns">"Campaigns"</A>
        </nav>
    }
}

#[component]
pub fn CampaignsPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::OtaRead>
                <CampaignList/>
            </RequirePermission>
        </RequireTenant>
    }
}

#[component]
fn CampaignList() -> impl IntoView {
    crate::ui::set_title("Campaigns");
    let session = use_session();
    let navigate = use_navigate();
    let can_manage = Memo::new(move |_| session.can(Permission::OtaManage));
    let status = RwSignal::new(None::<CampaignStatus>);
    let page = RwSignal::new(1u64);
    let campaigns = Loader::new(move || {
        let (status, page) = (status.get(), page.get());
        async move { api::list_campaigns(session, status, page).await }
    });
    let under_way = move || {
        campaigns.data.with_untracked(|p| {
            p.as_ref().is_some_and(|p| {
                p.items
                    .iter()
                    .any(|c| matches!(c.status, CampaignStatus::Running))
            })
        })
    };
    campaigns.poll(LIST_POLL, under_way, || {});
    let total = Signal::derive(move || campaigns.data.with(|p| p.as_ref().map_or(0, |p| p.total)));
    let new_campaign =
        Callback::new(move |_| navigate("/firmware/campaigns/new", Default::default()));

    let row = move |c: Campaign| {
        let tally = Tally::of(&c.counts);
        let href = format!("/firmware/campaigns/{}", c.id);
        let name = c.spec.name.clone();
        view! {
            <tr data-test="campaign-row" data-id=c.id.to_string() data-name=c.spec.name.clone() data-status=c.status.as_str()>
                <td>
                    <A href=href attr:class="strong" attr:data-test="campaign-link">{name}</A>
                    {c.reason.clone().map(|r| view! { <div class="muted small" data-test="campaign-row-reason">{r}</div> })}
                </td>
                <td data-test="campaign-package">
                    <span class="nowrap">{c.title.clone()}</span>
                    " "
                    <code class="nowrap">{c.version.clone()}</code>
                </td>
                <td><CampaignStatusBadge status=c.status/></td>
                <td class="campaign-progress-col"><TallyBar tally=Signal::derive(move || tally)/></td>
                <td class="nowrap" title=format_time_title(&c.created_at)>{format_time(&c.created_at)}</td>
            </tr>
        }
    };

    let filters = [
        (None, "All", "all"),
        (Some(CampaignStatus::Draft), "Drafts", "draft"),
        (Some(CampaignStatus::Running), "Running", "running"),
        (Some(CampaignStatus::Paused), "Paused", "paused"),
        (Some(CampaignStatus::Completed), "Completed", "completed"),
        (Some(CampaignStatus::Aborted), "Aborted", "aborted"),
        (Some(CampaignStatus::Canceled), "Canceled", "canceled"),
    ];

    view! {
        <div class="page" data-test="campaigns-page">
            <PageHeader title="Campaigns" intro="A package rolled out to many devices a few at a time, behind a success gate, with a health watch after each update and an auto-stop that pauses or aborts when too many fail.">
                <HeaderButton when=can_manage label="+ New campaign" test="new-campaign" on_click=new_campaign/>
            </PageHeader>
            <FirmwareTabs/>

            <section class="card table-card" aria-labelledby="campaigns-title">
                <div class="card-header card-header-padded">
                    <h2 id="campaigns-title">"Campaigns"</h2>
                    <div class="card-tools">
                        <div class="segmented" role="group" aria-label="Status">
                            {filters.into_iter().map(|(s, label, test)| view! {
                                <button type="button" class="segment" data-test=format!("campaigns-{test}")
                                    class:segment-active=move || status.get() == s
                                    on:click=move |_| { status.set(s); page.set(1); }>
                                    {label}
                                </button>
                            }).collect_view()}
                        </div>
                    </div>
                </div>
                <ErrorMessage error=campaigns.error_text()/>
                {move || match campaigns.data.get() {
                    None if campaigns.loading.get() => view! { <Spinner label="Loading campaigns…"/> }.into_any(),
                    None => ().into_any(),
                    Some(p) if p.items.is_empty() => view! {
                        <div class="empty-inline empty-padded" data-test="no-campaigns">
                            <p class="strong">
                                {if status.get().is_some() { "No campaigns with this status" } else { "No campaigns yet" }}
                            </p>
                            <p class="muted">
                                {if can_manage.get() {
                                    "Make one to update a group or a profile's devices to a package: it waits as a draft until someone who may approve updates starts it."
                                } else {
                                    "Campaigns that roll a package out to many devices are listed here."
                                }}
                            </p>
                            <Show when=move || can_manage.get()>
                                <button type="button" class="button button-primary" data-test="empty-new-campaign"
                                    on:click=move |_| new_campaign.run(())>"New campaign"</button>
                            </Show>
                        </div>
                    }.into_any(),
                    Some(p) => view! {
                        <div class="table-scroll">
                            <table class="table">
                                <TableHead columns=&["Campaign", "Package", "Status", "Progress", "Created"]/>
                                <tbody>{p.items.into_iter().map(row).collect_view()}</tbody>
                            </table>
                        </div>
                    }.into_any(),
                }}
                <Show when=move || { total.get() > api::PER_PAGE }>
                    <Pagination page=page total=total per_page=api::PER_PAGE noun="campaigns"/>
                </Show>
            </section>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_sorts_states_by_outcome() {
        let counts = BTreeMap::from([
            (OtaState::Succeeded, 3),
            (OtaState::Skipped, 1),
            (OtaState::Failed, 1),
            (OtaState::TimedOut, 1),
            (OtaState::Downloading, 2),
            (OtaState::VerifyingHealth, 1),
            (OtaState::Queued, 1),
        ]);
        let t = Tally::of(&counts);
        assert_eq!(
            (t.succeeded, t.failed, t.in_flight, t.queued, t.total),
            (4, 2, 3, 1, 10)
        );
        assert_eq!(t.words(), "4 succeeded · 2 failed · 3 in flight of 10");
        assert_eq!(Tally::default().words(), "No devices yet");
    }
}
