//! One module per screen of the console (`home` is the fleet health dashboard at `/`, `account`
//! the signed-in person's own page, `two_factor` its two-factor card; `login`, `password_reset`
//! and `invite` are reached signed out);
//! `attribute_form` is the attribute dialog several of them share, `bindings` the role bindings
//! editor; `integrations` is a directory (the endpoint list, an endpoint's page, its delivery log),
//! and so is `alarms` (the alarm list, an alarm's page, the bell, the table a device's tab shares)
//! and `firmware` (the package library, its upload dialog, the signing keys).

pub mod account;
pub mod alarms;
pub mod api_keys;
pub mod attribute_form;
pub mod audit;
pub mod bindings;
pub mod device;
pub mod devices;
pub mod firmware;
pub mod groups;
pub mod home;
pub mod import;
pub mod integrations;
pub mod invitations;
pub mod invite;
pub mod login;
pub mod notifications;
pub mod password_reset;
pub mod profiles;
pub mod roles;
pub mod tenants;
pub mod two_factor;
pub mod usage;
pub mod users;
