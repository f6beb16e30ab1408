//! What people do to alarms (acknowledge, clear, assign, comment), on one alarm or on a
//! selection: the call, the toast that says it happened, and the bump that makes the bell and
//! the lists read again.

use leptos::prelude::*;
use stead_api_types::{Alarm, AlarmAction, AlarmBulk};
use uuid::Uuid;

use super::look::AlarmsChanged;
use crate::api;
use crate::session::{Session, use_session};
use crate::ui::{Action, Toasts, use_toasts};

/// The action in the past tense, for toasts: "acknowledged", "cleared" ...
fn done_word(action: &AlarmAction) -> &'static str {
    match action {
        AlarmAction::Acknowledge => "acknowledged",
        AlarmAction::Clear => "cleared",
        AlarmAction::Assign { user_id: Some(_) } => "assigned",
        AlarmAction::Assign { user_id: None } => "unassigned",
        AlarmAction::Comment { .. } => "commented on",
    }
}

fn alarms(n: u64) -> String {
    if n == 1 {
        "1 alarm".to_owned()
    } else {
        format!("{n} alarms")
    }
}

#[derive(Clone, Copy)]
pub struct AlarmActions {
    session: Session,
    toasts: Toasts,
    changed: AlarmsChanged,
    /// Busy while one runs; the server's refusal.
    pub runner: Action,
}

impl AlarmActions {
    /// Refusals shown as error toasts (for buttons, which have nowhere else to show them).
    pub fn new() -> Self {
        let toasts = use_toasts();
        Self::with_runner(Action::new().toast_errors(toasts))
    }

    /// Refusals kept in `runner.error`, for a form to show beside its fields.
    pub fn with_runner(runner: Action) -> Self {
        AlarmActions {
            session: use_session(),
            toasts: use_toasts(),
            changed: AlarmsChanged::get(),
            runner,
        }
    }

    pub fn busy(&self) -> RwSignal<bool> {
        self.runner.busy
    }

    /// Runs `action` on one alarm; `then` gets the alarm as it is now.
    pub fn one(self, id: Uuid, action: AlarmAction, then: impl FnOnce(Alarm) + 'static) {
        let word = done_word(&action);
        let session = self.session;
        let fut = async move { api::alarm_action(session, id, &action).await };
        self.runner.run(fut, move |alarm| {
            self.toasts.success(if word == "commented on" {
                "Comment added.".to_owned()
            } else {
                format!("Alarm {word}.")
            });
            self.changed.bump();
            then(alarm);
        });
    }

    /// Runs `action` on every alarm of `ids`; the alarms it could not change are named with the
    /// first reason.
    pub fn bulk(self, ids: Vec<Uuid>, action: AlarmAction, then: impl FnOnce() + 'static) {
        let word = done_word(&action);
        let session = self.session;
        let body = AlarmBulk { ids, action };
        let fut = async move { api::alarm_bulk(session, &body).await };
        self.runner.run(fut, move |result| {
            if result.changed > 0 {
                self.toasts
                    .success(format!("{} {word}.", alarms(result.changed)));
            }
            if let Some(why) = result.failed.values().next() {
                self.toasts.error(format!(
                    "{} could not be {word}: {why}",
                    alarms(result.failed.len() as u64)
                ));
            }
            self.changed.bump();
            then();
        });
    }
}
