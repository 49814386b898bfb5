//! On-call: who is on call for a schedule at an instant, and the final shifts over a
//! range, across timezones and daylight-saving changes. Pure calculators, tested
//! without a database (property tests compare them with a brute-force evaluation).
//!
//! - [`schedule`]: the schedule model, read from the catalog's `schedules` section.
//! - [`shifts`]: evaluation — layers, `active` windows, overrides, gaps.
//! - [`escalation`]: who is paged when, until someone acknowledges.
//! - [`overrides`]: overrides made at run time: validation and ending.
//! - [`revisions`]: editing a schedule without rewriting its past.

pub mod escalation;
pub mod ical;
pub mod overrides;
pub mod revisions;
pub mod schedule;
pub mod shifts;

pub use escalation::{Cursor, Page, Policy, Step, Target};
pub use schedule::{Definition, Layer, Override, Rotation, Schedule};
pub use shifts::{OnCall, Shift, Shifts};
