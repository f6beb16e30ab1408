//! End-to-end tests: the real `stead` binary, real PostgreSQL and Redis (or the embedded SQLite
//! default), real HTTP. One test binary; each test starts its own server on its own database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod access;
mod account;
mod audit;
mod auth;
mod backup;
mod bad_input;
mod browser;
mod browser_account;
mod browser_audit;
mod browser_fleet;
mod browser_import;
mod browser_live;
mod browser_people;
mod browser_roles;
mod credentials;
mod deploy;
mod device_http;
mod devices;
mod dist;
mod doctor;
mod durability;
mod embedded;
mod graceful;
mod imports;
mod loadgen;
mod mail;
mod management;
mod mqtt;
mod mqtt_raw;
mod multinode;
mod observability;
mod people;
mod permissions;
mod quotas;
mod retention;
mod sdk;
mod tenancy;
mod tenants;
mod tls;
mod traces;
mod upgrade;
mod users;
