//! The upload dialog: an image file with its title, version, kind, description, the profile it
//! is for, and optionally the SHA-256 it must have and its signature. The image goes up as the
//! request's body through `XMLHttpRequest` so that a bar can follow its bytes (a large image
//! takes a while); it can be cancelled on the way. The server's refusal (too large, the version
//! exists, the quota, a checksum or signature that does not match) stays in the dialog, on the
//! field it names.

use leptos::prelude::*;
use stead_api_types::{DeviceProfile, Package, PackageKind, SigningKey, UploadPackage};
use uuid::Uuid;
use wasm_bindgen::JsCast;

use super::{kind_label, profile_option};
use crate::api;
use crate::session::use_session;
use crate::ui::{Action, Modal, ProgressBar, Refusal, format_bytes, non_empty};

/// The label of the field the server names in a refusal.
fn field_label(field: &str) -> String {
    match field {
        "title" => "Title",
        "version" => "Version",
        "description" => "Description",
        "profile_id" => "Profile",
        "sha256" => "Expected SHA-256",
        "signature" => "Signature",
        "body" => "Image",
        other => other,
    }
    .to_owned()
}

/// "pump-fw-1.2.0.bin" → "pump-fw-1.2.0": a first title to edit.
fn title_from_file(name: &str) -> String {
    name.rsplit_once('.')
        .map_or(name, |(stem, _)| stem)
        .chars()
        .take(64)
        .collect()
}

#[component]
pub fn UploadDialog(
    #[prop(into)] profiles: Signal<Vec<DeviceProfile>>,
    #[prop(into)] keys: Signal<Vec<SigningKey>>,
    on_close: Callback<()>,
    on_uploaded: Callback<Package>,
) -> impl IntoView {
    let session = use_session();
    let file = StoredValue::new_local(None::<web_sys::File>);
    let chosen = RwSignal::new(None::<(String, u64)>);
    let title = RwSignal::new(String::new());
    let version = RwSignal::new(String::new());
    let kind = RwSignal::new(PackageKind::Firmware);
    let description = RwSignal::new(String::new());
    let profile = RwSignal::new(None::<Uuid>);
    let sha256 = RwSignal::new(String::new());
    let signature = RwSignal::new(String::new());
    let sent = RwSignal::new(0u64);
    let total = RwSignal::new(0u64);
    let request = StoredValue::new_local(None::<web_sys::XmlHttpRequest>);
    let action = Action::new();
    let busy = action.busy;
    let invalid = move |name: &str| action.field.with(|f| f.as_deref() == Some(name));
    // The verification fields fold away; a refusal that names one of them unfolds them (and
    // nothing folds them back while the person works in them).
    let verification = NodeRef::<leptos::html::Details>::new();
    Effect::new(move |_| {
        if (invalid("sha256") || invalid("signature"))
            && let Some(details) = verification.get()
        {
            details.set_open(true);
        }
    });

    let on_file = move |ev: leptos::ev::Event| {
        let picked = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            .and_then(|input| input.files()?.get(0));
        if let Some(f) = &picked {
            chosen.set(Some((f.name(), f.size() as u64)));
            if title.get_untracked().trim().is_empty() {
                title.set(title_from_file(&f.name()));
            }
        } else {
            chosen.set(None);
        }
        file.set_value(picked);
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(image) = file.get_value() else {
            action.refuse("Choose the image file first.");
            return;
        };
        let Some(t) = non_empty(&title.get_untracked()) else {
            action.refuse("Give the package a title: what devices report as current_fw_title.");
            return;
        };
        let Some(v) = non_empty(&version.get_untracked()) else {
            action.refuse("Give the package a version, such as 1.2.0.");
            return;
        };
        let body = UploadPackage {
            kind: kind.get_untracked(),
            title: t,
            version: v,
            description: non_empty(&description.get_untracked()),
            profile_id: profile.get_untracked(),
            sha256: non_empty(&sha256.get_untracked()),
            signature: non_empty(&signature.get_untracked()),
        };
        sent.set(0);
        total.set(image.size() as u64);
        let progress = move |done: f64, all: f64| {
            sent.try_set(done as u64);
            total.try_set(all as u64);
        };
        let started = move |xhr: web_sys::XmlHttpRequest| request.set_value(Some(xhr));
        action.run(
            async move { api::upload_package(session, &body, &image, progress, started).await },
            move |p| on_uploaded.run(p),
        );
    };
    // While the image goes up, Cancel stops it; the server drops what it received.
    let cancel = move || {
        if busy.get_untracked() {
            if let Some(xhr) = request.get_value() {
                let _ = xhr.abort();
            }
        } else {
            on_close.run(());
        }
    };

    view! {
        // Escape and the backdrop close the dialog, but never stop an upload under way by accident:
        // that takes the button.
        <Modal title="Upload package" wide=true on_close=Callback::new(move |_| {
            if !busy.get_untracked() {
                on_close.run(());
            }
        })>
            <form class="form" on:submit=submit novalidate=true data-test="upload-form">
                <label class="field" class:field-invalid=move || invalid("body")>
                    <span>"Image file" <em class="required">"required"</em></span>
                    <input type="file" name="image" data-test="package-file" on:change=on_file disabled=move || busy.get()/>
                    <small class="hint" data-test="package-file-size">
                        {move || chosen.get().map_or_else(
                            || "The firmware or software image, as devices will receive it.".to_owned(),
                            |(name, size)| format!("{name}: {}", format_bytes(size)),
                        )}
                    </small>
                </label>
                <div class="field-row">
                    <label class="field" class:field-invalid=move || invalid("title")>
                        <span>"Title" <em class="required">"required"</em></span>
                        <input type="text" name="title" autocomplete="off" placeholder="pump-fw" bind:value=title disabled=move || busy.get()/>
                    </label>
                    <label class="field" class:field-invalid=move || invalid("version")>
                        <span>"Version" <em class="required">"required"</em></span>
                        <input type="text" name="version" autocomplete="off" placeholder="1.2.0" bind:value=version disabled=move || busy.get()/>
                    </label>
                    <label class="field">
                        <span>"Kind"</span>
                        <select name="kind" disabled=move || busy.get() on:change=move |ev| {
                            if let Some(k) = PackageKind::parse(&event_target_value(&ev)) {
                                kind.set(k);
                            }
                        }>
                            {[PackageKind::Firmware, PackageKind::Software].into_iter().map(|k| view! {
                                <option value=k.as_str() selected=move || kind.get() == k>{kind_label(k)}</option>
                            }).collect_view()}
                        </select>
                    </label>
                </div>
                <small class="hint">"Devices compare the title and version with what they report (current_fw_title and current_fw_version, or current_sw_… for software)."</small>
                <label class="field" class:field-invalid=move || invalid("description")>
                    <span>"Description"</span>
                    <textarea name="description" rows="2" placeholder="What changed" bind:value=description disabled=move || busy.get()></textarea>
                </label>
                <label class="field" class:field-invalid=move || invalid("profile_id")>
                    <span>"Device profile"</span>
                    <select name="profile_id" disabled=move || busy.get() on:change=move |ev| profile.set(Uuid::parse_str(&event_target_value(&ev)).ok())>
                        <option value="" selected=move || profile.get().is_none()>"Any profile"</option>
                        {move || profiles.get().into_iter().map(|p| view! {
                            <option value=p.id.to_string() selected=move || profile.get() == Some(p.id)>{profile_option(&p)}</option>
                        }).collect_view()}
                    </select>
                    <small class="hint">"Only devices of this profile may be given the package."</small>
                </label>
                <details class="form-details" node_ref=verification>
                    <summary data-test="upload-verification">"Verification (optional)"</summary>
                    <label class="field" class:field-invalid=move || invalid("sha256")>
                        <span>"Expected SHA-256"</span>
                        <input type="text" name="sha256" class="mono" autocomplete="off" spellcheck="false"
                            placeholder="64 hexadecimal digits" bind:value=sha256 disabled=move || busy.get()/>
                        <small class="hint">"When given, an image whose SHA-256 differs (damaged on the way, or another file) is refused."</small>
                    </label>
                    <label class="field" class:field-invalid=move || invalid("signature")>
                        <span>"Signature"</span>
                        <input type="text" name="signature" class="mono" autocomplete="off" spellcheck="false"
                            placeholder="Base64 Ed25519 signature of the image's SHA-256" bind:value=signature disabled=move || busy.get()/>
                        <small class="hint">
                            {move || match keys.with(Vec::len) {
                                0 => "Add a signing key below first: a signature is checked against the tenant's keys.".to_owned(),
                                n => format!("Checked against the tenant's {n} signing key(s); the package is marked signed."),
                            }}
                        </small>
                    </label>
                </details>
                <Show when=move || busy.get()>
                    <div class="upload-progress" data-test="upload-progress">
                        <ProgressBar done=sent total=total unit=format_bytes/>
                        <small class="hint">
                            {move || if total.get() > 0 && sent.get() >= total.get() {
                                "Sent: the server is storing it and computing its checksums…"
                            } else {
                                "Uploading…"
                            }}
                        </small>
                    </div>
                </Show>
                <Refusal action=action place=field_label/>
                <div class="modal-actions">
                    <button type="button" class="button button-secondary" data-test="cancel-upload" on:click=move |_| cancel()>
                        {move || if busy.get() { "Cancel upload" } else { "Cancel" }}
                    </button>
                    <button type="submit" class="button button-primary" data-test="submit-upload" disabled=move || busy.get()>
                        {move || if busy.get() { "Uploading…" } else { "Upload" }}
                    </button>
                </div>
            </form>
        </Modal>
    }
}

#[cfg(test)]
mod tests {
    use super::title_from_file;

    #[test]
    fn a_file_name_suggests_a_title() {
        assert_eq!(title_from_file("pump-fw-1.2.0.bin"), "pump-fw-1.2.0");
        assert_eq!(title_from_file("image"), "image");
    }
}
