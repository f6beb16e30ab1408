//! One module per screen of the console.

pub mod device;
pub mod devices;
pub mod login;
pub mod tenants;
pub mod users;
