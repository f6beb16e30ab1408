//! Tenants: the organisations that share one Stead. Only the platform admin creates, lists and
//! suspends them; a suspended tenant's people and devices are refused.

pub mod http;
pub mod model;
pub mod quotas;
pub mod repo;
