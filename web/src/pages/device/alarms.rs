//! The device's Alarms tab: its active alarms counted by severity, and its alarms (all, or the
//! active ones), newest first, with the row buttons; read again every few seconds.

use leptos::prelude::*;
use stead_api_types::{AlarmQuery, AlarmStatusFilter};
use uuid::Uuid;

use crate::api;
use crate::pages::alarms::{AlarmTable, AlarmsChanged, POLL, SeverityCounts};
use crate::session::use_session;
use crate::ui::{ErrorMessage, Loader, Pagination, Spinner};

#[component]
pub fn AlarmsTab(id: Uuid) -> impl IntoView {
    let session = use_session();
    let changed = AlarmsChanged::get();
    let only_active = RwSignal::new(false);
    let page = RwSignal::new(1u64);
    let alarms = Loader::new(move || {
        changed.track();
        let q = AlarmQuery {
            page: Some(page.get()),
            device: Some(id),
            status: only_active.get().then_some(AlarmStatusFilter::Active),
            ..Default::default()
        };
        async move { api::list_alarms(session, &q).await }
    });
    alarms.poll(POLL, || true, || {});
    let counts = Loader::new(move || {
        changed.track();
        api::alarm_counts(session, Some(id))
    });
    counts.poll(POLL, || true, || {});
    let data = Memo::new(move |_| alarms.data.get());
    let count_data = Memo::new(move |_| counts.data.get());
    let items = Signal::derive(move || {
        data.with(|d| d.as_ref().map(|p| p.items.clone()).unwrap_or_default())
    });
    let total = Signal::derive(move || data.with(|d| d.as_ref().map_or(0, |p| p.total)));
    let shown = Memo::new(move |_| data.with(|d| d.as_ref().map(|p| !p.items.is_empty())));
    let choose = move |active: bool| {
        only_active.set(active);
        page.set(1);
    };

    view! {
        <div class="stack" data-test="device-alarms">
            <SeverityCounts counts=count_data/>
            <section class="card table-card" aria-labelledby="device-alarms-title">
                <div class="card-header card-header-padded">
                    <h2 id="device-alarms-title">"Alarms"</h2>
                    <div class="card-tools">
                        <div class="segmented" role="group" aria-label="Status">
                            <button type="button" class="segment" data-test="device-alarms-all"
                                class:segment-active=move || !only_active.get() on:click=move |_| choose(false)>
                                "All"
                            </button>
                            <button type="button" class="segment" data-test="device-alarms-active"
                                class:segment-active=move || only_active.get() on:click=move |_| choose(true)>
                                "Active"
                            </button>
                        </div>
                    </div>
                </div>
                <ErrorMessage error=alarms.error_text()/>
                {move || match shown.get() {
                    None if alarms.loading.get() => view! { <Spinner label="Loading alarms…"/> }.into_any(),
                    None => ().into_any(),
                    Some(false) => view! {
                        <div class="empty-inline empty-padded" data-test="no-device-alarms">
                            {if only_active.get() {
                                view! { <p class="muted">"No active alarm: all quiet on this device."</p> }.into_any()
                            } else {
                                view! {
                                    <p class="strong">"No alarms yet"</p>
                                    <p class="muted">"When a rule of this device or of its profile raises an alarm, it shows here."</p>
                                }.into_any()
                            }}
                        </div>
                    }.into_any(),
                    Some(true) => view! {
                        <AlarmTable alarms=items/>
                        <Pagination page=page total=total per_page=api::PER_PAGE noun="alarms"/>
                    }.into_any(),
                }}
            </section>
        </div>
    }
}
