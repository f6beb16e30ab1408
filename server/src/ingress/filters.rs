//! The topic filters one session holds, against `STEAD_MQTT_MAX_SUBSCRIPTIONS`. A device needs
//! a handful; a session that asks for more, or has been refused as many times, is refused every
//! new filter with "quota exceeded" (MQTT 5 0x97, 3.1.1 0x80) without it being looked at: ten
//! thousand filters cost neither memory nor ten thousand timeline entries.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;

use super::session::DeviceSession;
use crate::timeline::{self, EventKind};

pub struct Filters {
    max: usize,
    held: RefCell<HashSet<Box<str>>>,
    refused: Cell<usize>,
    /// Whether the device's timeline has heard that the quota was reached (once per session).
    told: Cell<bool>,
}

/// What to do with a filter a SUBSCRIBE asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Look at it (`DeviceSession::may_subscribe`), then `held` or `refused`.
    Look,
    /// Refuse it: quota exceeded.
    Over,
}

impl Filters {
    pub fn new(max: usize) -> Filters {
        Filters {
            max,
            held: RefCell::default(),
            refused: Cell::new(0),
            told: Cell::new(false),
        }
    }

    /// Whether `filter` may be looked at: one the session holds already (subscribing again
    /// replaces it), or one more while the session is within its quota.
    pub fn verdict(&self, filter: &str, session: &DeviceSession) -> Verdict {
        let held = self.held.borrow();
        if held.contains(filter) || (held.len() < self.max && self.refused.get() < self.max) {
            return Verdict::Look;
        }
        if !self.told.replace(true) {
            timeline::record(
                &session.ctx.state.timeline,
                &session.identity,
                EventKind::SubscriptionRefused,
                format!(
                    "Subscriptions refused from {filter:?} on: the session holds {} topic filters \
                     and was refused {} (at most {} each)",
                    held.len(),
                    self.refused.get(),
                    self.max
                ),
                serde_json::json!({
                    "topic": filter.chars().take(200).collect::<String>(),
                    "reason": "quota_exceeded",
                }),
            );
        }
        session.ctx.metrics_rejected("subscription_quota_exceeded");
        Verdict::Over
    }

    /// The session now holds `filter`.
    pub fn held(&self, filter: &str) {
        self.held.borrow_mut().insert(filter.into());
    }

    /// `filter` was refused (not one of the device's topics).
    pub fn refused(&self) {
        self.refused.set(self.refused.get() + 1);
    }

    /// The session no longer holds `filter`; what it brought stops unless another filter the
    /// session holds brings it too.
    pub fn released(&self, filter: &str, session: &DeviceSession) {
        let mut held = self.held.borrow_mut();
        if held.remove(filter) {
            session.unsubscribed(filter, &held);
        }
    }

    pub fn len(&self) -> usize {
        self.held.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
