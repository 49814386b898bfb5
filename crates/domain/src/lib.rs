//! Muster's domain rules, free of I/O: every rule can be found here by its name and
//! tested without a database or a network.

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod changes;
pub mod clock;
pub mod ical;
pub mod incidents;
pub mod notify;
pub mod oncall;
pub mod problem;
pub mod signals;
pub mod slug;

pub use problem::{FieldError, FieldErrors};
