//! Custom roles (a tenant's own sets of permissions) and role bindings: the roles a person holds
//! beyond their built-in one, over the whole tenant or over some device groups. What they add up
//! to is `auth::access::Access`, read again at every request.

pub mod http;
pub mod model;
pub mod repo;
pub mod service;
