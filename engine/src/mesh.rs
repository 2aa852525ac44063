//! Mesh features above the WireGuard sessions: [`channel`], ordered reliable message channels between
//! two nodes; [`discovery`], members learning each other over authenticated sessions, with the trust
//! rules of [`membership`] and the record format of [`wire`]; [`candidate`], the paths to a member
//! and the choice between them.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod candidate;
pub mod channel;
pub mod discovery;
pub mod membership;
pub mod wire;
