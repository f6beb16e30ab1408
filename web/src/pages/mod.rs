//! One module per screen of the console (`account` is the signed-in person's own); `attribute_form` is the attribute dialog several of
//! them share.

pub mod account;
pub mod api_keys;
pub mod attribute_form;
pub mod audit;
pub mod device;
pub mod devices;
pub mod groups;
pub mod import;
pub mod login;
pub mod profiles;
pub mod roles;
pub mod tenants;
pub mod usage;
pub mod users;
