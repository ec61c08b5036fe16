//! Integration tests of the Docker backend against a real daemon (`scripts/ci-docker-setup.sh`
//! starts one): the hostile tool of the process sandbox's suite, in a FROM-scratch image, with
//! the same attacks. They fail loudly without a daemon, unless SLOVO_TEST_SKIP_DOCKER=1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

mod docker_suite;
#[path = "netns_support/mod.rs"]
mod netns_support;
