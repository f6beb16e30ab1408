//! Notifications: `inbox` the bell of the signed-in person's in-app notifications.

mod inbox;

pub use self::inbox::NotificationBell;
