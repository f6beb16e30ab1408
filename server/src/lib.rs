//! Stead: the operations layer for IoT fleets.
//!
//! The server is a library so that `main.rs` stays a thin CLI and tests can start it on ephemeral
//! ports. Each domain (tenants, users, devices, auth, audit) is a module of its own with the same
//! shape inside: `model` (the table), `repo` (tenant-scoped queries), `http` (routes). The `http`
//! module owns the edge: route table, extractors, the one error type. `app` wires the roles.

pub mod alarms;
pub mod apikeys;
pub mod app;
pub mod attributes;
pub mod audit;
pub mod auth;
pub mod blobs;
pub mod campaigns;
pub mod config;
pub mod db;
pub mod devices;
pub mod error;
pub mod events;
pub mod files;
pub mod fleet;
pub mod groups;
pub mod guard;
pub mod healthcheck;
pub mod http;
pub mod ids;
pub mod imports;
pub mod ingest;
pub mod ingress;
pub mod invitations;
pub mod live;
pub mod mail;
pub mod nesting;
pub mod notifications;
pub mod observability;
pub mod ops;
pub mod ota;
pub mod profiles;
pub mod provisioning;
pub mod roles;
pub mod rpc;
pub mod secret;
pub mod telemetry;
pub mod tenants;
pub mod text;
pub mod timeline;
pub mod users;
pub mod webhooks;
