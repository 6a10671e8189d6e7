//! `echoloop`: the host side of the echo server. A [`driver`] over a readiness backend
//! ([`poll`]: `select(2)`, or epoll on Linux) feeds the
//! `no_std` core ([`echoloop_core`]) from real sockets; a [`client`] checks it end to end;
//! [`cli`] is the `echoloop` binary's command line. The load generator is a binary of its
//! own, `echoloop-bench` (`loadgen/`), so that the server carries none of it.
//!
//! Every `unsafe` block lives in [`sys`], the thin layer over libc; the rest is safe Rust.
#![deny(missing_docs)]
#![deny(unsafe_code)]
// Each `unsafe` block does one unsafe thing and says why it is sound.
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]
// No panicking call on any path the network can reach; tests may.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod activation;
pub mod cli;
pub mod client;
pub mod config;
pub mod docs;
pub mod driver;
pub mod net;
mod nofile;
pub mod notify;
mod per_ip;
pub mod poll;
mod relay;
pub mod signals;
pub mod storage;
#[allow(unsafe_code)]
pub mod sys;
mod trace;
pub mod udp;

pub use config::ServeConfig;
pub use driver::Driver;
pub use net::{Net, Sys};
pub use poll::fd_set::FdSet;
pub use poll::PollerKind;
