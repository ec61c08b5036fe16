//! Integration tests of the process sandbox: one binary, themed modules under `suite/`.
//! They need root (as CI runs them); as another user they skip with a message.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

#[path = "netns_support/mod.rs"]
mod netns_support;
mod suite;
