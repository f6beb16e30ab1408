//! Invitations, password reset and two-factor sign-in through the REST API (being written).
