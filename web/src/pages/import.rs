//! `/import`: devices from a CSV file. "Check" runs the import as a dry run and shows what each
//! row would do; "Import" starts the job, whose progress is polled until it ends, then shows the
//! counts, the rows that failed, and the generated credentials as a one-time download.

use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use stead_api_types::{
    ImportCounts, ImportJob, ImportOutcome, ImportReport, ImportRowReport, ImportStatus, Permission,
};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::api;
use crate::session::use_session;
use crate::shell::{RequirePermission, RequireTenant};
use crate::ui::{
    ErrorMessage, PageHeader, ProgressBar, Spinner, StatusBadge, TableHead, Tone, save_blob,
    use_toasts,
};

/// How often a running import is asked for its progress.
const POLL_MS: u32 = 500;
/// Rows of a report drawn at most; the counts cover the rest.
const MAX_ROWS: usize = 500;

const EXAMPLE: &str = "name,label,type,profile,groups,shared:targetTemperature,server:site\n\
boiler-1,Boiler room,thermostat,,Building A,21.5,north\n\
boiler-2,Boiler room,thermostat,,Building A;Heating,21.5,north\n";

/// Scrolls the element `[data-test=<test>]` into view once it is drawn: results appear below
/// the file, out of sight on most screens.
fn reveal(test: &'static str) {
    set_timeout(
        move || {
            let element = web_sys::window().and_then(|w| w.document()).and_then(|d| {
                d.query_selector(&format!("[data-test={test}]"))
                    .ok()
                    .flatten()
            });
            if let Some(element) = element {
                element.scroll_into_view();
            }
        },
        std::time::Duration::from_millis(50),
    );
}

#[component]
pub fn ImportPage() -> impl IntoView {
    view! {
        <RequireTenant>
            <RequirePermission permission=Permission::DevicesWrite>
                <Import/>
            </RequirePermission>
        </RequireTenant>
    }
}

fn outcome_badge(outcome: ImportOutcome) -> (Tone, &'static str, &'static str) {
    match outcome {
        ImportOutcome::Create => (Tone::Good, "New", "create"),
        ImportOutcome::Update => (Tone::Info, "Update", "update"),
        ImportOutcome::Unchanged => (Tone::Neutral, "Unchanged", "unchanged"),
        ImportOutcome::Error => (Tone::Bad, "Error", "error"),
    }
}

/// Reads the chosen file into `into`.
async fn read_file(input: web_sys::HtmlInputElement) -> Option<(String, String)> {
    let file = input.files()?.get(0)?;
    let text = JsFuture::from(file.text()).await.ok()?.as_string()?;
    Some((file.name(), text))
}

#[component]
fn Import() -> impl IntoView {
    crate::ui::set_title("Import devices");
    let session = use_session();
    let toasts = use_toasts();
    let csv = RwSignal::new(String::new());
    let file_name = RwSignal::new(None::<String>);
    let checking = RwSignal::new(false);
    let report = RwSignal::new(None::<ImportReport>);
    let starting = RwSignal::new(false);
    let job = RwSignal::new(None::<ImportJob>);
    let error = RwSignal::new(None::<String>);
    let running = move || {
        job.with(|j| {
            j.as_ref()
                .is_some_and(|j| j.status == ImportStatus::Running)
        })
    };

    let on_file = move |ev: leptos::ev::Event| {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        spawn_local(async move {
            match read_file(input).await {
                Some((name, text)) => {
                    file_name.try_set(Some(name));
                    csv.try_set(text);
                    report.try_set(None);
                }
                None => {
                    error.try_set(Some("The file could not be read as text.".into()));
                }
            }
        });
    };

    let text_or_complain = move || {
        let text = csv.get_untracked();
        if text.trim().is_empty() {
            error.set(Some(
                "Paste the CSV or choose a file first. Its first line names the columns.".into(),
            ));
            None
        } else {
            error.set(None);
            Some(text)
        }
    };

    let check = move |_| {
        let Some(text) = text_or_complain() else {
            return;
        };
        checking.set(true);
        spawn_local(async move {
            match api::check_import(session, &text).await {
                Ok(r) => {
                    report.try_set(Some(r));
                    reveal("import-report");
                }
                Err(e) => {
                    report.try_set(None);
                    error.try_set(Some(e.detail));
                }
            }
            checking.try_set(false);
        });
    };

    let start = move |_| {
        let Some(text) = text_or_complain() else {
            return;
        };
        starting.set(true);
        spawn_local(async move {
            let started = api::start_import(session, &text).await;
            starting.try_set(false);
            let mut current = match started {
                Ok(j) => j,
                Err(e) => {
                    error.try_set(Some(e.detail));
                    return;
                }
            };
            report.try_set(None);
            reveal("import-job");
            let id = current.id;
            // Poll until the job ends, or until the page is left (the signal is gone).
            loop {
                let running = current.status == ImportStatus::Running;
                if job.try_set(Some(current)).is_some() {
                    return;
                }
                if !running {
                    break;
                }
                TimeoutFuture::new(POLL_MS).await;
                current = loop {
                    match api::import_job(session, id).await {
                        Ok(j) => break j,
                        // A blip: keep the last progress and ask again.
                        Err(e) if e.status == 0 || e.status >= 500 => {
                            TimeoutFuture::new(POLL_MS * 4).await;
                        }
                        Err(e) => {
                            error.try_set(Some(e.detail));
                            return;
                        }
                    }
                };
            }
            if let Some(j) = job.try_get_untracked().flatten() {
                match j.status {
                    ImportStatus::Finished => toasts.success(format!(
                        "Import finished: {} created, {} updated, {} failed.",
                        j.counts.created, j.counts.updated, j.counts.failed
                    )),
                    _ => toasts.error("The import failed; see the errors below."),
                }
            }
        });
    };

    let job_id = Memo::new(move |_| job.with(|j| j.as_ref().map(|j| j.id)));
    let busy = move || checking.get() || starting.get() || running();

    view! {
        <div class="page">
            <nav class="breadcrumb" aria-label="Breadcrumb">
                <A href="/devices">"Devices"</A>
                <span aria-hidden="true">"/"</span>
                <span>"Import"</span>
            </nav>
            <PageHeader title="Import devices" intro="Create or update many devices from a CSV file: check it first, then import."/>

            <section class="card">
                <div class="card-header">
                    <h2>"CSV"</h2>
                    <label class="button button-secondary button-small file-button">
                        "Choose a file…"
                        <input type="file" accept=".csv,text/csv,text/plain" data-test="import-file" on:change=on_file/>
                    </label>
                </div>
                {move || file_name.get().map(|n| view! { <p class="hint file-name">{format!("From {n}")}</p> })}
                <textarea
                    name="csv"
                    rows="9"
                    spellcheck="false"
                    class="csv-input"
                    data-test="import-csv"
                    placeholder=EXAMPLE
                    prop:value=move || csv.get()
                    on:input=move |ev| {
                        csv.set(event_target_value(&ev));
                        report.set(None);
                    }
                ></textarea>
                <details class="help">
                    <summary>"Columns"</summary>
                    <dl class="details columns">
                        <dt><code>"name"</code></dt><dd>"Required, unique in the tenant: a row with an existing name updates that device."</dd>
                        <dt><code>"label"</code>", "<code>"type"</code></dt><dd>"Optional."</dd>
                        <dt><code>"profile"</code></dt><dd>"A profile's name; empty: the default profile."</dd>
                        <dt><code>"groups"</code></dt><dd>"Group names separated by ;"</dd>
                        <dt><code>"access_token"</code></dt><dd>"Or "<code>"mqtt_username"</code>", "<code>"mqtt_password"</code>" (and "<code>"mqtt_client_id"</code>"). Empty: a token is generated, downloadable once after the import."</dd>
                        <dt><code>"shared:key"</code>", "<code>"server:key"</code></dt><dd>"An attribute per column; values are read as JSON when they parse, as text otherwise."</dd>
                    </dl>
                </details>
                <ErrorMessage error=error/>
                <div class="form-actions gap">
                    <button type="button" class="button button-secondary" data-test="import-check" disabled=busy on:click=check>
                        {move || if checking.get() { "Checking…" } else { "Check" }}
                    </button>
                    <button type="button" class="button button-primary" data-test="import-start" disabled=busy on:click=start>
                        {move || if starting.get() { "Starting…" } else { "Import" }}
                    </button>
                </div>
            </section>

            {move || checking.get().then(|| view! { <div class="card"><Spinner label="Checking the file…"/></div> })}

            {move || report.get().map(|r| view! {
                <section class="card" data-test="import-report">
                    <div class="card-header">
                        <h2>"Check"</h2>
                        <span class="muted">"Nothing was changed yet."</span>
                    </div>
                    <CountTiles counts=r.counts dry_run=true/>
                    <RowTable rows=r.rows/>
                </section>
            })}

            // Keyed on the job alone, so that the bar moves smoothly while the counts change.
            {move || job_id.get().map(|_| {
                let processed = Signal::derive(move || job.with(|j| j.as_ref().map_or(0, |j| j.counts.processed)));
                let total = Signal::derive(move || job.with(|j| j.as_ref().map_or(0, |j| j.counts.total)));
                view! {
                    <section class="card" data-test="import-job">
                        <div class="card-header">
                            <h2>"Import"</h2>
                            <span data-test="import-status">
                                {move || match job.with(|j| j.as_ref().map(|j| j.status)) {
                                    Some(ImportStatus::Running) => view! { <StatusBadge tone=Tone::Info text="Running" status="running"/> }.into_any(),
                                    Some(ImportStatus::Finished) => view! { <StatusBadge tone=Tone::Good text="Finished" status="finished"/> }.into_any(),
                                    Some(ImportStatus::Failed) => view! { <StatusBadge tone=Tone::Bad text="Failed" status="failed"/> }.into_any(),
                                    None => ().into_any(),
                                }}
                            </span>
                        </div>
                        <ProgressBar done=processed total=total/>
                        {move || job.get().filter(|j| j.status != ImportStatus::Running).map(|j| view! {
                            {j.reason.clone().map(|why| view! {
                                <div class="alert alert-error section-gap" role="alert" data-test="error">{why}</div>
                            })}
                            <CountTiles counts=j.counts dry_run=false/>
                            <div class="button-row">
                                {j.credentials_available.then(|| view! { <CredentialsDownload id=j.id/> })}
                                <A href="/devices" attr:class="button button-secondary" attr:data-test="open-devices">"Open the device list"</A>
                            </div>
                            {(!j.errors.is_empty()).then(|| view! {
                                <h3 class="section-title section-gap">"Rows not imported"</h3>
                                <RowTable rows=j.errors.clone()/>
                            })}
                        })}
                    </section>
                }
            })}
        </div>
    }
}

/// The counts as tiles: rows, new, updated, unchanged, errors.
#[component]
fn CountTiles(counts: ImportCounts, dry_run: bool) -> impl IntoView {
    let tiles = [
        ("Rows", counts.total, "total", false),
        (
            if dry_run { "New" } else { "Created" },
            counts.created,
            "created",
            false,
        ),
        (
            if dry_run { "Updates" } else { "Updated" },
            counts.updated,
            "updated",
            false,
        ),
        ("Unchanged", counts.unchanged, "unchanged", false),
        ("Errors", counts.failed, "failed", counts.failed > 0),
    ];
    view! {
        <div class="stats stats-inline" data-test="import-counts">
            {tiles.into_iter().map(|(label, n, key, bad)| view! {
                <div class="stat" class:stat-bad=bad data-test="count" data-key=key>
                    <span class="stat-label">{label}</span>
                    <span class="stat-value">{n}</span>
                </div>
            }).collect_view()}
        </div>
    }
}

/// A report's rows: line, name, outcome, column and reason.
#[component]
fn RowTable(rows: Vec<ImportRowReport>) -> impl IntoView {
    let hidden = rows.len().saturating_sub(MAX_ROWS);
    view! {
        <div class="table-scroll">
            <table class="table table-compact">
                <TableHead columns=&["Line", "Name", "Outcome", "Column", "Reason"]/>
                <tbody>
                    {rows.into_iter().take(MAX_ROWS).map(|r| {
                        let (tone, text, key) = outcome_badge(r.outcome);
                        view! {
                            <tr data-test="import-row" data-outcome=key>
                                <td class="muted">{r.line}</td>
                                <td class="strong">{r.name}</td>
                                <td><StatusBadge tone=tone text=text status=key/></td>
                                <td>{r.column.map(|c| view! { <code>{c}</code> })}</td>
                                <td>{r.reason}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        {(hidden > 0).then(|| view! { <p class="hint">{format!("{hidden} more rows are not shown.")}</p> })}
    }
}

/// The generated credentials, downloadable once: the button goes away after the download.
#[component]
fn CredentialsDownload(id: uuid::Uuid) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let busy = RwSignal::new(false);
    let done = RwSignal::new(false);
    let download = move |_| {
        busy.set(true);
        spawn_local(async move {
            let result = api::import_credentials(session, id).await;
            match result.and_then(|blob| save_blob(&blob, &format!("credentials-{id}.csv"))) {
                Ok(()) => {
                    done.try_set(true);
                }
                Err(e) => toasts.error(e.detail),
            }
            busy.try_set(false);
        });
    };
    move || {
        if done.get() {
            view! { <span class="muted" data-test="credentials-downloaded">"Credentials downloaded; they are not kept."</span> }.into_any()
        } else {
            view! {
                <button type="button" class="button button-primary" data-test="download-credentials" disabled=move || busy.get() on:click=download>
                    {move || if busy.get() { "Downloading…" } else { "Download generated credentials" }}
                </button>
            }.into_any()
        }
    }
}
