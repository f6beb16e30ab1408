//! Invitations: a tenant admin invites a person by e-mail with the built-in role and bindings
//! they will hold; the e-mail carries a one-time link (its token stored as SHA-256, valid for
//! `STEAD_INVITATION_TTL_SECS`) to a page where the invitee sets their password, and accepting
//! creates the account, signed in. Nobody invites with more than they hold (the same checks as
//! bindings); every change is audited; without an SMTP server the link is answered to the
//! inviter to pass on.

pub mod http;
pub mod model;
pub mod repo;
pub mod service;
