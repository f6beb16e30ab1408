//! Building blocks shared by the pages: toasts, modals, the one-time secret box, tabs, badges,
//! progress bars, pagination, and a loader that keeps the previous data on screen while the next
//! page loads.

use std::future::Future;

use chrono::{DateTime, Utc};
use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use stead_api_types::Permission;

use crate::session::ApiError;

// ---------------------------------------------------------------------------------------------
// Toasts

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToastKind {
    Success,
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Toast {
    id: u64,
    kind: ToastKind,
    text: String,
}

const MAX_TOASTS: usize = 3;

#[derive(Clone, Copy)]
pub struct Toasts {
    items: RwSignal<Vec<Toast>>,
    next_id: RwSignal<u64>,
}

pub fn use_toasts() -> Toasts {
    expect_context::<Toasts>()
}

impl Toasts {
    pub fn new() -> Self {
        Toasts {
            items: RwSignal::new(Vec::new()),
            next_id: RwSignal::new(0),
        }
    }

    pub fn success(&self, text: impl Into<String>) {
        self.push(ToastKind::Success, text.into());
    }

    pub fn error(&self, text: impl Into<String>) {
        self.push(ToastKind::Error, text.into());
    }

    fn push(&self, kind: ToastKind, text: String) {
        let id = self.next_id.get_untracked();
        self.next_id.set(id + 1);
        self.items.update(|items| {
            items.push(Toast { id, kind, text });
            // A burst of actions should not bury the page under toasts.
            let excess = items.len().saturating_sub(MAX_TOASTS);
            items.drain(..excess);
        });
        let items = self.items;
        let ms = if kind == ToastKind::Error { 7000 } else { 4000 };
        Timeout::new(ms, move || {
            items.try_update(|items| items.retain(|t| t.id != id));
        })
        .forget();
    }

    pub fn clear(&self) {
        self.items.set(Vec::new());
    }

    fn dismiss(&self, id: u64) {
        self.items.update(|items| items.retain(|t| t.id != id));
    }
}

impl Default for Toasts {
    fn default() -> Self {
        Self::new()
    }
}

#[component]
pub fn ToastHost() -> impl IntoView {
    let toasts = use_toasts();
    view! {
        <div class="toasts" role="status" aria-live="polite">
            <For each=move || toasts.items.get() key=|t| t.id let:toast>
                {
                    let id = toast.id;
                    let is_error = toast.kind == ToastKind::Error;
                    view! {
                        <div
                            class="toast"
                            class:toast-error=is_error
                            class:toast-success=!is_error
                            data-test=if is_error { Some("error") } else { None }
                        >
                            <span class="toast-icon" aria-hidden="true">
                                {if is_error { "!" } else { "✓" }}
                            </span>
                            <span class="toast-text">{toast.text}</span>
                            <button
                                type="button"
                                class="toast-close"
                                aria-label="Dismiss"
                                on:click=move |_| toasts.dismiss(id)
                            >
                                "×"
                            </button>
                        </div>
                    }
                }
            </For>
        </div>
    }
}

// ---------------------------------------------------------------------------------------------
// Inline messages

/// An inline error message, shown only when there is one.
#[component]
pub fn ErrorMessage(#[prop(into)] error: Signal<Option<String>>) -> impl IntoView {
    move || {
        error.get().map(|text| {
            view! {
                <div class="alert alert-error" role="alert" data-test="error">
                    {text}
                </div>
            }
        })
    }
}

#[component]
pub fn Spinner(#[prop(optional, into)] label: Option<String>) -> impl IntoView {
    view! {
        <div class="loading">
            <span class="spinner" aria-hidden="true"></span>
            <span>{label.unwrap_or_else(|| "Loading…".into())}</span>
        </div>
    }
}

/// A page's title, its one-line introduction, and its actions (`children`) on the right.
#[component]
pub fn PageHeader(
    #[prop(into)] title: String,
    #[prop(into)] intro: String,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <header class="page-header">
            <div>
                <h1>{title}</h1>
                <p class="muted">{intro}</p>
            </div>
            {children.map(|c| c())}
        </header>
    }
}

/// The primary button of a page header, shown only when `when` holds.
#[component]
pub fn HeaderButton(
    #[prop(into)] when: Signal<bool>,
    label: &'static str,
    test: &'static str,
    on_click: Callback<()>,
) -> impl IntoView {
    view! {
        <Show when=move || when.get()>
            <button type="button" class="button button-primary" data-test=test on:click=move |_| on_click.run(())>
                {label}
            </button>
        </Show>
    }
}

// ---------------------------------------------------------------------------------------------
// Modals

#[component]
pub fn Modal(
    #[prop(into)] title: String,
    /// Called on the close button, Escape and a click on the backdrop (when `dismissable`).
    on_close: Callback<()>,
    #[prop(default = true)] dismissable: bool,
    #[prop(optional, into)] wide: bool,
    children: Children,
) -> impl IntoView {
    let handle = window_event_listener(leptos::ev::keydown, move |ev| {
        if dismissable && ev.key() == "Escape" {
            on_close.run(());
        }
    });
    on_cleanup(move || handle.remove());
    // `autofocus` does not apply to elements inserted later: focus the first field by hand.
    let dialog = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        let first = dialog.get().and_then(|d| {
            d.query_selector("input, select, textarea, .modal-actions .button-primary")
                .ok()
                .flatten()
        });
        if let Some(el) = first.and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()) {
            let _ = el.focus();
        }
    });
    view! {
        <div
            class="modal-backdrop"
            on:click=move |ev| {
                if dismissable && ev.target() == ev.current_target() {
                    on_close.run(());
                }
            }
        >
            <div node_ref=dialog class="modal" class:modal-wide=wide role="dialog" aria-modal="true" aria-label=title.clone()>
                <div class="modal-header">
                    <h2>{title.clone()}</h2>
                    <Show when=move || dismissable>
                        <button
                            type="button"
                            class="icon-button"
                            aria-label="Close"
                            on:click=move |_| on_close.run(())
                        >
                            "×"
                        </button>
                    </Show>
                </div>
                {children()}
            </div>
        </div>
    }
}

/// Asks before something that cannot be undone.
#[component]
pub fn ConfirmDialog(
    #[prop(into)] title: String,
    #[prop(into)] message: String,
    #[prop(into)] confirm_label: String,
    #[prop(default = true)] danger: bool,
    #[prop(into)] busy: Signal<bool>,
    on_confirm: Callback<()>,
    on_cancel: Callback<()>,
    /// Why the last attempt was refused (the server's detail), shown in the dialog.
    #[prop(optional, into)]
    error: Option<Signal<Option<String>>>,
    /// Extra fields (a reason to give), between the message and the buttons.
    #[prop(optional)]
    children: Option<Children>,
) -> impl IntoView {
    let error = error.unwrap_or_else(|| Signal::derive(|| None));
    view! {
        <Modal title=title on_close=on_cancel>
            <p class="modal-text">{message}</p>
            {children.map(|c| c())}
            <ErrorMessage error=error/>
            <div class="modal-actions">
                <button
                    type="button"
                    class="button button-secondary"
                    data-test="cancel"
                    on:click=move |_| on_cancel.run(())
                    disabled=move || busy.get()
                >
                    "Cancel"
                </button>
                <button
                    type="button"
                    class="button"
                    class:button-danger=danger
                    class:button-primary=!danger
                    data-test="confirm"
                    on:click=move |_| on_confirm.run(())
                    disabled=move || busy.get()
                >
                    {move || if busy.get() { "Working…".to_string() } else { confirm_label.clone() }}
                </button>
            </div>
        </Modal>
    }
}

/// A dialog form's Cancel and submit buttons; the submit button reads `busy_label` while busy.
#[component]
pub fn FormActions(
    #[prop(into)] busy: Signal<bool>,
    on_cancel: Callback<()>,
    label: &'static str,
    busy_label: &'static str,
    #[prop(optional)] test: Option<&'static str>,
) -> impl IntoView {
    view! {
        <div class="modal-actions">
            <button type="button" class="button button-secondary" on:click=move |_| on_cancel.run(()) disabled=move || busy.get()>
                "Cancel"
            </button>
            <button type="submit" class="button button-primary" data-test=test disabled=move || busy.get()>
                {move || if busy.get() { busy_label } else { label }}
            </button>
        </div>
    }
}

/// An action a dialog runs against the server: busy while it runs, and the server's refusal
/// kept to be shown in the dialog (which stays open).
#[derive(Clone, Copy)]
pub struct Action {
    pub busy: RwSignal<bool>,
    pub error: RwSignal<Option<String>>,
    /// The field the server named with its refusal (`create.major.expr.test.value`), for a form
    /// to mark where the fault is.
    pub field: RwSignal<Option<String>>,
}

impl Action {
    pub fn new() -> Self {
        Action {
            busy: RwSignal::new(false),
            error: RwSignal::new(None),
            field: RwSignal::new(None),
        }
    }

    /// Shows each refusal as an error toast, for actions run from a button (there is no dialog
    /// to show it in).
    pub fn toast_errors(self, toasts: Toasts) -> Self {
        Effect::new(move |_| {
            if let Some(why) = self.error.get() {
                toasts.error(why);
            }
        });
        self
    }

    /// A refusal found before asking the server.
    pub fn refuse(&self, why: impl Into<String>) {
        self.field.set(None);
        self.error.set(Some(why.into()));
    }

    /// Runs `fut` unless already running; its value goes to `done`.
    pub fn run<T: 'static>(
        self,
        fut: impl Future<Output = Result<T, ApiError>> + 'static,
        done: impl FnOnce(T) + 'static,
    ) {
        if self.busy.get_untracked() {
            return;
        }
        self.busy.set(true);
        self.error.set(None);
        self.field.set(None);
        spawn_local(async move {
            match fut.await {
                Ok(value) => done(value),
                Err(e) => {
                    self.field.try_set(e.field);
                    self.error.try_set(Some(e.detail));
                }
            }
            self.busy.try_set(false);
        });
    }
}

/// An action's refusal, with the field the server named: "`place`: why" and the field's wire
/// name (`data-test=error-field`), so a form can say where the fault is.
#[component]
pub fn Refusal(action: Action, place: fn(&str) -> String) -> impl IntoView {
    move || {
        action.error.get().map(|detail| {
            let field = action.field.get();
            view! {
                <div class="alert alert-error" role="alert" data-test="error">
                    {match &field {
                        Some(f) => format!("{}: {detail}", place(f)),
                        None => detail,
                    }}
                    {field.map(|f| view! { " " <code class="error-field" data-test="error-field">{f}</code> })}
                </div>
            }
        })
    }
}

impl Default for Action {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------------
// One-time secrets

/// Copies text to the clipboard. The Clipboard API exists only in secure contexts (HTTPS or
/// localhost); elsewhere fall back to selecting the element's text and `execCommand("copy")`.
pub async fn copy_text(text: &str, element_id: &str) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    if window.is_secure_context() {
        let clipboard = window.navigator().clipboard();
        if JsFuture::from(clipboard.write_text(text)).await.is_ok() {
            return true;
        }
    }
    let Some(document) = window.document() else {
        return false;
    };
    let Some(element) = document.get_element_by_id(element_id) else {
        return false;
    };
    let selected = (|| -> Option<()> {
        let selection = window.get_selection().ok()??;
        let range = document.create_range().ok()?;
        range.select_node_contents(&element).ok()?;
        selection.remove_all_ranges().ok()?;
        selection.add_range(&range).ok()
    })();
    selected.is_some()
        && document
            .dyn_into::<web_sys::HtmlDocument>()
            .ok()
            .and_then(|d| d.exec_command("copy").ok())
            .unwrap_or(false)
}

/// A value (a secret, a link) in a box with a copy button; `copy_failed` is set when the browser
/// would not copy, so the caller can say how to copy by hand.
#[component]
pub fn CopyBox(
    #[prop(into)] value: String,
    /// The box's element id, for the fallback that selects its text.
    #[prop(into)]
    element_id: String,
    test: &'static str,
    copy_test: &'static str,
    #[prop(optional)] copy_failed: Option<RwSignal<bool>>,
) -> impl IntoView {
    let copied = RwSignal::new(false);
    let (text, id) = (value.clone(), element_id.clone());
    let copy = move |_| {
        let (text, id) = (text.clone(), id.clone());
        spawn_local(async move {
            let ok = copy_text(&text, &id).await;
            copied.try_set(ok);
            if let Some(failed) = copy_failed {
                failed.try_set(!ok);
            }
        });
    };
    view! {
        <div class="token-box">
            <code id=element_id class="token" data-test=test>{value}</code>
            <button type="button" class="button button-secondary" data-test=copy_test on:click=copy>
                {move || if copied.get() { "Copied" } else { "Copy" }}
            </button>
        </div>
    }
}

/// One secret line of a `SecretReveal`: what it is, its value, and the `data-test` names of the
/// value and of its copy button.
#[derive(Clone, Debug, PartialEq)]
pub struct Secret {
    pub label: &'static str,
    pub value: String,
    pub test: &'static str,
    pub copy_test: &'static str,
}

/// Shows secrets once (an access token, MQTT credentials, a provisioning secret), each with a
/// copy button, and a warning that they will not be shown again; `children` go below them.
#[component]
pub fn SecretReveal(
    #[prop(into)] title: String,
    secrets: Vec<Secret>,
    #[prop(into)] intro: String,
    /// The warning's first, bold sentence and the rest.
    warning: (&'static str, &'static str),
    #[prop(into)] close_label: String,
    on_close: Callback<()>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    let wide = children.is_some() || secrets.len() > 1;
    let copy_failed = RwSignal::new(false);
    let show_labels = secrets.len() > 1;
    let rows = secrets
        .into_iter()
        .enumerate()
        .map(|(i, secret)| {
            view! {
                {show_labels.then(|| view! { <span class="secret-label">{secret.label}</span> })}
                <CopyBox
                    value=secret.value
                    element_id=format!("one-time-secret-{i}")
                    test=secret.test
                    copy_test=secret.copy_test
                    copy_failed=copy_failed
                />
            }
        })
        .collect_view();
    view! {
        <Modal title=title on_close=on_close dismissable=false wide=wide>
            <p class="modal-text">{intro}</p>
            <div class="secrets">{rows}</div>
            {move || copy_failed.get().then(|| view! {
                <p class="hint">"Copying is not available here: select the text and copy it by hand."</p>
            })}
            {children.map(|c| c())}
            <div class="alert alert-warning" role="note">
                <strong>{warning.0}</strong>
                " "
                {warning.1}
            </div>
            <div class="modal-actions">
                <button
                    type="button"
                    class="button button-primary"
                    data-test="close-token"
                    on:click=move |_| on_close.run(())
                >
                    {close_label}
                </button>
            </div>
        </Modal>
    }
}

/// Shows a device access token once, with a copy button and a warning; `children` (the
/// connection commands with the token filled in) go below the token.
#[component]
pub fn TokenReveal(
    #[prop(into)] title: String,
    token: String,
    #[prop(into)] intro: String,
    on_close: Callback<()>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    let secrets = vec![Secret {
        label: "Access token",
        value: token,
        test: "device-token",
        copy_test: "copy-token",
    }];
    view! {
        <SecretReveal
            title=title
            secrets=secrets
            intro=intro
            warning=("Store this token now.", "It will not be shown again: Stead keeps only a hash of it. If it is lost, rotate the token to get a new one.")
            close_label="I have stored the token"
            on_close=on_close
        >
            {children.map(|c| c())}
        </SecretReveal>
    }
}

// ---------------------------------------------------------------------------------------------
// Tabs, badges, progress

/// A row of tabs; `active` holds the key of the one shown. Each tab's `data-test` is
/// `tab-<key>`.
#[component]
pub fn Tabs(
    tabs: Vec<(&'static str, &'static str)>,
    active: Signal<String>,
    on_select: Callback<&'static str>,
) -> impl IntoView {
    view! {
        <div class="tabs" role="tablist">
            {tabs.into_iter().map(|(key, label)| view! {
                <button
                    type="button"
                    role="tab"
                    class="tab"
                    class:tab-active=move || active.get() == key
                    aria-selected=move || (active.get() == key).to_string()
                    data-test=format!("tab-{key}")
                    on:click=move |_| on_select.run(key)
                >
                    {label}
                </button>
            }).collect_view()}
        </div>
    }
}

/// How a status looks: the CSS modifier of its badge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Neutral,
    Good,
    Info,
    Warn,
    Bad,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Neutral => "badge",
            Tone::Good => "badge badge-good",
            Tone::Info => "badge badge-info",
            Tone::Warn => "badge badge-warn",
            Tone::Bad => "badge badge-bad",
        }
    }
}

/// A coloured status badge; `data-test=status-badge` with `data-status` for tests.
#[component]
pub fn StatusBadge(
    tone: Tone,
    #[prop(into)] text: String,
    #[prop(optional, into)] status: String,
) -> impl IntoView {
    view! { <span class=tone.class() data-test="status-badge" data-status=status>{text}</span> }
}

/// A bar filled to `done / total` with the percentage beside it.
#[component]
pub fn ProgressBar(
    #[prop(into)] done: Signal<u64>,
    #[prop(into)] total: Signal<u64>,
    /// How the amounts are written (bytes as "1.2 MiB"); plain numbers by default.
    #[prop(optional)]
    unit: Option<fn(u64) -> String>,
) -> impl IntoView {
    let amount = unit.unwrap_or(|n| n.to_string());
    let percent = move || {
        let total = total.get();
        (done.get().min(total) * 100)
            .checked_div(total)
            .unwrap_or(0)
    };
    view! {
        <div class="progress" data-test="progress">
            <div
                class="progress-track"
                role="progressbar"
                aria-valuemin="0"
                aria-valuemax="100"
                aria-valuenow=move || percent().to_string()
            >
                <div class="progress-fill" style=move || format!("width: {}%", percent())></div>
            </div>
            <span class="progress-text" data-test="progress-text">
                {move || format!("{} % · {} of {}", percent(), amount(done.get()), amount(total.get()))}
            </span>
        </div>
    }
}

/// One figure of a `.stats` row: what it is, its value, and a line below.
#[component]
pub fn Stat(
    label: &'static str,
    #[prop(into)] value: String,
    #[prop(optional, into)] sub: String,
    #[prop(optional)] test: &'static str,
    #[prop(optional, into)] title: String,
    /// Shown in the danger colour.
    #[prop(optional)]
    bad: bool,
) -> impl IntoView {
    view! {
        <div class="stat" class:stat-bad=bad>
            <span class="stat-label">{label}</span>
            <span class="stat-value" data-test=(!test.is_empty()).then_some(test) title=title>{value}</span>
            <span class="stat-sub">{sub}</span>
        </div>
    }
}

// ---------------------------------------------------------------------------------------------
// Lists

#[component]
pub fn Pagination(
    page: RwSignal<u64>,
    #[prop(into)] total: Signal<u64>,
    per_page: u64,
    #[prop(into)] noun: String,
) -> impl IntoView {
    let pages = move || total.get().div_ceil(per_page).max(1);
    let range = move || {
        let total = total.get();
        if total == 0 {
            format!("No {noun}")
        } else {
            let first = (page.get() - 1) * per_page + 1;
            let last = (page.get() * per_page).min(total);
            format!("{first}–{last} of {total}")
        }
    };
    view! {
        <div class="pagination">
            <span class="muted">{range}</span>
            <div class="pagination-buttons">
                <button
                    type="button"
                    class="button button-secondary button-small"
                    data-test="prev-page"
                    disabled=move || page.get() <= 1
                    on:click=move |_| page.update(|p| *p = p.saturating_sub(1).max(1))
                >
                    "← Previous"
                </button>
                <span class="muted">{move || format!("Page {} of {}", page.get(), pages())}</span>
                <button
                    type="button"
                    class="button button-secondary button-small"
                    data-test="next-page"
                    disabled=move || { page.get() >= pages() }
                    on:click=move |_| page.update(|p| *p += 1)
                >
                    "Next →"
                </button>
            </div>
        </div>
    }
}

/// A table's header row: the column names, then (with `actions`) a column for row buttons.
#[component]
pub fn TableHead(
    columns: &'static [&'static str],
    #[prop(optional)] actions: bool,
) -> impl IntoView {
    view! {
        <thead>
            <tr>
                {columns.iter().map(|c| view! { <th>{*c}</th> }).collect_view()}
                {actions.then(|| view! { <th class="actions-col"><span class="sr-only">"Actions"</span></th> })}
            </tr>
        </thead>
    }
}

/// "↻ Refresh": reads a `Loader`'s data again (greyed out while it loads).
#[component]
pub fn RefreshButton<T>(loader: Loader<T>, test: &'static str) -> impl IntoView
where
    T: Send + Sync + 'static,
{
    view! {
        <button type="button" class="button button-ghost button-small" data-test=test
            disabled=move || loader.loading.get()
            on:click=move |_| loader.reload()>
            "↻ Refresh"
        </button>
    }
}

/// Loads data whenever the signals read by `fetch` change (or on `reload`), keeping the last
/// data on screen meanwhile and dropping answers that arrive after a newer request.
pub struct Loader<T: Send + Sync + 'static> {
    pub data: RwSignal<Option<T>>,
    pub loading: RwSignal<bool>,
    pub error: RwSignal<Option<ApiError>>,
    reload: RwSignal<u64>,
}

// Written by hand: a derive would demand `T: Copy`, yet only signals are copied.
impl<T: Send + Sync + 'static> Clone for Loader<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync + 'static> Copy for Loader<T> {}

impl<T: Send + Sync + 'static> Loader<T> {
    pub fn new<F, Fut>(fetch: F) -> Self
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = Result<T, ApiError>> + 'static,
    {
        let data = RwSignal::new(None);
        let loading = RwSignal::new(true);
        let error = RwSignal::new(None);
        let reload = RwSignal::new(0u64);
        let seq = RwSignal::new(0u64);
        Effect::new(move |_| {
            reload.track();
            let fut = fetch();
            let mine = seq.get_untracked() + 1;
            seq.set(mine);
            loading.set(true);
            spawn_local(async move {
                let result = fut.await;
                if seq.try_get_untracked() != Some(mine) {
                    return;
                }
                match result {
                    Ok(value) => {
                        data.try_set(Some(value));
                        error.try_set(None);
                    }
                    Err(e) => {
                        error.try_set(Some(e));
                    }
                }
                loading.try_set(false);
            });
        });
        Loader {
            data,
            loading,
            error,
            reload,
        }
    }

    pub fn reload(&self) {
        self.reload.update(|n| *n += 1);
    }

    /// Reads again every `every` while the calling component lives, when `wanted` says so and no
    /// read is under way; `then` runs after each such reload.
    pub fn poll(
        self,
        every: std::time::Duration,
        wanted: impl Fn() -> bool + 'static,
        then: impl Fn() + 'static,
    ) {
        if let Ok(handle) = set_interval_with_handle(
            move || {
                if wanted() && self.loading.try_get_untracked() == Some(false) {
                    self.reload();
                    then();
                }
            },
            every,
        ) {
            on_cleanup(move || handle.clear());
        }
    }

    pub fn error_text(&self) -> Signal<Option<String>> {
        let error = self.error;
        Signal::derive(move || error.get().map(|e| e.detail))
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting

/// A timestamp in the reader's local time zone and locale.
/// The browser's clock now (wasm has no system clock for chrono).
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default()
}

pub fn format_time(t: &DateTime<Utc>) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(t.timestamp_millis() as f64));
    let options = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&options, &"dateStyle".into(), &"medium".into());
    let _ = js_sys::Reflect::set(&options, &"timeStyle".into(), &"short".into());
    String::from(date.to_locale_string("default", &options))
}

pub fn format_time_title(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A `datetime-local` input's value for `ms`, in the reader's local time.
pub fn to_local_input(ms: i64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        d.get_hours(),
        d.get_minutes()
    )
}

/// A `datetime-local` input's value (the reader's local time: JavaScript reads the date-time
/// form so) as a UTC instant; empty or unreadable is `None`.
pub fn from_local_input(value: &str) -> Option<DateTime<Utc>> {
    if value.trim().is_empty() {
        return None;
    }
    let ms = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(value)).get_time();
    ms.is_finite()
        .then(|| DateTime::from_timestamp_millis(ms as i64))
        .flatten()
}

/// A size for people: "512 B", "1.5 KiB", "20 MiB", "1.02 GiB".
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{} {}", format_significant(v, 3), UNITS[unit])
}

/// Trims a form value; empty means absent.
pub fn non_empty(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

/// Sets the browser tab's title: "<page> · Stead".
pub fn set_title(page: &str) {
    if let Some(document) = web_sys::window().and_then(|w| w.document()) {
        document.set_title(&format!("{page} · Stead"));
    }
}

/// The exact time of `ms`, for a `title` tooltip.
pub fn format_ms_title(ms: i64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    let options = js_sys::Object::new();
    for (key, value) in [("dateStyle", "medium"), ("timeStyle", "medium")] {
        let _ = js_sys::Reflect::set(&options, &key.into(), &value.into());
    }
    String::from(date.to_locale_string("default", &options))
}

/// How long ago `ms` was, seen from `now_ms`: "just now", "42 s ago", "5 min ago", "3 h ago",
/// "2 d ago". A time slightly in the future (clock skew between browser and server) is "just
/// now".
pub fn format_age(ms: i64, now_ms: f64) -> String {
    let secs = ((now_ms - ms as f64) / 1000.0).floor();
    if secs < 5.0 {
        return "just now".into();
    }
    let secs = secs as u64;
    match secs {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s if s < 86_400 * 60 => format!("{} d ago", s / 86_400),
        _ => "long ago".into(),
    }
}

/// A number for people: integers as they are, others to four significant digits at most.
pub fn format_number(v: f64) -> String {
    format_significant(v, 4)
}

/// Integers as they are, others to `digits` significant digits, without trailing zeros.
pub fn format_significant(v: f64, digits: i32) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).clamp(0, 8) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A clock for relative times: the current time in ms, updated every second while the calling
/// component lives.
pub fn use_clock() -> ReadSignal<f64> {
    let (now, set_now) = signal(js_sys::Date::now());
    if let Ok(handle) = set_interval_with_handle(
        move || {
            set_now.try_set(js_sys::Date::now());
        },
        std::time::Duration::from_secs(1),
    ) {
        on_cleanup(move || handle.clear());
    }
    now
}

/// Hands `blob` to the browser as a download named `name`.
pub fn save_blob(blob: &web_sys::Blob, name: &str) -> Result<(), ApiError> {
    let fail = |_| ApiError::unexpected("The browser refused the download.");
    let url = web_sys::Url::create_object_url_with_blob(blob).map_err(fail)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| ApiError::unexpected("No document to download into."))?;
    let a: web_sys::HtmlAnchorElement =
        document.create_element("a").map_err(fail)?.unchecked_into();
    a.set_href(&url);
    a.set_download(name);
    a.click();
    // The click starts the download synchronously; the URL is no longer needed after it.
    set_timeout(
        move || {
            let _ = web_sys::Url::revoke_object_url(&url);
        },
        std::time::Duration::from_secs(10),
    );
    Ok(())
}

/// A JSON value typed by a person, with a message that says how to fix it.
pub fn parse_json(text: &str, what: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text.trim()).map_err(|e| {
        format!("{what} is not valid JSON ({e}). Text needs double quotes, e.g. \"on\"; numbers, true, false, null, [..] and {{..}} are written as they are.")
    })
}

/// A JSON value on one line, for tables.
pub fn compact_json(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A time in ms since the epoch, like `format_time`.
pub fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| format_time(&t))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Permissions

/// Checkboxes for a set of choices, each offered one with its label and wire name (shown
/// beside the label, and the input's `value`); `name` is the inputs' name, `test` their
/// `data-test`.
#[component]
pub fn CheckPicker<T>(
    legend: &'static str,
    name: &'static str,
    test: &'static str,
    chosen: RwSignal<std::collections::BTreeSet<T>>,
    #[prop(into)] offered: Signal<Vec<(T, String, String)>>,
    /// Lets each label take a whole line's half (long labels).
    #[prop(optional)]
    wide: bool,
    #[prop(optional)] hint: Option<&'static str>,
) -> impl IntoView
where
    T: Copy + Ord + Send + Sync + 'static,
{
    view! {
        <fieldset class="fieldset">
            <legend>{legend}</legend>
            <div class="check-list" class:check-list-wide=wide>
                {move || offered.get().into_iter().map(|(choice, label, wire)| view! {
                    <label class="checkbox">
                        <input type="checkbox" name=name value=wire.clone() data-test=test
                            prop:checked=move || chosen.with(|s| s.contains(&choice))
                            on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                chosen.update(|s| { if on { s.insert(choice); } else { s.remove(&choice); } });
                            }/>
                        <span>{label} " " <code class="muted">{wire}</code></span>
                    </label>
                }).collect_view()}
            </div>
            {hint.map(|h| view! { <small class="hint">{h}</small> })}
        </fieldset>
    }
}

/// Checkboxes for a set of permissions from the catalogue: `offered` can be ticked, the rest of
/// the catalogue is not listed (a person cannot grant what they lack).
#[component]
pub fn PermissionPicker(
    chosen: RwSignal<std::collections::BTreeSet<Permission>>,
    #[prop(into)] offered: Signal<Vec<Permission>>,
) -> impl IntoView {
    let offered = Signal::derive(move || {
        offered
            .get()
            .into_iter()
            .map(|p| (p, p.label().to_owned(), p.as_str().to_owned()))
            .collect::<Vec<_>>()
    });
    view! { <CheckPicker legend="Permissions" name="permissions" test="permission" chosen=chosen offered=offered/> }
}

/// A permission set as small badges.
#[component]
pub fn PermissionBadges(permissions: Vec<Permission>) -> impl IntoView {
    if permissions.is_empty() {
        return view! { <span class="muted">"None"</span> }.into_any();
    }
    view! {
        <span class="badge-list">
            {permissions.into_iter().map(|p| view! {
                <span class="badge" title=p.label()>{p.as_str()}</span>
            }).collect_view()}
        </span>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::format_bytes;

    #[test]
    fn sizes_are_written_in_binary_units() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(20 << 20), "20 MiB");
        assert_eq!(format_bytes((1 << 30) + (20 << 20)), "1.02 GiB");
    }
}
