//! Gateways: the devices behind one (with who is online, read again every few seconds) and, on a
//! sub-device, the gateway it speaks through.

use leptos::prelude::*;
use leptos_router::components::A;
use stead_api_types::DeviceListQuery;
use uuid::Uuid;

use crate::api;
use crate::session::use_session;
use crate::ui::{ErrorMessage, Loader, Spinner};

/// How often the list and its presence are read again.
const POLL_MS: u64 = 5_000;

/// The first page of the devices behind gateway `id`, each with whether it is online now.
#[component]
pub fn SubDevices(id: Uuid) -> impl IntoView {
    let session = use_session();
    let behind = Loader::new(move || {
        let all = DeviceListQuery {
            gateway: Some(id),
            sort: Some("name".into()),
            ..Default::default()
        };
        let online = DeviceListQuery {
            online: Some(true),
            ..all.clone()
        };
        async move {
            let all = api::list_devices(session, &all).await?;
            let online = api::list_devices(session, &online).await?;
            Ok((all, online))
        }
    });
    behind.poll(std::time::Duration::from_millis(POLL_MS), || true, || {});
    // Equal answers leave the table alone.
    let data = Memo::new(move |_| behind.data.get());

    view! {
        <section class="card" data-test="sub-devices">
            <div class="card-header">
                <h2>"Devices behind this gateway"</h2>
                {move || data.with(|d| d.as_ref().map(|(all, online)| {
                    let text = format!("{} · {} online", all.total, online.total);
                    view! { <span class="muted small" data-test="sub-device-counts">{text}</span> }
                }))}
            </div>
            <ErrorMessage error=behind.error_text()/>
            {move || match data.get() {
                None => view! { <Spinner label="Loading sub-devices…"/> }.into_any(),
                Some((all, _)) if all.items.is_empty() => view! {
                    <p class="muted" data-test="no-sub-devices">
                        "None yet. A device appears here when the gateway connects it ("
                        <code>"v1/gateway/connect"</code>
                        ") or sends data for it; it is created in this tenant on first sight."
                    </p>
                }.into_any(),
                Some((all, online)) => {
                    let more = all.total > all.items.len() as u64;
                    view! {
                        <table class="table table-compact">
                            <thead>
                                <tr><th>"Name"</th><th>"Type"</th><th>"Status"</th></tr>
                            </thead>
                            <tbody>
                                {all.items.into_iter().map(|d| {
                                    let up = online.items.iter().any(|o| o.id == d.id);
                                    view! {
                                        <tr data-test="sub-device">
                                            <td class="strong"><A href=format!("/devices/{}", d.id)>{d.name}</A></td>
                                            <td>{d.device_type.map(|t| view! { <span class="badge">{t}</span> }.into_any()).unwrap_or_else(|| "—".into_any())}</td>
                                            <td>
                                                {if up {
                                                    view! { <span class="badge badge-good" data-test="sub-device-online">"Online"</span> }.into_any()
                                                } else {
                                                    view! { <span class="badge" data-test="sub-device-offline">"Offline"</span> }.into_any()
                                                }}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                        <p class="section-gap">
                            <A href=format!("/devices?gateway={id}") attr:data-test="all-sub-devices">
                                {if more { "All of them in the device list →" } else { "Open in the device list →" }}
                            </A>
                        </p>
                    }.into_any()
                }
            }}
        </section>
    }
}

/// The gateway a sub-device speaks through, by name, as a link.
#[component]
pub fn GatewayLink(gateway: Uuid) -> impl IntoView {
    let session = use_session();
    let parent = Loader::new(move || api::get_device(session, gateway));
    view! {
        <A href=format!("/devices/{gateway}") attr:data-test="gateway-link">
            {move || parent.data.with(|p| p.as_ref().map(|p| p.name.clone())).unwrap_or_else(|| gateway.to_string())}
        </A>
    }
}
