//! End-to-end tests: the real `muster` binary over HTTP, each on SQLite and PostgreSQL.

mod audit;
mod auth;
mod catalog;
mod changes;
pub mod common;
mod incidents;
mod intake;
mod notify;
mod oncall;
mod openapi;
mod pages;
mod peers;
mod probes;
mod renewals;
mod server;
mod stories;
