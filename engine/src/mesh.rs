//! Mesh features above the WireGuard sessions. So far: [`channel`], ordered reliable message
//! channels between two nodes.

pub mod channel;
