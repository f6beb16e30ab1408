//! `/firmware` (for `ota.read`): the tenant's package library for over-the-air updates. The
//! packages with their size, checksums (SHA-256 copyable, every algorithm in a dialog) and
//! signature, downloaded or deleted (`ota.manage`; the server refuses a package some device
//! still has as its target, and the dialog says so); a chart of what the fleet runs, per title
//! and version, from what devices report; `upload.rs` the upload dialog with its progress,
//! `keys.rs` the signing keys. A device's own updates are its page's Firmware tab. Campaigns
//! (a package rolled out to many devices) have their own tab: `campaigns.rs` the list,
//! `wizard.rs` the form that makes one, `campaign.rs` one campaign followed as it runs.

mod campaign;
mod campaigns;
mod keys;
mod upload;
mod wizard;

pub use self::campaign::CampaignPage;
pub use self::campaigns::CampaignsPage;
pub use self::wizard::NewCampaignPage;

use std::time::Duration;

use leptos::prelude::*;
use stead_api_types::{DeviceProfile, Package, PackageKind, Permission};
use uuid::Uuid;

use self::campaigns::FirmwareTabs;
use self::keys::SigningKeys;
use self::upload::UploadDialog;
use crate::api;
use crate::chart::{Bar, BarChart};
use crate::session::use_session;
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    Action, ConfirmDialog, CopyBox, ErrorMessage, HeaderButton, Loader, Modal, PageHeader, Spinner,
    StatusBadge, TableHead, Tone, copy_text, format_bytes, format_time, format_time_title,
    save_blob, use_toasts,
};

/// How often the version chart is read again: devices report as they update.
const VERSIONS_POLL: Duration = Duration::from_secs(5);

/// "Firmware" or "Software".
pub fn kind_label(kind: PackageKind) -> &'static str {
    match kind {
        PackageKind::Firmware => "Firmware",
        PackageKind::Software => "Software",
    }
}

#[component]
pub fn FirmwarePage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::OtaRead>
                <Library/>
            </RequirePermission>
        </RequireTenant>
    }
}

#[component]
fn Library() -> impl IntoView {
    crate::ui::set_title("Firmware");
    let session = use_session();
    let toasts = use_toasts();
    let can_manage = Memo::new(move |_| session.can(Permission::OtaManage));
    let kind = RwSignal::new(None::<PackageKind>);
    let packages = Loader::new(move || {
        let kind = kind.get();
        async move { api::list_packages(session, kind).await }
    });
    let keys = Loader::new(move || api::signing_keys(session));
    let profiles = Loader::new(move || api::list_profiles(session));
    let versions_changed = RwSignal::new(0u64);
    let uploading = RwSignal::new(false);
    let deleting = RwSignal::new(None::<Package>);
    let checksums = RwSignal::new(None::<Package>);
    let delete = Action::new();
    let download = Action::new().toast_errors(toasts);

    let key_name = move |id: Uuid| {
        keys.data.with(|k| {
            k.as_ref()?
                .iter()
                .find(|k| k.id == id)
                .map(|k| k.name.clone())
        })
    };
    let profile_name = move |id: Uuid| {
        profiles.data.with(|p| {
            p.as_ref()?
                .iter()
                .find(|p| p.id == id)
                .map(|p| p.name.clone())
        })
    };
    let save = move |p: Package| {
        let name = format!("{}-{}.bin", p.title, p.version);
        download.run(api::package_image(session, p.id), move |blob| {
            if let Err(e) = save_blob(&blob, &name) {
                toasts.error(e.detail);
            }
        });
    };

    let row = move |p: Package| {
        let sha256 = p
            .checksums
            .get(&stead_api_types::ChecksumAlgorithm::Sha256)
            .cloned()
            .unwrap_or_default();
        let signed = p.signing_key_id.map(|k| {
            let name = key_name(k).unwrap_or_else(|| "a removed key".into());
            view! {
                <span title=format!("Signature checked with {name} on upload")>
                    <StatusBadge tone=Tone::Good text="Signed" status="signed"/>
                </span>
            }
        });
        let profile = p.profile_id.map(|id| {
            let name = profile_name(id).unwrap_or_else(|| "a profile".into());
            view! { <div class="muted small" data-test="package-profile">{format!("Only for {name}")}</div> }
        });
        let (for_checksums, for_download, for_delete) = (p.clone(), p.clone(), p.clone());
        view! {
            <tr data-test="package-row" data-id=p.id.to_string() data-title=p.title.clone() data-version=p.version.clone()>
                <td>
                    <span class="strong nowrap" data-test="package-title">{p.title.clone()}</span>
                    <div class="package-badges">
                        <span class="badge" data-test="package-kind">{kind_label(p.kind)}</span>
                        <span data-test="package-signed">
                            {signed.map_or_else(|| view! { <span class="muted small">"Unsigned"</span> }.into_any(), IntoAny::into_any)}
                        </span>
                    </div>
                    {(!p.description.is_empty()).then(|| view! { <div class="muted small">{p.description.clone()}</div> })}
                    {profile}
                </td>
                <td><code class="nowrap" data-test="package-version">{p.version.clone()}</code></td>
                <td class="nowrap" data-test="package-size" title=format!("{} bytes", p.size)>{format_bytes(p.size)}</td>
                <td><HashCell id=p.id value=sha256/></td>
                <td title=format_time_title(&p.created_at)>{format_time(&p.created_at)}</td>
                <td class="actions-col nowrap">
                    <button type="button" class="button button-ghost button-small" data-test="show-checksums"
                        on:click=move |_| checksums.set(Some(for_checksums.clone()))>"Checksums"</button>
                    <button type="button" class="button button-ghost button-small" data-test="download-package"
                        disabled=move || download.busy.get()
                        on:click=move |_| save(for_download.clone())>"Download"</button>
                    <Show when=move || can_manage.get()>
                        {
                            let p = for_delete.clone();
                            view! {
                                <button type="button" class="button button-ghost button-small danger-text" data-test="delete-package"
                                    on:click=move |_| {
                                        delete.error.set(None);
                                        deleting.set(Some(p.clone()));
                                    }>"Delete"</button>
                            }
                        }
                    </Show>
                </td>
            </tr>
        }
    };

    view! {
        <div class="page" data-test="firmware-page">
            <PageHeader title="Firmware" intro="Packages your devices update to over the air, what the fleet runs, and the keys that sign packages. A device is given its target on its page's Firmware tab.">
                <HeaderButton when=can_manage label="+ Upload package" test="upload-package" on_click=Callback::new(move |_| uploading.set(true))/>
            </PageHeader>
            <FirmwareTabs/>

            <VersionChart changed=versions_changed/>

            <section class="card table-card" aria-labelledby="packages-title">
                <div class="card-header card-header-padded">
                    <h2 id="packages-title">"Packages"</h2>
                    <div class="card-tools">
                        <div class="segmented" role="group" aria-label="Kind">
                            {[(None, "All", "all"), (Some(PackageKind::Firmware), "Firmware", "firmware"), (Some(PackageKind::Software), "Software", "software")]
                                .into_iter()
                                .map(|(k, label, test)| view! {
                                    <button type="button" class="segment" data-test=format!("packages-{test}")
                                        class:segment-active=move || kind.get() == k on:click=move |_| kind.set(k)>
                                        {label}
                                    </button>
                                })
                                .collect_view()}
                        </div>
                    </div>
                </div>
                <ErrorMessage error=packages.error_text()/>
                {move || match packages.data.get() {
                    None if packages.loading.get() => view! { <Spinner label="Loading packages…"/> }.into_any(),
                    None => ().into_any(),
                    Some(list) if list.is_empty() => view! {
                        <div class="empty-inline empty-padded" data-test="no-packages">
                            <p class="strong">"No packages yet"</p>
                            <p class="muted">
                                {if can_manage.get() {
                                    "Upload a firmware or software image: Stead computes the checksums devices verify, and devices download it in chunks once it is their target."
                                } else {
                                    "Once someone uploads a firmware or software image, it is listed here."
                                }}
                            </p>
                        </div>
                    }.into_any(),
                    Some(list) => view! {
                        <div class="table-scroll">
                            <table class="table">
                                <TableHead columns=&["Package", "Version", "Size", "SHA-256", "Uploaded"] actions=true/>
                                <tbody>{list.into_iter().map(row).collect_view()}</tbody>
                            </table>
                        </div>
                    }.into_any(),
                }}
            </section>

            <SigningKeys keys=keys/>

            <Show when=move || uploading.get()>
                <UploadDialog
                    profiles=Signal::derive(move || profiles.data.get().unwrap_or_default())
                    keys=Signal::derive(move || keys.data.get().unwrap_or_default())
                    on_close=Callback::new(move |_| uploading.set(false))
                    on_uploaded=Callback::new(move |p: Package| {
                        uploading.set(false);
                        toasts.success(format!("{} {} is uploaded.", p.title, p.version));
                        packages.reload();
                    })
                />
            </Show>

            {move || checksums.get().map(|p| view! { <ChecksumsDialog package=p on_close=Callback::new(move |_| checksums.set(None))/> })}

            {move || deleting.get().map(|p| {
                let id = p.id;
                let what = format!("{} {}", p.title, p.version);
                let done = what.clone();
                view! {
                    <ConfirmDialog
                        title="Delete package"
                        message=format!("Delete {what}? Its image is removed from storage too (unless another package has the same bytes). Devices already running it keep running it. This cannot be undone.")
                        confirm_label="Delete package"
                        busy=delete.busy
                        error=delete.error
                        on_confirm=Callback::new(move |_| {
                            let done = done.clone();
                            delete.run(api::delete_package(session, id), move |()| {
                                toasts.success(format!("{done} is deleted."));
                                deleting.set(None);
                                packages.reload();
                                versions_changed.update(|n| *n += 1);
                            });
                        })
                        on_cancel=Callback::new(move |_| deleting.set(None))
                    />
                }
            })}
        </div>
    }
}

/// A SHA-256 in a table cell: cut to the cell's width (the whole of it in the tooltip, and in
/// the element for the copy fallback), with a copy button.
#[component]
fn HashCell(id: Uuid, value: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    let element_id = format!("sha256-{id}");
    let (text, element) = (value.clone(), element_id.clone());
    let copy = move |_| {
        let (text, element) = (text.clone(), element.clone());
        leptos::task::spawn_local(async move {
            let ok = copy_text(&text, &element).await;
            copied.try_set(ok);
        });
    };
    view! {
        <span class="hash-cell">
            <code id=element_id class="hash" data-test="package-sha256" title=value.clone()>{value.clone()}</code>
            <button type="button" class="button button-ghost button-small" data-test="copy-sha256" on:click=copy>
                {move || if copied.get() { "Copied" } else { "Copy" }}
            </button>
        </span>
    }
}

/// Every checksum of a package, each copyable: what devices verify after downloading.
#[component]
fn ChecksumsDialog(package: Package, on_close: Callback<()>) -> impl IntoView {
    let rows = package
        .checksums
        .iter()
        .map(|(algorithm, value)| {
            let name = algorithm.as_str();
            view! {
                <span class="secret-label">{name}</span>
                <CopyBox value=value.clone() element_id=format!("checksum-{name}")
                    test=checksum_test(*algorithm) copy_test="copy-checksum"/>
            }
        })
        .collect_view();
    view! {
        <Modal title=format!("Checksums of {} {}", package.title, package.version) on_close=on_close wide=true>
            <p class="modal-text">
                "Computed by Stead as the image arrived. A device is told one of them with its target (SHA-256 unless another is asked for) and checks the downloaded image against it."
            </p>
            <div class="secrets" data-test="checksums">{rows}</div>
            <div class="modal-actions">
                <button type="button" class="button button-primary" data-test="close-checksums" on:click=move |_| on_close.run(())>"Close"</button>
            </div>
        </Modal>
    }
}

/// `checksum-SHA256` and so on: the `data-test` of each value in the checksums dialog.
fn checksum_test(algorithm: stead_api_types::ChecksumAlgorithm) -> &'static str {
    use stead_api_types::ChecksumAlgorithm::*;
    match algorithm {
        Sha256 => "checksum-SHA256",
        Sha384 => "checksum-SHA384",
        Sha512 => "checksum-SHA512",
        Md5 => "checksum-MD5",
        Crc32 => "checksum-CRC32",
        Murmur3_32 => "checksum-MURMUR3_32",
        Murmur3_128 => "checksum-MURMUR3_128",
    }
}

/// How many devices run each title and version, from what they report (`current_fw_title` and
/// `current_fw_version`, or the `sw_` ones), read again every few seconds.
#[component]
fn VersionChart(changed: RwSignal<u64>) -> impl IntoView {
    let session = use_session();
    let kind = RwSignal::new(PackageKind::Firmware);
    let versions = Loader::new(move || {
        changed.track();
        let kind = kind.get();
        async move { api::ota_versions(session, kind).await }
    });
    versions.poll(VERSIONS_POLL, || true, || {});
    let bars = Memo::new(move |_| {
        versions.data.with(|v| {
            v.iter()
                .flatten()
                .map(|v| Bar {
                    label: format!("{} {}", v.title, v.version),
                    value: v.devices as f64,
                })
                .collect::<Vec<_>>()
        })
    });
    let total = Memo::new(move |_| {
        versions
            .data
            .with(|v| v.iter().flatten().map(|v| v.devices).sum::<u64>())
    });
    view! {
        <section class="card" aria-labelledby="versions-title" data-test="version-chart">
            <div class="card-header">
                <h2 id="versions-title">"What the fleet runs"</h2>
                <div class="segmented" role="group" aria-label="Kind">
                    {[PackageKind::Firmware, PackageKind::Software].into_iter().map(|k| view! {
                        <button type="button" class="segment" data-test=format!("versions-{}", k.as_str())
                            class:segment-active=move || kind.get() == k on:click=move |_| kind.set(k)>
                            {kind_label(k)}
                        </button>
                    }).collect_view()}
                </div>
            </div>
            <ErrorMessage error=versions.error_text()/>
            {move || if versions.data.with(Option::is_none) && versions.loading.get() {
                view! { <Spinner label="Loading versions…"/> }.into_any()
            } else {
                view! {
                    <figure class="chart">
                        <BarChart bars=bars label="Devices per title and version"
                            empty="No device has reported what it runs yet"/>
                    </figure>
                }.into_any()
            }}
            <p class="muted small" data-test="version-total">
                {move || match total.get() {
                    0 => "Devices report what they run with current_fw_title and current_fw_version (current_sw_… for software) beside their fw_state.".to_owned(),
                    1 => "1 device has reported what it runs.".to_owned(),
                    n => format!("{n} devices have reported what they run."),
                }}
            </p>
        </section>
    }
}

/// A profile's name in pickers, "(default)" marked.
pub fn profile_option(p: &DeviceProfile) -> String {
    if p.is_default {
        format!("{} (default)", p.name)
    } else {
        p.name.clone()
    }
}
