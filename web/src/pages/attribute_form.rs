//! The dialog that sets one attribute (scope, key, JSON value), shared by the device page, the
//! groups page and the device list's bulk actions: each passes what saving means to it.

use std::future::Future;

use leptos::prelude::*;
use stead_api_types::AttributeScope;

use crate::session::ApiError;
use crate::ui::{Action, ErrorMessage, FormActions, Modal, non_empty, parse_json, use_toasts};

pub type Values = serde_json::Map<String, serde_json::Value>;

/// The scopes people may write: client attributes come from the device.
pub const WRITABLE: [AttributeScope; 2] = [AttributeScope::Shared, AttributeScope::Server];

pub fn scope_label(scope: AttributeScope) -> &'static str {
    match scope {
        AttributeScope::Client => "Client",
        AttributeScope::Shared => "Shared",
        AttributeScope::Server => "Server",
    }
}

pub fn scope_hint(scope: AttributeScope) -> &'static str {
    match scope {
        AttributeScope::Client => "Reported by the device; read-only here.",
        AttributeScope::Shared => "Sent to the device, which may subscribe to changes.",
        AttributeScope::Server => "Kept on the platform; the device never sees them.",
    }
}

/// A key and its typed value as one attribute, or what is wrong with them.
pub fn attribute_values(key: &str, value: &str) -> Result<Values, String> {
    let Some(key) = non_empty(key) else {
        return Err("Give the attribute a key.".into());
    };
    if value.trim().is_empty() {
        return Err("Give the attribute a value (JSON: 21.5, \"text\", true, {…}).".into());
    }
    let value = parse_json(value, "The value")?;
    let mut values = Values::new();
    values.insert(key, value);
    Ok(values)
}

/// What the dialog starts with.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    pub scope: AttributeScope,
    pub key: String,
    pub value: String,
    /// Editing an existing key: the key and scope stay as they are.
    pub fixed: bool,
}

impl Draft {
    pub fn new(scope: AttributeScope) -> Draft {
        Draft {
            scope,
            key: String::new(),
            value: String::new(),
            fixed: false,
        }
    }
}

/// Asks for a scope (shared or server), a key and a JSON value and hands them to `save`, whose
/// `Ok` is the message to toast; `on_done` closes the dialog afterwards.
#[component]
pub fn AttributeDialog<F, Fut>(
    #[prop(into)] title: String,
    #[prop(into)] intro: String,
    draft: Draft,
    save: F,
    on_close: Callback<()>,
    on_done: Callback<()>,
) -> impl IntoView
where
    F: Fn(AttributeScope, Values) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, ApiError>> + 'static,
{
    let toasts = use_toasts();
    let scope = RwSignal::new(draft.scope);
    let key = RwSignal::new(draft.key);
    let value = RwSignal::new(draft.value);
    let action = Action::new();
    let fixed = draft.fixed;

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let values = match attribute_values(&key.get_untracked(), &value.get_untracked()) {
            Ok(v) => v,
            Err(e) => {
                action.refuse(e);
                return;
            }
        };
        action.run(save(scope.get_untracked(), values), move |message| {
            toasts.success(message);
            on_done.run(());
        });
    };

    view! {
        <Modal title=title on_close=on_close>
            <form class="form" on:submit=submit novalidate=true>
                <p class="modal-text">{intro}</p>
                <label class="field">
                    <span>"Scope"</span>
                    <select name="scope" disabled=fixed on:change=move |ev| {
                        if let Some(s) = AttributeScope::parse(&event_target_value(&ev)) {
                            scope.set(s);
                        }
                    }>
                        {WRITABLE.into_iter().map(|s| view! {
                            <option value=s.as_str() selected=move || scope.get() == s>{scope_label(s)}</option>
                        }).collect_view()}
                    </select>
                    <small class="hint">{move || scope_hint(scope.get())}</small>
                </label>
                <label class="field">
                    <span>"Key" <em class="required">"required"</em></span>
                    <input type="text" name="attribute_key" autocomplete="off" placeholder="targetTemperature" disabled=fixed bind:value=key/>
                </label>
                <label class="field">
                    <span>"Value " <em class="hint">"(JSON)"</em></span>
                    <textarea name="attribute_value" rows="3" spellcheck="false" placeholder="21.5" bind:value=value></textarea>
                    <small class="hint">"Numbers, true/false and null as they are; text in double quotes, e.g. \"eco\"; objects and lists in JSON."</small>
                </label>
                <ErrorMessage error=action.error/>
                <FormActions busy=action.busy on_cancel=on_close label="Save attribute" busy_label="Saving…" test="save-attribute"/>
            </form>
        </Modal>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_json_with_a_key() {
        let v = attribute_values(" mode ", "\"eco\"").unwrap();
        assert_eq!(v.get("mode"), Some(&serde_json::json!("eco")));
        let v = attribute_values("t", " 21.5 ").unwrap();
        assert_eq!(v.get("t"), Some(&serde_json::json!(21.5)));
        assert!(attribute_values("", "1").is_err());
        assert!(attribute_values("k", "").is_err());
        assert!(
            attribute_values("k", "eco")
                .unwrap_err()
                .contains("double quotes")
        );
    }
}
